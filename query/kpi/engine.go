package kpi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vn-ioc/ioc/ingest"
	"github.com/vn-ioc/ioc/query"
)

// Config of the engine. The zero value of each field means its default.
type Config struct {
	// Store is the KV bucket of latest values.
	Store StoreConfig
	// Debounce gathers the commit notices that arrive within it into one
	// recomputation of their families. Default 150ms.
	Debounce time.Duration
	// Sweep recomputes every family on a timer, for the changes that come
	// from time alone (a deadline passing, a window rolling over).
	// Default 30s.
	Sweep time.Duration
	// LeaderTTL: one node computes at a time; it holds a lease in the
	// bucket <Store.Bucket>_leader that lapses this long after its node
	// stops renewing it. Default 10s.
	LeaderTTL time.Duration
	// QueryTimeout bounds one recomputation query. Default 60s.
	QueryTimeout time.Duration
	// Node names this node in the lease. Default the host name and pid.
	Node string
}

func (c *Config) setDefaults() {
	c.Store.setDefaults()
	if c.Debounce == 0 {
		c.Debounce = 150 * time.Millisecond
	}
	if c.Sweep == 0 {
		c.Sweep = 30 * time.Second
	}
	if c.LeaderTTL == 0 {
		c.LeaderTTL = 10 * time.Second
	}
	if c.QueryTimeout == 0 {
		c.QueryTimeout = time.Minute
	}
}

// Validate names the field that is wrong.
func (c Config) Validate() error {
	switch {
	case c.Debounce < 0 || c.Debounce > time.Minute:
		return fmt.Errorf("kpi debounce %v: between 0 and 1m", c.Debounce)
	case c.Sweep < 0 || (c.Sweep > 0 && c.Sweep < time.Second):
		return fmt.Errorf("kpi sweep %v: at least 1s", c.Sweep)
	case c.LeaderTTL < 0 || (c.LeaderTTL > 0 && c.LeaderTTL < time.Second):
		return fmt.Errorf("kpi leader ttl %v: at least 1s", c.LeaderTTL)
	}
	return c.Store.Validate()
}

// Engine recomputes KPIs when the writer commits and publishes the values
// that changed into the store.
type Engine struct {
	cfg     Config
	cat     *Catalog
	b       *Builder
	db      *query.DB
	js      jetstream.JetStream
	nc      *nats.Conn
	store   *Store
	log     *slog.Logger
	now     func() time.Time
	metrics *engineMetrics

	mu        sync.Mutex
	dirty     map[string]bool      // families with commits not yet recomputed
	watermark map[string]time.Time // newest acceptance time committed, per family
	wake      chan struct{}

	last map[Key]Value // what the store holds, while this node leads
}

// NewEngine wires an engine; Run starts it.
func NewEngine(cfg Config, cat *Catalog, b *Builder, db *query.DB, nc *nats.Conn, js jetstream.JetStream, store *Store,
	reg prometheus.Registerer, log *slog.Logger) (*Engine, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	if cfg.Node == "" {
		cfg.Node = nodeName()
	}
	if log == nil {
		log = slog.Default()
	}
	return &Engine{cfg: cfg, cat: cat, b: b, db: db, nc: nc, js: js, store: store, log: log, now: time.Now,
		metrics: newEngineMetrics(reg), dirty: map[string]bool{}, watermark: map[string]time.Time{},
		wake: make(chan struct{}, 1)}, nil
}

