package kpi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vn-ioc/ioc/stream"
)

// StoreConfig shapes the KV bucket of latest values.
type StoreConfig struct {
	// Bucket name. Default "ioc_kpi".
	Bucket string
	// RatesBucket holds the values of the rates per minute
	// (camera.detections_per_min), which change with nearly every
	// detection: some 750 values a second in the simulated city, twenty
	// times all the other KPIs together. Apart, they are not handed to the
	// copy into ClickHouse (History), which keeps the other values only.
	// Default "<Bucket>_rates".
	RatesBucket string
	// RatesMaxBytes of the rates' bucket. Default 256 MiB.
	RatesMaxBytes int64
	// History kept per key, for clients that resume after a reconnect
	// (1–64). Default 32.
	History uint8
	// Replicas of the bucket on a NATS cluster. Default 1.
	Replicas int
	// MaxBytes of the bucket; its oldest history goes first when full.
	// Default 1 GiB.
	MaxBytes int64
}

func (c *StoreConfig) setDefaults() {
	if c.Bucket == "" {
		c.Bucket = "ioc_kpi"
	}
	if c.RatesBucket == "" {
		c.RatesBucket = c.Bucket + "_rates"
	}
	if c.RatesMaxBytes == 0 {
		c.RatesMaxBytes = 256 << 20
	}
	if c.History == 0 {
		c.History = 32
	}
	if c.Replicas == 0 {
		c.Replicas = 1
	}
	if c.MaxBytes == 0 {
		c.MaxBytes = 1 << 30
	}
}

// Validate names the field that is wrong.
func (c StoreConfig) Validate() error {
	if c.History > 64 {
		return fmt.Errorf("kpi history %d: at most 64", c.History)
	}
	if c.Replicas < 0 || c.Replicas > 5 {
		return fmt.Errorf("kpi bucket replicas %d: between 1 and 5", c.Replicas)
	}
	return nil
}

// Store is the NATS KV buckets of the latest value of every key, shared by
// all nodes: the engine writes them, every node's websocket hub reads them
// and watches them. A key lives in the bucket of its KPI's kind
// (inRatesBucket). It implements stream.Source.
type Store struct {
	kv    jetstream.KeyValue
	rates jetstream.KeyValue
	cat   *Catalog
	now   func() time.Time
	loc   *time.Location
}

var _ stream.Source = (*Store)(nil)

// OpenStore creates the buckets when missing.
func OpenStore(ctx context.Context, js jetstream.JetStream, cfg StoreConfig, cat *Catalog, loc *time.Location) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	open := func(name, description string, maxBytes int64) (jetstream.KeyValue, error) {
		kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket:      name,
			Description: description,
			History:     cfg.History,
			Replicas:    cfg.Replicas,
			MaxBytes:    maxBytes,
			Storage:     jetstream.FileStorage,
		})
		if err != nil {
			return nil, fmt.Errorf("kpi bucket %s: %w", name, err)
		}
		return kv, nil
	}
	kv, err := open(cfg.Bucket, "ioc: latest value of every KPI key", cfg.MaxBytes)
	if err != nil {
		return nil, err
	}
	rates, err := open(cfg.RatesBucket, "ioc: latest value of every key of a KPI per minute", cfg.RatesMaxBytes)
	if err != nil {
		return nil, err
	}
	return &Store{kv: kv, rates: rates, cat: cat, now: time.Now, loc: loc}, nil
}

// inRatesBucket says whether a KPI's keys live in StoreConfig.RatesBucket
// (the rates per minute) rather than in StoreConfig.Bucket.
func inRatesBucket(k *KPI) bool { return k != nil && k.Kind == KindPerMinute }

// bucket is the bucket of a KPI's keys.
func (s *Store) bucket(kpiID string) jetstream.KeyValue {
	if k, _ := s.cat.KPI(kpiID); inRatesBucket(k) {
		return s.rates
	}
	return s.kv
}

