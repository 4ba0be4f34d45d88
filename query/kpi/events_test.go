package kpi_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vn-ioc/ioc/ingest"
	"github.com/vn-ioc/ioc/internal/testenv"
	"github.com/vn-ioc/ioc/query/kpi"
)

// TestEngineEventBuckets: the rollups of the event views (surveys,
// camera detections) stay equal to their SQL when commits re-read only the
// buckets their events span: events in buckets already held, a repeated
// delivery of an event already counted, commits whose span crosses an
// hour, and a late event days back with live ones.
func TestEngineEventBuckets(t *testing.T) {
	c := newCity(t, 13)
	ctx := context.Background()
	reg := prometheus.NewRegistry()
	eng := c.leader(t, kpi.Config{}, reg)
	cams := c.set.Cameras
	type ev struct {
		id string
		at time.Time
		n  int // which unit or camera
	}
	commit := func(evs []ev) {
		t.Helper()
		sb, err := c.db.Conn.PrepareBatch(c.db.InsertContext(ctx), "INSERT INTO "+c.db.Table("survey_events")+" (source, id, type, subject, time, accepted_at, unit, rating)")
		if err != nil {
			t.Fatal(err)
		}
		cb, err := c.db.Conn.PrepareBatch(c.db.InsertContext(ctx), "INSERT INTO "+c.db.Table("camera_events")+" (source, id, type, subject, time, accepted_at, kind)")
		if err != nil {
			t.Fatal(err)
		}
		var minT, maxT time.Time
		for _, e := range evs {
			_ = sb.Append("bk", e.id, "submitted", e.id, e.at, e.at, c.units[e.n*13%len(c.units)], []string{"satisfied", "unsatisfied", "neutral"}[e.n%3])
			_ = cb.Append("bk", e.id, "detection", cams[e.n*7%len(cams)].ID, e.at, e.at, "vehicle_count")
			if minT.IsZero() || e.at.Before(minT) {
				minT = e.at
			}
			if e.at.After(maxT) {
				maxT = e.at
			}
		}
		if err := sb.Send(); err != nil {
			t.Fatal(err)
		}
		if err := cb.Send(); err != nil {
			t.Fatal(err)
		}
		for _, fam := range []string{"survey", "camera"} {
			if err := eng.ApplyCommit(ctx, ingest.CommitNotice{Family: fam, MinTime: minT, MaxTime: maxT}, c.at); err != nil {
				t.Fatal(err)
			}
		}
	}
	r := rand.New(rand.NewPCG(13, 1))
	check := func(step string) {
		t.Helper()
		t.Log(step)
		checkAgainstSQL(t, c, eng, r, func(k kpi.Key) bool {
			return (strings.HasPrefix(k.KPI, "survey.") || k.KPI == "camera.detections_per_min") && (k.Unit == "79" || r.IntN(25) == 0)
		})
	}
	hour := c.at.Truncate(time.Hour)
	// 1. The last three hours: hours not held are read whole.
	var first []ev
	for i := 0; i < 300; i++ {
		first = append(first, ev{fmt.Sprintf("a%d", i), c.at.Add(-time.Duration(r.IntN(3*3600)) * time.Second), i})
	}
	commit(first)
	check("first commit")
	reads := func(kind string) float64 { return testenv.Metric(t, reg, "ioc_kpi_event_reads_total", "read", kind) }
	whole := reads("hours")
	// 2. A narrow span in a held hour: new events in buckets that hold
	// some already, and a repeat of one of them.
	at := hour.Add(-90 * time.Minute)
	second := []ev{{"b0", at, 1}, {"b1", at.Add(3 * time.Second), 2}, {"b2", at.Add(25 * time.Second), 3}}
	for _, e := range first[:40] {
		if e.at.After(at.Add(-time.Minute)) && e.at.Before(at.Add(time.Minute)) {
			second = append(second, e) // repeated delivery
		}
	}
	second = append(second, ev{"b3", at.Add(-30 * time.Second), 4}, first[0])
	commit(second)
	check("a narrow span, with repeats")
	if reads("span") < 2 || reads("hours") != whole {
		t.Errorf("the narrow commit read %v spans and %v more whole hours; want 2 spans (surveys, detections) and no hour", reads("span"), reads("hours")-whole)
	}
	// 3. Across the turn of an hour, and with one event two days late.
	third := []ev{{"c0", hour.Add(-2 * time.Second), 5}, {"c1", hour.Add(time.Second), 6}, {"c2", c.at.Add(-48 * time.Hour), 7}}
	commit(third)
	check("across an hour, and late")
}
