package kpi_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vn-ioc/ioc/ingest"
	"github.com/vn-ioc/ioc/internal/testenv"
	"github.com/vn-ioc/ioc/query/kpi"
)

// TestInstantsFollowTheirCommit: a commit's instant KPIs are asked for
// only once its rollups and open entities are written (asked for earlier,
// the instant loop could compute them before, from the open entities as
// they were, and leave them so until the next commit or sweep), with the
// commit's watermark; once computed they equal their SQL over the views,
// and the engine's status says it has caught up.
func TestInstantsFollowTheirCommit(t *testing.T) {
	c := newCity(t, 23)
	ctx := context.Background()
	_, nc := testenv.NATS(t)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	scfg := kpi.StoreConfig{Bucket: "test_status"}
	store, err := kpi.OpenStore(ctx, js, scfg, c.cat, c.b.Loc)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	eng, err := kpi.NewEngine(kpi.Config{Store: scfg}, c.cat, c.b, c.db, nc, js, store, reg, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, fam := range c.cat.Families() {
		if err := eng.Rebuild(ctx, fam, c.at); err != nil {
			t.Fatal(err)
		}
	}
	eng.SetNow(func() time.Time { return c.at })
	eng.SetLast(map[kpi.Key]kpi.Value{})
	status := func() kpi.FamilyStatus { return eng.Status().Families["dossier"] }
	// A node that does not lead keeps no work of the commits it hears
	// (the leader's; a node taking over catches up from the rollups).
	early := ingest.CommitNotice{Family: "dossier", Subjects: []string{"HS-X"}, Count: 1,
		MinTime: c.at.Add(-time.Hour), MaxTime: c.at.Add(-time.Hour), Watermark: c.at.Add(-time.Hour)}
	eng.Notice(early)
	if st := status(); st.Pending || !st.Committed.Equal(early.Watermark) {
		t.Fatalf("commit heard while not leading: status %+v, want nothing pending, committed %v", st, early.Watermark)
	}
	eng.SetLeading(true)
	behind := func() float64 { return testenv.Metric(t, reg, "ioc_kpi_behind_seconds", "family", "dossier") }

	if err := eng.Recompute(ctx, "dossier"); err != nil {
		t.Fatal(err)
	}
	eng.Instants(ctx)
	if st := status(); !st.CaughtUp || behind() != 0 {
		t.Fatalf("before any commit: status %+v, %v s behind, want caught up", st, behind())
	}

	n := moveDossiers(t, c)
	n.Watermark = c.at.Add(-time.Second)
	eng.Notice(n)
	if st := status(); st.CaughtUp || !st.Pending || !st.Committed.Equal(n.Watermark) {
		t.Fatalf("commit heard: status %+v, want pending, committed %v", st, n.Watermark)
	}
	var dueWhileApplying map[string]time.Time
	eng.SetBeforeContribWrite(func() error {
		dueWhileApplying = eng.InstantsDue()
		return nil
	})
	if err := eng.Recompute(ctx, "dossier"); err != nil {
		t.Fatal(err)
	}
	if dueWhileApplying == nil {
		t.Fatal("the commit's contributions were never written")
	}
	if _, due := dueWhileApplying["dossier"]; due {
		t.Error("the dossier instants were asked for while the commit was being applied")
	}
	if got, due := eng.InstantsDue()["dossier"]; !due || !got.Equal(n.Watermark) {
		t.Errorf("after the commit: dossier instants due %v (as of %v), want due as of %v", due, got, n.Watermark)
	}
	if st := status(); st.CaughtUp || !st.Windows.Equal(n.Watermark) || behind() <= 0 {
		t.Errorf("windows published, instants not: status %+v, %v s behind, want windows as of %v, not caught up", st, behind(), n.Watermark)
	}

	// A computation that fails leaves them due, for the next round.
	failed, cancel := context.WithCancel(ctx)
	cancel()
	eng.Instants(failed)
	if got, due := eng.InstantsDue()["dossier"]; !due || !got.Equal(n.Watermark) {
		t.Errorf("after a failed computation: dossier instants due %v (as of %v), want due as of %v", due, got, n.Watermark)
	}
	eng.Instants(ctx)
	if st := status(); !st.CaughtUp || !st.Instants.Equal(n.Watermark) || behind() != 0 {
		t.Errorf("instants published: status %+v, %v s behind, want caught up as of %v", st, behind(), n.Watermark)
	}
	reader := &kpi.Reader{Cat: c.cat, B: c.b, DB: c.db}
	span, err := kpi.Resolve(kpi.WindowNow, c.at, c.b.Loc)
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, k := range c.cat.KPIs {
		if k.Family != "dossier" || !k.Instant() {
			continue
		}
		want, err := reader.Compute(ctx, k, "79", span)
		if err != nil {
			t.Fatal(err)
		}
		got, ok, err := store.Get(ctx, kpi.Key{KPI: k.ID, Unit: "79", Window: kpi.WindowNow})
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			got = kpi.Value{} // never published: zero
		}
		if got.Numerator != want.Numerator || got.Denominator != want.Denominator {
			t.Errorf("%s of 79: published %d/%d, SQL over the view %d/%d", k.ID, got.Numerator, got.Denominator, want.Numerator, want.Denominator)
		}
		checked++
	}
	if checked == 0 {
		t.Fatal("no instant KPI of the dossiers in the catalog")
	}
}
