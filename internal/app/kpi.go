package app

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vn-ioc/ioc/dashboards"
	"github.com/vn-ioc/ioc/internal/api"
	"github.com/vn-ioc/ioc/internal/auth"
	"github.com/vn-ioc/ioc/internal/worktime"
	"github.com/vn-ioc/ioc/query/alert"
	"github.com/vn-ioc/ioc/query/drill"
	"github.com/vn-ioc/ioc/query/kpi"
	"github.com/vn-ioc/ioc/stream"
)

// scope is what a token may read of the KPIs, the same on REST and on the
// websocket: a leader its unit's subtree, a wall what the panels of its
// dashboard declare over the dashboard's subtree (dashboards.Dashboard
// derives it), analysts and admins everything.
type scope struct {
	claims  *auth.Claims
	root    string          // the unit a request without unit= reads
	subtree map[string]bool // nil: every unit
	dash    *dashboards.Dashboard
	cat     *kpi.Catalog
	known   func(string) bool
}

func (a *App) scopeOf(c *auth.Claims) (*scope, error) {
	s := &scope{claims: c, root: a.cityRoot(), cat: a.kpiCat, known: func(u string) bool { return a.refs.Has("unit", u) }}
	limit := func(unit string) error {
		if !a.refs.Has("unit", unit) {
			return api.Errorf(api.EFORBIDDEN, "the token's unit "+unit+" is not a known unit")
		}
		s.root = unit
		s.subtree = map[string]bool{}
		for _, u := range a.refs.Subtree(unit) {
			s.subtree[u] = true
		}
		return nil
	}
	switch c.Role {
	case auth.RoleLeader:
		if err := limit(c.Unit); err != nil {
			return nil, err
		}
	case auth.RoleWall:
		s.dash = a.dashboards[c.Dashboard]
		if s.dash == nil {
			return nil, api.Errorf(api.EFORBIDDEN, "the token's dashboard "+c.Dashboard+" is not defined")
		}
		unit, err := a.wallUnit(s.dash, c.Unit)
		if err != nil {
			return nil, err
		}
		if err := limit(unit); err != nil {
			return nil, err
		}
	case auth.RoleAdmin, auth.RoleAnalyst:
	default:
		return nil, api.Errorf(api.EFORBIDDEN, "a "+c.Role+" token cannot read KPIs")
	}
	return s, nil
}

// wallUnit is the unit a wall token shows its dashboard for: the
// dashboard's, or, for a dashboard of unit: token, the token's own, of the
// kind the dashboard asks.
func (a *App) wallUnit(d *dashboards.Dashboard, tokenUnit string) (string, error) {
	if d.Kind != dashboards.KindWall {
		return "", api.Errorf(api.EFORBIDDEN, "dashboard "+d.ID+" is a "+d.Kind+": it opens with a leader's token, not a wall token")
	}
	if !d.UnitFromToken() {
		if tokenUnit != "" && tokenUnit != d.Unit {
			return "", api.Errorf(api.EFORBIDDEN, "the token names unit "+tokenUnit+" but dashboard "+d.ID+" is of unit "+d.Unit)
		}
		return d.Unit, nil
	}
	if tokenUnit == "" {
		return "", api.Errorf(api.EFORBIDDEN, "dashboard "+d.ID+" is shown for the unit of its token, and this token names none "+
			"(ioc token --role wall --dashboard "+d.ID+" --unit <code>)")
	}
	if err := a.unitOfKind(d, tokenUnit); err != nil {
		return "", api.Errorf(api.EFORBIDDEN, err.Error())
	}
	return tokenUnit, nil
}

// unitOfKind checks a unit exists and has the kind a dashboard of unit:
// token asks.
func (a *App) unitOfKind(d *dashboards.Dashboard, unit string) error {
	u, ok := a.refs.Unit(unit)
	switch {
	case !ok:
		return fmt.Errorf("unit %s is not a known unit", unit)
	case !d.UnitKind.Allows(u.Kind):
		return fmt.Errorf("unit %s is a %s; dashboard %s is shown for a %s", unit, u.Kind, d.ID, d.UnitKind)
	}
	return nil
}

