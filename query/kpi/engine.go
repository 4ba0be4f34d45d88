package kpi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vn-ioc/ioc/ingest"
	"github.com/vn-ioc/ioc/internal/lease"
	"github.com/vn-ioc/ioc/query"
)

// Config of the engine. The zero value of each field means its default.
type Config struct {
	// Store is the KV bucket of latest values.
	Store StoreConfig
	// Debounce gathers the commit notices that arrive within it into one
	// recomputation of their families; a notice that comes after a
	// family's loop has been idle this long is recomputed at once.
	// Default 50ms.
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
	// OpenCompact: the open entities the instant KPIs read (kpi_open) are
	// copied into a new generation, leaving the rows of closed entities
	// behind, at the first commit of their family this long after the last
	// copy. Default 1h.
	OpenCompact time.Duration
	// Node names this node in the lease. Default the host name and pid.
	Node string
}

func (c *Config) setDefaults() {
	c.Store.setDefaults()
	if c.Debounce == 0 {
		c.Debounce = 50 * time.Millisecond
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
	if c.OpenCompact == 0 {
		c.OpenCompact = time.Hour
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
	case c.OpenCompact < 0:
		return fmt.Errorf("kpi open compact %v: not negative", c.OpenCompact)
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
	pending   map[string]*work         // what commits asked for, per family, not yet recomputed
	watermark map[string]time.Time     // newest acceptance time committed, per family
	wakes     map[string]chan struct{} // per family: a commit is pending

	last lastValues // what the store holds, while this node leads

	// The families recompute concurrently; memMu guards what they share.
	memMu sync.Mutex
	mem   *memory // the rollup sums the windows read; nil until loaded
	// A load of mem and a write of rollup rows never overlap (a load that
	// read rows whose write then added them to it would count them twice):
	// memLoading counts the loads waiting or under way, memWriting the
	// writes under way; memCond (on memMu) signals their ends.
	memLoading, memWriting int
	memCond                *sync.Cond
	paths                  map[string][]string // unit → path, cached by unitPaths
	pathsGen               uint64              // changes when paths do
	pathsAt                time.Time

	// Families whose instant KPIs are to be computed, with the watermark
	// of the commits applied before the mark (e.mu).
	instantDue  map[string]time.Time
	instantWake chan struct{}
	// Per family, the watermark of the values last published (e.mu).
	windowsAsOf, instantsAsOf map[string]time.Time
	leading                   atomic.Bool
	leadSince                 time.Time  // when this node took over (e.mu)
	lastMu                    sync.Mutex // guards last: windows and instants publish from two goroutines

	openMu   sync.Mutex           // guards gens and progress: written by apply, read by the instant loop
	gens     map[string]uint64    // current generation of kpi_open and kpi_contrib, per "table/family" (cache)
	progress map[string]time.Time // when a family's progress was last written
	// builtFP: the fingerprint each family's rollups were built with, as
	// noted; refChecked: when its reference data was last looked at.
	builtFP    map[string]string
	refChecked map[string]time.Time
	events     eventCache // the recent hours of the event views, by bucket

	beforeContribWrite func() error                                // tests: called between the rollups and the contributions of a commit
	rollupSend         func(table string, send func() error) error // tests: sends rollup rows (calling send, or not), before mem counts them; an error fails the write
}

// NewEngine wires an engine; Run starts it.
func NewEngine(cfg Config, cat *Catalog, b *Builder, db *query.DB, nc *nats.Conn, js jetstream.JetStream, store *Store,
	reg prometheus.Registerer, log *slog.Logger) (*Engine, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	if cfg.Node == "" {
		cfg.Node = lease.NodeName()
	}
	if log == nil {
		log = slog.Default()
	}
	e := &Engine{cfg: cfg, cat: cat, b: b, db: db, nc: nc, js: js, store: store, log: log, now: time.Now,
		metrics: newEngineMetrics(reg), pending: map[string]*work{}, watermark: map[string]time.Time{},
		wakes: map[string]chan struct{}{}, instantDue: map[string]time.Time{}, instantWake: make(chan struct{}, 1),
		windowsAsOf: map[string]time.Time{}, instantsAsOf: map[string]time.Time{}}
	e.memCond = sync.NewCond(&e.memMu)
	for _, f := range cat.Families() {
		e.wakes[f] = make(chan struct{}, 1)
		if reg != nil {
			reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "ioc_kpi_behind_seconds",
				Help:        "On the node that runs the KPI engine: how far the family's published values are behind its commits (acceptance time of the newest event committed minus that of the values last published); 0 when caught up.",
				ConstLabels: prometheus.Labels{"family": f}}, func() float64 { return e.behind(f).Seconds() }))
		}
	}
	return e, nil
}