// Run follows commit notices and, while this node holds the lease,
// recomputes and publishes. It returns when ctx ends.
func (e *Engine) Run(ctx context.Context) error {
	sub, err := e.nc.Subscribe(ingest.CommitSubjectPrefix+">", e.onCommit)
	if err != nil {
		return fmt.Errorf("subscribe commit notices: %w", err)
	}
	defer sub.Unsubscribe()
	lease, err := newLease(ctx, e.js, e.cfg.Store.Bucket+"_leader", e.cfg.Node, e.cfg.LeaderTTL, e.cfg.Store.Replicas)
	if err != nil {
		return err
	}
	for ctx.Err() == nil {
		if !lease.acquire(ctx) {
			continue
		}
		e.log.Info("kpi engine leading", "node", e.cfg.Node)
		e.metrics.leader.Set(1)
		err := e.lead(ctx, lease)
		e.metrics.leader.Set(0)
		e.last = nil
		if ctx.Err() != nil {
			lease.release()
			return nil
		}
		e.log.Warn("kpi engine stopped leading", "err", err)
	}
	return nil
}

func (e *Engine) onCommit(m *nats.Msg) {
	var n ingest.CommitNotice
	if err := json.Unmarshal(m.Data, &n); err != nil || n.Family == "" {
		return
	}
	e.mu.Lock()
	e.dirty[n.Family] = true
	if n.Watermark.After(e.watermark[n.Family]) {
		e.watermark[n.Family] = n.Watermark
	}
	e.mu.Unlock()
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// lead computes while the lease holds.
func (e *Engine) lead(ctx context.Context, lease *lease) error {
	lctx, cancel := context.WithTimeout(ctx, e.cfg.QueryTimeout)
	last, err := e.store.loadAll(lctx)
	cancel()
	if err != nil {
		return fmt.Errorf("load kpi values: %w", err)
	}
	e.last = last
	// Everything once at the start: values may have moved while no one led.
	if err := e.recompute(ctx, e.cat.Families()); err != nil && ctx.Err() == nil {
		e.log.Error("kpi recompute", "err", err)
	}
	sweep := time.NewTicker(e.cfg.Sweep)
	defer sweep.Stop()
	renew := time.NewTicker(e.cfg.LeaderTTL / 3)
	defer renew.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-renew.C:
			if err := lease.renew(ctx); err != nil {
				return err
			}
		case <-sweep.C:
			if err := e.recompute(ctx, e.cat.Families()); err != nil && ctx.Err() == nil {
				e.log.Error("kpi sweep", "err", err)
			}
		case <-e.wake:
			// Let the notices of a burst gather.
			select {
			case <-time.After(e.cfg.Debounce):
			case <-ctx.Done():
				return ctx.Err()
			}
			e.mu.Lock()
			var fams []string
			for f := range e.dirty {
				fams = append(fams, f)
			}
			clear(e.dirty)
			e.mu.Unlock()
			slices.Sort(fams)
			if err := e.recompute(ctx, fams); err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				e.log.Error("kpi recompute", "families", fams, "err", err)
				// Retry at the next notice or sweep.
				e.mu.Lock()
				for _, f := range fams {
					e.dirty[f] = true
				}
				e.mu.Unlock()
			}
		}
	}
}

// recompute computes every KPI of the families for every unit and
// standard window, and publishes the values that changed.
func (e *Engine) recompute(ctx context.Context, families []string) error {
	at := e.now()
	spans := map[string]Span{}
	for _, w := range append([]string{WindowNow}, StandardWindows...) {
		s, err := Resolve(w, at, e.b.Loc)
		if err != nil {
			return err
		}
		spans[w] = s
	}
	var errs []error
	for _, fam := range families {
		e.mu.Lock()
		asOf := e.watermark[fam]
		e.mu.Unlock()
		start := time.Now()
		vals, err := e.computeFamily(ctx, fam, spans)
		e.metrics.duration.WithLabelValues(fam).Observe(time.Since(start).Seconds())
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", fam, err))
			continue
		}
		if err := e.publish(ctx, fam, vals, asOf); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", fam, err))
		}
	}
	return errors.Join(errs...)
}

