package app

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/vn-ioc/ioc/ingest"
	"github.com/vn-ioc/ioc/query/drill"
	"github.com/vn-ioc/ioc/query/kpi"
)

// seriesPrefix starts a series channel: series:<kpi>:<unit>:<window>:<step>,
// the trend of a KPI key as GET /api/v1/kpis/{kpi}/series gives it.
const seriesPrefix = "series:"

// parseSeriesChannel reads series:<kpi>:<unit>:<window>:<step>.
func parseSeriesChannel(ch string) (k kpi.Key, step string, ok bool) {
	p, ok := splitChannel(ch, seriesPrefix, 4)
	if !ok {
		return kpi.Key{}, "", false
	}
	return kpi.Key{KPI: p[0], Unit: p[1], Window: p[2]}, p[3], true
}

// parseRankingChannel reads ranking:<kpi>:<unit>:<window>.
func parseRankingChannel(ch string) (kpi.Key, bool) {
	p, ok := splitChannel(ch, rankingPrefix, 3)
	if !ok {
		return kpi.Key{}, false
	}
	return kpi.Key{KPI: p[0], Unit: p[1], Window: p[2]}, true
}

// parseMapChannel reads map:<unit> (cameras and tickets),
// map:<unit>:cameras and map:<unit>:tickets.
func parseMapChannel(ch string) (unit string, l mapLayers, ok bool) {
	if p, ok := splitChannel(ch, mapPrefix, 1); ok {
		return p[0], mapLayers{cameras: true, tickets: true}, true
	}
	p, ok := splitChannel(ch, mapPrefix, 2)
	if !ok {
		return "", l, false
	}
	switch p[1] {
	case "cameras":
		l.cameras = true
	case "tickets":
		l.tickets = true
	default:
		return "", l, false
	}
	return p[0], l, true
}

// splitChannel reads prefix followed by n non-empty parts separated by
// colons.
func splitChannel(ch, prefix string, n int) ([]string, bool) {
	rest, found := strings.CutPrefix(ch, prefix)
	parts := strings.Split(rest, ":")
	if !found || len(parts) != n || slices.Contains(parts, "") {
		return nil, false
	}
	return parts, true
}

// seriesPayload is a KPI's trend as GET /api/v1/kpis/{kpi}/series returns
// it; a series channel adds the instant it was computed and its seq.
type seriesPayload struct {
	KPI     string      `json:"kpi"`
	Unit    string      `json:"unit"`
	Window  string      `json:"window"`
	Step    string      `json:"step"`
	From    time.Time   `json:"from"`
	To      time.Time   `json:"to"`
	Version int         `json:"version"`
	Points  []kpi.Point `json:"points"`
	SQL     string      `json:"sql"`
	At      time.Time   `json:"at,omitzero"`
	Seq     uint64      `json:"seq,omitzero"`
}

// series computes a KPI's trend over a span by step.
func (a *App) series(ctx context.Context, k *kpi.KPI, unit string, span kpi.Span, step string) (seriesPayload, error) {
	sql, points, err := a.kpiReader.Series(ctx, k, unit, span, step)
	if err != nil {
		return seriesPayload{}, err
	}
	if points == nil {
		points = []kpi.Point{}
	}
	return seriesPayload{KPI: k.ID, Unit: unit, Window: span.Window, Step: step, From: span.From, To: span.To,
		Version: k.Version, Points: points, SQL: sql}, nil
}