// behind is how far the family's published values are behind its commits
// on this node: 0 when it does not lead or has caught up.
func (e *Engine) behind(fam string) time.Duration {
	if !e.leading.Load() {
		return 0
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	committed, oldest := e.watermark[fam], e.windowsAsOf[fam]
	if len(e.kpiSet(fam, true)) > 0 && e.instantsAsOf[fam].Before(oldest) {
		oldest = e.instantsAsOf[fam]
	}
	switch {
	case !committed.After(oldest):
		return 0
	case oldest.IsZero(): // nothing published since it took over
		return time.Since(e.leadSince)
	}
	return committed.Sub(oldest)
}

// Reflects reports whether this node runs the engine and the values it
// published reflect, in each family of marks, the commits up to that
// acceptance time (a Status' Committed): its windows and, when it has
// any, its instant KPIs.
func (e *Engine) Reflects(marks map[string]time.Time) bool {
	if !e.leading.Load() {
		return false
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for fam, m := range marks {
		if e.windowsAsOf[fam].Before(m) || (len(e.kpiSet(fam, true)) > 0 && e.instantsAsOf[fam].Before(m)) {
			return false
		}
	}
	return true
}

// Run follows commit notices and, while this node holds the lease,
// recomputes and publishes. It returns when ctx ends.
func (e *Engine) Run(ctx context.Context) error {
	sub, err := e.nc.Subscribe(ingest.CommitSubjectPrefix+">", e.onCommit)
	if err != nil {
		return fmt.Errorf("subscribe commit notices: %w", err)
	}
	defer sub.Unsubscribe()
	l, err := lease.New(ctx, e.js, lease.Config{Bucket: e.cfg.Store.Bucket + "_leader", Description: "ioc: which node runs the KPI engine",
		Node: e.cfg.Node, TTL: e.cfg.LeaderTTL, Replicas: e.cfg.Store.Replicas})
	if err != nil {
		return err
	}
	for ctx.Err() == nil {
		if !l.Acquire(ctx) {
			continue
		}
		e.log.Info("kpi engine leading", "node", e.cfg.Node)
		e.metrics.leader.Set(1)
		e.mu.Lock()
		e.leadSince = time.Now()
		e.mu.Unlock()
		e.leading.Store(true)
		err := l.Hold(ctx, e.leadLoop)
		e.leading.Store(false)
		e.metrics.leader.Set(0)
		e.mu.Lock()
		clear(e.windowsAsOf)
		clear(e.instantsAsOf)
		clear(e.pending) // the next leader's catch-up covers it
		e.mu.Unlock()
		e.last = nil
		e.dropMemory()
		if ctx.Err() != nil {
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
	e.noteCommit(n)
}

// noteCommit adds a commit's work to its family's pending work and wakes
// the family's loop.
func (e *Engine) noteCommit(n ingest.CommitNotice) {
	wake := e.wakes[n.Family]
	if wake == nil { // a family no KPI counts
		return
	}
	e.mu.Lock()
	if n.Watermark.After(e.watermark[n.Family]) {
		e.watermark[n.Family] = n.Watermark
	}
	if !e.leading.Load() {
		// The work is the leader's. A node that takes over catches up
		// from what the rollups were last written for, so a node keeps
		// nothing while it follows (the work would only grow, and be
		// applied all at once when it took over).
		e.mu.Unlock()
		return
	}
	w := e.pending[n.Family]
	if w == nil {
		w = &work{}
		e.pending[n.Family] = w
	}
	w.add(n.Subjects, n.SubjectsTruncated, n.MinTime, n.MaxTime)
	e.mu.Unlock()
	select {
	case wake <- struct{}{}:
	default:
	}
}

func (e *Engine) leadLoop(ctx context.Context) error {
	lctx, cancel := context.WithTimeout(ctx, e.cfg.QueryTimeout)
	last, err := e.store.All(lctx)
	cancel()
	if err != nil {
		return fmt.Errorf("load kpi values: %w", err)
	}
	e.last = newLastValues(last)
	// Rates per minute an earlier version kept in the main bucket: their
	// sequences are read; from now on they go on in their own bucket.
	pctx, cancel := context.WithTimeout(ctx, e.cfg.QueryTimeout)
	n, err := e.store.PurgeStrayRates(pctx)
	cancel()
	if err != nil {
		e.log.Warn("kpi rates per minute left in the main bucket", "err", err)
	} else if n > 0 {
		e.log.Info("kpi rates per minute moved to their own bucket", "keys", n)
	}
	// Commits may have been missed while no node led: catch up from the
	// events accepted since the rollups were last written.
	start := time.Now()
	if err := e.DropOrphanOpen(ctx); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		e.log.Error("kpi_open of families without open entities", "err", err)
	}
	var rebuilt []string
	for _, fam := range e.cat.Families() {
		full, err := e.CatchUp(ctx, fam, e.now())
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			e.log.Error("kpi rollups catch-up", "family", fam, "err", err)
		}
		if full {
			rebuilt = append(rebuilt, fam)
		}
	}
	e.log.Info("kpi rollups up to date", "took", time.Since(start).Round(time.Millisecond), "rebuilt", rebuilt)
	// The instant KPIs are computed on a goroutine of their own (from
	// kpi_open, or from the whole state views until its first generation
	// is built) and never hold back the windowed values of a commit. Each family has a
	// loop of its own too: a commit of surveys never waits behind a round
	// of dossiers.
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); e.instantLoop(ctx) }()
	for _, fam := range e.cat.Families() {
		wg.Add(1)
		go func() { defer wg.Done(); e.familyLoop(ctx, fam) }()
	}
	wg.Wait()
	return ctx.Err()
}

