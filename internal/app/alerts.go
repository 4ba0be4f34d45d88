package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/vn-ioc/ioc/internal/api"
	"github.com/vn-ioc/ioc/internal/auth"
	"github.com/vn-ioc/ioc/query/alert"
	"github.com/vn-ioc/ioc/stream"
)

// setupAlerts loads the rules and wires the evaluator, the store and the
// node's alert feed; it runs after setupKPIs.
func (a *App) setupAlerts(ctx context.Context) error {
	var err error
	if a.alertRules, err = alert.Load(a.cfg.AlertRules, a.kpiCat); err != nil {
		return err
	}
	if a.alertStore, err = alert.OpenStore(ctx, a.js, a.db, a.cfg.Alert.Store); err != nil {
		return err
	}
	a.evaluator, err = alert.NewEvaluator(a.cfg.Alert, a.alertRules, alert.Deps{
		DB: a.db, Store: a.alertStore, NC: a.nc, JS: a.js, KPIs: a.kpiStore,
		UnitKind: a.unitKind,
		Calendar: a.calendar, Reg: a.reg, Log: a.log,
	})
	if err != nil {
		return err
	}
	a.alertFeed = alert.NewFeed(a.alertStore, a.refs.Path)
	a.alertFeed.Log = a.log
	return nil
}

// allowAlerts checks the alert feed of a unit subtree against the scope:
// a leader its subtree, a wall its dashboard's subtree when the dashboard
// shows alerts, analysts and admins every unit.
func (s *scope) allowAlerts(unit string) error {
	if err := s.allowUnit(unit); err != nil {
		return err
	}
	if s.dash != nil && !s.dash.ShowsAlerts() {
		return api.Errorf(api.EFORBIDDEN, "dashboard "+s.dash.ID+" does not show alerts")
	}
	return nil
}

// sees reports whether the scope may see an alert of that unit.
func (s *scope) sees(unit string) bool {
	return (s.subtree == nil || s.subtree[unit]) && (s.dash == nil || s.dash.ShowsAlerts())
}

// mayAck: leaders acknowledge the alerts of their subtree, admins any;
// walls and analysts only read.
func (s *scope) mayAck(al *alert.Alert) error {
	switch s.claims.Role {
	case auth.RoleAdmin:
		return nil
	case auth.RoleLeader:
		if s.sees(al.Unit) {
			return nil
		}
		return api.Errorf(api.EFORBIDDEN, "alert "+al.ID+" is of unit "+al.Unit+", outside the subtree of unit "+s.root+" this token sees")
	}
	return api.Errorf(api.EFORBIDDEN, "a "+s.claims.Role+" token cannot acknowledge alerts (leaders and admins can)")
}

// actor names who acknowledged, as the alert records it.
func actor(c *auth.Claims) string {
	who := c.Subject
	if who == "" {
		who = c.Role
	}
	if c.Role == auth.RoleLeader {
		return who + " (leader of unit " + c.Unit + ")"
	}
	return who + " (" + c.Role + ")"
}

func (a *App) handleAlertRules(w http.ResponseWriter, r *http.Request) {
	type entry struct {
		*alert.Rule
		SQL string `json:"sql,omitempty"`
	}
	now := time.Now()
	cal := a.calendar()
	out := make([]entry, len(a.alertRules.Rules))
	for i, rule := range a.alertRules.Rules {
		out[i] = entry{Rule: rule}
		if rule.Kind != alert.KindThreshold {
			until := now
			if rule.Kind == alert.KindDossierDue {
				until = cal.AddWorkingHours(now, rule.Hours)
			}
			out[i].SQL = rule.Query(a.db.Database(), now, until)
		}
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"version": a.alertRules.Version, "rules": out})
}