// Get returns the stored value of a key; ok is false when it was never
// published.
func (s *Store) Get(ctx context.Context, k Key) (Value, bool, error) {
	e, err := s.bucket(k.KPI).Get(ctx, k.bucketKey())
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return Value{}, false, nil
	}
	if err != nil {
		return Value{}, false, err
	}
	var v Value
	if err := json.Unmarshal(e.Value(), &v); err != nil {
		return Value{}, false, fmt.Errorf("kpi value %s: %w", e.Key(), err)
	}
	v.rev = e.Revision()
	return v, true, nil
}

// Latest is the snapshot of a channel. A key never published (nothing was
// ever counted for it) is a zero value with seq 0.
func (s *Store) Latest(ctx context.Context, channel string) (stream.Update, bool, error) {
	k, ok := ParseChannel(channel)
	if !ok {
		return stream.Update{}, false, fmt.Errorf("channel %q is not kpi:<kpi>:<unit>:<window>", channel)
	}
	e, err := s.bucket(k.KPI).Get(ctx, k.bucketKey())
	if err == nil {
		u, err := entryUpdate(e)
		return u, err == nil, err
	}
	if !errors.Is(err, jetstream.ErrKeyNotFound) {
		return stream.Update{}, false, err
	}
	kp, ok := s.cat.KPI(k.KPI)
	if !ok {
		return stream.Update{}, false, nil
	}
	span, err := Resolve(k.Window, s.now(), s.loc)
	if err != nil {
		return stream.Update{}, false, nil
	}
	b, _ := json.Marshal(newValue(kp, k.Unit, span, 0, 0))
	return stream.Update{Channel: channel, Seq: 0, Data: b}, true, nil
}

// Since returns the values of a channel after seq, from the bucket's
// history: complete when the history still holds every one of them.
func (s *Store) Since(ctx context.Context, channel string, seq uint64) ([]stream.Update, bool, error) {
	k, ok := ParseChannel(channel)
	if !ok {
		return nil, false, fmt.Errorf("channel %q is not kpi:<kpi>:<unit>:<window>", channel)
	}
	hist, err := s.bucket(k.KPI).History(ctx, k.bucketKey())
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, seq == 0, nil
	}
	if err != nil {
		return nil, false, err
	}
	var out []stream.Update
	var latest uint64
	for _, e := range hist {
		u, err := entryUpdate(e)
		if err != nil {
			return nil, false, err
		}
		latest = u.Seq
		if u.Seq > seq {
			out = append(out, u)
		}
	}
	switch {
	case seq > latest: // the client saw a sequence this bucket never had
		return nil, false, nil
	case len(out) == 0:
		return nil, true, nil
	}
	return out, out[0].Seq == seq+1, nil
}

// Watch calls fn for every value published from now on, in the order of
// each key, until ctx ends. ready, if not nil, is called once the watch
// is established: a value published after that reaches fn.
func (s *Store) Watch(ctx context.Context, fn func(stream.Update), ready func()) error {
	var ws []jetstream.KeyWatcher
	defer func() {
		for _, w := range ws {
			w.Stop()
		}
	}()
	for _, kv := range []jetstream.KeyValue{s.kv, s.rates} {
		w, err := kv.WatchAll(ctx, jetstream.UpdatesOnly())
		if err != nil {
			return fmt.Errorf("watch kpi bucket %s: %w", kv.Bucket(), err)
		}
		ws = append(ws, w)
	}
	main, rates := ws[0].Updates(), ws[1].Updates()
	if ready != nil {
		ready()
	}
	for {
		var e jetstream.KeyValueEntry
		var ok bool
		select {
		case <-ctx.Done():
			return nil
		case e, ok = <-main:
		case e, ok = <-rates:
		}
		if !ok {
			return errors.New("kpi bucket watch closed")
		}
		if e == nil || e.Operation() != jetstream.KeyValuePut {
			continue
		}
		if u, err := entryUpdate(e); err == nil {
			fn(u)
		}
	}
}