// allowUnit checks a unit exists and is in the scope's subtree.
func (s *scope) allowUnit(unit string) error {
	if !s.known(unit) {
		return api.Errorf(api.ENOTFOUND, "unknown unit "+unit)
	}
	if s.subtree != nil && !s.subtree[unit] {
		return api.Errorf(api.EFORBIDDEN, "unit "+unit+" is outside the subtree of unit "+s.root+" this token sees")
	}
	return nil
}

// allow checks one key; window "custom" stands for a from/to request. A
// composite (score766.total …) is allowed like a KPI over windows and
// returns a nil KPI.
func (s *scope) allow(kpiID, unit, window string) (*kpi.KPI, error) {
	k, ok := s.cat.KPI(kpiID)
	_, composite := s.cat.Composite(kpiID)
	if !ok && !composite {
		return nil, api.Errorf(api.ENOTFOUND, "unknown kpi "+kpiID+" (GET /api/v1/kpis lists them)")
	}
	if !s.known(unit) {
		return nil, api.Errorf(api.ENOTFOUND, "unknown unit "+unit)
	}
	var err error
	if composite {
		err = kpi.CheckCompositeWindow(kpiID, window)
	} else {
		err = k.CheckWindow(window)
	}
	if err != nil {
		return nil, api.Errorf(api.EINVALID, err.Error())
	}
	if err := s.allowUnit(unit); err != nil {
		return nil, err
	}
	if s.dash != nil && !s.dash.Shows(kpiID, window) {
		return nil, api.Errorf(api.EFORBIDDEN, "dashboard "+s.dash.ID+" does not show "+kpiID+" over window "+window)
	}
	return k, nil
}

// allowSeries: a wall reads the series its sparklines and trends draw.
func (s *scope) allowSeries(kpiID, window string) error {
	if s.dash != nil && !s.dash.ShowsSeries(kpiID, window) {
		return api.Errorf(api.EFORBIDDEN, "dashboard "+s.dash.ID+" does not show a series of "+kpiID+" over window "+window)
	}
	return nil
}

// cityRoot is the root of the unit tree.
func (a *App) cityRoot() string {
	for _, u := range a.refs.Set().Units {
		if u.Parent == "" {
			return u.Code
		}
	}
	return ""
}

// calendar is the business calendar of the current reference data.
func (a *App) calendar() *worktime.Calendar {
	cal, err := worktime.New(a.refs.Set().Calendar, worktime.Config{})
	if err != nil { // reference data is validated when loaded
		cal, _ = worktime.New(nil, worktime.Config{})
	}
	return cal
}

// kpiRequest reads unit, window, from and to of a KPI request.
type kpiRequest struct {
	scope     *scope
	k         *kpi.KPI // nil for a composite
	composite string   // its id
	unit      string
	span      kpi.Span
}

// readStatementRequest reads a request for what only a KPI of the catalog
// has (its SQL, series, breakdown): a composite is refused.
func (a *App) readStatementRequest(r *http.Request) (*kpiRequest, error) {
	req, err := a.readKPIRequest(r)
	if err != nil || req.k != nil {
		return req, err
	}
	return nil, api.Errorf(api.EINVALID, req.composite+" is a composite: it is explained by its components, not by a statement of "+
		"its own; GET /api/v1/kpis/"+req.composite+" lists each component's KPI (whose /sql, /series and /breakdown apply) or reported indicator")
}