// handleAlerts lists alerts of a unit subtree from ClickHouse.
func (a *App) handleAlerts(w http.ResponseWriter, r *http.Request) {
	s, err := a.scopeOf(auth.FromContext(r.Context()))
	if err != nil {
		api.WriteError(w, r, err)
		return
	}
	q := r.URL.Query()
	unit := q.Get("unit")
	if unit == "" {
		unit = s.root
	}
	if err := s.allowAlerts(unit); err != nil {
		api.WriteError(w, r, err)
		return
	}
	f := alert.Filter{State: q.Get("state"), Rule: q.Get("rule")}
	if f.State != "" && !slices.Contains(alert.FilterStates, f.State) {
		api.WriteError(w, r, api.Errorf(api.EINVALID, "state "+f.State+": one of "+strings.Join(alert.FilterStates, ", ")))
		return
	}
	if f.Rule != "" {
		if _, ok := a.alertRules.Rule(f.Rule); !ok {
			api.WriteError(w, r, api.Errorf(api.EINVALID, "rule "+f.Rule+": no such rule (GET /api/v1/alerts/rules lists them)"))
			return
		}
	}
	if v := q.Get("since"); v != "" {
		if f.Since, err = time.Parse(time.RFC3339, v); err != nil {
			api.WriteError(w, r, api.Errorf(api.EINVALID, "since "+v+": an RFC 3339 time (2026-11-22T08:00:00+07:00)"))
			return
		}
	}
	if v := q.Get("limit"); v != "" {
		if f.Limit, err = strconv.Atoi(v); err != nil || f.Limit < 1 || f.Limit > 1000 {
			api.WriteError(w, r, api.Errorf(api.EINVALID, "limit "+v+": between 1 and 1000"))
			return
		}
	}
	if s.subtree != nil || unit != a.cityRoot() {
		f.Units = a.refs.Subtree(unit)
	}
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	as, err := a.alertStore.List(ctx, f)
	if err != nil {
		api.WriteError(w, r, api.Errorf(api.EUNAVAILABLE, "clickhouse could not read the alerts; retry later"))
		return
	}
	if as == nil {
		as = []*alert.Alert{}
	}
	state := f.State
	if state == "" {
		state = "open"
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"unit": unit, "state": state, "alerts": as})
}

// readAlert reads the alert of the path and checks the scope sees it.
func (a *App) readAlert(r *http.Request) (*scope, *alert.Alert, error) {
	s, err := a.scopeOf(auth.FromContext(r.Context()))
	if err != nil {
		return nil, nil, err
	}
	id := chi.URLParam(r, "id")
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	al, err := a.alertStore.Get(ctx, id)
	if err != nil {
		return nil, nil, api.Errorf(api.EUNAVAILABLE, "clickhouse could not read the alert; retry later")
	}
	// An alert outside the scope is answered as missing: its existence
	// says something about another unit.
	if al == nil || !s.sees(al.Unit) {
		return nil, nil, api.Errorf(api.ENOTFOUND, "no alert "+id)
	}
	return s, al, nil
}

func (a *App) handleAlert(w http.ResponseWriter, r *http.Request) {
	_, al, err := a.readAlert(r)
	if err != nil {
		api.WriteError(w, r, err)
		return
	}
	api.WriteJSON(w, http.StatusOK, al)
}

// ackBody is the body of an acknowledgement (optional).
type ackBody struct {
	Note string `json:"note"`
}