// AppliedSubjectPrefix: after writing a family's rollups the engine
// publishes an empty message on AppliedSubjectPrefix+family (core NATS),
// for what reads them (the nodes' series channels) to read them again.
const AppliedSubjectPrefix = "ioc.kpi.applied."

// applied says the family's rollups were written.
func (e *Engine) applied(family string) {
	if e.nc != nil {
		_ = e.nc.Publish(AppliedSubjectPrefix+family, nil)
	}
}

// When the writers are behind (the newest event of a commit was accepted
// more than writersBehind before the engine hears of it), ClickHouse is
// saturated and the engine yields to the inserts: a family's loop then
// spends at most maxDuty of its time recomputing (after a recomputation
// that took d, the next starts no sooner than d/maxDuty after its start),
// gathering more commits into each. Otherwise it recomputes after every
// burst of notices.
const (
	writersBehind = 2 * time.Second
	maxDuty       = 0.5
)

// familyLoop recomputes one family: at once, after the commits of its
// notices (gathered over Debounce unless the loop was idle; paced when the
// writers are behind), and every Sweep.
func (e *Engine) familyLoop(ctx context.Context, fam string) {
	var next time.Time  // the earliest start of the next recomputation
	var ended time.Time // when the last recomputation ended
	run := func() {
		start := time.Now()
		if rebuilt, err := e.RebuildOnReferenceChange(ctx, fam, e.now()); err != nil && ctx.Err() == nil {
			e.log.Error("kpi rebuild on a change of reference data", "family", fam, "err", err)
		} else if rebuilt {
			e.applied(fam)
		}
		if err := e.recompute(ctx, fam); err != nil && ctx.Err() == nil {
			// The work stays pending: retried at the next notice or sweep.
			e.log.Error("kpi recompute", "family", fam, "err", err)
		}
		ended = time.Now()
		next = start.Add(time.Duration(float64(ended.Sub(start)) / maxDuty))
	}
	run()
	sweep := time.NewTicker(e.cfg.Sweep)
	defer sweep.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-sweep.C:
			run()
		case <-e.wakes[fam]:
			// Let the notices of a burst gather.
			if d := e.pace(fam, next, time.Since(ended)); d > 0 {
				select {
				case <-time.After(d):
				case <-ctx.Done():
					return
				}
			}
			run()
		}
	}
}