// All reads the latest value of every key: the engine's starting point
// after it takes over, the alert evaluator's too.
func (s *Store) All(ctx context.Context) (map[Key]Value, error) {
	out := map[Key]Value{}
	for _, kv := range []jetstream.KeyValue{s.kv, s.rates} {
		if err := readAll(ctx, kv, out, func(k Key) bool { return s.bucket(k.KPI) == kv }); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// PurgeStrayRates removes from the main bucket the values of rates per
// minute an earlier version stored there (before they had a bucket of
// their own), so that nothing reads them any more. The engine calls it
// when it takes over, once All has given it their last sequences, which
// the rates' bucket then goes on from. It returns how many keys it
// purged.
func (s *Store) PurgeStrayRates(ctx context.Context) (int, error) {
	var filters []string
	for _, k := range s.cat.KPIs {
		if inRatesBucket(k) {
			filters = append(filters, k.ID+".>")
		}
	}
	if len(filters) == 0 {
		return 0, nil
	}
	l, err := s.kv.ListKeysFiltered(ctx, filters...)
	if err != nil {
		return 0, err
	}
	var keys []string
	for k := range l.Keys() { // closed once every key was listed
		keys = append(keys, k)
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	for i, k := range keys {
		if err := s.kv.Purge(ctx, k); err != nil {
			return i, fmt.Errorf("purge %s: %w", k, err)
		}
	}
	return len(keys), nil
}

// readAll adds the latest value of every key of a bucket to out; a key
// already there keeps the value of the higher sequence.
// readAll reads a bucket's values into out, where a key's value of a
// higher seq wins; own says whether the key belongs in this bucket, whose
// revision of it the value then carries (for the next write's check).
func readAll(ctx context.Context, kv jetstream.KeyValue, out map[Key]Value, own func(Key) bool) error {
	w, err := kv.WatchAll(ctx, jetstream.IgnoreDeletes())
	if err != nil {
		return err
	}
	defer w.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case e := <-w.Updates():
			if e == nil { // the initial values are all delivered
				return nil
			}
			var v Value
			if err := json.Unmarshal(e.Value(), &v); err == nil {
				if old, ok := out[v.Key]; !ok || v.Seq > old.Seq {
					if own(v.Key) {
						v.rev = e.Revision()
					}
					out[v.Key] = v
				}
			}
		}
	}
}

func entryUpdate(e jetstream.KeyValueEntry) (stream.Update, error) {
	// Every node's watchers take each value: the key from the entry's and
	// the sequence from the value's last field (as the engine encodes it)
	// spare them a JSON decode of the whole value; anything else is
	// decoded.
	if k, ok := parseBucketKey(e.Key()); ok {
		if seq, ok := lastSeq(e.Value()); ok {
			return stream.Update{Channel: k.Channel(), Seq: seq, Data: json.RawMessage(e.Value())}, nil
		}
	}
	var v struct {
		Key
		Seq uint64 `json:"seq"`
	}
	if err := json.Unmarshal(e.Value(), &v); err != nil {
		return stream.Update{}, fmt.Errorf("kpi value %s: %w", e.Key(), err)
	}
	return stream.Update{Channel: v.Key.Channel(), Seq: v.Seq, Data: json.RawMessage(e.Value())}, nil
}

// lastSeq reads the sequence of an encoded Value, whose last field it is:
// `…,"seq":<digits>}`; ok is false for anything else.
func lastSeq(b []byte) (uint64, bool) {
	const field = `,"seq":`
	if len(b) < len(field)+2 || b[len(b)-1] != '}' {
		return 0, false
	}
	end := len(b) - 1
	start := end
	for start > 0 && b[start-1] >= '0' && b[start-1] <= '9' {
		start--
	}
	if start == end || end-start > 20 || start < len(field) || string(b[start-len(field):start]) != field {
		return 0, false
	}
	seq, err := strconv.ParseUint(string(b[start:end]), 10, 64)
	return seq, err == nil
}
