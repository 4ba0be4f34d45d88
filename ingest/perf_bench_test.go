package ingest

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/vn-ioc/ioc/ingest/refdata"
	"github.com/vn-ioc/ioc/internal/sim"
	"github.com/vn-ioc/ioc/internal/testenv"
	"github.com/vn-ioc/ioc/internal/worktime"
)

// The benchmarks below measure the per-event CPU cost of each stage of the
// intake → ClickHouse path on the simulated city's mixed events (the same
// mix `ioc bench` sends): splitting a batch body, Prepare, and the writer's
// decoding of stream messages into insertable columns.

var (
	simOnce   sync.Once
	simEvents []json.RawMessage
	simRefs   *refdata.Index
	simErr    error
)

func benchSimEvents(b testing.TB) ([]json.RawMessage, *refdata.Index) {
	b.Helper()
	simOnce.Do(func() {
		set, err := refdata.HCMC()
		if err != nil {
			simErr = err
			return
		}
		cal, err := worktime.New(set.Calendar, worktime.Config{})
		if err != nil {
			simErr = err
			return
		}
		g, err := sim.NewGenerator(sim.Config{Seed: 7, Start: time.Now().Add(-12 * time.Hour).Truncate(time.Second),
			DossiersPerDay: 500_000, FeedbackPerDay: 100_000, NoIndicators: true}, set, cal)
		if err != nil {
			simErr = err
			return
		}
		simEvents = g.Batch(20_000)
		simRefs = refdata.NewIndex(set)
	})
	if simErr != nil {
		b.Fatal(simErr)
	}
	return simEvents, simRefs
}

func benchValidator(b testing.TB) *Validator {
	_, refs := benchSimEvents(b)
	c, err := LoadContract()
	if err != nil {
		b.Fatal(err)
	}
	p, err := NewPseudonymizer([]byte("0123456789abcdef"))
	if err != nil {
		b.Fatal(err)
	}
	return NewValidator(c, refs, p)
}

func BenchmarkSplitBody(b *testing.B) {
	evs, _ := benchSimEvents(b)
	body, err := json.Marshal(evs[:1000])
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	b.ResetTimer()
	defer cpuPerOp(b)()
	for i := 0; i < b.N; i++ {
		raws, err := SplitBody(ContentBatch, body, 10_000)
		if err != nil || len(raws) != 1000 {
			b.Fatalf("%d events: %v", len(raws), err)
		}
	}
}

// BenchmarkPrepare is Prepare of one event of the mix (ns/op per event).
func BenchmarkPrepare(b *testing.B) {
	evs, _ := benchSimEvents(b)
	v := benchValidator(b)
	size := 0
	for _, e := range evs {
		size += len(e)
	}
	b.SetBytes(int64(size / len(evs)))
	b.ReportAllocs()
	b.ResetTimer()
	defer cpuPerOp(b)()
	for i := 0; i < b.N; i++ {
		if _, err := v.Prepare(evs[i%len(evs)], ""); err != nil {
			b.Fatal(err)
		}
	}
}

// cpuPerOp reports the process CPU time per operation (GC included), the
// number that depends least on what else runs on the machine. Call it
// with defer right after b.ResetTimer.
func cpuPerOp(b *testing.B) func() {
	cpu0 := cpuTime()
	return func() {
		b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
	}
}

// benchLines are stream message bodies (Record JSON) of one family.
func benchLines(b testing.TB, family string) [][]byte {
	evs, _ := benchSimEvents(b)
	v := benchValidator(b)
	var lines [][]byte
	for _, e := range evs {
		rec, err := v.Prepare(e, "")
		if err != nil {
			b.Fatal(err)
		}
		if rec.Family == family {
			lines = append(lines, rec.AppendJSON(nil))
		}
	}
	if len(lines) == 0 {
		b.Skip("no event of family " + family)
	}
	return lines
}

// BenchmarkRows decodes stream messages into insertable rows (ns/op per
// event), per family.
func BenchmarkRows(b *testing.B) {
	for _, fam := range []string{FamilyCamera, FamilyDossier, FamilyFeedback} {
		b.Run(fam, func(b *testing.B) {
			lines := benchLines(b, fam)
			t := tables[fam]
			size := 0
			for _, l := range lines {
				size += len(l)
			}
			b.SetBytes(int64(size / len(lines)))
			b.ReportAllocs()
			b.ResetTimer()
			defer cpuPerOp(b)()
			benchDecodeRows(b, t, lines)
		})
	}
}

func benchDecodeRows(b *testing.B, t *table, lines [][]byte) {
	for i := 0; i < b.N; i++ {
		rec, data, err := decodeRecord(lines[i%len(lines)])
		if err != nil {
			b.Fatal(err)
		}
		if _, _, err := t.decode(rec, data); err != nil {
			b.Fatal(err)
		}
	}
}

// benchPending decodes lines as the writer does.
func benchPending(b *testing.B, t *table, lines [][]byte) []pending {
	ps := make([]pending, len(lines))
	for i, l := range lines {
		rec, data, err := decodeRecord(l)
		if err != nil {
			b.Fatal(err)
		}
		row, unit, err := t.decode(rec, data)
		if err != nil {
			b.Fatal(err)
		}
		ps[i] = pending{rec: rec, row: row, unit: unit}
	}
	return ps
}

// BenchmarkInsert inserts 10,000 camera events into a real ClickHouse
// (ns/op and cpu-ns/op per event; cpu-ns/op counts this process only).
func BenchmarkInsert(b *testing.B) {
	db, _ := testenv.ClickHouse(b)
	lines := benchLines(b, FamilyCamera)
	for len(lines) < 10_000 {
		lines = append(lines, lines...)
	}
	lines = lines[:10_000]
	t := tables[FamilyCamera]
	w := &Writer{db: db}
	ps := benchPending(b, t, lines)
	b.ReportAllocs()
	b.ResetTimer()
	defer cpuPerOp(b)()
	for n := 0; n < b.N; n += len(ps) {
		if err := w.insert(context.Background(), t, ps); err != nil {
			b.Fatal(err)
		}
	}
}
