package kpi_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vn-ioc/ioc/ingest"
	"github.com/vn-ioc/ioc/internal/testenv"
	"github.com/vn-ioc/ioc/query/kpi"
)

// TestEngineContributions: commits that move dossiers between hours and
// units (a resolution corrected to another time, a dossier received again
// by another unit), resolve open ones and receive new ones are applied as
// changes of the dossiers' contributions; the values then equal their SQL.
// The same commit applied again writes no rollup row.
func TestEngineContributions(t *testing.T) {
	c := newCity(t, 13)
	ctx := context.Background()
	reg := prometheus.NewRegistry()
	eng := c.leader(t, kpi.Config{}, reg)
	c.computeAll(t, eng)
	notice := moveDossiers(t, c)
	written := func() float64 { return testenv.Metric(t, reg, "ioc_kpi_rollup_rows_written_total") }
	before := written()
	if err := eng.ApplyCommit(ctx, notice, c.at); err != nil {
		t.Fatal(err)
	}
	after := written()
	if after == before {
		t.Fatal("the commit wrote no rollup row")
	}
	if err := eng.ApplyCommit(ctx, notice, c.at); err != nil {
		t.Fatal(err)
	}
	if again := written(); again != after {
		t.Errorf("the same commit again wrote %v rollup rows", again-after)
	}
	r := rand.New(rand.NewPCG(8, 8))
	checkAgainstSQL(t, c, eng, r, func(k kpi.Key) bool {
		return k.KPI[:7] == "dossier" && (k.Unit == "79" || r.IntN(6) == 0) || r.IntN(80) == 0
	})
	// A node taking over (a new engine) finds the same values.
	other, _ := kpi.NewEngine(kpi.Config{}, c.cat, c.b, c.db, nil, nil, nil, nil, nil)
	if rebuilt, err := other.CatchUp(ctx, "dossier", c.at); err != nil || rebuilt {
		t.Fatalf("catch-up rebuilt=%v: %v", rebuilt, err)
	}
	checkAgainstSQL(t, c, other, r, func(k kpi.Key) bool {
		return k.KPI[:7] == "dossier" && r.IntN(6) == 0
	})
}

// moveDossiers stores the events of a commit that resolves 25 resolved
// dossiers again hours later, resolves 25 open ones, receives 25 again by
// other units and later, and receives 20 new ones; it returns its notice.
func moveDossiers(t *testing.T, c *city) ingest.CommitNotice {
	t.Helper()
	ctx := context.Background()
	pick := func(cond string) []string {
		ids := c.ids(t, "SELECT dossier_id FROM "+c.db.Table("dossiers")+" WHERE "+cond+" ORDER BY dossier_id LIMIT 25")
		if len(ids) < 10 {
			t.Fatalf("only %d dossiers where %s", len(ids), cond)
		}
		return ids
	}
	resolved := pick("resolved_at > toDateTime(0) AND resolved_at > now() - 86400 * 20")
	open := pick("resolved_at = toDateTime(0) AND withdrawn_at = toDateTime(0) AND received_at > toDateTime(0)")
	received := pick("received_at > toDateTime(0) AND received_at > now() - 86400 * 20")
	batch, _ := c.db.Conn.PrepareBatch(c.db.InsertContext(ctx), "INSERT INTO "+c.db.Table("dossier_events")+" (source, id, type, subject, time, accepted_at, unit, channel, due_at, e_result)")
	var subjects []string
	zero := time.Unix(0, 0)
	for i, id := range resolved { // resolved again, hours later
		at := c.at.Add(-time.Duration(i*3+1) * time.Hour)
		_ = batch.Append("move", id+"-res2", "resolved", id, at, at, "", "", zero, uint8(1-i%2))
		subjects = append(subjects, id)
	}
	for i, id := range open {
		at := c.at.Add(-time.Duration(i) * time.Minute)
		_ = batch.Append("move", id+"-res", "resolved", id, at, at, "", "", zero, uint8(i%2))
		subjects = append(subjects, id)
	}
	for i, id := range received { // received again, by another unit and later
		at := c.at.Add(-time.Duration(i*2+1) * time.Hour)
		_ = batch.Append("move", id+"-rec2", "received", id, at, at, c.units[(i*13+5)%len(c.units)], "counter", at.Add(72*time.Hour), uint8(0))
		subjects = append(subjects, id)
	}
	for i := 0; i < 20; i++ {
		id := fmt.Sprintf("fresh%d", i)
		at := c.at.Add(-time.Duration(i*7) * time.Minute)
		_ = batch.Append("move", id, "received", id, at, at, c.units[i*17%len(c.units)], "online", at.Add(48*time.Hour), uint8(0))
		subjects = append(subjects, id)
	}
	if err := batch.Send(); err != nil {
		t.Fatal(err)
	}
	return ingest.CommitNotice{Family: "dossier", Subjects: subjects, MinTime: c.at.Add(-3 * 25 * time.Hour), MaxTime: c.at}
}