func (a *App) readKPIRequest(r *http.Request) (*kpiRequest, error) {
	s, err := a.scopeOf(auth.FromContext(r.Context()))
	if err != nil {
		return nil, err
	}
	q := r.URL.Query()
	id := chi.URLParam(r, "kpi")
	unit := q.Get("unit")
	if unit == "" {
		unit = s.root
	}
	window := q.Get("window")
	from, to := q.Get("from"), q.Get("to")
	if from != "" || to != "" {
		if window != "" && window != kpi.WindowCustom {
			return nil, api.Errorf(api.EINVALID, "give window or from and to, not both")
		}
		window = kpi.WindowCustom
	}
	if window == "" {
		window = kpi.WindowToday
		if k, ok := a.kpiCat.KPI(id); ok && k.Instant() {
			window = kpi.WindowNow
		}
	}
	k, err := s.allow(id, unit, window)
	if err != nil {
		return nil, err
	}
	req := &kpiRequest{scope: s, k: k, unit: unit, span: kpi.Span{Window: window}}
	if k == nil {
		req.composite = id
	}
	if window == kpi.WindowCustom {
		f, err1 := time.Parse(time.RFC3339, from)
		t, err2 := time.Parse(time.RFC3339, to)
		if err := errors.Join(err1, err2); err != nil {
			return nil, api.Errorf(api.EINVALID, "from and to must both be RFC 3339 times (2023-01-01T00:00:00+07:00)")
		}
		if req.span, err = kpi.Custom(f, t, time.Now(), a.kpiBuilder.Loc); err != nil {
			return nil, api.Errorf(api.EINVALID, err.Error())
		}
	}
	return req, nil
}

func (a *App) handleKPICatalog(w http.ResponseWriter, r *http.Request) {
	type entry struct {
		*kpi.KPI
		Windows []string `json:"windows"`
	}
	out := make([]entry, len(a.kpiCat.KPIs))
	for i, k := range a.kpiCat.KPIs {
		out[i] = entry{k, k.Windows()}
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"catalog_version": a.kpiCat.Version, "windows": kpi.StandardWindows, "kpis": out,
		"scorecards": a.kpiCat.Scorecards})
}

