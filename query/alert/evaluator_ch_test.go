package alert_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vn-ioc/ioc/ingest"
	"github.com/vn-ioc/ioc/ingest/refdata"
	"github.com/vn-ioc/ioc/internal/testenv"
	"github.com/vn-ioc/ioc/internal/worktime"
	"github.com/vn-ioc/ioc/query"
	"github.com/vn-ioc/ioc/query/alert"
	"github.com/vn-ioc/ioc/query/kpi"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// ticketEnv: a real ClickHouse and NATS, the overdue-ticket rule alone,
// the KPI store and the alert store.
type ticketEnv struct {
	db    *query.DB
	nc    *nats.Conn
	js    jetstream.JetStream
	cal   *worktime.Calendar
	rules *alert.Rules
	kpis  *kpi.Store
	store *alert.Store
}

const ticketRule = "version: 1\nrules:\n  - id: tickets.overdue\n    kind: ticket_overdue\n    severity: warning\n    title: {en: Ticket overdue, vi: Phản ánh quá hạn}\n"

func newTicketEnv(ctx context.Context, t *testing.T) *ticketEnv {
	return newRuleEnv(ctx, t, ticketRule)
}

// newRuleEnv is a ticketEnv with other rules.
func newRuleEnv(ctx context.Context, t *testing.T, rulesYAML string) *ticketEnv {
	t.Helper()
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
	rules, err := alert.Parse([]byte(rulesYAML), cat)
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
	return &ticketEnv{db: db, nc: nc, js: js, cal: cal, rules: rules, kpis: kpis, store: store}
}