// pace is how long a family's loop waits after a notice: until next when
// the writers are behind; otherwise the debounce, or nothing when the loop
// has been idle that long already (a notice after a quiet spell is not
// part of a burst: the notices that follow it while it is recomputed are
// gathered for the next recomputation anyway).
func (e *Engine) pace(fam string, next time.Time, idle time.Duration) time.Duration {
	e.mu.Lock()
	wm := e.watermark[fam]
	e.mu.Unlock()
	if e.now().Sub(wm) > writersBehind {
		return max(e.cfg.Debounce, time.Until(next))
	}
	if idle >= e.cfg.Debounce {
		return 0
	}
	return e.cfg.Debounce
}

// recompute brings the rollups of the families up to date with the
// commits pending for them, computes their windowed KPIs for every unit and
// standard window, publishes the values that changed, and asks the instant
// loop for the families' instant KPIs.
func (e *Engine) recompute(ctx context.Context, families ...string) error {
	at := e.now()
	var errs []error
	for _, fam := range families {
		e.mu.Lock()
		w := e.pending[fam]
		delete(e.pending, fam)
		asOf := e.watermark[fam]
		e.mu.Unlock()
		start := time.Now()
		if w != nil {
			if err := e.apply(ctx, fam, w, at); err != nil {
				e.mu.Lock()
				if p := e.pending[fam]; p != nil { // keep the work for a retry
					w.add(slices.Collect(maps.Keys(p.subjects)), p.truncated, p.minT, p.maxT)
				}
				e.pending[fam] = w
				e.mu.Unlock()
				errs = append(errs, fmt.Errorf("%s: %w", fam, err))
				continue
			}
			e.applied(fam)
		}
		// The instants read what apply wrote: marked only once it is
		// written (a mark taken earlier would let the instant loop compute
		// them before, and leave them so until the next commit or sweep).
		e.mu.Lock()
		if old, due := e.instantDue[fam]; !due || asOf.After(old) {
			e.instantDue[fam] = asOf
		}
		e.mu.Unlock()
		select {
		case e.instantWake <- struct{}{}:
		default:
		}
		vals, computed, err := e.computeWindows(ctx, fam, at)
		e.metrics.duration.WithLabelValues(fam).Observe(time.Since(start).Seconds())
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", fam, err))
			continue
		}
		if err := e.publish(ctx, fam, vals, computed, asOf); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", fam, err))
			continue
		}
		e.mu.Lock()
		e.windowsAsOf[fam] = asOf
		e.mu.Unlock()
	}
	return errors.Join(errs...)
}

// Status is how far the engine of this node has got: per family, the
// newest events committed and the values published for them.
type Status struct {
	// Leading: this node runs the engine (one node does at a time); the
	// families' published watermarks are known only there.
	Leading  bool                    `json:"leading"`
	Families map[string]FamilyStatus `json:"families"`
}

