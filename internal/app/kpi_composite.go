package app

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"time"

	"github.com/vn-ioc/ioc/ingest"
	"github.com/vn-ioc/ioc/query/kpi"
)

// compositeChannel reports whether a channel is kpi:<composite>:…: the
// Decision 766 scorecard and the DTI are not published by the engine but
// computed by the node from their components, like the list channels.
func (a *App) compositeChannel(channel string) bool {
	k, ok := kpi.ParseChannel(channel)
	if !ok {
		return false
	}
	_, composite := a.kpiCat.Composite(k.KPI)
	return composite
}

// compositePayload is a composite value as GET /api/v1/kpis/{composite}
// returns it, plus the channel's seq.
type compositePayload struct {
	kpi.CompositeValue
	Seq uint64 `json:"seq"`
}

// compositeFeed computes a composite channel again when a value of one of
// its KPIs is published or indicators are reported.
func (a *App) compositeFeed(k kpi.Key) feedChannel {
	kpis, reported := a.kpiCat.Components(k.KPI)
	var topics []string
	for _, id := range kpis {
		topics = append(topics, kpiTopic(id))
	}
	if len(reported) > 0 {
		topics = append(topics, ingest.FamilyIndicator)
	}
	return feedChannel{topics: topics, compute: func(ctx context.Context, at time.Time) (feedValue, error) {
		v, err := a.kpiReader.Composite(ctx, k.KPI, k.Unit, kpi.Span{Window: k.Window}, at)
		if err != nil {
			return feedValue{}, err
		}
		// What a client sees change: all but the instant.
		d := v
		d.At = time.Time{}
		b, _ := json.Marshal(d)
		return feedValue{at: at, digest: sha256.Sum256(b), encode: func(seq uint64) ([]byte, error) {
			return json.Marshal(compositePayload{v, seq})
		}}, nil
	}}
}
