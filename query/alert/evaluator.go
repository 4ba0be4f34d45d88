package alert

import (
	"cmp"
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
	"github.com/vn-ioc/ioc/internal/lease"
	"github.com/vn-ioc/ioc/internal/worktime"
	"github.com/vn-ioc/ioc/query"
	"github.com/vn-ioc/ioc/query/kpi"
	"github.com/vn-ioc/ioc/stream"
)

// AckSubject is where nodes send acknowledgements to the evaluator (NATS
// request/reply): whichever node a user talks to, the one node that owns
// the alerts applies the change, so an acknowledgement and a clearing never
// overwrite each other.
const AckSubject = "ioc.alert.ack"

// Config of the evaluator. The zero value of each field means its default.
type Config struct {
	// Store is the bucket of open alerts.
	Store StoreConfig
	// Interval: the entity rules (dossiers, tickets, cameras) are evaluated
	// this often, for what time alone changes (a deadline coming, a camera
	// falling silent). Default 30s.
	Interval time.Duration
	// Debounce gathers the commit notices of a burst into one evaluation
	// of the rules of their families. Default 1s.
	Debounce time.Duration
	// LeaderTTL: one node evaluates at a time; it holds a lease in the
	// bucket <Store.Bucket>_leader. Default 10s.
	LeaderTTL time.Duration
	// QueryTimeout bounds one rule's query. Default 60s.
	QueryTimeout time.Duration
	// Node names this node in the lease. Default the host name and pid.
	Node string
}

func (c *Config) setDefaults() {
	if c.Store.Bucket == "" {
		c.Store.Bucket = "ioc_alerts"
	}
	if c.Interval == 0 {
		c.Interval = 30 * time.Second
	}
	if c.Debounce == 0 {
		c.Debounce = time.Second
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
	case c.Interval < 0 || (c.Interval > 0 && c.Interval < time.Second):
		return fmt.Errorf("alert interval %v: at least 1s", c.Interval)
	case c.Debounce < 0 || c.Debounce > time.Minute:
		return fmt.Errorf("alert debounce %v: between 0 and 1m", c.Debounce)
	case c.LeaderTTL < 0 || (c.LeaderTTL > 0 && c.LeaderTTL < time.Second):
		return fmt.Errorf("alert leader ttl %v: at least 1s", c.LeaderTTL)
	}
	return nil
}

// KPIValues is what the evaluator needs from the KPI store: the latest
// value of every key, then every new one.
type KPIValues interface {
	All(ctx context.Context) (map[kpi.Key]kpi.Value, error)
	Watch(ctx context.Context, fn func(stream.Update), ready func()) error
}

// Deps are the evaluator's collaborators.
type Deps struct {
	DB    *query.DB
	Store *Store
	NC    *nats.Conn
	JS    jetstream.JetStream
	KPIs  KPIValues
	// UnitKind is the kind of a unit (city, ward, …); ok false when unknown.
	UnitKind func(code string) (kind string, ok bool)
	// Calendar is the business calendar of the moment.
	Calendar func() *worktime.Calendar
	Reg      prometheus.Registerer
	Log      *slog.Logger
}

// Evaluator raises and clears the alerts of the rules and applies the
// acknowledgements, on one node at a time (the lease holder). Threshold
// rules follow the KPI values as the engine publishes them; entity rules
// query the state views after the commits of their family and every
// Interval.
type Evaluator struct {
	cfg   Config
	rules *Rules
	// openFamilies: the families of the enabled rules over open entities.
	openFamilies map[string]bool
	d            Deps
	now          func() time.Time
	m            *metrics

	mu    sync.Mutex
	dirty map[string]bool // families committed since the last evaluation
	// touched: the subjects of those commits, by family, for the families
	// of rules over open entities; nil for a family whose commits listed
	// more than maxTouched (or not all of theirs).
	touched map[string]map[string]bool
	wake    chan struct{}
	// hold: the hold on the rules the lead loop last heard of (nil
	// when not leading).
	hold *Hold

	// While leading, owned by the lead loop.
	open    map[condKey]*Alert
	pending map[string]*Alert // states not yet saved, by id
}