func (a *App) handleKPIValue(w http.ResponseWriter, r *http.Request) {
	req, err := a.readKPIRequest(r)
	if err != nil {
		api.WriteError(w, r, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	if req.k == nil {
		cv, err := a.kpiReader.Composite(ctx, req.composite, req.unit, req.span, time.Now())
		if err != nil {
			api.WriteError(w, r, kpiError(err))
			return
		}
		api.WriteJSON(w, http.StatusOK, cv)
		return
	}
	var v kpi.Value
	if req.span.Window == kpi.WindowCustom {
		v, err = a.kpiReader.Custom(ctx, req.k, req.unit, req.span)
	} else {
		v, err = a.kpiReader.Value(ctx, req.k, req.unit, req.span.Window, time.Now())
	}
	if err != nil {
		api.WriteError(w, r, kpiError(err))
		return
	}
	api.WriteJSON(w, http.StatusOK, v)
}

// valueSpan is the span of the key's latest published value (at now when
// none was published), or the request's custom span: /sql and /breakdown
// then answer for exactly the rows the value sums.
func (a *App) valueSpan(r *http.Request, req *kpiRequest) (kpi.Span, error) {
	if req.span.Window == kpi.WindowCustom {
		return req.span, nil
	}
	s, err := a.kpiReader.Span(r.Context(), req.k, req.unit, req.span.Window, time.Now())
	if err != nil {
		return s, kpiError(err)
	}
	return s, nil
}

func (a *App) handleKPISQL(w http.ResponseWriter, r *http.Request) {
	req, err := a.readStatementRequest(r)
	if err != nil {
		api.WriteError(w, r, err)
		return
	}
	span, err := a.valueSpan(r, req)
	if err != nil {
		api.WriteError(w, r, err)
		return
	}
	sql := a.kpiBuilder.SQL(a.kpiCat, req.k, req.unit, span)
	if strings.Contains(r.Header.Get("Accept"), "application/json") {
		api.WriteJSON(w, http.StatusOK, map[string]any{"kpi": req.k.ID, "unit": req.unit, "window": span.Window,
			"from": span.From, "to": span.To, "at": span.At, "sql": sql})
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte(sql + "\n"))
}

func (a *App) handleKPISeries(w http.ResponseWriter, r *http.Request) {
	req, err := a.readStatementRequest(r)
	if err != nil {
		api.WriteError(w, r, err)
		return
	}
	if err := req.scope.allowSeries(req.k.ID, req.span.Window); err != nil {
		api.WriteError(w, r, err)
		return
	}
	step := r.URL.Query().Get("step")
	if step == "" {
		step = defaultStep[req.span.Window]
	}
	span := req.span
	if span.Window != kpi.WindowCustom {
		if span, err = kpi.Resolve(span.Window, time.Now(), a.kpiBuilder.Loc); err != nil {
			api.WriteError(w, r, api.Errorf(api.EINVALID, err.Error()))
			return
		}
	}
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	p, err := a.series(ctx, req.k, req.unit, span, step)
	if err != nil {
		api.WriteError(w, r, kpiError(err))
		return
	}
	api.WriteJSON(w, http.StatusOK, p)
}

// Breakdown limits: groups returned by default and at most.
const (
	defaultBreakdownLimit = 100
	maxBreakdownLimit     = 1000
)

func (a *App) handleKPIBreakdown(w http.ResponseWriter, r *http.Request) {
	req, err := a.readStatementRequest(r)
	if err != nil {
		api.WriteError(w, r, err)
		return
	}
	q := r.URL.Query()
	by := q.Get("by")
	if by == "" {
		api.WriteError(w, r, api.Errorf(api.EINVALID, "by is required: one of "+strings.Join(req.k.Breakdowns, ", ")))
		return
	}
	limit := defaultBreakdownLimit
	if l := q.Get("limit"); l != "" {
		if limit, err = strconv.Atoi(l); err != nil || limit < 1 || limit > maxBreakdownLimit {
			api.WriteError(w, r, api.Errorf(api.EINVALID, fmt.Sprintf("limit %q: a whole number from 1 to %d", l, maxBreakdownLimit)))
			return
		}
	}
	span, err := a.valueSpan(r, req)
	if err != nil {
		api.WriteError(w, r, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	sql, groups, truncated, err := a.kpiReader.Breakdown(ctx, req.k, req.unit, span, by, limit)
	if err != nil {
		api.WriteError(w, r, kpiError(err))
		return
	}
	if groups == nil {
		groups = []kpi.Group{}
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"kpi": req.k.ID, "unit": req.unit, "window": span.Window, "by": by,
		"from": span.From, "to": span.To, "at": span.At, "version": req.k.Version, "groups": groups, "truncated": truncated, "sql": sql})
}

var defaultStep = map[string]string{"today": "hour", "24h": "hour", "week": "day", "7d": "day", "month": "day",
	"30d": "day", "quarter": "week", "ytd": "month", "custom": "day"}

// kpiError keeps ClickHouse's text from clients; validation errors of the
// kpi package are the client's.
func kpiError(err error) error {
	var ae *api.Error
	if errors.As(err, &ae) {
		return err
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return api.Errorf(api.EUNAVAILABLE, "the KPI query did not finish in time; retry")
	}
	msg := err.Error()
	if strings.Contains(msg, "has no series") || strings.HasPrefix(msg, "step ") || strings.HasPrefix(msg, "by:") || strings.HasPrefix(msg, "by \"") {
		return api.Errorf(api.EINVALID, msg)
	}
	return api.Errorf(api.EUNAVAILABLE, "clickhouse could not compute the KPI; retry later")
}

// wsAuth authenticates websocket clients with the same tokens and scopes.
type wsAuth struct{ a *App }

var _ stream.Authenticator = wsAuth{}

func (w wsAuth) Authenticate(_ context.Context, token string) (stream.Session, error) {
	c, err := w.a.Tokens.Verify(token)
	if err != nil {
		return nil, errors.New("invalid token: " + err.Error())
	}
	gen := w.a.refs.Generation()
	s, err := w.a.scopeOf(c)
	if err != nil {
		return nil, errors.New(strings.TrimPrefix(err.Error(), api.EFORBIDDEN+": "))
	}
	return wsSession{s: s, a: w.a, g: &wsGrant{a: w.a, claims: c, scope: s, gen: gen}}, nil
}

// wsSession is a websocket client's session. s is its scope as of the
// last check: Allow and RPC take the current one (now), which follows
// changes of the unit tree.
type wsSession struct {
	s *scope
	a *App
	g *wsGrant
}

// wsGrant keeps a websocket session's scope up to date with the reference
// data. A token whose scope no longer holds (its unit was removed, or a
// wall's unit changed kind) or no longer covers a unit it covered (the
// tree moved) is revoked: the hub closes the connection, and the client connects
// again to what its token grants now. REST derives the scope on each
// request.
type wsGrant struct {
	a      *App
	claims *auth.Claims
	mu     sync.Mutex
	scope  *scope
	gen    uint64 // of the reference data scope was derived from
	err    error  // why the grant ended; nil while it holds
}

// current is the session's scope, derived again when the reference data
// changed since it was.
func (g *wsGrant) current() (*scope, error) {
	gen := g.a.refs.Generation()
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.err != nil || gen == g.gen {
		return g.scope, g.err
	}
	s, err := g.a.scopeOf(g.claims)
	switch {
	case err != nil:
		g.err = errors.New(strings.TrimPrefix(err.Error(), api.EFORBIDDEN+": ") + " (the reference data changed); connect again with a valid token")
	case s.root != g.scope.root || !within(g.scope.subtree, s.subtree):
		// A unit left the subtree: subscriptions to it may be open.
		g.err = errors.New("the unit tree changed, and this token no longer sees some of the units it saw; connect again")
	default:
		g.scope, g.gen = s, gen
	}
	return g.scope, g.err
}

// within says whether every unit of the subtree a is in b (nil: all).
func within(a, b map[string]bool) bool {
	if b == nil {
		return true
	}
	if a == nil {
		return false
	}
	for u := range a {
		if !b[u] {
			return false
		}
	}
	return true
}

// now is the session with its current scope, or why its grant ended.
func (s wsSession) now() (wsSession, error) {
	if s.g == nil {
		return s, nil
	}
	sc, err := s.g.current()
	s.s = sc
	return s, err
}

// Revoked says why the session's grant ended, nil while it holds.
func (s wsSession) Revoked() error {
	_, err := s.now()
	return err
}

var _ stream.Revoker = wsSession{}

func (s wsSession) Allow(channel string) error {
	s, err := s.now()
	if err != nil {
		return err
	}
	if strings.HasPrefix(channel, drill.ChannelPrefix) {
		return s.allowList(channel)
	}
	if strings.HasPrefix(channel, alert.ChannelPrefix) {
		return s.allowAlertChannel(channel)
	}
	if strings.HasPrefix(channel, seriesPrefix) {
		return s.allowSeries(channel)
	}
	if strings.HasPrefix(channel, rankingPrefix) {
		return s.allowRankingChannel(channel)
	}
	if strings.HasPrefix(channel, mapPrefix) {
		return s.allowMapChannel(channel)
	}
	k, ok := kpi.ParseChannel(channel)
	if !ok {
		return badChannel("channel " + channel + " is not kpi:<kpi>:<unit>:<window>, series:<kpi>:<unit>:<window>:<step>, " +
			"ranking:<kpi>:<unit>:<window>, map:<unit>, list:<list>:<unit> nor alerts:<unit>")
	}
	if k.Window == kpi.WindowCustom {
		return badChannel("custom windows are for REST only; subscribe to a standard window")
	}
	_, err = s.s.allow(k.KPI, k.Unit, k.Window)
	return wsError(err)
}

// wsError is a scope error as the websocket shows it: its message alone,
// with stream.ErrUnknownChannel for what does not exist and
// stream.ErrBadChannel for what is not valid.
func wsError(err error) error {
	var ae *api.Error
	if errors.As(err, &ae) {
		switch ae.Code {
		case api.ENOTFOUND:
			return notFound(ae.Message)
		case api.EINVALID:
			return badChannel(ae.Message)
		}
		return errors.New(ae.Message)
	}
	return err
}

// channelError is a subscription refused: its text alone for the client,
// and the stream error (ErrBadChannel, ErrUnknownChannel) that gives the
// hub its error code.
type channelError struct {
	msg  string
	kind error
}

func (e channelError) Error() string { return e.msg }
func (e channelError) Unwrap() error { return e.kind }

// badChannel is a channel no one can subscribe to.
func badChannel(msg string) error { return channelError{msg, stream.ErrBadChannel} }

// notFound is an unknown KPI or unit.
func notFound(msg string) error { return channelError{msg, stream.ErrUnknownChannel} }

// Expires is when the token stops being accepted — its expiry plus the
// clock leeway REST allows too: the hub closes the websocket then.
func (s wsSession) Expires() time.Time {
	if e := s.s.claims.ExpiresAt; e != nil {
		return e.Time.Add(auth.Leeway)
	}
	return time.Time{}
}

var _ stream.Expirer = wsSession{}

func (s wsSession) Subject() string {
	c := s.s.claims
	switch c.Role {
	case auth.RoleLeader:
		return "leader:" + c.Unit
	case auth.RoleWall:
		return "wall:" + c.Dashboard
	}
	return c.Role + ":" + c.Subject
}

// setupKPIs loads the catalog and the dashboards, opens the KV bucket of
// values and wires the engine and the websocket hub.
func (a *App) setupKPIs(ctx context.Context) error {
	var err error
	if a.kpiCat, err = kpi.Load(); err != nil {
		return err
	}
	cal := a.calendar()
	a.kpiBuilder = &kpi.Builder{DB: a.db.Database(), Loc: cal.Location(), Calendar: a.calendar}
	if a.dashboards, err = dashboards.Load(DashboardChecks(a.kpiCat, a.unitKind)); err != nil {
		return err
	}
	if a.kpiStore, err = kpi.OpenStore(ctx, a.js, a.cfg.KPI.Store, a.kpiCat, cal.Location()); err != nil {
		return err
	}
	a.kpiHistory = kpi.NewHistory(a.js, a.db, a.cfg.KPI.Store, a.kpiCat, a.reg, a.log)
	a.kpiReader = &kpi.Reader{Cat: a.kpiCat, B: a.kpiBuilder, DB: a.db, Store: a.kpiStore}
	// The engine publishes through a JetStream context of its own: a round
	// of tens of thousands of values then waits for room among its own
	// outstanding publications, never taking the intake's.
	engineJS, err := jetstream.New(a.nc, jetstream.WithPublishAsyncMaxPending(16384))
	if err != nil {
		return err
	}
	if a.engine, err = kpi.NewEngine(a.cfg.KPI, a.kpiCat, a.kpiBuilder, a.db, a.nc, engineJS, a.kpiStore, a.reg, a.log); err != nil {
		return err
	}
	if a.lists, err = a.newListFeed(); err != nil {
		return err
	}
	a.kpiReader.LastCommit = a.lists.lastCommit
	if err := a.setupAlerts(ctx); err != nil {
		return err
	}
	mux := sourceMux{kpi: a.kpiStore, list: a.lists, alerts: a.alertFeed, composite: a.compositeChannel}
	wsCfg := a.cfg.WS
	wsCfg.Computed = mux.computed
	a.hub, err = stream.New(wsCfg, mux, wsAuth{a}, a.reg, a.log)
	if err != nil {
		return err
	}
	a.alertFeed.Publish, a.alertFeed.Subscribed = a.hub.Publish, a.hub.Subscribed
	return nil
}
