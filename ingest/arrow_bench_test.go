package ingest

import (
	"bytes"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/apache/arrow/go/v15/arrow"
)

// benchReceivedStream is n dossier.received rows in flat columns, in record
// batches of 50,000 rows, as a legacy export would write them.
func benchReceivedStream(b *testing.B, n int) []byte {
	channels := []string{"online", "counter", "postal", "kiosk"}
	units := []string{"P.BN", "P.TD", "Q1", "Q3", "TP.TD"}
	cols := []tcol{
		{"id", arrow.BinaryTypes.String, nil},
		{"source", arrow.BinaryTypes.String, nil},
		{"type", dictUTF8, nil},
		{"subject", arrow.BinaryTypes.String, nil},
		{"time", tsMsHCM, nil},
		{"procedure_code", arrow.BinaryTypes.String, nil},
		{"procedure_name", arrow.BinaryTypes.String, nil},
		{"field", arrow.BinaryTypes.String, nil},
		{"service_level", arrow.BinaryTypes.String, nil},
		{"channel", arrow.BinaryTypes.String, nil},
		{"unit", arrow.BinaryTypes.String, nil},
		{"due_at", tsSecUTC, nil},
		{"applicant_kind", arrow.BinaryTypes.String, nil},
		{"applicant_id", arrow.BinaryTypes.String, nil},
		{"applicant_name", arrow.BinaryTypes.String, nil},
		{"fee_paid_online", arrow.FixedWidthTypes.Boolean, nil},
	}
	start := time.Date(2019, 1, 1, 8, 0, 0, 0, time.UTC)
	for i := 0; i < n; i++ {
		at := start.Add(time.Duration(i) * 17 * time.Second)
		row := []any{
			fmt.Sprintf("dvc-%09d", i), "dvc-hcm", "received", fmt.Sprintf("HS-%09d", i), at,
			fmt.Sprintf("1.%06d", i%900), "Đăng ký khai sinh", "Hộ tịch", "full_online",
			channels[i%len(channels)], units[i%len(units)], at.Add(5 * 24 * time.Hour),
			"citizen", fmt.Sprintf("079%09d", i%300_000), "Nguyễn Văn An", i%3 == 0,
		}
		for c := range cols {
			cols[c].vals = append(cols[c].vals, row[c])
		}
	}
	batches := make([]int, 0, n/50_000+1)
	for left := n; left > 0; left -= 50_000 {
		batches = append(batches, min(left, 50_000))
	}
	return arrowStream(b, cols, batches...)
}

func BenchmarkDecodeArrow(b *testing.B) {
	const rows = 100_000
	v, _ := arrowTestValidator(b)
	body := benchReceivedStream(b, rows)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	cpu0 := cpuTime()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		accepted := 0
		err := DecodeArrow(bytes.NewReader(body), "dossier", v, "dvc-hcm", 0, func(recs []*Record, _ []int, rej []Rejection) error {
			if len(rej) > 0 {
				return fmt.Errorf("rejected: %+v", rej[0])
			}
			accepted += len(recs)
			return nil
		})
		if err != nil || accepted != rows {
			b.Fatalf("accepted %d: %v", accepted, err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(rows)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
	// Rows per second of CPU time (all threads, GC included): the number
	// that does not depend on what else runs on the machine.
	b.ReportMetric(float64(rows)*float64(b.N)/(cpuTime()-cpu0).Seconds(), "rows/cpu-s")
}

// cpuTime is the CPU time (user and system) of the process so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkPrepareDossierReceived is the JSON path on the same events, for
// comparison: Prepare of one CloudEvent per row.
func BenchmarkPrepareDossierReceived(b *testing.B) {
	const rows = 10_000
	v, _ := arrowTestValidator(b)
	raws := make([][]byte, rows)
	start := time.Date(2019, 1, 1, 8, 0, 0, 0, time.UTC)
	for i := range raws {
		at := start.Add(time.Duration(i) * 17 * time.Second)
		raws[i] = []byte(fmt.Sprintf(`{"specversion":"1.0","id":"dvc-%09d","source":"dvc-hcm","type":"vn.ioc.dossier.received",`+
			`"subject":"HS-%09d","time":%q,"data":{"procedure_code":"1.%06d","procedure_name":"Đăng ký khai sinh",`+
			`"field":"Hộ tịch","service_level":"full_online","channel":"online","unit":"P.BN","due_at":%q,`+
			`"applicant":{"kind":"citizen","id":"079%09d","name":"Nguyễn Văn An"},"fee_paid_online":true}}`,
			i, i, at.Format(time.RFC3339Nano), i%900, at.Add(120*time.Hour).Format(time.RFC3339), i))
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, raw := range raws {
			if _, err := v.Prepare(raw, "dvc-hcm"); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(rows)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
}