// TestEngineContributionsRetry: a commit that fails after writing its
// rollup changes, before storing the contributions that account for them,
// is right once retried: the retry recomputes the hours of its dossiers
// from the view instead of adding the same changes again.
func TestEngineContributionsRetry(t *testing.T) {
	c := newCity(t, 17)
	ctx := context.Background()
	eng := c.leader(t, kpi.Config{}, prometheus.NewRegistry())
	c.computeAll(t, eng)
	w := kpi.NewWork(moveDossiers(t, c))
	failed := errors.New("connection lost")
	eng.SetBeforeContribWrite(func() error { return failed })
	if err := eng.ApplyWork(ctx, "dossier", w, c.at); !errors.Is(err, failed) {
		t.Fatalf("first attempt: %v, want it to fail before storing contributions", err)
	}
	eng.SetBeforeContribWrite(nil)
	if err := eng.ApplyWork(ctx, "dossier", w, c.at); err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(9, 9))
	checkAgainstSQL(t, c, eng, r, func(k kpi.Key) bool {
		return k.KPI[:7] == "dossier" && (k.Unit == "79" || r.IntN(6) == 0)
	})
}

// TestMemoryLoadDuringRollupWrite: the rollup sums the engine holds are
// loaded afresh (after an error, or by the first computation of a node
// taking over) while another family's commit writes its rollup rows. The
// load waits for the write: had it read the rows first, the write would
// then add them to the sums it loaded, and count them twice.
func TestMemoryLoadDuringRollupWrite(t *testing.T) {
	c := newCity(t, 29)
	ctx := context.Background()
	eng := c.leader(t, kpi.Config{}, prometheus.NewRegistry())
	c.computeAll(t, eng)
	var once sync.Once
	loaded := make(chan error, 1)
	eng.SetRollupSend(func(_ string, send func() error) error {
		if err := send(); err != nil {
			return err
		}
		once.Do(func() {
			// The surveys' computation loads the sums, while the
			// dossiers' rows are written and not yet counted.
			eng.DropMemory()
			done := make(chan struct{})
			go func() {
				_, err := eng.Compute(ctx, "survey", c.at)
				loaded <- err
				close(done)
			}()
			for !eng.MemoryLoadWaiting() {
				select {
				case <-done:
					return
				default:
					time.Sleep(time.Millisecond)
				}
			}
		})
		return nil
	})
	if err := eng.ApplyWork(ctx, "dossier", kpi.NewWork(moveDossiers(t, c)), c.at); err != nil {
		t.Fatal(err)
	}
	if err := <-loaded; err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(29, 1))
	checkAgainstSQL(t, c, eng, r, func(k kpi.Key) bool {
		return k.KPI[:7] == "dossier" && (k.Unit == "79" || r.IntN(6) == 0)
	})
}

// TestEventRollupsRetry: a commit of surveys whose daily rows were
// written but whose hourly ones failed, whether they were written (the
// answer lost) or not, is right once retried: the retry recomputes the
// days from their hours rather than adding the hours' changes to them (nil
// when the hours were written; counted a second time when they were not).
func TestEventRollupsRetry(t *testing.T) {
	for i, written := range []bool{true, false} {
		t.Run(map[bool]string{true: "hours written", false: "hours not written"}[written], func(t *testing.T) {
			c := newCity(t, 31+uint64(i))
			ctx := context.Background()
			eng := c.leader(t, kpi.Config{}, prometheus.NewRegistry())
			c.computeAll(t, eng)
			minT := c.at.Add(-2 * time.Hour)
			sb, err := c.db.Conn.PrepareBatch(c.db.InsertContext(ctx), "INSERT INTO "+c.db.Table("survey_events")+" (source, id, type, subject, time, accepted_at, unit, rating)")
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; i < 40; i++ {
				at := minT.Add(time.Duration(i*3) * time.Minute)
				_ = sb.Append("retry", fmt.Sprintf("rs%d", i), "submitted", fmt.Sprintf("rs%d", i), at, at, c.units[i*13%len(c.units)], []string{"satisfied", "unsatisfied"}[i%2])
			}
			if err := sb.Send(); err != nil {
				t.Fatal(err)
			}
			w := kpi.NewWork(ingest.CommitNotice{Family: "survey", MinTime: minT, MaxTime: c.at})
			lost := errors.New("connection lost")
			daily := make(chan struct{})
			eng.SetRollupSend(func(table string, send func() error) error {
				if table == "kpi_daily" {
					defer close(daily)
					return send()
				}
				select { // the hours and the days are written at once
				case <-daily:
				case <-time.After(30 * time.Second):
					t.Error("the daily rows were not written alongside the hourly ones")
				}
				if written {
					if err := send(); err != nil {
						return err
					}
				}
				return lost
			})
			if err := eng.ApplyWork(ctx, "survey", w, c.at); !errors.Is(err, lost) {
				t.Fatalf("first attempt: %v, want it to fail writing the hours", err)
			}
			eng.SetRollupSend(nil)
			if err := eng.ApplyWork(ctx, "survey", w, c.at); err != nil {
				t.Fatal(err)
			}
			r := rand.New(rand.NewPCG(31, 1))
			pick := func(k kpi.Key) bool { return k.KPI[:6] == "survey" && (k.Unit == "79" || r.IntN(6) == 0) }
			checkAgainstSQL(t, c, eng, r, pick)
			eng.DropMemory()
			checkAgainstSQL(t, c, eng, r, pick)
		})
	}
}
