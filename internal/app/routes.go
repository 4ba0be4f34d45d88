package app

import (
	"context"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/vn-ioc/ioc/docs"
	"github.com/vn-ioc/ioc/ingest"
	"github.com/vn-ioc/ioc/internal/api"
	"github.com/vn-ioc/ioc/internal/auth"
	"github.com/vn-ioc/ioc/query"
)

// routes registers every route of the HTTP API in one place.
func (a *App) routes() http.Handler {
	r := chi.NewRouter()
	r.Use(middleware.Recoverer)
	r.Get("/healthz", func(w http.ResponseWriter, r *http.Request) {
		api.WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	r.Get("/readyz", a.handleReady)
	r.With(a.Tokens.Require(auth.Roles...)).Get("/api/v1/openapi.yaml", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/yaml")
		_, _ = w.Write(docs.OpenAPI)
	})
	r.With(a.Tokens.Require(auth.RoleAdmin)).Get("/metrics", promhttp.HandlerFor(a.reg, promhttp.HandlerOpts{}).ServeHTTP)

	r.Route("/api/v1", func(r chi.Router) {
		ingestRoles := a.Tokens.Require(auth.RoleIngest, auth.RoleAdmin)
		readRoles := a.Tokens.Require(auth.RoleAdmin, auth.RoleAnalyst, auth.RoleLeader, auth.RoleWall)
		r.With(ingestRoles).Post("/events", a.intake.HandleEvents)
		r.With(ingestRoles).Post("/events/arrow", a.intake.HandleArrow)
		r.With(a.Tokens.Require(auth.Roles...)).Get("/events/types", a.handleEventTypes)
		r.With(a.Tokens.Require(auth.Roles...)).Get("/events/types/{type}/schema", a.handleEventSchema)
		r.With(a.Tokens.Require(auth.RoleAdmin)).Get("/ingest/status", a.handleIngestStatus)
		r.With(readRoles).Get("/reference/{kind}", a.handleReferenceGet)
		r.With(a.Tokens.Require(auth.RoleAdmin)).Put("/reference/{kind}", a.handleReferencePut)
		sqlRoles := a.Tokens.Require(auth.RoleAdmin, auth.RoleAnalyst, auth.RoleLeader)
		r.With(sqlRoles).Post("/sql", a.handleSQL)
		r.With(sqlRoles).Get("/schema", a.handleSchema)
		r.With(readRoles).Get("/kpis", a.handleKPICatalog)
		computes := a.computes.limit(nil)
		custom := a.computes.limit(func(r *http.Request) bool { return r.URL.Query().Has("from") || r.URL.Query().Has("to") })
		r.With(readRoles, custom).Get("/kpis/{kpi}", a.handleKPIValue)
		r.With(readRoles, computes).Get("/kpis/{kpi}/series", a.handleKPISeries)
		r.With(readRoles).Get("/kpis/{kpi}/sql", a.handleKPISQL)
		// A breakdown names officers, which a wall never reads (nor their
		// names in the reference data): walls show what their panels draw.
		r.With(sqlRoles, computes).Get("/kpis/{kpi}/breakdown", a.handleKPIBreakdown)
		r.With(readRoles, computes).Get("/kpis/{kpi}/ranking", a.handleRanking)
		r.With(readRoles, computes).Get("/map", a.handleMap)
		r.With(readRoles).Get("/dashboards", a.handleDashboards)
		r.With(readRoles).Get("/dashboards/{id}", a.handleDashboard)
		r.With(readRoles, computes).Get("/lists/{list}", a.handleList)
		r.With(readRoles).Get("/alerts", a.handleAlerts)
		r.With(readRoles).Get("/alerts/rules", a.handleAlertRules)
		r.With(readRoles).Get("/alerts/hold", a.handleAlertHold)
		r.With(a.Tokens.Require(auth.RoleAdmin)).Put("/alerts/hold", a.handleAlertHoldPut)
		r.With(a.Tokens.Require(auth.RoleAdmin)).Delete("/alerts/hold", a.handleAlertHoldDelete)
		r.With(readRoles).Get("/alerts/{id}", a.handleAlert)
		r.With(a.Tokens.Require(auth.RoleAdmin, auth.RoleLeader)).Post("/alerts/{id}/ack", a.handleAlertAck)
	})
	// The websocket authenticates with its token itself (query string or
	// first message): browsers cannot set headers on it. It opens once the
	// node follows the KPI values: a client subscribing earlier could miss
	// a value published between its snapshot and the start of the watch.
	r.Get("/ws", a.serveWS)
	uiRoutes(r)
	return r
}

func (a *App) serveWS(w http.ResponseWriter, r *http.Request) {
	select {
	case <-a.serving:
		a.hub.ServeHTTP(w, r)
	default:
		e := api.Errorf(api.EUNAVAILABLE, "the node is starting: its live values are not followed yet; retry in a moment")
		e.RetryAfter = 1
		api.WriteError(w, r, e)
	}
}

func (a *App) handleReady(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	checks := map[string]string{}
	ok := true
	fail := func(name, msg string) { checks[name] = msg; ok = false }
	if !a.ready.Load() {
		fail("node", "starting or stopping")
	}
	// JetStream switches itself off when its disk is full, with NATS
	// still connected: intake then answers 503 until a restart.
	if !a.nc.IsConnected() {
		fail("nats", "disconnected")
	} else if _, err := a.js.AccountInfo(ctx); err != nil {
		fail("nats", "JetStream does not answer (disabled when its disk was full?)")
	} else {
		checks["nats"] = "ok"
	}
	if err := a.db.Ping(ctx); err != nil {
		fail("clickhouse", "unreachable")
	} else if v, err := a.db.SchemaVersion(ctx); err != nil || v < query.LatestVersion() {
		fail("clickhouse", "schema not migrated")
	} else {
		checks["clickhouse"] = "ok"
	}
	// The SQL API is reported, not required: without it the node still
	// ingests. /readyz answers anyone, so it does not say why: the reason
	// names a ClickHouse user and what ClickHouse answered. The node's log
	// and the SQL API's own 503 (to a token that may call it) say it.
	if a.sql != nil {
		checks["sql"] = "ok"
	} else {
		checks["sql"] = "disabled"
	}
	status := http.StatusOK
	if !ok {
		status = http.StatusServiceUnavailable
	}
	api.WriteJSON(w, status, map[string]any{"ready": ok, "checks": checks})
}

func (a *App) handleEventTypes(w http.ResponseWriter, r *http.Request) {
	c, err := ingest.LoadContract()
	if err != nil {
		api.WriteError(w, r, err)
		return
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"types": c.Types()})
}

func (a *App) handleEventSchema(w http.ResponseWriter, r *http.Request) {
	b, err := ingest.SchemaDocument(chi.URLParam(r, "type"))
	if err != nil {
		api.WriteError(w, r, api.Errorf(api.ENOTFOUND, "unknown event type"))
		return
	}
	w.Header().Set("Content-Type", "application/schema+json")
	_, _ = w.Write(b)
}

func (a *App) handleIngestStatus(w http.ResponseWriter, r *http.Request) {
	out := map[string]any{"watermark": a.writer.Watermark().UTC()}
	pending, err := ingest.Pending(r.Context(), a.stream)
	if err != nil {
		api.WriteError(w, r, api.Errorf(api.EUNAVAILABLE, "jetstream: "+err.Error()))
		return
	}
	out["pending"] = pending
	out["kpi"] = a.engine.Status()
	api.WriteJSON(w, http.StatusOK, out)
}
