package app

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/vn-ioc/ioc/internal/api"
	"github.com/vn-ioc/ioc/internal/auth"
	"github.com/vn-ioc/ioc/query/drill"
)

// listTimeout bounds the computation of one list (its two statements).
const listTimeout = 30 * time.Second

// allowList checks a list of a unit subtree against the scope, with the
// rules of the KPIs: a leader sees its subtree, a wall the lists its
// dashboard declares over the dashboard's subtree.
func (s *scope) allowList(list, unit string) error {
	if !drill.Known(list) {
		return api.Errorf(api.ENOTFOUND, fmt.Sprintf("unknown list %s (one of %s)", list, strings.Join(drill.Lists, ", ")))
	}
	if err := s.allowUnit(unit); err != nil {
		return err
	}
	if s.dash != nil && !s.dash.ShowsList(list) {
		return api.Errorf(api.EFORBIDDEN, "dashboard "+s.dash.ID+" does not show the list "+list)
	}
	return nil
}

// readListRequest reads the list, unit, limit and hours of a request and
// checks them against the token's scope.
func (a *App) readListRequest(r *http.Request) (drill.Request, error) {
	s, err := a.scopeOf(auth.FromContext(r.Context()))
	if err != nil {
		return drill.Request{}, err
	}
	q := r.URL.Query()
	req := drill.Request{List: chi.URLParam(r, "list"), Unit: q.Get("unit")}
	if req.Unit == "" {
		req.Unit = s.root
	}
	if err := s.allowList(req.List, req.Unit); err != nil {
		return req, err
	}
	if q.Has("limit") {
		v := q.Get("limit")
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > drill.MaxLimit {
			return req, api.Errorf(api.EINVALID, fmt.Sprintf("limit: want an integer from 1 to %d, got %q", drill.MaxLimit, v))
		}
		req.Limit = n
	}
	if q.Has("hours") {
		v := q.Get("hours")
		if req.List != drill.DossierDueSoon {
			return req, api.Errorf(api.EINVALID, "hours: only "+drill.DossierDueSoon+" has a window of working hours")
		}
		h, err := strconv.ParseFloat(v, 64)
		if err != nil || !(h >= drill.MinHours && h <= drill.MaxHours) {
			return req, api.Errorf(api.EINVALID, fmt.Sprintf("hours: want working hours from %d to %d, got %q", drill.MinHours, drill.MaxHours, v))
		}
		req.Hours = h
	}
	if err := req.Validate(); err != nil {
		return req, api.Errorf(api.EINVALID, err.Error())
	}
	return req, nil
}

// handleList serves GET /api/v1/lists/{list}: the list computed now, with
// the SQL that gives it.
func (a *App) handleList(w http.ResponseWriter, r *http.Request) {
	req, err := a.readListRequest(r)
	if err != nil {
		api.WriteError(w, r, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), listTimeout)
	defer cancel()
	res, err := drill.Run(ctx, a.db, a.calendar(), req)
	if err != nil {
		api.WriteError(w, r, a.listError(r.Context(), req, err))
		return
	}
	api.WriteJSON(w, http.StatusOK, res)
}

// listError keeps ClickHouse's text from clients, and logs it.
func (a *App) listError(ctx context.Context, req drill.Request, err error) error {
	return a.queryError(ctx, "list", err, "list", req.List, "unit", req.Unit)
}

// queryError keeps ClickHouse's text of a failed query (the list, the
// map) from clients, and logs it with the attributes.
func (a *App) queryError(ctx context.Context, what string, err error, attrs ...any) error {
	var ae *api.Error
	switch {
	case errors.As(err, &ae):
		return err
	case errors.Is(err, context.Canceled) && ctx.Err() != nil:
		return err // the client went away: 499
	case errors.Is(err, context.DeadlineExceeded):
		return api.Errorf(api.EUNAVAILABLE, "the "+what+" query did not finish in time; retry")
	}
	a.log.Warn(what+" failed", append(attrs, "err", err)...)
	return api.Errorf(api.EUNAVAILABLE, "clickhouse could not compute the "+what+"; retry later")
}

// allowList is wsSession.Allow for a list:<list>:<unit> channel.
func (s wsSession) allowList(channel string) error {
	list, unit, ok := drill.ParseChannel(channel)
	if !ok {
		return badChannel("channel " + channel + " is not list:<list>:<unit>")
	}
	return wsError(s.s.allowList(list, unit))
}