func (a *App) handleAlertAck(w http.ResponseWriter, r *http.Request) {
	s, al, err := a.readAlert(r)
	if err != nil {
		api.WriteError(w, r, err)
		return
	}
	var body ackBody
	if b, _ := io.ReadAll(io.LimitReader(r.Body, 8<<10)); len(strings.TrimSpace(string(b))) > 0 {
		dec := json.NewDecoder(strings.NewReader(string(b)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&body); err != nil {
			api.WriteError(w, r, api.Errorf(api.EINVALID, "body: want {\"note\": \"…\"}: "+strings.TrimPrefix(err.Error(), "json: ")))
			return
		}
	}
	out, err := a.ack(r.Context(), s, al, body.Note)
	if err != nil {
		api.WriteError(w, r, err)
		return
	}
	api.WriteJSON(w, http.StatusOK, out)
}

// ack checks the scope and the note and asks the evaluating node to
// acknowledge; the same for REST and the websocket.
func (a *App) ack(ctx context.Context, s *scope, al *alert.Alert, note string) (*alert.Alert, error) {
	if err := s.mayAck(al); err != nil {
		return nil, err
	}
	if len(note) > 1000 {
		return nil, api.Errorf(api.EINVALID, "note: at most 1000 bytes")
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := alert.Ack(ctx, a.nc, al.ID, actor(s.claims), note)
	var ae *alert.AckError
	switch {
	case errors.As(err, &ae):
		code := map[string]string{"not_found": api.ENOTFOUND, "conflict": api.ECONFLICT, "bad_request": api.EINVALID}[ae.Code]
		if code == "" {
			code = api.EUNAVAILABLE
		}
		return nil, api.Errorf(code, ae.Msg)
	case errors.Is(err, alert.ErrAckTimeout):
		return nil, api.Errorf(api.EUNAVAILABLE, err.Error())
	case err != nil:
		if !errors.Is(err, alert.ErrNoEvaluator) {
			a.log.Warn("alert acknowledgement", "id", al.ID, "err", err)
		}
		return nil, api.Errorf(api.EUNAVAILABLE, alert.ErrNoEvaluator.Error())
	}
	return out, nil
}

// RPC answers the websocket's rpc messages: "alert.ack" with data
// {"alert": id, "note": "…"}.
func (s wsSession) RPC(ctx context.Context, method string, data json.RawMessage) (json.RawMessage, error) {
	s, err := s.now()
	if err != nil {
		return nil, &stream.RPCError{Code: "unauthorized", Msg: err.Error()}
	}
	if method != "alert.ack" {
		return nil, &stream.RPCError{Code: "not_found", Msg: "no method " + method + " (alert.ack is the one offered)"}
	}
	var req struct {
		Alert string `json:"alert"`
		Note  string `json:"note"`
	}
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil || req.Alert == "" {
		return nil, &stream.RPCError{Code: "bad_request", Msg: "alert.ack: data wants {\"alert\": id, \"note\": \"…\"} with alert set"}
	}
	a := s.a
	al, err := a.alertStore.Get(ctx, req.Alert)
	if err != nil {
		return nil, &stream.RPCError{Code: "unavailable", Msg: "the alert could not be read; retry later"}
	}
	if al == nil || !s.s.sees(al.Unit) {
		return nil, &stream.RPCError{Code: "not_found", Msg: "no alert " + req.Alert}
	}
	out, err := a.ack(ctx, s.s, al, req.Note)
	if err != nil {
		var ae *api.Error
		if errors.As(err, &ae) {
			code := ae.Code
			if code == api.EINVALID {
				code = "bad_request"
			}
			return nil, &stream.RPCError{Code: code, Msg: ae.Message}
		}
		return nil, err
	}
	b, _ := json.Marshal(out)
	return b, nil
}

var _ stream.RPCHandler = wsSession{}

// allowAlertChannel checks a channel alerts:<unit>.
func (s wsSession) allowAlertChannel(channel string) error {
	return wsError(s.s.allowAlerts(strings.TrimPrefix(channel, alert.ChannelPrefix)))
}

// holdState is the answer of /alerts/hold: whether a hold suspends the
// rules, and the hold set (also when it has expired and not been lifted).
type holdState struct {
	Held bool        `json:"held"`
	Hold *alert.Hold `json:"hold,omitempty"`
}

func (a *App) holdState(ctx context.Context) (holdState, error) {
	h, err := a.alertStore.Hold(ctx)
	if err != nil {
		return holdState{}, api.Errorf(api.EUNAVAILABLE, err.Error())
	}
	return holdState{Held: h.InForce(time.Now()), Hold: h}, nil
}

func (a *App) handleAlertHold(w http.ResponseWriter, r *http.Request) {
	st, err := a.holdState(r.Context())
	if err != nil {
		api.WriteError(w, r, err)
		return
	}
	api.WriteJSON(w, http.StatusOK, st)
}

// holdBody is the body of PUT /alerts/hold: a reason and either how long
// ("for", a Go duration) or until when (RFC 3339).
type holdBody struct {
	Reason   string    `json:"reason"`
	Families []string  `json:"families"`
	For      string    `json:"for"`
	Until    time.Time `json:"until"`
}

func (a *App) handleAlertHoldPut(w http.ResponseWriter, r *http.Request) {
	var body holdBody
	dec := json.NewDecoder(io.LimitReader(r.Body, 8<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		api.WriteError(w, r, api.Errorf(api.EINVALID, `body: want {"reason": "…", "for": "2h"} or {"reason": "…", "until": "RFC 3339 time"}: `+strings.TrimPrefix(err.Error(), "json: ")))
		return
	}
	h := alert.Hold{Reason: body.Reason, Families: body.Families, By: actor(auth.FromContext(r.Context())), Until: body.Until}
	switch {
	case body.For != "" && !body.Until.IsZero():
		api.WriteError(w, r, api.Errorf(api.EINVALID, "for, until: give one of them, not both"))
		return
	case body.For != "":
		d, err := time.ParseDuration(body.For)
		if err != nil || d <= 0 {
			api.WriteError(w, r, api.Errorf(api.EINVALID, "for "+strconv.Quote(body.For)+": want a positive duration such as 90m or 2h"))
			return
		}
		h.Until = time.Now().Add(d)
	case body.Until.IsZero():
		api.WriteError(w, r, api.Errorf(api.EINVALID, "for, until: one of them is required (a hold always ends)"))
		return
	}
	set, err := a.alertStore.SetHold(r.Context(), h)
	var invalid *alert.InvalidHoldError
	switch {
	case errors.As(err, &invalid):
		api.WriteError(w, r, api.Errorf(api.EINVALID, err.Error()))
		return
	case err != nil:
		api.WriteError(w, r, api.Errorf(api.EUNAVAILABLE, err.Error()))
		return
	}
	a.log.Info("alert rules hold set", "by", set.By, "reason", set.Reason, "until", set.Until)
	api.WriteJSON(w, http.StatusOK, holdState{Held: true, Hold: set})
}

func (a *App) handleAlertHoldDelete(w http.ResponseWriter, r *http.Request) {
	if err := a.alertStore.LiftHold(r.Context()); err != nil {
		api.WriteError(w, r, api.Errorf(api.EUNAVAILABLE, err.Error()))
		return
	}
	a.log.Info("alert rules hold lifted", "by", actor(auth.FromContext(r.Context())))
	api.WriteJSON(w, http.StatusOK, holdState{})
}

// AlertStore keeps the alerts and the hold on the rules.
func (a *App) AlertStore() *alert.Store { return a.alertStore }

// Settle waits until the events JetStream held when it was called are all
// in ClickHouse (the ingest stream drained past its last message then) and
// the KPI values this node publishes reflect them (its engine's values
// caught up with the commits heard a second after the drain: the last
// commit notices arrive meanwhile). Other events may keep coming: it
// waits for nothing later. A node that does not run the KPI engine waits
// until ctx ends, and returns ctx's error, as when ctx ends first.
func (a *App) Settle(ctx context.Context) error {
	info, err := a.stream.Info(ctx)
	if err != nil {
		return fmt.Errorf("ingest stream: %w", err)
	}
	upTo := info.State.LastSeq
	var marks map[string]time.Time
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
		if marks != nil {
			if a.engine.Reflects(marks) {
				return nil
			}
			continue
		}
		if info, err := a.stream.Info(ctx); err != nil || (info.State.Msgs > 0 && info.State.FirstSeq <= upTo) {
			continue
		}
		// Drained; the notices of its last commits arrive within the
		// second before the next look.
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
		marks = map[string]time.Time{}
		for fam, st := range a.engine.Status().Families {
			marks[fam] = st.Committed
		}
	}
}
