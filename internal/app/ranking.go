package app

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"golang.org/x/sync/errgroup"

	"github.com/vn-ioc/ioc/ingest/refdata"
	"github.com/vn-ioc/ioc/internal/api"
	"github.com/vn-ioc/ioc/query/kpi"
)

// rankingParallel bounds the child values read at once by one ranking.
const rankingParallel = 8

// rankingPrefix starts a ranking channel: ranking:<kpi>:<unit>:<window>.
const rankingPrefix = "ranking:"

// rankingRow is the value of one child unit.
type rankingRow struct {
	Unit        string    `json:"unit"`
	Name        string    `json:"name"`
	Value       *float64  `json:"value"`
	Numerator   int64     `json:"numerator"`
	Denominator int64     `json:"denominator"`
	AsOf        time.Time `json:"as_of,omitzero"`
}

// rankingPayload is GET /api/v1/kpis/{kpi}/ranking; a ranking channel adds
// its seq.
type rankingPayload struct {
	KPI    string    `json:"kpi"`
	Unit   string    `json:"unit"`
	Window string    `json:"window"`
	From   time.Time `json:"from,omitzero"`
	To     time.Time `json:"to,omitzero"`
	// AsOf is the newest watermark of the rows: a value the engine did not
	// republish (it did not change) keeps the watermark it was computed at.
	AsOf time.Time    `json:"as_of,omitzero"`
	Rows []rankingRow `json:"rows"`
	Seq  uint64       `json:"seq,omitzero"`
}

// allowRanking checks a ranking of the children of a unit: as the KPI key
// of the unit, for a KPI of the catalog over a standard window, and for a
// wall a ranking or map panel that ranks by it.
func (s *scope) allowRanking(kpiID, unit, window string) (*kpi.KPI, error) {
	k, err := s.allow(kpiID, unit, window)
	switch {
	case err != nil:
		return nil, err
	case k == nil:
		return nil, api.Errorf(api.EINVALID, kpiID+" is a composite: rank units by a KPI of the catalog")
	case window == kpi.WindowCustom:
		return nil, api.Errorf(api.EINVALID, "a ranking is over a standard window, not from and to")
	case s.dash != nil && !s.dash.ShowsRanking(kpiID, window):
		return nil, api.Errorf(api.EFORBIDDEN, "dashboard "+s.dash.ID+" does not rank units by "+kpiID+" over window "+window)
	}
	return k, nil
}

// handleRanking serves GET /api/v1/kpis/{kpi}/ranking?unit=&window=.
func (a *App) handleRanking(w http.ResponseWriter, r *http.Request) {
	req, err := a.readKPIRequest(r)
	if err != nil {
		api.WriteError(w, r, err)
		return
	}
	k, err := req.scope.allowRanking(chi.URLParam(r, "kpi"), req.unit, req.span.Window)
	if err != nil {
		api.WriteError(w, r, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	p, err := a.ranking(ctx, k, req.unit, req.span.Window, time.Now())
	if err != nil {
		api.WriteError(w, r, kpiError(err))
		return
	}
	api.WriteJSON(w, http.StatusOK, p)
}

// rankedChildren are the units a ranking of unit compares: its direct
// children in the current tree. Units that ceased to exist (the districts
// and wards before the 2025 merger, whose valid_to has passed) are of the
// historical tree, and departments are not places: a ranking of the city
// compares its wards, communes and special zone. A unit without such
// children has an empty ranking.
func (a *App) rankedChildren(unit string, now time.Time) []refdata.Unit {
	var out []refdata.Unit
	for _, code := range a.refs.Children(unit) {
		u, ok := a.refs.Unit(code)
		if ok && u.Kind != refdata.KindDepartment && (u.ValidTo.IsZero() || u.ValidTo.After(now)) {
			out = append(out, u)
		}
	}
	return out
}

// ranking reads the value of each child as GET /api/v1/kpis/{kpi} does —
// the published value, else computed — and sorts them by value, highest
// first (no value last), ties by unit code.
func (a *App) ranking(ctx context.Context, k *kpi.KPI, unit, window string, now time.Time) (rankingPayload, error) {
	p := rankingPayload{KPI: k.ID, Unit: unit, Window: window}
	if !k.Instant() {
		span, err := kpi.Resolve(window, now, a.kpiBuilder.Loc)
		if err != nil {
			return p, err
		}
		p.From, p.To = span.From, span.To
	}
	kids := a.rankedChildren(unit, now)
	p.Rows = make([]rankingRow, len(kids))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(rankingParallel)
	for i, u := range kids {
		g.Go(func() error {
			v, err := a.kpiReader.Value(gctx, k, u.Code, window, now)
			if err != nil {
				return err
			}
			p.Rows[i] = rankingRow{Unit: u.Code, Name: u.Name, Value: v.Value, Numerator: v.Numerator, Denominator: v.Denominator, AsOf: v.AsOf}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return p, err
	}
	for _, row := range p.Rows {
		if row.AsOf.After(p.AsOf) {
			p.AsOf = row.AsOf
		}
	}
	slices.SortFunc(p.Rows, func(x, y rankingRow) int {
		switch {
		case x.Value == nil && y.Value != nil:
			return 1
		case x.Value != nil && y.Value == nil:
			return -1
		case x.Value != nil && *x.Value != *y.Value:
			return cmp.Compare(*y.Value, *x.Value)
		}
		return strings.Compare(x.Unit, y.Unit)
	})
	return p, nil
}

// digest of what a client sees change in a ranking: the span and each
// row's counts (not the watermarks).
func (p rankingPayload) digest() [32]byte {
	rows := make([]any, len(p.Rows))
	for i, r := range p.Rows {
		rows[i] = []any{r.Unit, r.Numerator, r.Denominator, r.Value}
	}
	b, _ := json.Marshal([]any{p.From, p.To, rows})
	return sha256.Sum256(b)
}

// allowRankingChannel is wsSession.Allow for ranking:<kpi>:<unit>:<window>.
func (s wsSession) allowRankingChannel(ch string) error {
	key, ok := parseRankingChannel(ch)
	if !ok {
		return badChannel("channel " + ch + " is not ranking:<kpi>:<unit>:<window>")
	}
	_, err := s.s.allowRanking(key.KPI, key.Unit, key.Window)
	return wsError(err)
}