// NewEvaluator wires an evaluator; Run starts it.
func NewEvaluator(cfg Config, rules *Rules, d Deps) (*Evaluator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	if cfg.Node == "" {
		cfg.Node = lease.NodeName()
	}
	if d.Log == nil {
		d.Log = slog.Default()
	}
	return &Evaluator{cfg: cfg, rules: rules, openFamilies: familiesOverOpen(rules), d: d, now: time.Now, m: newMetrics(d.Reg),
		dirty: map[string]bool{}, touched: map[string]map[string]bool{}, wake: make(chan struct{}, 1)}, nil
}

// Run follows commit notices and, while this node holds the lease,
// evaluates the rules. It returns when ctx ends.
func (e *Evaluator) Run(ctx context.Context) error {
	sub, err := e.d.NC.Subscribe(ingest.CommitSubjectPrefix+">", e.onCommit)
	if err != nil {
		return fmt.Errorf("subscribe commit notices: %w", err)
	}
	defer sub.Unsubscribe()
	l, err := lease.New(ctx, e.d.JS, lease.Config{Bucket: e.cfg.Store.Bucket + "_leader",
		Description: "ioc: which node evaluates the alert rules", Node: e.cfg.Node, TTL: e.cfg.LeaderTTL,
		Replicas: e.cfg.Store.Replicas})
	if err != nil {
		return err
	}
	for ctx.Err() == nil {
		if !l.Acquire(ctx) {
			continue
		}
		e.d.Log.Info("alert evaluator leading", "node", e.cfg.Node)
		e.m.leader.Set(1)
		err := l.Hold(ctx, e.lead)
		e.m.leader.Set(0)
		if ctx.Err() != nil {
			return nil
		}
		e.d.Log.Warn("alert evaluator stopped leading", "err", err)
	}
	return nil
}

