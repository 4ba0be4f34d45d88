package kpi

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"testing"
	"time"
)

// The window sums kept up to date by the changes a commit writes equal the
// sums walked afresh from the rollups held, for every key, through random
// changes to hours, days and months in and out of the windows; a new hour
// walks again.
func TestWindowsKeptUpEqualAFreshWalk(t *testing.T) {
	cat, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	loc, _ := time.LoadLocation("Asia/Ho_Chi_Minh")
	e := &Engine{cat: cat, b: &Builder{Loc: loc}}
	var kpis []string
	for _, k := range cat.KPIs {
		if k.Family == "dossier" && !k.Instant() {
			kpis = append(kpis, k.ID)
		}
	}
	paths := map[string][]string{"79": {"79"}}
	units := []string{"79"}
	for d := range 3 {
		dist := fmt.Sprintf("7%d", d)
		paths[dist] = []string{"79", dist}
		for w := range 4 {
			ward := fmt.Sprintf("%s%d", dist, w)
			paths[ward] = []string{"79", dist, ward}
			units = append(units, ward)
		}
	}
	units = append(units, "unknown") // a unit without a path counts nowhere
	at := time.Date(2026, 3, 2, 10, 20, 0, 0, loc)
	rng := rand.New(rand.NewPCG(1, 2))
	changes := func(n int, hourly bool) map[rollupRow]sums {
		out := map[rollupRow]sums{}
		for range n {
			var tt time.Time
			if hourly {
				tt = at.Truncate(time.Hour).Add(-time.Duration(rng.IntN(60)) * time.Hour)
			} else {
				tt = localDay(at, loc).AddDate(0, 0, -rng.IntN(120))
			}
			r := rollupRow{kpis[rng.IntN(len(kpis))], tt, units[rng.IntN(len(units))]}
			bumpSums(out, r, sums{int64(rng.IntN(7) - 3), int64(rng.IntN(5) - 1)})
		}
		return out
	}
	newMem := func() *memory {
		return &memory{loc: loc, kpis: map[string]*kpiMemory{}, pruned: at.Truncate(time.Hour),
			hoursFrom: at.Truncate(time.Hour).Add(-memHours), daysFrom: localDay(at, loc).AddDate(0, 0, -memDays),
			monthsFrom: monthOf(localDay(at, loc)).AddDate(-1, 0, 0)}
	}
	kept, fresh := newMem(), newMem()
	var written []map[rollupRow]sums
	write := func(table string, d map[rollupRow]sums) {
		kept.add(table, d)
		written = append(written, d)
		fresh.add(table, d)
	}
	write("kpi_hourly", changes(300, true))
	write("kpi_daily", changes(300, false))
	gen := uint64(1) // of the paths
	compare := func(step string, at time.Time) {
		t.Helper()
		spans := e.spans(at)
		got, want := map[Key]Value{}, map[Key]Value{}
		kept.windows(e, "dossier", spans, paths, gen, got)
		fresh.forgetWalks()
		fresh.windows(e, "dossier", spans, paths, gen, want)
		if len(want) == 0 {
			t.Fatalf("%s: nothing computed", step)
		}
		if !maps.EqualFunc(got, want, func(a, b Value) bool { return a.sameAs(b) && a.From.Equal(b.From) && a.To.Equal(b.To) }) {
			n := 0
			for k, w := range want {
				if g, ok := got[k]; !ok || !g.sameAs(w) {
					if n++; n <= 5 {
						t.Errorf("%s: %v = %d/%d kept up, %d/%d walked (present: %v)", step, k, g.Numerator, g.Denominator, w.Numerator, w.Denominator, ok)
					}
				}
			}
			t.Fatalf("%s: %d keys kept up, %d walked, %d differ", step, len(got), len(want), n)
		}
	}
	compare("first walk", at)
	for i := range 20 {
		write("kpi_hourly", changes(40, true))
		write("kpi_daily", changes(40, false))
		compare(fmt.Sprintf("after commit %d", i+1), at.Add(time.Duration(i)*time.Second))
	}
	if kept.walked["dossier"] == nil {
		t.Fatal("no window sums kept")
	}
	// Within the hour the sums are not walked again (a walk would hide a
	// change add failed to apply): one taken from the sums kept shows.
	w := kept.walked["dossier"]
	before := map[Key]Value{}
	kept.windows(e, "dossier", e.spans(at), paths, 1, before)
	for a, s := range w.kpis[kpis[0]] {
		w.kpis[kpis[0]][a] = sums{s.n + 1000, s.d}
		break
	}
	after := map[Key]Value{}
	kept.windows(e, "dossier", e.spans(at), paths, 1, after)
	if maps.EqualFunc(before, after, Value.sameAs) {
		t.Fatal("the window sums were walked again within the hour")
	}
	// Other paths (reference data replaced) or a new hour: walked again.
	gen = 2
	compare("new paths", at)
	next := at.Add(time.Hour)
	kept.prune(next)
	fresh.prune(next)
	compare("next hour", next)
	write("kpi_hourly", changes(40, true))
	compare("next hour, after a commit", next)
}