// FamilyStatus: Committed is the acceptance time of the newest event
// committed (as the commit notices tell every node); Windows and Instants
// are the watermarks of the windowed and instant values last published
// (absent: none yet, or the family has no such KPIs); Pending, commits (or
// instants) waiting for a recomputation. CaughtUp: the published values
// reflect every commit heard.
type FamilyStatus struct {
	Committed time.Time `json:"committed,omitzero"`
	Windows   time.Time `json:"windows_as_of,omitzero"`
	Instants  time.Time `json:"instants_as_of,omitzero"`
	Pending   bool      `json:"pending"`
	CaughtUp  bool      `json:"caught_up"`
}

// Status of the engine on this node.
func (e *Engine) Status() Status {
	st := Status{Leading: e.leading.Load(), Families: map[string]FamilyStatus{}}
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, fam := range e.cat.Families() {
		f := FamilyStatus{Committed: e.watermark[fam], Windows: e.windowsAsOf[fam], Instants: e.instantsAsOf[fam],
			Pending: e.pending[fam] != nil}
		if _, due := e.instantDue[fam]; due {
			f.Pending = true
		}
		instants := len(e.kpiSet(fam, true)) > 0
		f.CaughtUp = st.Leading && !f.Pending && f.Windows.Equal(f.Committed) && (!instants || f.Instants.Equal(f.Committed))
		st.Families[fam] = f
	}
	return st
}

// instantLoop computes the instant KPIs of the families recompute marked,
// gathering what was marked while it worked into its next round.
func (e *Engine) instantLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-e.instantWake:
		}
		e.instants(ctx)
	}
}

// instants computes and publishes the instant KPIs of the families marked
// due.
func (e *Engine) instants(ctx context.Context) {
	e.mu.Lock()
	due := maps.Clone(e.instantDue)
	clear(e.instantDue)
	e.mu.Unlock()
	for _, fam := range slices.Sorted(maps.Keys(due)) {
		at := e.now()
		asOf := due[fam]
		start := time.Now()
		vals, computed, err := e.computeInstants(ctx, fam, at)
		e.metrics.instantDuration.WithLabelValues(fam).Observe(time.Since(start).Seconds())
		if err == nil {
			err = e.publish(ctx, fam, vals, computed, asOf)
		}
		e.mu.Lock()
		if err == nil {
			e.instantsAsOf[fam] = asOf
		} else if _, due := e.instantDue[fam]; !due {
			e.instantDue[fam] = asOf // retried with the next round
		}
		e.mu.Unlock()
		if err != nil && ctx.Err() == nil {
			e.log.Error("kpi instants", "family", fam, "err", err)
		}
	}
}

// Spans resolves every window at the instant at.
func (e *Engine) spans(at time.Time) map[string]Span {
	spans := map[string]Span{}
	for _, w := range append([]string{WindowNow}, StandardWindows...) {
		s, _ := Resolve(w, at, e.b.Loc)
		spans[w] = s
	}
	return spans
}

// Compute returns every value of the family's KPIs at the instant at:
// windows from the rollups (as they stand), instants from kpi_open (as it
// stands) or the views.
func (e *Engine) Compute(ctx context.Context, family string, at time.Time) (map[Key]Value, error) {
	vals, _, err := e.computeWindows(ctx, family, at)
	if err != nil {
		return nil, err
	}
	inst, _, err := e.computeInstants(ctx, family, at)
	if err != nil {
		return nil, err
	}
	maps.Copy(vals, inst)
	return vals, nil
}

// ComputeWindows returns the values of the family's windowed KPIs only:
// what a commit recomputes (benchmarks).
func (e *Engine) ComputeWindows(ctx context.Context, family string, at time.Time) (map[Key]Value, error) {
	vals, _, err := e.computeWindows(ctx, family, at)
	return vals, err
}