func (e *Evaluator) onCommit(m *nats.Msg) {
	var n ingest.CommitNotice
	if json.Unmarshal(m.Data, &n) != nil || n.Family == "" {
		return
	}
	e.mu.Lock()
	e.dirty[n.Family] = true
	e.touch(n)
	e.mu.Unlock()
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// familiesOverOpen are the families of the enabled rules over open
// entities.
func familiesOverOpen(rules *Rules) map[string]bool {
	out := map[string]bool{}
	for _, r := range rules.Rules {
		if !r.Disabled && r.overOpen() {
			out[r.Family()] = true
		}
	}
	return out
}

// maxTouched bounds the subjects of one family's commits that an
// evaluation reads besides the candidates from kpi_open. A family whose
// commits touch more between two evaluations commits again within
// seconds, and its next evaluation finds them in kpi_open: the extra
// lookup pays at low rates, where the next commit may be far.
const maxTouched = 1000

// touch keeps the subjects of a commit of a family that a rule over open
// entities follows, so that the evaluation the commit wakes reads them
// whether or not the KPI engine has yet written them to kpi_open. Beyond
// maxTouched they are dropped (nil): those entities then raise their
// alerts once kpi_open holds them, at the next evaluation. e.mu is held.
func (e *Evaluator) touch(n ingest.CommitNotice) {
	if !e.openFamilies[n.Family] {
		return
	}
	s, ok := e.touched[n.Family]
	switch {
	case ok && s == nil:
		return
	case n.SubjectsTruncated || len(s)+len(n.Subjects) > maxTouched:
		e.touched[n.Family] = nil
		return
	case s == nil:
		s = make(map[string]bool, len(n.Subjects))
		e.touched[n.Family] = s
	}
	for _, id := range n.Subjects {
		s[id] = true
	}
}

// ackRequest is what a node sends on AckSubject.
type ackRequest struct {
	ID   string `json:"id"`
	By   string `json:"by"`
	Note string `json:"note"`
	// Deadline: past it the requester no longer waits for the answer, so
	// the acknowledgement is not applied (a user told it failed must not
	// find it done).
	Deadline time.Time `json:"deadline,omitzero"`
}

// ackReply answers it: the alert, or an error with a code (not_found,
// conflict, unavailable).
type ackReply struct {
	Alert *Alert `json:"alert,omitempty"`
	Code  string `json:"code,omitempty"`
	Error string `json:"error,omitempty"`
}

type ackCall struct {
	req   ackRequest
	reply func(ackReply)
}

func (e *Evaluator) lead(ctx context.Context) error {
	octx, cancel := context.WithTimeout(ctx, e.cfg.QueryTimeout)
	open, resave, err := e.d.Store.Reconcile(octx)
	cancel()
	if err != nil {
		return err
	}
	e.open, e.pending = map[condKey]*Alert{}, map[string]*Alert{}
	defer func() { e.open, e.pending = nil, nil }()
	for _, a := range resave {
		e.pending[a.ID] = a
	}
	if len(resave) > 0 {
		e.d.Log.Warn("alerts: the live set lacked states ClickHouse holds; saved again", "alerts", len(resave))
	}
	e.adopt(open, e.now())
	if len(e.pending) > 0 {
		if err := e.flush(ctx); err != nil {
			return err
		}
	}

	acks := make(chan ackCall, 64)
	sub, err := e.d.NC.Subscribe(AckSubject, func(m *nats.Msg) {
		var req ackRequest
		if err := json.Unmarshal(m.Data, &req); err != nil || req.ID == "" || req.By == "" {
			b, _ := json.Marshal(ackReply{Code: "bad_request", Error: "an acknowledgement needs id and by"})
			_ = m.Respond(b)
			return
		}
		call := ackCall{req: req, reply: func(r ackReply) { b, _ := json.Marshal(r); _ = m.Respond(b) }}
		select {
		case acks <- call:
		default:
			call.reply(ackReply{Code: "unavailable", Error: "too many acknowledgements at once; retry"})
		}
	})
	if err != nil {
		return fmt.Errorf("subscribe %s: %w", AckSubject, err)
	}
	defer sub.Unsubscribe()

	wctx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	defer e.m.held.Set(0)
	// The hold on the rules: as it is, then its changes (the latest wins).
	holds := make(chan *Hold, 1)
	holdErr := make(chan error, 1)
	go func() {
		holdErr <- e.d.Store.WatchHold(wctx, func(h *Hold) {
			select {
			case <-holds:
			default:
			}
			holds <- h
		})
	}()
	var hold *Hold
	defer func() {
		e.mu.Lock()
		e.hold = nil
		e.mu.Unlock()
	}()
	select {
	case hold = <-holds:
	case err := <-holdErr:
		return fmt.Errorf("watch the alert hold: %w", err)
	case <-ctx.Done():
		return ctx.Err()
	}

	// KPI values: every key once, then the changes.
	values := make(chan kpi.Value, 4096)
	watchErr := make(chan error, 1)
	watching := make(chan struct{})
	go func() {
		watchErr <- e.d.KPIs.Watch(wctx, func(u stream.Update) {
			// The key from the channel: only the values of keys a rule
			// watches are decoded (a few of the thousands a second).
			if k, ok := kpi.ParseChannel(u.Channel); !ok || !e.watched(k) {
				return
			}
			var v kpi.Value
			if json.Unmarshal(u.Data, &v) == nil {
				select {
				case values <- v:
				case <-wctx.Done():
				}
			}
		}, func() { close(watching) })
	}()
	// The watch first, then the latest values: a value published between
	// the two is seen twice (judging it again changes nothing), never
	// missed.
	select {
	case <-watching:
	case err := <-watchErr:
		if err == nil {
			err = errors.New("ended before it started")
		}
		return fmt.Errorf("watch kpi values: %w", err)
	}
	// Every rule judged against the data as it is: at the start, and when
	// a hold ends.
	judgeAll := func() error {
		actx, cancel := context.WithTimeout(ctx, e.cfg.QueryTimeout)
		all, err := e.d.KPIs.All(actx)
		cancel()
		if err != nil {
			return fmt.Errorf("read kpi values: %w", err)
		}
		at := e.now()
		for _, v := range all {
			if e.watched(v.Key) {
				e.judge(v, at)
			}
		}
		// The subjects of the commits heard meanwhile (while held), which
		// kpi_open may not hold yet.
		_, touched := e.takeDirty()
		e.evaluate(ctx, nil, touched)
		return nil
	}
	held, expiry := e.applyHold(hold, false)
	if err := judgeAll(); err != nil { // the rules not held
		return err
	}

	tick := time.NewTicker(e.cfg.Interval)
	defer tick.Stop()
	var debounce <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-watchErr:
			return fmt.Errorf("watch kpi values: %w", err)
		case err := <-holdErr:
			if err == nil {
				err = errors.New("ended")
			}
			return fmt.Errorf("watch the alert hold: %w", err)
		case hold = <-holds:
			// A hold replaced, narrowed or lifted: the rules it no
			// longer holds are judged at once (judging the others again
			// changes nothing).
			was := held
			if held, expiry = e.applyHold(hold, held); was {
				if err := judgeAll(); err != nil {
					return err
				}
			}
		case <-expiry:
			if held, expiry = e.applyHold(hold, held); !held {
				if err := judgeAll(); err != nil {
					return err
				}
			}
		case v := <-values:
		drain:
			for {
				e.judge(v, e.now()) // not by the rules held
				select {
				case v = <-values:
				default:
					break drain
				}
			}
			e.flush(ctx)
		case c := <-acks:
			c.reply(e.ack(ctx, c.req))
		case <-tick.C:
			if held && !hold.InForce(e.now()) {
				// Its end passed and the timer has not fired (a machine
				// that was suspended: timers follow the monotonic clock).
				if held, expiry = e.applyHold(hold, held); !held {
					if err := judgeAll(); err != nil {
						return err
					}
				}
				break
			}
			e.evaluate(ctx, nil, nil) // not the rules held
		case <-e.wake:
			if debounce == nil {
				debounce = time.After(e.cfg.Debounce)
			}
		case <-debounce:
			debounce = nil
			// The families held keep their commits' subjects for the end
			// of the hold.
			if fams, touched := e.takeDirty(); len(fams) > 0 {
				e.evaluate(ctx, fams, touched)
			}
		}
	}
}