// evaluator starts an evaluator of the environment's rule; it stops, and
// must have ended without error, when stop is called or the test ends.
func (env *ticketEnv) evaluator(ctx context.Context, t *testing.T, cfg alert.Config, reg prometheus.Registerer) (stop func()) {
	t.Helper()
	ev, err := alert.NewEvaluator(cfg, env.rules, alert.Deps{
		DB: env.db, Store: env.store, NC: env.nc, JS: env.js, KPIs: env.kpis,
		UnitKind: func(string) (string, bool) { return "ward", true },
		Calendar: func() *worktime.Calendar { return env.cal },
		Reg:      reg,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- ev.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("evaluator: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// metric sums the values of a gauge, or the samples of a histogram.
func metric(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			switch {
			case m.Gauge != nil:
				sum += m.Gauge.GetValue()
			case m.Histogram != nil:
				sum += float64(m.Histogram.GetSampleCount())
			}
		}
	}
	return sum
}

// overdueTicket stores a ticket of ward 26740 received 3 days before now
// and due an hour before it, still open.
func (env *ticketEnv) overdueTicket(ctx context.Context, t *testing.T, id string, now time.Time) {
	t.Helper()
	q := fmt.Sprintf("INSERT INTO %s.feedback_events (source, id, type, subject, time, accepted_at, unit, channel, category, due_at) SELECT 'test', %s, 'received', %s, toDateTime(%d), toDateTime(%d), '26740', 'zalo', 'traffic', toDateTime(%d)",
		env.db.Database(), query.Quote("r-"+id), query.Quote(id), now.Add(-3*24*time.Hour).Unix(), now.Unix(), now.Add(-time.Hour).Unix())
	if err := env.db.Conn.Exec(env.db.InsertContext(ctx), q); err != nil {
		t.Fatal(err)
	}
}

// notify publishes a commit notice of the feedback family naming a ticket.
func (env *ticketEnv) notify(t *testing.T, id string) {
	t.Helper()
	b, _ := json.Marshal(ingest.CommitNotice{Family: ingest.FamilyFeedback, Subjects: []string{id}})
	if err := env.nc.Publish(ingest.CommitSubjectPrefix+ingest.FamilyFeedback, b); err != nil {
		t.Fatal(err)
	}
}

// open: the subjects of the open alerts.
func (env *ticketEnv) open(ctx context.Context, t *testing.T) map[string]bool {
	t.Helper()
	as, err := env.store.List(ctx, alert.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]bool{}
	for _, a := range as {
		m[a.Subject] = true
	}
	return m
}

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
	env := newTicketEnv(ctx, t)
	db, nc := env.db, env.nc
	// A generation of kpi_open for the feedback family that holds neither
	// ticket: the rule looks its candidates up there.
	gen := time.Now().UnixNano()
	if err := db.Conn.Exec(db.InsertContext(ctx), fmt.Sprintf("INSERT INTO %s.kpi_open (family, gen, id, unit, due_at, open, version) SELECT 'feedback', %d, '', '', toDateTime(0), 0, 1", db.Database(), gen)); err != nil {
		t.Fatal(err)
	}
	now := time.Now().Truncate(time.Second)
	for _, id := range []string{"T-NAMED", "T-UNNAMED"} {
		env.overdueTicket(ctx, t, id, now)
	}
	env.evaluator(ctx, t, alert.Config{Interval: time.Hour, Debounce: 10 * time.Millisecond, LeaderTTL: time.Second}, nil)
	open := func() map[string]bool { return env.open(ctx, t) }
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

// TestHoldSuspendsTheRules: while a hold is in force the evaluator judges
// no rule (its interval passes, commits wake it, an overdue ticket stays
// unraised); when the hold expires, or is lifted, every rule is judged at
// once.
func TestHoldSuspendsTheRules(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	env := newTicketEnv(ctx, t)
	db, store := env.db, env.store
	now := time.Now().Truncate(time.Second)
	// overdue stores an overdue open ticket and a generation of kpi_open
	// that holds it and those before, where the rule finds its candidates.
	var overdue []string
	addOverdue := func(id string) {
		t.Helper()
		overdue = append(overdue, id)
		env.overdueTicket(ctx, t, id, now)
		ids := make([]string, len(overdue))
		for i, o := range overdue {
			ids[i] = query.Quote(o)
		}
		q := fmt.Sprintf("INSERT INTO %s.kpi_open (family, gen, id, unit, due_at, open, version) SELECT 'feedback', %d, arrayJoin(['', %s]) AS i, if(i = '', '', '26740'), toDateTime(%d), toUInt8(i != ''), 1",
			db.Database(), time.Now().UnixNano(), strings.Join(ids, ", "), now.Add(-time.Hour).Unix())
		if err := db.Conn.Exec(db.InsertContext(ctx), q); err != nil {
			t.Fatal(err)
		}
	}
	raised := func() map[string]bool { return env.open(ctx, t) }
	notify := func(id string) { env.notify(t, id) }
	hold := func(d time.Duration) {
		t.Helper()
		if _, err := store.SetHold(ctx, alert.Hold{Reason: "a backfill", By: "test", Until: time.Now().Add(d)}); err != nil {
			t.Fatal(err)
		}
	}

	// Under a hold, commits and intervals pass and no rule is judged;
	// then the hold is replaced by one that ends by itself.
	addOverdue("T-1")
	hold(time.Hour)
	reg := prometheus.NewRegistry()
	stop := env.evaluator(ctx, t, alert.Config{Interval: time.Second, Debounce: 10 * time.Millisecond, LeaderTTL: time.Second}, reg)
	testenv.Eventually(t, 30*time.Second, "the evaluator leading under the hold", func() (bool, error) {
		return metric(t, reg, "ioc_alert_leader") == 1 && metric(t, reg, "ioc_alert_rules_held") == 1, nil
	})
	for range 3 {
		notify("T-1")
		time.Sleep(time.Second)
	}
	if n, up := metric(t, reg, "ioc_alert_eval_seconds"), raised()["T-1"]; n != 0 || up {
		t.Fatalf("under the hold: %v rules evaluated, T-1 raised %v", n, up)
	}
	hold(3 * time.Second)
	testenv.Eventually(t, 30*time.Second, "T-1 raised once the hold expired", func() (bool, error) {
		return raised()["T-1"] && metric(t, reg, "ioc_alert_rules_held") == 0, nil
	})
	stop()

	// An evaluator whose interval never comes: once the hold is lifted,
	// only its judging every rule at once can raise T-2.
	hold(time.Hour)
	addOverdue("T-2")
	reg = prometheus.NewRegistry()
	env.evaluator(ctx, t, alert.Config{Interval: time.Hour, Debounce: 10 * time.Millisecond, LeaderTTL: time.Second}, reg)
	testenv.Eventually(t, 30*time.Second, "the second evaluator leading under the hold", func() (bool, error) {
		return metric(t, reg, "ioc_alert_leader") == 1 && metric(t, reg, "ioc_alert_rules_held") == 1, nil
	})
	notify("T-2")
	time.Sleep(1500 * time.Millisecond)
	if n, up := metric(t, reg, "ioc_alert_eval_seconds"), raised()["T-2"]; n != 0 || up {
		t.Fatalf("under the hold: %v rules evaluated, T-2 raised %v", n, up)
	}
	if err := store.LiftHold(ctx); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, "T-2 raised once the hold was lifted", func() (bool, error) {
		return raised()["T-2"], nil
	})
	if h, err := store.Hold(ctx); err != nil || h != nil {
		t.Errorf("after LiftHold: %v, %v", h, err)
	}
}

// TestHoldSuspendsThresholdRules: a KPI value published under a hold is
// not judged; once the hold is lifted the latest values are read and
// judged at once.
func TestHoldSuspendsThresholdRules(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	env := newRuleEnv(ctx, t, `version: 1
rules:
  - id: sat.low
    kind: threshold
    severity: warning
    title: {en: Satisfaction low, vi: Hài lòng thấp}
    kpi: survey.satisfied_rate
    window: today
    below: 50
    clear: 60
    unit_kinds: [ward]
`)
	// A hold of the surveys: the family of the rule's KPI.
	if _, err := env.store.SetHold(ctx, alert.Hold{Reason: "a replay", By: "test", Families: []string{"survey"}, Until: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	env.evaluator(ctx, t, alert.Config{Interval: time.Hour, LeaderTTL: time.Second}, reg)
	testenv.Eventually(t, 30*time.Second, "the evaluator leading under the hold", func() (bool, error) {
		return metric(t, reg, "ioc_alert_leader") == 1 && metric(t, reg, "ioc_alert_rules_held") == 1, nil
	})
	kv, err := env.js.KeyValue(ctx, "ioc_kpi")
	if err != nil {
		t.Fatal(err)
	}
	low := 0.25
	v := kpi.Value{Key: kpi.Key{KPI: "survey.satisfied_rate", Unit: "26740", Window: "today"}, Numerator: 1, Denominator: 4, Value: &low,
		At: time.Now(), Version: 1, Seq: 1}
	b, _ := json.Marshal(v)
	if _, err := kv.Put(ctx, "survey.satisfied_rate.26740.today", b); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond)
	if env.open(ctx, t)["26740"] {
		t.Fatal("a value under the hold was judged")
	}
	if err := env.store.LiftHold(ctx); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, "sat.low raised once the hold was lifted", func() (bool, error) {
		return env.open(ctx, t)["26740"], nil
	})
}

// TestHoldOfOneFamily: a hold of some families leaves the rules of the
// others judged as ever; a hold of the rule's family holds it.
func TestHoldOfOneFamily(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	env := newTicketEnv(ctx, t)
	hold := func(fams ...string) {
		t.Helper()
		if _, err := env.store.SetHold(ctx, alert.Hold{Reason: "a backfill", By: "test", Families: fams, Until: time.Now().Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now().Truncate(time.Second)
	// overdue stores an overdue ticket and tells the evaluator its
	// family committed it; the commit's evaluation alone can raise it
	// (the interval is an hour, kpi_open never holds it).
	overdue := func(id string) {
		t.Helper()
		env.overdueTicket(ctx, t, id, now)
		env.notify(t, id)
	}
	hold("dossier", "camera")
	reg := prometheus.NewRegistry()
	env.evaluator(ctx, t, alert.Config{Interval: time.Hour, Debounce: 10 * time.Millisecond, LeaderTTL: time.Second}, reg)
	testenv.Eventually(t, 30*time.Second, "the evaluator leading under the hold", func() (bool, error) {
		return metric(t, reg, "ioc_alert_leader") == 1 && metric(t, reg, "ioc_alert_rules_held") == 1, nil
	})
	overdue("T-A")
	testenv.Eventually(t, 30*time.Second, "T-A raised under a hold of other families", func() (bool, error) {
		return env.open(ctx, t)["T-A"], nil
	})
	hold("feedback")
	time.Sleep(500 * time.Millisecond) // the new hold reaches the evaluator
	overdue("T-B")
	time.Sleep(1500 * time.Millisecond)
	if env.open(ctx, t)["T-B"] {
		t.Fatal("T-B raised under a hold of its family")
	}
	if err := env.store.LiftHold(ctx); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, "T-B raised once the hold was lifted", func() (bool, error) {
		return env.open(ctx, t)["T-B"], nil
	})
}

func TestHoldValidate(t *testing.T) {
	now := time.Now()
	for _, c := range []struct {
		h    alert.Hold
		want string // in the error; "" valid
	}{
		{alert.Hold{Reason: "backfill", Until: now.Add(time.Hour)}, ""},
		{alert.Hold{Reason: " ", Until: now.Add(time.Hour)}, "reason"},
		{alert.Hold{Reason: "backfill", Until: now.Add(-time.Second)}, "until"},
		{alert.Hold{Reason: "backfill", Until: now.Add(alert.MaxHold + time.Minute)}, "until"},
		{alert.Hold{Reason: strings.Repeat("x", 501), Until: now.Add(time.Hour)}, "reason"},
		{alert.Hold{Reason: "backfill", Families: []string{"feedback"}, Until: now.Add(time.Hour)}, ""},
		{alert.Hold{Reason: "backfill", Families: []string{"tickets"}, Until: now.Add(time.Hour)}, "families"},
		{alert.Hold{Reason: "backfill", Families: []string{"camera", "camera"}, Until: now.Add(time.Hour)}, "families"},
	} {
		err := c.h.Validate(now)
		if (err == nil) != (c.want == "") || (err != nil && !strings.HasPrefix(err.Error(), c.want)) {
			t.Errorf("%+v: %v, want %q", c.h, err, c.want)
		}
	}
	var none *alert.Hold
	if none.InForce(now) || !(&alert.Hold{Until: now.Add(time.Second)}).InForce(now) || (&alert.Hold{Until: now}).InForce(now) {
		t.Error("InForce")
	}
	some := &alert.Hold{Families: []string{"feedback"}, Until: now.Add(time.Second)}
	if !some.HoldsFamily("feedback", now) || some.HoldsFamily("dossier", now) || some.HoldsFamily("feedback", now.Add(time.Second)) ||
		!(&alert.Hold{Until: now.Add(time.Second)}).HoldsFamily("camera", now) || none.HoldsFamily("camera", now) {
		t.Error("HoldsFamily")
	}
}

// TestTakeoverRestoresTheLiveSet: an acknowledged alert in ClickHouse whose
// write to the live set was lost (NATS failed between the two, and
// leadership moved) is put back by the next leader as it stands, not
// raised again (which dropped its acknowledgement).
func TestTakeoverRestoresTheLiveSet(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	env := newTicketEnv(ctx, t)
	now := time.Now().Truncate(time.Second)
	env.overdueTicket(ctx, t, "T-L", now)
	cfg := alert.Config{Interval: time.Second, Debounce: 10 * time.Millisecond, LeaderTTL: time.Second}
	stop := env.evaluator(ctx, t, cfg, prometheus.NewRegistry())
	env.notify(t, "T-L")
	testenv.Eventually(t, 30*time.Second, "T-L raised", func() (bool, error) { return env.open(ctx, t)["T-L"], nil })
	raised, err := env.store.List(ctx, alert.Filter{})
	if err != nil || len(raised) != 1 {
		t.Fatalf("open alerts %v, %v", raised, err)
	}
	if _, err := alert.Ack(ctx, env.nc, raised[0].ID, "chair (leader of unit 26740)", "on it"); err != nil {
		t.Fatal(err)
	}
	stop()
	kv, err := env.js.KeyValue(ctx, "ioc_alerts")
	if err != nil {
		t.Fatal(err)
	}
	live, err := env.store.Open(ctx)
	if err != nil || len(live) != 1 {
		t.Fatalf("live set %v, %v", live, err)
	}
	var id string
	for id = range live {
	}
	if err := kv.Delete(ctx, id); err != nil { // the lost write
		t.Fatal(err)
	}

	env.evaluator(ctx, t, cfg, prometheus.NewRegistry())
	testenv.Eventually(t, 30*time.Second, "the alert back in the live set", func() (bool, error) {
		live, err := env.store.Open(ctx)
		return live[id] != nil, err
	})
	time.Sleep(2500 * time.Millisecond) // intervals pass: nothing more is raised
	as, err := env.store.List(ctx, alert.Filter{State: "all"})
	if err != nil {
		t.Fatal(err)
	}
	if len(as) != 1 || as[0].ID != id || as[0].State != alert.StateAcknowledged || as[0].AckNote != "on it" {
		t.Fatalf("alerts in ClickHouse: %+v, want %s alone, still acknowledged", as, id)
	}
	if live, err := env.store.Open(ctx); err != nil || live[id] == nil || live[id].State != alert.StateAcknowledged {
		t.Fatalf("live set %v, %v: want %s acknowledged", live, err, id)
	}
}

// A camera that keeps sending its status while offline is offline since
// its last status saying online, not since its latest status: sending
// "offline" every minute for half an hour raises the 5-minute rule (it
// never could), and a camera back online within the minutes does not.
func TestCameraOfflineSinceItsLastOnlineStatus(t *testing.T) {
	ctx := context.Background()
	env := newRuleEnv(ctx, t, "version: 1\nrules:\n  - id: camera.offline\n    kind: camera_offline\n    severity: info\n    title: {en: Camera offline, vi: Camera ngoại tuyến}\n    minutes: 5\n")
	now := time.Now().Truncate(time.Second)
	db := env.db.Database()
	exec := func(q string) {
		t.Helper()
		if err := env.db.Conn.Exec(env.db.InsertContext(ctx), q); err != nil {
			t.Fatalf("%v\n%s", err, q)
		}
	}
	for _, c := range []string{"CAM-DOWN", "CAM-BLIP"} {
		exec(fmt.Sprintf("INSERT INTO %s.ref_cameras (id, code, name, lat, lon, unit, type, ptz, version, deleted) SELECT %s, '', 'test', 10.7, 106.7, '26740', 'tth', 0, 1, 0", db, query.Quote(c)))
	}
	status := func(camera string, at time.Time, online int) string {
		return fmt.Sprintf("SELECT 'test', %s, 'status', %s, toDateTime(%d), toDateTime(%d), %d",
			query.Quote(fmt.Sprintf("%s-%d", camera, at.Unix())), query.Quote(camera), at.Unix(), at.Unix(), online)
	}
	var rows []string
	rows = append(rows, status("CAM-DOWN", now.Add(-40*time.Minute), 1))
	for m := 30; m >= 1; m-- { // offline, said every minute
		rows = append(rows, status("CAM-DOWN", now.Add(-time.Duration(m)*time.Minute), 0))
	}
	rows = append(rows, status("CAM-BLIP", now.Add(-3*time.Minute), 1), status("CAM-BLIP", now.Add(-time.Minute), 0))
	exec(fmt.Sprintf("INSERT INTO %s.camera_events (source, id, type, subject, time, accepted_at, online) %s", db, strings.Join(rows, " UNION ALL ")))
	q := env.rules.Rules[0].QueryFor(db, now, now, nil)
	r, err := env.db.Conn.Query(ctx, q)
	if err != nil {
		t.Fatalf("%v\n%s", err, q)
	}
	defer r.Close()
	got := map[string]time.Time{}
	for r.Next() {
		var id, unit, name string
		var since time.Time
		var n int64
		if err := r.Scan(&id, &unit, &since, &n, &name); err != nil {
			t.Fatal(err)
		}
		got[id] = since
	}
	if len(got) != 1 || !got["CAM-DOWN"].Equal(now.Add(-40*time.Minute)) {
		t.Fatalf("offline cameras: %v, want CAM-DOWN since %v", got, now.Add(-40*time.Minute))
	}
}