// Compute returns every value of the family's KPIs at the instant at,
// without publishing (tests and the benchmark driver).
func (e *Engine) Compute(ctx context.Context, family string, at time.Time) (map[Key]Value, error) {
	spans := map[string]Span{}
	for _, w := range append([]string{WindowNow}, StandardWindows...) {
		s, _ := Resolve(w, at, e.b.Loc)
		spans[w] = s
	}
	return e.computeFamily(ctx, family, spans)
}

// computeFamily runs one query per source of the family's KPIs.
func (e *Engine) computeFamily(ctx context.Context, family string, spans map[string]Span) (map[Key]Value, error) {
	bySource := map[string][]*KPI{}
	var sources []string
	for _, k := range e.cat.KPIs {
		if k.Family != family {
			continue
		}
		if bySource[k.Source] == nil {
			sources = append(sources, k.Source)
		}
		bySource[k.Source] = append(bySource[k.Source], k)
	}
	out := map[Key]Value{}
	for _, src := range sources {
		sql, cols := e.b.AllUnits(e.cat, src, bySource[src], spans)
		qctx, cancel := context.WithTimeout(ctx, e.cfg.QueryTimeout)
		err := e.scan(qctx, sql, cols, out)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("source %s: %w", src, err)
		}
	}
	return out, nil
}

func (e *Engine) scan(ctx context.Context, sql string, cols []column, out map[Key]Value) error {
	rows, err := e.db.Conn.Query(ctx, sql)
	if err != nil {
		return err
	}
	defer rows.Close()
	var unit string
	sums := make([]int64, len(cols))
	dest := make([]any, len(cols)+1)
	dest[0] = &unit
	for i := range sums {
		dest[i+1] = &sums[i]
	}
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return err
		}
		for i := 0; i < len(cols); i += 2 { // numerator, denominator pairs
			c := cols[i]
			v := newValue(c.kpi, unit, c.span, sums[i], sums[i+1])
			out[v.Key] = v
		}
	}
	return rows.Err()
}

// publish stores the values that changed, each with the next sequence of
// its key; keys the store holds but the query no longer returned (their
// rows left the window) fall back to zero.
func (e *Engine) publish(ctx context.Context, family string, vals map[Key]Value, asOf time.Time) error {
	prefix := family + "."
	for k, old := range e.last {
		if _, ok := vals[k]; ok || !strings.HasPrefix(k.KPI, prefix) {
			continue
		}
		kp, ok := e.cat.KPI(k.KPI)
		if !ok {
			continue
		}
		var span Span
		for _, v := range vals { // any value of the same window has its span
			if v.Window == k.Window {
				span = Span{Window: v.Window, From: v.From, To: v.To, At: v.At}
				break
			}
		}
		if span.At.IsZero() {
			s, err := Resolve(k.Window, e.now(), e.b.Loc)
			if err != nil {
				continue
			}
			span = s
		}
		vals[k] = newValue(kp, old.Unit, span, 0, 0)
	}
	type pending struct {
		f jetstream.PubAckFuture
		v Value
	}
	var futures []pending
	for k, v := range vals {
		old, seen := e.last[k]
		if seen && old.sameAs(v) {
			continue
		}
		if !seen && v.Numerator == 0 && v.Denominator == 0 {
			continue // nothing counted yet: the store answers zero itself
		}
		v.Seq = old.Seq + 1
		v.AsOf = asOf
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		f, err := e.js.PublishAsync("$KV."+e.cfg.Store.Bucket+"."+k.bucketKey(), b)
		if err != nil {
			return fmt.Errorf("publish %s: %w", k.bucketKey(), err)
		}
		futures = append(futures, pending{f, v})
	}
	// A value counts as published once JetStream stored it, so that a
	// failure half-way never reuses a sequence number.
	var err error
	for _, p := range futures {
		select {
		case <-p.f.Ok():
			e.last[p.v.Key] = p.v
			e.metrics.published.WithLabelValues(family).Inc()
		case perr := <-p.f.Err():
			err = fmt.Errorf("publish kpi value: %w", perr)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return err
}
