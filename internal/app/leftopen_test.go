package app

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/vn-ioc/ioc/internal/auth"
	"github.com/vn-ioc/ioc/internal/sim"
)

// A run of the live city stopped half-way leaves dossiers and tickets open;
// the next run ends them first (sim.LeftOpen), through the node's SQL API
// and intake, and leaves alone an open dossier of another period (a
// scenario's) and one in another id format.
func TestSimulatorEndsWhatAnEarlierRunLeftOpen(t *testing.T) {
	a, toks := node(t)
	set, cal := hcmcCity(t)
	now := time.Now()
	g, err := sim.NewGenerator(sim.Config{Seed: 7, Start: now.Add(-3 * 24 * time.Hour), Cameras: -1,
		DossiersPerDay: 2000, FeedbackPerDay: 1000, NoIndicators: true}, set, cal)
	if err != nil {
		t.Fatal(err)
	}
	st, err := sim.Run(context.Background(), sim.RunConfig{Rate: 50_000, BatchSize: 1000, Unpaced: true, MaxEvents: 4000}, g,
		&sim.HTTPSender{URL: a.URL(), Token: toks["admin"]}, nil)
	if err != nil || st.Rejected != 0 {
		t.Fatalf("run: %v, %+v", err, st)
	}
	old := now.Add(-200 * 24 * time.Hour)
	postEvents(t, a, toks["ingest"],
		fmt.Sprintf(`{"specversion":"1.0","id":"old-1","source":"hcmc/one-stop","type":"vn.ioc.dossier.received","subject":"26740-%s-scen01-1","time":%q,"data":{"procedure_code":"TP-001","channel":"counter","unit":"26740","due_at":%q,"applicant":{"kind":"citizen","id":"001","name":"A"}}}`,
			old.Format("060102"), old.Format(time.RFC3339), old.Add(24*time.Hour).Format(time.RFC3339)),
		fmt.Sprintf(`{"specversion":"1.0","id":"other-1","source":"hcmc/one-stop","type":"vn.ioc.dossier.received","subject":"HS-OTHER-1","time":%q,"data":{"procedure_code":"TP-001","channel":"counter","unit":"26740","due_at":%q,"applicant":{"kind":"citizen","id":"002","name":"B"}}}`,
			now.Add(-time.Hour).Format(time.RFC3339), now.Add(24*time.Hour).Format(time.RFC3339)))
	openOf := func(view, id string) uint64 {
		var n uint64
		q := fmt.Sprintf("SELECT count() FROM %s WHERE resolved_at = toDateTime(0) AND %s", a.DB().Table(view), map[string]string{
			"dossiers": "withdrawn_at = toDateTime(0)", "tickets": "closed_at = toDateTime(0)"}[view])
		if id != "" {
			q += " AND " + map[string]string{"dossiers": "dossier_id", "tickets": "ticket_id"}[view] + " = '" + id + "'"
		}
		if err := a.DB().Conn.QueryRow(context.Background(), q).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	settle := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		if err := a.Settle(ctx); err != nil {
			t.Fatal(err)
		}
	}
	settle()
	leftD, leftT := openOf("dossiers", ""), openOf("tickets", "")
	if leftD < 10+2 || leftT < 10 {
		t.Fatalf("the run left %d dossiers and %d tickets open: too few for the test", leftD, leftT)
	}
	admin, _ := a.Tokens.Issue(auth.Claims{Role: auth.RoleAdmin}, "sim", time.Hour)
	d, tk, err := (&sim.LeftOpen{URL: a.URL(), Token: admin}).Close(context.Background(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("the run left %d dossiers and %d tickets open; ended %d and %d", leftD, leftT, d, tk)
	if uint64(d) != leftD-2 || uint64(tk) != leftT {
		t.Errorf("ended %d dossiers and %d tickets; %d and %d were open (2 dossiers not the run's)", d, tk, leftD, leftT)
	}
	settle()
	if d, tk := openOf("dossiers", ""), openOf("tickets", ""); d != 2 || tk != 0 {
		t.Errorf("%d dossiers and %d tickets still open, want 2 and 0", d, tk)
	}
	if openOf("dossiers", "HS-OTHER-1") != 1 || openOf("dossiers", "26740-"+old.Format("060102")+"-scen01-1") != 1 {
		t.Error("a dossier not the run's was ended")
	}
	// Again: nothing left to end.
	if d, tk, err := (&sim.LeftOpen{URL: a.URL(), Token: admin}).Close(context.Background(), time.Now()); err != nil || d != 0 || tk != 0 {
		t.Errorf("a second pass ended %d dossiers, %d tickets (%v)", d, tk, err)
	}
}