// takeDirty takes the families committed since the last evaluation, and
// their subjects, but for the families a hold keeps.
func (e *Evaluator) takeDirty() (fams map[string]bool, touched map[string]map[string]bool) {
	now := e.now()
	fams, touched = map[string]bool{}, map[string]map[string]bool{}
	e.mu.Lock()
	defer e.mu.Unlock()
	for f := range e.dirty {
		if e.hold.HoldsFamily(f, now) {
			continue
		}
		fams[f] = true
		delete(e.dirty, f)
		if s, ok := e.touched[f]; ok {
			touched[f] = s
			delete(e.touched, f)
		}
	}
	return fams, touched
}

// held reports whether the hold keeps a rule from being judged at t.
func (e *Evaluator) held(r *Rule, t time.Time) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.hold.HoldsFamily(r.DataFamily(), t)
}

// applyHold takes the hold in force (e.hold), says whether there is one
// now and, when there is, when it ends by itself; it logs a change from
// was.
func (e *Evaluator) applyHold(h *Hold, was bool) (held bool, expiry <-chan time.Time) {
	now := e.now()
	held = h.InForce(now)
	e.mu.Lock()
	e.hold = h
	e.mu.Unlock()
	switch {
	case held:
		expiry = time.After(h.Until.Sub(now))
		fams := "all"
		if len(h.Families) > 0 {
			fams = strings.Join(h.Families, ", ")
		}
		e.d.Log.Info("alert rules held", "families", fams, "reason", h.Reason, "by", h.By, "until", h.Until)
		e.m.held.Set(1)
	case was && h != nil:
		e.d.Log.Info("alert rules resumed: the hold expired", "reason", h.Reason, "until", h.Until)
		e.m.held.Set(0)
	case was:
		e.d.Log.Info("alert rules resumed: the hold was lifted")
		e.m.held.Set(0)
	}
	return held, expiry
}

// watched reports whether a threshold rule follows the key.
func (e *Evaluator) watched(k kpi.Key) bool {
	for _, r := range e.rules.Rules {
		if r.Kind == KindThreshold && !r.Disabled && r.KPI == k.KPI && r.Window == k.Window {
			return true
		}
	}
	return false
}