// computeWindows sums the family's windowed KPIs from the rollups, and
// names the KPIs it computed.
func (e *Engine) computeWindows(ctx context.Context, family string, at time.Time) (map[Key]Value, map[string]bool, error) {
	spans := e.spans(at)
	out := map[Key]Value{}
	qctx, cancel := context.WithTimeout(ctx, e.cfg.QueryTimeout)
	defer cancel()
	e.memMu.Lock()
	defer e.memMu.Unlock()
	if e.mem == nil {
		if err := e.reloadMemory(qctx, at); err != nil {
			return nil, nil, fmt.Errorf("load rollups: %w", err)
		}
	}
	e.mem.prune(at)
	paths, pathsGen, err := e.unitPaths(qctx)
	if err != nil {
		return nil, nil, fmt.Errorf("unit paths: %w", err)
	}
	e.mem.windows(e, family, spans, paths, pathsGen, out)
	return out, e.kpiSet(family, false), nil
}

// ComputeInstants returns the values of the family's instant KPIs only
// (benchmarks).
func (e *Engine) ComputeInstants(ctx context.Context, family string, at time.Time) (map[Key]Value, error) {
	vals, _, err := e.computeInstants(ctx, family, at)
	return vals, err
}

// computeInstants computes the family's instant KPIs, one query per
// source: from the open entities of kpi_open for a source that has them,
// else from the view.
func (e *Engine) computeInstants(ctx context.Context, family string, at time.Time) (map[Key]Value, map[string]bool, error) {
	spans := e.spans(at)
	out := map[Key]Value{}
	qctx, cancel := context.WithTimeout(ctx, e.cfg.QueryTimeout)
	defer cancel()
	bySource := map[string][]*KPI{}
	var sources []string
	for _, k := range e.cat.KPIs {
		if k.Family != family || !k.Instant() {
			continue
		}
		if bySource[k.Source] == nil {
			sources = append(sources, k.Source)
		}
		bySource[k.Source] = append(bySource[k.Source], k)
	}
	for _, src := range sources {
		sql, cols, err := e.instantSQL(qctx, src, bySource[src], spans)
		if err == nil {
			err = e.scan(qctx, sql, cols, out)
		}
		if err != nil {
			return nil, nil, fmt.Errorf("source %s: %w", src, err)
		}
	}
	return out, e.kpiSet(family, true), nil
}

// kpiSet names the family's instant or windowed KPIs.
func (e *Engine) kpiSet(family string, instant bool) map[string]bool {
	out := map[string]bool{}
	for _, k := range e.cat.KPIs {
		if k.Family == family && k.Instant() == instant {
			out[k.ID] = true
		}
	}
	return out
}

