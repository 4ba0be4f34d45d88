package alert_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vn-ioc/ioc/ingest"
	"github.com/vn-ioc/ioc/ingest/refdata"
	"github.com/vn-ioc/ioc/internal/testenv"
	"github.com/vn-ioc/ioc/internal/worktime"
	"github.com/vn-ioc/ioc/query"
	"github.com/vn-ioc/ioc/query/alert"
	"github.com/vn-ioc/ioc/query/kpi"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// A commit wakes an evaluation that may run before the KPI engine has
// written the commit's entities to kpi_open (the engine does it in its own
// round). The evaluation reads the commit's subjects as well, so a ticket
// the commit made overdue raises its alert then — here kpi_open never
// holds it, and the evaluator's interval is an hour: only the commit's
// evaluation can raise it. A ticket that no commit names stays unread
// until kpi_open holds it.
func TestCommitSubjectsAreEvaluatedBeforeKPIOpenHasThem(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	db, _ := testenv.ClickHouse(t)
	_, nc := testenv.NATS(t)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	cat, err := kpi.Load()
	if err != nil {
		t.Fatal(err)
	}
	set, err := refdata.HCMC()
	if err != nil {
		t.Fatal(err)
	}
	cal, err := worktime.New(set.Calendar, worktime.Config{})
	if err != nil {
		t.Fatal(err)
	}
	rules, err := alert.Parse([]byte("version: 1\nrules:\n  - id: tickets.overdue\n    kind: ticket_overdue\n    severity: warning\n    title: {en: Ticket overdue, vi: Phản ánh quá hạn}\n"), cat)
	if err != nil {
		t.Fatal(err)
	}
	kpis, err := kpi.OpenStore(ctx, js, kpi.StoreConfig{}, cat, cal.Location())
	if err != nil {
		t.Fatal(err)
	}
	store, err := alert.OpenStore(ctx, js, db, alert.StoreConfig{})
	if err != nil {
		t.Fatal(err)
	}
	// A generation of kpi_open for the feedback family that holds neither
	// ticket: the rule looks its candidates up there.
	gen := time.Now().UnixNano()
	if err := db.Conn.Exec(ctx, fmt.Sprintf("INSERT INTO %s.kpi_open (family, gen, id, unit, due_at, open, version) SELECT 'feedback', %d, '', '', toDateTime(0), 0, 1", db.Database(), gen)); err != nil {
		t.Fatal(err)
	}
	now := time.Now().Truncate(time.Second)
	for _, id := range []string{"T-NAMED", "T-UNNAMED"} {
		q := fmt.Sprintf("INSERT INTO %s.feedback_events (source, id, type, subject, time, accepted_at, unit, channel, category, due_at) SELECT 'test', %s, 'received', %s, toDateTime(%d), toDateTime(%d), '26740', 'zalo', 'traffic', toDateTime(%d)",
			db.Database(), query.Quote("r-"+id), query.Quote(id), now.Add(-3*24*time.Hour).Unix(), now.Unix(), now.Add(-time.Hour).Unix())
		if err := db.Conn.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	ev, err := alert.NewEvaluator(alert.Config{Interval: time.Hour, Debounce: 10 * time.Millisecond, LeaderTTL: time.Second}, rules, alert.Deps{
		DB: db, Store: store, NC: nc, JS: js, KPIs: kpis,
		UnitKind: func(string) (string, bool) { return "ward", true },
		Calendar: func() *worktime.Calendar { return cal },
	})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- ev.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("evaluator: %v", err)
		}
	}()
	open := func() map[string]bool {
		as, err := store.List(ctx, alert.Filter{})
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]bool{}
		for _, a := range as {
			m[a.Subject] = true
		}
		return m
	}
	b, _ := json.Marshal(ingest.CommitNotice{Family: ingest.FamilyFeedback, Subjects: []string{"T-NAMED"}})
	// Notices until the evaluator leads and has evaluated one (it may take
	// the lease after the first).
	testenv.Eventually(t, 60*time.Second, "the commit's ticket raised", func() (bool, error) {
		if err := nc.Publish(ingest.CommitSubjectPrefix+ingest.FamilyFeedback, b); err != nil {
			return false, err
		}
		time.Sleep(200 * time.Millisecond)
		return open()["T-NAMED"], nil
	})
	if got := open(); got["T-UNNAMED"] {
		t.Errorf("T-UNNAMED raised although neither kpi_open nor a commit names it: %v", got)
	}
}
