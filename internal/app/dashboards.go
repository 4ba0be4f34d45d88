package app

import (
	"errors"
	"net/http"
	"slices"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/vn-ioc/ioc/dashboards"
	"github.com/vn-ioc/ioc/ingest/refdata"
	"github.com/vn-ioc/ioc/internal/api"
	"github.com/vn-ioc/ioc/internal/auth"
	"github.com/vn-ioc/ioc/query/drill"
	"github.com/vn-ioc/ioc/query/kpi"
)

// DashboardChecks are what the dashboards are checked against: the KPI
// catalog, the steps of a series, the lists and, when unitKind is not nil,
// the units.
func DashboardChecks(cat *kpi.Catalog, unitKind func(code string) (string, bool)) dashboards.Checks {
	return dashboards.Checks{
		Window: func(id, window string) error {
			if k, ok := cat.KPI(id); ok {
				return k.CheckWindow(window)
			}
			if _, ok := cat.Composite(id); ok {
				return kpi.CheckCompositeWindow(id, window)
			}
			return errors.New("unknown kpi " + id + " (query/kpi/catalog.yaml lists them)")
		},
		Instant: func(id string) bool {
			k, ok := cat.KPI(id)
			return ok && k.Instant()
		},
		Composite: func(id string) bool {
			_, ok := cat.Composite(id)
			return ok
		},
		Step:      kpi.KnownStep,
		List:      drill.Known,
		Lists:     drill.Lists,
		UnitKind:  unitKind,
		UnitKinds: refdata.UnitKinds,
	}
}

// unitKind is the kind of a unit of the current reference data.
func (a *App) unitKind(code string) (string, bool) {
	u, ok := a.refs.Unit(code)
	return u.Kind, ok
}

// dashboardEntry is a dashboard as GET /api/v1/dashboards lists it.
type dashboardEntry struct {
	ID       string            `json:"id"`
	Kind     string            `json:"kind"`
	Title    map[string]string `json:"title"`
	Unit     string            `json:"unit"`
	UnitKind dashboards.Kinds  `json:"unit_kind,omitempty"`
}

// handleDashboards lists the dashboards the token may open: a wall its own,
// a leader the tablets and the walls of its subtree, analysts and admins
// every one.
func (a *App) handleDashboards(w http.ResponseWriter, r *http.Request) {
	s, err := a.scopeOf(auth.FromContext(r.Context()))
	if err != nil {
		api.WriteError(w, r, err)
		return
	}
	out := []dashboardEntry{}
	for _, d := range a.dashboards {
		if a.mayOpen(s, d) {
			out = append(out, dashboardEntry{ID: d.ID, Kind: d.Kind, Title: d.Title, Unit: d.Unit, UnitKind: d.UnitKind})
		}
	}
	slices.SortFunc(out, func(x, y dashboardEntry) int { return strings.Compare(x.ID, y.ID) })
	api.WriteJSON(w, http.StatusOK, map[string]any{"dashboards": out})
}

// mayOpen reports whether the scope may open the dashboard for some unit.
func (a *App) mayOpen(s *scope, d *dashboards.Dashboard) bool {
	switch {
	case s.dash != nil:
		return s.dash == d
	case s.subtree == nil:
		return true
	case d.Kind == dashboards.KindTablet:
		return true
	case !d.UnitFromToken():
		return s.subtree[d.Unit]
	}
	for u := range s.subtree {
		if a.unitOfKind(d, u) == nil {
			return true
		}
	}
	return false
}

// dashboardView is a dashboard with its unit resolved.
type dashboardView struct {
	*dashboards.Dashboard
	Unit     string `json:"unit"`
	UnitName string `json:"unit_name"`
}

// handleDashboard serves GET /api/v1/dashboards/{id}?unit=: the definition
// with its unit resolved.
func (a *App) handleDashboard(w http.ResponseWriter, r *http.Request) {
	s, err := a.scopeOf(auth.FromContext(r.Context()))
	if err != nil {
		api.WriteError(w, r, err)
		return
	}
	id := chi.URLParam(r, "id")
	d := a.dashboards[id]
	if d == nil {
		api.WriteError(w, r, api.Errorf(api.ENOTFOUND, "no dashboard "+id+" (GET /api/v1/dashboards lists those this token may open)"))
		return
	}
	unit, err := a.dashboardUnit(s, d, r.URL.Query().Get("unit"))
	if err != nil {
		api.WriteError(w, r, err)
		return
	}
	u, _ := a.refs.Unit(unit)
	api.WriteJSON(w, http.StatusOK, dashboardView{Dashboard: d, Unit: unit, UnitName: u.Name})
}

// dashboardUnit is the unit a scope opens a dashboard for: a wall's own;
// for the others the dashboard's, or for a dashboard of unit: token the
// unit asked (default: a leader's own unit, else the city), within their
// subtree.
func (a *App) dashboardUnit(s *scope, d *dashboards.Dashboard, asked string) (string, error) {
	if s.dash != nil {
		if s.dash != d {
			return "", api.Errorf(api.EFORBIDDEN, "this wall token shows dashboard "+s.dash.ID+", not "+d.ID)
		}
		if asked != "" && asked != s.root {
			return "", api.Errorf(api.EFORBIDDEN, "this wall token shows dashboard "+d.ID+" for unit "+s.root+", not "+asked)
		}
		return s.root, nil
	}
	unit := asked
	if !d.UnitFromToken() {
		if asked != "" && asked != d.Unit {
			return "", api.Errorf(api.EINVALID, "dashboard "+d.ID+" is of unit "+d.Unit+"; unit= is only for dashboards of unit: token")
		}
		unit = d.Unit
	} else if unit == "" {
		unit = s.root
	}
	if err := s.allowUnit(unit); err != nil {
		return "", err
	}
	if d.UnitFromToken() {
		if err := a.unitOfKind(d, unit); err != nil {
			return "", api.Errorf(api.EINVALID, err.Error()+": give unit= of a "+d.UnitKind.String())
		}
	}
	return unit, nil
}