// judge applies the threshold rules of a value's key.
func (e *Evaluator) judge(v kpi.Value, at time.Time) {
	kind, _ := e.d.UnitKind(v.Unit) // "" for a unit no longer known
	for _, r := range e.rules.Rules {
		if r.Kind != KindThreshold || r.Disabled || r.KPI != v.KPI || r.Window != v.Window || e.held(r, at) {
			continue
		}
		ck := condKey{r.ID, v.Unit}
		a := e.open[ck]
		if !slices.Contains(r.UnitKinds, kind) {
			// The rules or the reference data changed since it was raised.
			if a != nil {
				e.clear(a, at, "unit "+v.Unit+" is no longer among the units its rule judges")
			}
			continue
		}
		switch r.Judge(v, a != nil) {
		case Raise:
			e.raise(r, match{subject: v.Unit, unit: v.Unit, value: roundTo(r.shown(*v.Value), 4), detail: thresholdDetail(r, v)}, "unit", at)
		case Clear:
			e.clear(a, at, fmt.Sprintf("%s back to %s (clear level %s) over %s (%d / %d)", r.KPI, r.format(*v.Value),
				r.format(*r.Clear/r.scale()), r.Window, v.Numerator, v.Denominator))
		}
	}
}

func thresholdDetail(r *Rule, v kpi.Value) string {
	op := "<"
	if r.Above != nil {
		op = ">"
	}
	return fmt.Sprintf("%s %s %s %s over %s (%d / %d)", r.KPI, r.format(*v.Value), op, r.format(r.threshold()/r.scale()),
		r.Window, v.Numerator, v.Denominator)
}

func (r *Rule) scale() float64 {
	if r.Percent {
		return 100
	}
	return 1
}

// format writes a KPI value as the rule's levels count it.
func (r *Rule) format(x float64) string {
	if r.Percent {
		return formatNum(roundTo(x*100, 2)) + " %"
	}
	return formatNum(roundTo(x, 2))
}

// match is one subject an entity rule's query found.
type match struct {
	subject, unit string
	value         float64
	detail        string
	// raise: the subject meets the raising condition; otherwise it only
	// keeps an open alert open (hysteresis).
	raise bool
	// clear: an open alert of the subject is cleared, saying this (a
	// dossier_due alert whose deadline passed).
	clear string
}

func (e *Evaluator) raise(r *Rule, m match, subjectKind string, at time.Time) {
	if n := e.openOf(r.ID); n >= r.MaxOpen {
		e.m.capped.WithLabelValues(r.ID).Inc()
		return
	}
	// The id and the version take the instant to the nanosecond: an alert
	// raised, cleared and raised again within a second is two occurrences,
	// and the second's version passes the clear's.
	a := &Alert{ID: alertID(r.ID, m.subject, at), Rule: r.ID, Kind: r.Kind, Severity: r.Severity, Unit: m.unit,
		SubjectKind: subjectKind, Subject: m.subject, State: StateRaised, Title: r.Title.EN, TitleVI: r.Title.VI,
		Detail: m.detail, Value: m.value, Threshold: r.thresholdValue(), RaisedAt: at.UTC().Truncate(time.Second)}
	a.bump(at)
	e.open[condKey{r.ID, m.subject}] = a
	e.pending[a.ID] = a
	e.m.transitions.WithLabelValues(r.ID, StateRaised).Inc()
}