// parseFeedChannel says how the node computes a list, series, ranking or
// map channel.
func (a *App) parseFeedChannel(ch string) (feedChannel, error) {
	if list, unit, ok := drill.ParseChannel(ch); ok && drill.Known(list) {
		// A commit of the family, or a new value of the list's KPI: the
		// rows are read from the open entities the engine keeps
		// (drill.Run), which it has taken up by the time it publishes.
		return feedChannel{topics: []string{drill.Family(list), kpiTopic(drill.KPI(list))}, compute: func(ctx context.Context, at time.Time) (feedValue, error) {
			res, err := drill.Run(ctx, a.db, a.calendar(), drill.Request{List: list, Unit: unit, At: at})
			if err != nil {
				return feedValue{}, err
			}
			return listValue(res), nil
		}}, nil
	}
	if k, ok := kpi.ParseChannel(ch); ok {
		if _, composite := a.kpiCat.Composite(k.KPI); composite {
			return a.compositeFeed(k), nil
		}
	}
	if unit, layers, ok := parseMapChannel(ch); ok {
		// Cameras move on camera events, tickets on feedback events; the
		// periodic refresh catches what time alone changes (a camera
		// falling silent, a ticket becoming overdue). The tickets are read
		// from the open tickets the engine keeps: a new value of
		// feedback.received (tickets received) says it has taken up the
		// commit of a new ticket.
		return feedChannel{topics: []string{ingest.FamilyCamera, ingest.FamilyFeedback, kpiTopic("feedback.received")}, every: mapEvery, compute: func(ctx context.Context, at time.Time) (feedValue, error) {
			p, err := a.geo(ctx, unit, at)
			if err != nil {
				return feedValue{}, err
			}
			p = layers.only(p)
			return jsonValue(at, p.digest(), p, func(q *mapPayload, seq uint64) { q.Seq = seq }), nil
		}}, nil
	}
	if key, ok := parseRankingChannel(ch); ok {
		k, found := a.kpiCat.KPI(key.KPI)
		if !found {
			return feedChannel{}, fmt.Errorf("unknown kpi %s", key.KPI)
		}
		// The values are those the engine publishes (computed when it has
		// published none): the ranking follows them.
		return feedChannel{topics: []string{kpiTopic(k.ID)}, compute: func(ctx context.Context, at time.Time) (feedValue, error) {
			p, err := a.ranking(ctx, k, key.Unit, key.Window, at)
			if err != nil {
				return feedValue{}, err
			}
			return jsonValue(at, p.digest(), p, func(q *rankingPayload, seq uint64) { q.Seq = seq }), nil
		}}, nil
	}
	key, step, ok := parseSeriesChannel(ch)
	if !ok {
		return feedChannel{}, fmt.Errorf("channel %q is none of list:<list>:<unit>, series:<kpi>:<unit>:<window>:<step>, "+
			"ranking:<kpi>:<unit>:<window>, map:<unit>", ch)
	}
	k, found := a.kpiCat.KPI(key.KPI)
	if !found {
		return feedChannel{}, fmt.Errorf("unknown kpi %s", key.KPI)
	}
	// A series is read from the engine's rollups, once it has written a
	// commit into them; from the view (no rollups yet), at the commit.
	return feedChannel{topics: []string{k.Family, rollupsTopic(k.Family)}, compute: func(ctx context.Context, at time.Time) (feedValue, error) {
		span, err := kpi.Resolve(key.Window, at, a.kpiBuilder.Loc)
		if err != nil {
			return feedValue{}, err
		}
		p, err := a.series(ctx, k, key.Unit, span, step)
		if err != nil {
			return feedValue{}, err
		}
		p.At = at.UTC()
		// What a client sees change: the span and the points.
		d, _ := json.Marshal([]any{p.From, p.To, p.Version, p.Points})
		return jsonValue(at, sha256.Sum256(d), p, func(q *seriesPayload, seq uint64) { q.Seq = seq }), nil
	}}, nil
}

// jsonValue is a channel value whose data is p as JSON, with its seq set
// by withSeq.
func jsonValue[P any](at time.Time, digest [32]byte, p P, withSeq func(*P, uint64)) feedValue {
	return feedValue{at: at, digest: digest, encode: func(seq uint64) ([]byte, error) {
		q := p
		withSeq(&q, seq)
		return json.Marshal(q)
	}}
}

// listValue is a list as a channel value.
func listValue(res *drill.Result) feedValue {
	return feedValue{at: res.At, digest: res.Digest(), encode: func(seq uint64) ([]byte, error) {
		return json.Marshal(listPayload{res, seq})
	}}
}

// allowSeries checks a series channel against the scope: as the REST
// series of the key, over a standard window with a known step.
func (s wsSession) allowSeries(ch string) error {
	key, step, ok := parseSeriesChannel(ch)
	if !ok {
		return badChannel(fmt.Sprintf("channel %s is not series:<kpi>:<unit>:<window>:<step>", ch))
	}
	if key.Window == kpi.WindowCustom {
		return badChannel("custom windows are for REST only; subscribe to a standard window")
	}
	k, err := s.s.allow(key.KPI, key.Unit, key.Window)
	if err != nil {
		return wsError(err)
	}
	if k == nil {
		return badChannel(key.KPI + " is a composite: its components' series explain it")
	}
	if k.Instant() {
		return badChannel(k.ID + " is taken at an instant and has no series")
	}
	if !kpi.KnownStep(step) {
		return badChannel(fmt.Sprintf("step %q: use hour, day, week or month", step))
	}
	return wsError(s.s.allowSeries(key.KPI, key.Window))
}