// ApplyCommit brings the rollups up to date with one commit notice, as the
// engine does when it receives it (tests and benchmarks).
func (e *Engine) ApplyCommit(ctx context.Context, n ingest.CommitNotice, at time.Time) error {
	w := &work{}
	w.add(n.Subjects, n.SubjectsTruncated, n.MinTime, n.MaxTime)
	return e.apply(ctx, n.Family, w, at)
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
func (e *Engine) publish(ctx context.Context, family string, vals map[Key]Value, computed map[string]bool, asOf time.Time) error {
	// Not past the lease by this node's clock (a paused leader must not
	// write beside the next one).
	if err := lease.Check(ctx); err != nil {
		return err
	}
	e.lastMu.Lock()
	futures, serr := e.send(family, vals, computed, asOf)
	e.lastMu.Unlock()
	// A value counts as published once JetStream stored it. Each write
	// expects the key's last revision this engine knows, so a sequence
	// number is never given to two values: not when a write was stored
	// but its acknowledgement lost (a reconnect), nor when another node
	// wrote the key meanwhile (a leader that stalled past its lease). A
	// failed write is looked up again: the next round goes on from what
	// the bucket holds.
	var err error
	var failed []Key
	for _, p := range futures {
		select {
		case ack := <-p.f.Ok():
			p.v.rev = ack.Sequence
			e.lastMu.Lock()
			e.last.set(p.v)
			e.lastMu.Unlock()
			e.metrics.published.WithLabelValues(family).Inc()
		case perr := <-p.f.Err():
			err = fmt.Errorf("publish kpi value: %w", perr)
			failed = append(failed, p.v.Key)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	for _, k := range failed {
		v, ok, gerr := e.store.Get(ctx, k)
		if gerr != nil {
			// The bucket does not answer (NATS down): the keys not read
			// again fail their next write's check and come back here.
			break
		}
		e.lastMu.Lock()
		if ok {
			e.last.set(v)
		} else {
			e.last.drop(k)
		}
		e.lastMu.Unlock()
	}
	return errors.Join(serr, err)
}

// lastValues are the values the store holds, by KPI and key.
type lastValues map[string]map[Key]Value

func newLastValues(m map[Key]Value) lastValues {
	l := lastValues{}
	for _, v := range m {
		l.set(v)
	}
	return l
}

func (l lastValues) get(k Key) (Value, bool) {
	v, ok := l[k.KPI][k]
	return v, ok
}

func (l lastValues) drop(k Key) { delete(l[k.KPI], k) }

func (l lastValues) set(v Value) {
	m := l[v.KPI]
	if m == nil {
		m = map[Key]Value{}
		l[v.KPI] = m
	}
	m[v.Key] = v
}

// sent is a value on its way to the bucket.
type sent struct {
	f jetstream.PubAckFuture
	v Value
}

// send publishes the values that differ from the last ones, with the next
// sequence of their keys; the caller holds lastMu.
func (e *Engine) send(family string, vals map[Key]Value, computed map[string]bool, asOf time.Time) ([]sent, error) {
	// The keys of the KPIs computed that the store holds and the
	// computation did not return: by KPI, so that a family's round does not
	// walk every other family's keys.
	var spans map[string]Span // of the windows in vals, when a key needs one
	for id, ok := range computed {
		if !ok {
			continue
		}
		kp, ok := e.cat.KPI(id)
		if !ok {
			continue
		}
		for k, old := range e.last[id] {
			if _, ok := vals[k]; ok {
				continue
			}
			if spans == nil {
				spans = map[string]Span{}
				for _, v := range vals { // any value of the same window has its span
					if _, ok := spans[v.Window]; !ok {
						spans[v.Window] = Span{Window: v.Window, From: v.From, To: v.To, At: v.At}
					}
				}
			}
			span, ok := spans[k.Window]
			if !ok {
				s, err := Resolve(k.Window, e.now(), e.b.Loc)
				if err != nil {
					continue
				}
				span = s
			}
			vals[k] = newValue(kp, old.Unit, span, 0, 0)
		}
	}
	var futures []sent
	stallCtx, cancel := context.WithTimeout(context.Background(), publishStall)
	defer cancel()
	for k, v := range vals {
		old, seen := e.last.get(k)
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
			return futures, err
		}
		bucket := e.cfg.Store.Bucket
		if kp, _ := e.cat.KPI(k.KPI); inRatesBucket(kp) {
			bucket = e.cfg.Store.RatesBucket
		}
		msg := &nats.Msg{Subject: "$KV." + bucket + "." + k.bucketKey(), Data: b,
			Header: nats.Header{jetstream.ExpectedLastSubjSeqHeader: []string{strconv.FormatUint(old.rev, 10)}}}
		f, err := ingest.PublishMsgAsync(stallCtx, e.js, msg)
		if err != nil {
			return futures, fmt.Errorf("publish %s: %w", k.bucketKey(), err)
		}
		futures = append(futures, sent{f, v})
	}
	return futures, nil
}

// publishStall bounds how long a round's publications wait, in all, for
// room among the client's outstanding ones (a round that changes tens of
// thousands of keys, as at midnight or after a backfill, beside the other
// families'), instead of failing the round.
const publishStall = 30 * time.Second