// adopt takes the open alerts a leader finds. One whose rule is no longer
// in force (removed from the rules, or disabled) would never be judged
// again: it is cleared, saying why. Of two open alerts of one rule and
// subject (two nodes evaluated at once for a moment), the one raised first
// stays and the other is cleared.
func (e *Evaluator) adopt(open []*Alert, at time.Time) {
	inForce := map[string]bool{}
	for _, r := range e.rules.Rules {
		if !r.Disabled {
			inForce[r.ID] = true
		}
	}
	slices.SortFunc(open, func(a, b *Alert) int {
		if c := a.RaisedAt.Compare(b.RaisedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	for _, a := range open {
		k := condKey{a.Rule, a.Subject}
		switch first := e.open[k]; {
		case !inForce[a.Rule]:
			e.open[k] = a
			e.clear(a, at, "its rule is no longer in force (removed from the rules or disabled)")
		case !e.judges(a):
			e.open[k] = a
			e.clear(a, at, "unit "+a.Unit+" is no longer among the units its rule judges")
		case first != nil:
			e.open[k] = a
			e.clear(a, at, "alert "+first.ID+" of the same rule and subject was raised first")
			e.open[k] = first
		default:
			e.open[k] = a
		}
	}
}

// judges says whether the rule of an open threshold alert still judges its
// unit: the unit exists and is of one of the rule's unit kinds (the rules
// or the reference data may have changed since it was raised). Alerts of
// the other kinds are judged by their rule's query.
func (e *Evaluator) judges(a *Alert) bool {
	r := e.rules.byID[a.Rule]
	if r == nil || r.Kind != KindThreshold || e.d.UnitKind == nil {
		return true
	}
	kind, ok := e.d.UnitKind(a.Unit)
	return ok && slices.Contains(r.UnitKinds, kind)
}

// clear ends an alert; why is added to its detail.
func (e *Evaluator) clear(a *Alert, at time.Time, why string) {
	c := *a
	c.State = StateCleared
	c.Detail += "; cleared: " + why
	c.ClearedAt = at.UTC().Truncate(time.Second)
	c.bump(at)
	delete(e.open, condKey{a.Rule, a.Subject})
	e.pending[c.ID] = &c
	e.m.transitions.WithLabelValues(a.Rule, StateCleared).Inc()
}

func (e *Evaluator) openOf(rule string) int {
	n := 0
	for k := range e.open {
		if k.rule == rule {
			n++
		}
	}
	return n
}

// evaluate runs the entity rules of the families (all when nil) and saves
// what changed; touched are the subjects of the commits that woke it.
func (e *Evaluator) evaluate(ctx context.Context, families map[string]bool, touched map[string]map[string]bool) {
	for _, r := range e.rules.Rules {
		at := e.now()
		if r.Disabled || r.Kind == KindThreshold || (families != nil && !families[r.Family()]) || e.held(r, at) {
			continue
		}
		start := time.Now()
		qctx, cancel := context.WithTimeout(ctx, e.cfg.QueryTimeout)
		ms, err := e.matches(qctx, r, at, touched[r.Family()])
		cancel()
		e.m.evalSeconds.WithLabelValues(r.Kind).Observe(time.Since(start).Seconds())
		if err != nil {
			if ctx.Err() == nil {
				e.d.Log.Error("alert rule", "rule", r.ID, "err", err)
			}
			continue
		}
		e.apply(r, ms, at)
	}
	e.flush(ctx)
}

// apply raises the matches without an open alert that meet the raising
// condition, and clears the open alerts of the rule no longer matched.
func (e *Evaluator) apply(r *Rule, ms []match, at time.Time) {
	seen := make(map[string]bool, len(ms))
	for _, m := range ms {
		seen[m.subject] = true
		a := e.open[condKey{r.ID, m.subject}]
		switch {
		case m.clear != "":
			if a != nil {
				e.clear(a, at, m.clear)
			}
		case a == nil && m.raise:
			e.raise(r, m, subjectKinds[r.Kind], at)
		}
	}
	for k, a := range e.open {
		if k.rule == r.ID && !seen[k.subject] {
			e.clear(a, at, clearReasons[r.Kind])
		}
	}
}

var clearReasons = map[string]string{KindDossierDue: "resolved, withdrawn, given a later deadline or waiting for a citizen's supplement",
	KindTicketOverdue: "resolved or closed", KindCameraSilent: "heard from again", KindCameraOffline: "online again",
	KindCameraLevel: "level fell under the clear level, or no recent report"}

var subjectKinds = map[string]string{KindDossierDue: "dossier", KindTicketOverdue: "ticket",
	KindCameraSilent: "camera", KindCameraOffline: "camera", KindCameraLevel: "camera"}

// flush saves the pending states; what fails stays pending for the next
// round (the alerts stay as they are in memory, so no occurrence is raised
// twice).
func (e *Evaluator) flush(ctx context.Context) error {
	if len(e.pending) == 0 {
		return nil
	}
	as := make([]*Alert, 0, len(e.pending))
	for _, a := range e.pending {
		as = append(as, a)
	}
	slices.SortFunc(as, func(a, b *Alert) int { return cmp.Compare(a.Version, b.Version) })
	sctx, cancel := context.WithTimeout(ctx, e.cfg.QueryTimeout)
	defer cancel()
	if err := e.d.Store.save(sctx, as); err != nil {
		if ctx.Err() == nil {
			e.d.Log.Error("save alerts", "alerts", len(as), "err", err)
		}
		return err
	}
	for _, a := range as {
		if e.pending[a.ID] == a {
			delete(e.pending, a.ID)
		}
	}
	e.m.open.Set(float64(len(e.open)))
	return nil
}

// ack applies an acknowledgement and saves it before answering.
func (e *Evaluator) ack(ctx context.Context, req ackRequest) ackReply {
	if !req.Deadline.IsZero() && time.Now().After(req.Deadline) {
		e.d.Log.Warn("alert acknowledgement not applied: it waited past its requester's deadline", "id", req.ID, "by", req.By)
		return ackReply{Code: "unavailable", Error: "the acknowledgement waited too long and was not applied; retry"}
	}
	var a *Alert
	for _, o := range e.open {
		if o.ID == req.ID {
			a = o
			break
		}
	}
	if a == nil {
		gctx, cancel := context.WithTimeout(ctx, e.cfg.QueryTimeout)
		old, err := e.d.Store.Get(gctx, req.ID)
		cancel()
		switch {
		case err != nil:
			return ackReply{Code: "unavailable", Error: "the alert could not be read; retry"}
		case old == nil:
			return ackReply{Code: "not_found", Error: "no alert " + req.ID}
		}
		return ackReply{Code: "conflict", Error: "alert " + req.ID + " cleared at " + old.ClearedAt.Format(time.RFC3339) + "; nothing to acknowledge", Alert: old}
	}
	if a.State == StateAcknowledged {
		return ackReply{Code: "conflict", Alert: a,
			Error: "alert " + a.ID + " was acknowledged by " + a.AckedBy + " at " + a.AckedAt.Format(time.RFC3339)}
	}
	at := e.now()
	acked := *a
	acked.State = StateAcknowledged
	acked.AckedAt = at.UTC().Truncate(time.Second)
	acked.AckedBy = req.By
	acked.AckNote = req.Note
	acked.bump(at)
	e.open[condKey{a.Rule, a.Subject}] = &acked
	e.pending[acked.ID] = &acked
	e.m.transitions.WithLabelValues(a.Rule, StateAcknowledged).Inc()
	if err := e.flush(ctx); err != nil {
		return ackReply{Code: "unavailable", Error: "the acknowledgement is recorded and will be saved shortly", Alert: &acked}
	}
	return ackReply{Alert: &acked}
}

// ErrNoEvaluator: no node evaluates the alert rules right now.
var ErrNoEvaluator = errors.New("no node evaluates the alerts right now; retry shortly")

// ErrAckTimeout: the evaluating node did not answer in time; it does not
// apply an acknowledgement that reaches it after the requester's deadline.
var ErrAckTimeout = errors.New("the node evaluating the alerts did not answer in time; the acknowledgement was not applied; retry shortly")

// ackMargin: an acknowledgement is applied only if its answer can still
// reach the requester this long before its deadline.
const ackMargin = 500 * time.Millisecond

// Ack asks the evaluating node to acknowledge an alert, from any node.
func Ack(ctx context.Context, nc *nats.Conn, id, by, note string) (*Alert, error) {
	req := ackRequest{ID: id, By: by, Note: note}
	if d, ok := ctx.Deadline(); ok {
		req.Deadline = d.Add(-ackMargin)
	}
	b, _ := json.Marshal(req)
	m, err := nc.RequestWithContext(ctx, AckSubject, b)
	if errors.Is(err, nats.ErrNoResponders) {
		return nil, ErrNoEvaluator
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) {
		return nil, ErrAckTimeout
	}
	if err != nil {
		return nil, err
	}
	var r ackReply
	if err := json.Unmarshal(m.Data, &r); err != nil {
		return nil, fmt.Errorf("ack reply: %w", err)
	}
	if r.Code != "" {
		return r.Alert, &AckError{Code: r.Code, Msg: r.Error}
	}
	return r.Alert, nil
}

// AckError is a refused acknowledgement: Code not_found, conflict,
// bad_request or unavailable.
type AckError struct{ Code, Msg string }

func (e *AckError) Error() string { return e.Msg }
