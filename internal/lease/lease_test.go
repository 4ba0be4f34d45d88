package lease

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vn-ioc/ioc/internal/testenv"
)

func newPair(t *testing.T) (*Lease, *Lease, jetstream.KeyValue) {
	t.Helper()
	_, nc := testenv.NATS(t)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	cfg := Config{Bucket: "lease_test", TTL: 6 * time.Second}
	a, err := New(ctx, js, Config{Bucket: cfg.Bucket, TTL: cfg.TTL, Node: "a"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(ctx, js, Config{Bucket: cfg.Bucket, TTL: cfg.TTL, Node: "b"})
	if err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(ctx, cfg.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	return a, b, kv
}

// One holder at a time; the lease stays held across several TTLs while the
// holder renews it, and passes at once to the other node when the holder's
// context ends.
func TestLeaseHoldAndHandOver(t *testing.T) {
	a, b, _ := newPair(t)
	ctx, stop := context.WithCancel(context.Background())
	if !a.Acquire(ctx) {
		t.Fatal("a could not take a free lease")
	}
	held := make(chan error, 1)
	go func() {
		held <- a.Hold(ctx, func(jctx context.Context) error { <-jctx.Done(); return jctx.Err() })
	}()
	deadline := time.Now().Add(7 * time.Second) // past a TTL
	for time.Now().Before(deadline) {
		if b.Acquire(context.Background()) {
			t.Fatal("b took the lease a holds and renews")
		}
		time.Sleep(20 * time.Millisecond)
	}
	stop()
	if err := <-held; err != nil {
		t.Fatalf("hold after its context ended: %v", err)
	}
	// Released: b gets it on its first try, not after a TTL.
	if !b.Acquire(context.Background()) {
		t.Fatal("b could not take the lease a released")
	}
}

// A holder whose renewal fails (the key was taken away) has its job's
// context cancelled and gets the renewal's error.
func TestLeaseLost(t *testing.T) {
	a, _, kv := newPair(t)
	ctx := context.Background()
	if !a.Acquire(ctx) {
		t.Fatal("a could not take a free lease")
	}
	if err := kv.Purge(ctx, key); err != nil {
		t.Fatal(err)
	}
	err := a.Hold(ctx, func(jctx context.Context) error { <-jctx.Done(); return errors.New("job stopped") })
	if err == nil || err.Error() == "job stopped" {
		t.Fatalf("got %v, want the renewal's error", err)
	}
}

// A renewal the server applied but whose answer never reached the holder
// leaves its revision behind the key's; releasing still frees the lease.
func TestLeaseReleaseAfterLostRenewal(t *testing.T) {
	a, b, kv := newPair(t)
	if !a.Acquire(context.Background()) {
		t.Fatal("a could not take a free lease")
	}
	if _, err := kv.Update(context.Background(), key, []byte(a.Node()), a.rev); err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	stop()
	if err := a.Hold(ctx, func(jctx context.Context) error { <-jctx.Done(); return jctx.Err() }); err != nil {
		t.Fatalf("hold after its context ended: %v", err)
	}
	if !b.Acquire(context.Background()) {
		t.Fatal("b could not take the lease a released")
	}
}

// A holder whose process was paused past the lease (its clock moved a TTL
// with no renewal) refuses its job's writes at once (Check) — before its
// renewal goroutine has even run again, and though a renewal would still
// succeed, no other node having taken the key — then ends the job with
// ErrLapsed and gives the key up, so that the next holder starts at once.
func TestLeaseLapsedByTheHoldersClock(t *testing.T) {
	a, b, _ := newPair(t)
	var mu sync.Mutex
	skew := time.Duration(0)
	a.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return time.Now().Add(skew) }
	if !a.Acquire(context.Background()) {
		t.Fatal("a could not take a free lease")
	}
	var checks []error
	err := a.Hold(context.Background(), func(jctx context.Context) error {
		checks = append(checks, Check(jctx))
		mu.Lock()
		skew = a.cfg.TTL // the process stood still for a TTL
		mu.Unlock()
		checks = append(checks, Check(jctx))
		<-jctx.Done()
		return jctx.Err()
	})
	if !errors.Is(err, ErrLapsed) {
		t.Fatalf("hold: %v, want ErrLapsed", err)
	}
	if len(checks) != 2 || checks[0] != nil || !errors.Is(checks[1], ErrLapsed) {
		t.Fatalf("checks before and after the pause: %v", checks)
	}
	if Check(context.Background()) != nil {
		t.Error("a context that holds no lease was refused")
	}
	if !b.Acquire(context.Background()) {
		t.Fatal("b could not take the lease a gave up")
	}
}
