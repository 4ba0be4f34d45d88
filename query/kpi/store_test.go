package kpi_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vn-ioc/ioc/internal/testenv"
	"github.com/vn-ioc/ioc/query/kpi"
	"github.com/vn-ioc/ioc/stream"
)

// natsEngine is an engine over a random city (seed) that publishes into
// the KV buckets of bucket, with the rollups of family rebuilt and its
// clock at the city's instant.
// wrap, when given, stands between the engine and JetStream.
func natsEngine(t *testing.T, seed uint64, bucket, family string, wrap ...func(jetstream.JetStream) jetstream.JetStream) (*city, jetstream.JetStream, *kpi.Store, *kpi.Engine) {
	t.Helper()
	c := newCity(t, seed)
	ctx := context.Background()
	_, nc := testenv.NATS(t)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	engJS := js
	for _, w := range wrap {
		engJS = w(engJS)
	}
	scfg := kpi.StoreConfig{Bucket: bucket}
	store, err := kpi.OpenStore(ctx, js, scfg, c.cat, c.b.Loc)
	if err != nil {
		t.Fatal(err)
	}
	eng, err := kpi.NewEngine(kpi.Config{Store: scfg}, c.cat, c.b, c.db, nc, engJS, store, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.Rebuild(ctx, family, c.at); err != nil {
		t.Fatal(err)
	}
	eng.SetNow(func() time.Time { return c.at })
	return c, js, store, eng
}

// TestRatesKeptApart: the engine publishes the values of rates per minute
// into their own bucket and every other value into the main one; the store
// reads, resumes, watches and lists both as one.
func TestRatesKeptApart(t *testing.T) {
	c, js, store, eng := natsEngine(t, 31, "test_apart", "camera")
	ctx := context.Background()
	eng.SetLast(map[kpi.Key]kpi.Value{})
	eng.SetLeading(true)
	if err := eng.Recompute(ctx, "camera"); err != nil {
		t.Fatal(err)
	}
	eng.Instants(ctx) // camera.online_ratio and the other instants

	main, err := js.KeyValue(ctx, "test_apart")
	if err != nil {
		t.Fatal(err)
	}
	rates, err := js.KeyValue(ctx, "test_apart_rates")
	if err != nil {
		t.Fatalf("the rates' bucket: %v", err)
	}
	keys := func(kv jetstream.KeyValue) []string {
		t.Helper()
		ks, err := kv.Keys(ctx)
		if err != nil && !errors.Is(err, jetstream.ErrNoKeysFound) {
			t.Fatal(err)
		}
		return ks
	}
	const rate = "camera.detections_per_min."
	rateKeys, mainKeys := keys(rates), keys(main)
	if len(rateKeys) == 0 || len(mainKeys) == 0 {
		t.Fatalf("%d keys in the rates' bucket, %d in the main one: the city's cameras should give both", len(rateKeys), len(mainKeys))
	}
	for _, k := range rateKeys {
		if !strings.HasPrefix(k, rate) {
			t.Errorf("key %s in the rates' bucket", k)
		}
	}
	for _, k := range mainKeys {
		if strings.HasPrefix(k, rate) {
			t.Errorf("key %s of a rate in the main bucket", k)
		}
	}

	// Read and resumed through the store, from the bucket of its KPI.
	parts := strings.Split(rateKeys[0], ".")
	ch := kpi.Key{KPI: parts[0] + "." + parts[1], Unit: parts[2], Window: parts[3]}.Channel()
	u, ok, err := store.Latest(ctx, ch)
	if err != nil || !ok || u.Seq != 1 {
		t.Fatalf("latest of %s: seq %d, ok %v, err %v; want seq 1", ch, u.Seq, ok, err)
	}
	since, complete, err := store.Since(ctx, ch, 0)
	if err != nil || !complete || len(since) != 1 {
		t.Fatalf("%s since 0: %d values, complete %v, err %v", ch, len(since), complete, err)
	}

	// Watched as one: a value put into either bucket reaches the watcher.
	var mu sync.Mutex
	seen := map[string]uint64{}
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- store.Watch(wctx, func(u stream.Update) {
			mu.Lock()
			seen[u.Channel] = u.Seq
			mu.Unlock()
		}, nil)
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	put := func(kv jetstream.KeyValue, k kpi.Key, seq uint64) {
		t.Helper()
		b, _ := json.Marshal(kpi.Value{Key: k, Seq: seq, Numerator: int64(seq), At: c.at, From: c.at, To: c.at, AsOf: c.at, Version: 1})
		if _, err := kv.Put(ctx, k.KPI+"."+k.Unit+"."+k.Window, b); err != nil {
			t.Fatal(err)
		}
	}
	other := kpi.Key{KPI: "camera.online_ratio", Unit: "79", Window: "now"}
	perMin := kpi.Key{KPI: "camera.detections_per_min", Unit: "79", Window: "24h"}
	testenv.Eventually(t, 10*time.Second, "both buckets watched", func() (bool, error) {
		put(main, other, 100)
		put(rates, perMin, 100)
		mu.Lock()
		defer mu.Unlock()
		return seen[other.Channel()] == 100 && seen[perMin.Channel()] == 100, nil
	})

	// Listed as one; a rate an earlier version left in the main bucket
	// counts when its sequence is the higher, so that the engine goes on
	// from it.
	put(main, perMin, 500)
	all, err := store.All(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if all[other].Seq != 100 || all[perMin].Seq != 500 || len(all) != len(rateKeys)+len(mainKeys)+2-countKey(rateKeys, perMin)-countKey(mainKeys, other) {
		t.Fatalf("all: %d values (want %d), %s seq %d, %s seq %d", len(all), len(rateKeys)+len(mainKeys)+2-countKey(rateKeys, perMin)-countKey(mainKeys, other),
			other.Channel(), all[other].Seq, perMin.Channel(), all[perMin].Seq)
	}
	// The engine, having read that sequence, purges such strays: once.
	for i, want := range []int{1, 0} {
		if n, err := store.PurgeStrayRates(ctx); err != nil || n != want {
			t.Fatalf("purge %d: %d keys, err %v; want %d", i+1, n, err, want)
		}
	}
	if _, err := main.Get(ctx, perMin.KPI+"."+perMin.Unit+"."+perMin.Window); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Fatalf("the stray rate after the purge: %v", err)
	}
	if all, err = store.All(ctx); err != nil || all[perMin].Seq != 100 || all[other].Seq != 100 {
		t.Fatalf("all after the purge: %s seq %d, %s seq %d, err %v", perMin.Channel(), all[perMin].Seq, other.Channel(), all[other].Seq, err)
	}
}

// countKey is 1 when keys hold k's bucket key.
func countKey(keys []string, k kpi.Key) int {
	for _, s := range keys {
		if s == k.KPI+"."+k.Unit+"."+k.Window {
			return 1
		}
	}
	return 0
}

// TestVanishedKeysFallToZero: a key the store holds that a round of its
// KPI no longer returns (its rows left the window) is published as zero
// with the next sequence; a key of a KPI the round did not compute is
// left alone.
func TestVanishedKeysFallToZero(t *testing.T) {
	c, _, store, eng := natsEngine(t, 37, "test_vanished", "dossier")
	ctx := context.Background()
	gone := kpi.Key{KPI: "dossier.received", Unit: "no-such-unit", Window: "today"}
	other := kpi.Key{KPI: "feedback.received", Unit: "no-such-unit", Window: "today"}
	eng.SetLast(map[kpi.Key]kpi.Value{
		gone:  {Key: gone, Numerator: 5, Seq: 3},
		other: {Key: other, Numerator: 7, Seq: 9},
	})
	eng.SetLeading(true)
	if err := eng.Recompute(ctx, "dossier"); err != nil {
		t.Fatal(err)
	}
	v, ok, err := store.Get(ctx, gone)
	if err != nil || !ok || v.Seq != 4 || v.Numerator != 0 || v.From.IsZero() || !v.At.Equal(c.at) {
		t.Fatalf("%s: %+v, ok %v, err %v; want zero with seq 4, over today's span", gone.Channel(), v, ok, err)
	}
	if _, ok, err := store.Get(ctx, other); err != nil || ok {
		t.Fatalf("%s published (ok %v, err %v), though its family was not computed", other.Channel(), ok, err)
	}
}

// stalling is JetStream with a client whose outstanding publications are
// full for the first attempts of some of them, as when the stream's
// acknowledgements lag behind a round of many values.
type stalling struct {
	jetstream.JetStream
	calls, refused atomic.Int64
}

func (s *stalling) PublishMsgAsync(m *nats.Msg, opts ...jetstream.PublishOpt) (jetstream.PubAckFuture, error) {
	if n := s.calls.Add(1); n%100 == 1 && s.refused.Load() < 20 {
		s.refused.Add(1)
		return nil, jetstream.ErrTooManyStalledMsgs
	}
	return s.JetStream.PublishMsgAsync(m, opts...)
}

// TestPublishWaitsWhenStalled: a round whose publications find the
// client's outstanding ones full waits for room and publishes every value,
// instead of failing.
func TestPublishWaitsWhenStalled(t *testing.T) {
	st := &stalling{}
	_, js, _, eng := natsEngine(t, 41, "test_stalled", "dossier", func(js jetstream.JetStream) jetstream.JetStream {
		st.JetStream = js
		return st
	})
	ctx := context.Background()
	eng.SetLast(map[kpi.Key]kpi.Value{})
	eng.SetLeading(true)
	if err := eng.Recompute(ctx, "dossier"); err != nil {
		t.Fatalf("the round failed: %v", err)
	}
	kv, err := js.KeyValue(ctx, "test_stalled")
	if err != nil {
		t.Fatal(err)
	}
	status, err := kv.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	refused := st.refused.Load()
	if want := uint64(st.calls.Load() - refused); refused == 0 || status.Values() != want {
		t.Fatalf("%d publications refused as stalled, %d values stored, want %d", refused, status.Values(), want)
	}
}

// lostAck stores its first armed publication but reports it failed, as a
// reconnect does to a write the server had stored.
type lostAck struct {
	jetstream.JetStream
	armed atomic.Bool
	lost  atomic.Pointer[kpi.Value]
}

type failedAck struct {
	jetstream.PubAckFuture
	err chan error
}

func (f *failedAck) Ok() <-chan *jetstream.PubAck { return nil }
func (f *failedAck) Err() <-chan error            { return f.err }

func (l *lostAck) PublishMsgAsync(m *nats.Msg, opts ...jetstream.PublishOpt) (jetstream.PubAckFuture, error) {
	f, err := l.JetStream.PublishMsgAsync(m, opts...)
	if err != nil || !l.armed.CompareAndSwap(true, false) {
		return f, err
	}
	var v kpi.Value
	if err := json.Unmarshal(m.Data, &v); err != nil {
		panic(err)
	}
	l.lost.Store(&v)
	failed := &failedAck{PubAckFuture: f, err: make(chan error, 1)}
	go func() {
		select {
		case <-f.Ok():
		case <-f.Err():
		}
		failed.err <- nats.ErrDisconnected
	}()
	return failed, nil
}

// TestSeqNeverReused: a value the bucket stored but whose write the
// engine saw fail is not written again under the same seq: the next round
// goes on from what the bucket holds, so a key's seqs in the bucket are
// 1, 2, 3… with no repeat (a repeat, with other content, is dropped by
// every subscriber as stale).
func TestSeqNeverReused(t *testing.T) {
	la := &lostAck{}
	_, _, store, eng := natsEngine(t, 41, "test_seq_reuse", "dossier", func(js jetstream.JetStream) jetstream.JetStream {
		la.JetStream = js
		return la
	})
	ctx := context.Background()
	eng.SetLast(map[kpi.Key]kpi.Value{}) // the bucket is empty
	eng.SetLeading(true)
	la.armed.Store(true)
	if err := eng.Recompute(ctx, "dossier"); err == nil {
		t.Fatal("the round with a lost acknowledgement reported no error")
	}
	lost := la.lost.Load()
	if lost == nil {
		t.Fatal("nothing published")
	}
	if err := eng.Recompute(ctx, "dossier"); err != nil {
		t.Fatal(err)
	}
	ups, complete, err := store.Since(ctx, lost.Channel(), 0)
	if err != nil || !complete || len(ups) == 0 {
		t.Fatalf("since 0: %d updates, complete %v, err %v", len(ups), complete, err)
	}
	for i, u := range ups {
		if u.Seq != uint64(i+1) {
			var seqs []uint64
			for _, u := range ups {
				seqs = append(seqs, u.Seq)
			}
			t.Fatalf("%s: seqs in the bucket %v", lost.Channel(), seqs)
		}
	}
}
