// Package lease elects one node of a cluster to do a job (compute the KPIs,
// evaluate the alert rules): the holder of a key in a NATS KV bucket whose
// entries expire after a TTL. The holder renews the key with a
// compare-and-set on its revision; the other nodes try to create it, which
// succeeds once it lapsed.
//
// The holder also keeps the lease by its own clock: it counts the lease
// valid until 9/10 of a TTL after it sent its last renewal the server
// confirmed (the server lets the key expire a TTL after it received it).
// Past that — a process paused by the kernel, a stalled garbage
// collection, a renewal that hangs — the job's context is cancelled, and
// Check, which jobs call just before they write, refuses at once, even
// before the renewal goroutine ran again. Two nodes may still both write
// for the length of one write begun before the pause, so what they write
// must tolerate that (the KPI store's expected revisions, the alert
// versions do).
package lease

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Config of a lease.
type Config struct {
	// Bucket of the lease (memory storage, history 1). Required.
	Bucket string
	// Description of the bucket, for operators listing buckets.
	Description string
	// Node names this node in the lease. Default the host name and pid.
	Node string
	// TTL after which the lease lapses when its holder stops renewing it.
	// Default 10s.
	TTL time.Duration
	// Replicas of the bucket on a NATS cluster. Default 1.
	Replicas int
}

// Lease is one node's handle on a job's lease. Not safe for concurrent
// use, except Check.
type Lease struct {
	kv  jetstream.KeyValue
	cfg Config
	rev uint64
	// validUntil is when the lease lapses by this node's clock: time since
	// base (monotonic), in nanoseconds.
	validUntil atomic.Int64
	base       time.Time
	now        func() time.Time // the clock; tests move it
}

// ErrLapsed: the lease's holder went a TTL without a confirmed renewal
// (its process was paused, its renewals hang): another node may hold it.
var ErrLapsed = errors.New("lease lapsed: no renewal confirmed within its TTL")

type heldKey struct{}

// Check says whether the job of ctx may still write: nil unless ctx is a
// lease's job whose lease lapsed by this node's clock (ErrLapsed), or ctx
// ended. Call it just before a write that another holder must not race.
func Check(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if l, ok := ctx.Value(heldKey{}).(*Lease); ok && !l.valid() {
		return ErrLapsed
	}
	return nil
}

func (l *Lease) since() int64 { return int64(l.now().Sub(l.base)) }

func (l *Lease) valid() bool { return l.since() < l.validUntil.Load() }

// confirmed notes a renewal (or the creation) sent at sent, in since's
// unit, that the server confirmed.
func (l *Lease) confirmed(sent int64) {
	l.validUntil.Store(sent + int64(l.cfg.TTL)*9/10)
}

// untilLapse is how long the lease stays valid by this node's clock.
func (l *Lease) untilLapse() time.Duration {
	return time.Duration(l.validUntil.Load() - l.since())
}

const key = "holder"

// New creates the lease bucket when missing.
func New(ctx context.Context, js jetstream.JetStream, cfg Config) (*Lease, error) {
	if cfg.Bucket == "" {
		return nil, errors.New("lease: bucket is missing")
	}
	if cfg.Node == "" {
		cfg.Node = NodeName()
	}
	if cfg.TTL == 0 {
		cfg.TTL = 10 * time.Second
	}
	if cfg.Replicas == 0 {
		cfg.Replicas = 1
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: cfg.Bucket, Description: cfg.Description, TTL: cfg.TTL, History: 1,
		Storage: jetstream.MemoryStorage, Replicas: cfg.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("lease bucket %s: %w", cfg.Bucket, err)
	}
	return &Lease{kv: kv, cfg: cfg, base: time.Now(), now: time.Now}, nil
}

// Node is the name this node holds the lease under.
func (l *Lease) Node() string { return l.cfg.Node }

// Acquire waits up to TTL/3 for the lease; it reports whether it has it.
func (l *Lease) Acquire(ctx context.Context) bool {
	sent := l.since()
	rev, err := l.kv.Create(ctx, key, []byte(l.cfg.Node))
	if err == nil {
		l.rev = rev
		l.confirmed(sent)
		return true
	}
	select {
	case <-ctx.Done():
	case <-time.After(l.cfg.TTL / 3):
	}
	return false
}

// Hold runs job while the lease holds: it renews the lease every TTL/3 on
// a goroutine of its own (a long computation never lets it lapse), and
// cancels job's context when a renewal fails. It returns job's error, or
// the renewal's when that is what stopped it; and releases the lease when
// ctx ended, so that another node takes over at once.
func (l *Lease) Hold(ctx context.Context, job func(context.Context) error) error {
	cctx, lost := context.WithCancelCause(ctx)
	jctx := context.WithValue(cctx, heldKey{}, l)
	stop := make(chan struct{})
	renewed := make(chan struct{})
	go func() {
		defer close(renewed)
		t := time.NewTicker(l.cfg.TTL / 3)
		defer t.Stop()
		// Wakes the goroutine when the lease lapses by this node's clock
		// with no renewal confirmed (one that hangs).
		lapse := time.NewTimer(l.untilLapse())
		defer lapse.Stop()
		for {
			select {
			case <-jctx.Done():
				return
			case <-stop:
				return
			case <-lapse.C:
				if !l.valid() {
					lost(ErrLapsed)
					return
				}
				lapse.Reset(l.untilLapse())
			case <-t.C:
				// After a pause the tick comes late: a renewal then would
				// succeed if no other node took the key meanwhile, but
				// this node cannot know what was written meanwhile.
				if !l.valid() {
					lost(ErrLapsed)
					return
				}
				sent := l.since()
				// A renewal is not cut short when ctx ends: one the server
				// applied but whose answer was dropped would leave l.rev
				// behind the key, and the release would miss it.
				uctx, cancel := context.WithTimeout(context.WithoutCancel(jctx), l.cfg.TTL/3)
				rev, err := l.kv.Update(uctx, key, []byte(l.cfg.Node), l.rev)
				cancel()
				if err != nil {
					if jctx.Err() == nil { // not the job ending: the lease is lost
						lost(fmt.Errorf("renew lease %s: %w", l.cfg.Bucket, err))
					}
					return
				}
				l.rev = rev
				l.confirmed(sent)
				lapse.Reset(l.untilLapse())
			}
		}
	}()
	err := job(jctx)
	close(stop)
	<-renewed
	cause := context.Cause(jctx)
	lost(nil)
	if ctx.Err() != nil {
		l.release()
		return nil
	}
	if errors.Is(cause, ErrLapsed) {
		// This node cannot know what another did meanwhile: it gives the
		// key up if still its own, so that whoever takes it next (this
		// node too) starts over, catching up, rather than waiting a TTL.
		l.release()
	}
	if cause != nil && !errors.Is(cause, context.Canceled) {
		return cause
	}
	return err
}

// release deletes the key if this node still holds it. The delete is
// conditional on the revision this node last wrote; if that is not the
// key's (a renewal whose answer was lost), the key is read and deleted at
// its own revision when it still names this node.
func (l *Lease) release() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if l.kv.Delete(ctx, key, jetstream.LastRevision(l.rev)) == nil {
		return
	}
	e, err := l.kv.Get(ctx, key)
	if err != nil || string(e.Value()) != l.cfg.Node {
		return
	}
	_ = l.kv.Delete(ctx, key, jetstream.LastRevision(e.Revision()))
}

// NodeName is the default name of this node: host name and process id.
func NodeName() string {
	h, _ := os.Hostname()
	return h + "-" + strconv.Itoa(os.Getpid())
}
