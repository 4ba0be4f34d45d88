package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/apache/arrow/go/v15/arrow/ipc"

	"github.com/vn-ioc/ioc/internal/auth"
)

// benchSQLQuery reads the raw dossier events: strings, times, enums-as-
// strings and numbers, as an analyst's export would.
const benchSQLQuery = "SELECT source, id, type, subject, time, accepted_at, unit, procedure_code, channel, due_at, officer, components, amount FROM dossier_events"

// runBenchSQL measures the SQL API's export: N rows of dossier_events read
// through POST /api/v1/sql as Arrow (decoded by a real Arrow reader), JSON
// and CSV, against clickhouse-client reading the same query in Native and
// TSV as the ceiling. Each is run several times; medians are reported.
func runBenchSQL(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench sql", flag.ContinueOnError)
	fs.SetOutput(stderr)
	rows := fs.Int("rows", 10_000_000, "rows to export")
	runs := fs.Int("runs", 3, "runs of each format")
	only := fs.String("only", "", "run only the readers whose name contains this (e.g. Arrow)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the node and readers to this file")
	memProfile := fs.String("memprofile", "", "write a heap profile to this file each time the live heap reaches a new peak")
	if err := fs.Parse(args); err != nil {
		return err
	}
	a, err := startBenchNode(ctx, "sql", stderr, nil)
	if err != nil {
		return err
	}
	defer a.Close()
	tok, err := a.Tokens.Issue(auth.Claims{Role: auth.RoleAnalyst}, "bench", time.Hour)
	if err != nil {
		return err
	}
	// Synthetic dossier events, written by ClickHouse itself.
	fill := fmt.Sprintf(`INSERT INTO %s (source, id, type, subject, time, accepted_at, unit, procedure_code, channel, due_at, officer, components, amount)
SELECT 'bench/one-stop', concat('e-', toString(number)), ['received','assigned','resolved','returned'][number %% 4 + 1],
 concat('HS-', toString(intDiv(number, 4))), toDateTime(1700000000 + number * 3), toDateTime(1700000000 + number * 3 + 1),
 toString(26734 + number %% 168), concat('P', toString(number %% 51)), ['online','counter','postal'][number %% 3 + 1],
 toDateTime(1700000000 + number * 3 + 864000), concat('CB-', toString(number %% 1203)), toUInt32(number %% 7), (number %% 100000) / 100
FROM system.numbers LIMIT %d`, a.DB().Table("dossier_events"), *rows)
	if err := a.DB().Conn.Exec(ctx, fill); err != nil {
		return fmt.Errorf("fill: %w", err)
	}
	// Merge the parts of the fill now, so that background merges do not
	// compete with the measured reads.
	if err := a.DB().Conn.Exec(ctx, "OPTIMIZE TABLE "+a.DB().Table("dossier_events")+" FINAL"); err != nil {
		return fmt.Errorf("optimize: %w", err)
	}
	fmt.Fprintf(stdout, "machine: %d CPUs, %s; %d rows of dossier_events (13 columns)\n", runtime.NumCPU(), runtime.GOARCH, *rows)
	fmt.Fprintf(stdout, "query: %s\n\n", benchSQLQuery)

	post := func(format string, consume func(io.Reader) (int, error)) (time.Duration, int, error) {
		b, _ := json.Marshal(map[string]any{"sql": benchSQLQuery, "format": format, "max_rows": *rows, "timeout": 300})
		req, _ := http.NewRequestWithContext(ctx, "POST", a.URL()+"/api/v1/sql", bytes.NewReader(b))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+tok)
		start := time.Now()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, 0, err
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 {
			msg, _ := io.ReadAll(resp.Body)
			return 0, 0, fmt.Errorf("%s: %d %s", format, resp.StatusCode, msg)
		}
		n, err := consume(resp.Body)
		return time.Since(start), n, err
	}
	arrowReader := func(r io.Reader) (int, error) {
		rd, err := ipc.NewReader(r)
		if err != nil {
			return 0, err
		}
		defer rd.Release()
		n := 0
		for rd.Next() {
			n += int(rd.Record().NumRows())
		}
		return n, rd.Err()
	}
	lineReader := func(skip int) func(io.Reader) (int, error) {
		return func(r io.Reader) (int, error) {
			sc := bufio.NewScanner(r)
			sc.Buffer(make([]byte, 1<<20), 1<<20)
			n := -skip
			for sc.Scan() {
				n++
			}
			return n, sc.Err()
		}
	}
	host, chPort, _ := net.SplitHostPort(a.ch.Addr())
	client := func(format string) (time.Duration, error) {
		cmd := exec.CommandContext(ctx, "clickhouse-client", "--host", host, "--port", chPort, "--database", a.DB().Database(),
			"--query", benchSQLQuery+" FORMAT "+format)
		cmd.Stdout = io.Discard
		cmd.Stderr = stderr
		start := time.Now()
		err := cmd.Run()
		return time.Since(start), err
	}

	type result struct {
		name    string
		times   []time.Duration
		checkNs int
	}
	var results []result
	// The live heap of this process (the node and the reader) after each
	// garbage collection, sampled while each reader runs: flat memory means
	// the same peak whatever the number of rows.
	var peakHeap atomic.Uint64
	go func() {
		sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
		for ctx.Err() == nil {
			metrics.Read(sample)
			if v := sample[0].Value.Uint64(); v > peakHeap.Load() {
				peakHeap.Store(v)
				if *memProfile != "" {
					if f, err := os.Create(*memProfile); err == nil {
						_ = pprof.WriteHeapProfile(f)
						f.Close()
					}
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	measure := func(name string, f func() (time.Duration, int, error)) error {
		r := result{name: name}
		runtime.GC()
		peakHeap.Store(0)
		for i := 0; i < *runs; i++ {
			d, n, err := f()
			if err != nil {
				return err
			}
			if n >= 0 && n != *rows {
				return fmt.Errorf("%s read %d rows, want %d", name, n, *rows)
			}
			r.times = append(r.times, d)
		}
		slices.Sort(r.times)
		results = append(results, r)
		med := r.times[len(r.times)/2]
		runtime.GC()
		after := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
		metrics.Read(after)
		fmt.Fprintf(stdout, "%-28s median %7.2fs  %10.0f rows/s  live heap: peak %3d MiB, after %3d MiB  (runs: %v)\n",
			name, med.Seconds(), float64(*rows)/med.Seconds(), peakHeap.Load()>>20, after[0].Value.Uint64()>>20, r.times)
		return nil
	}
	steps := []struct {
		name string
		f    func() (time.Duration, int, error)
	}{
		{"clickhouse-client Native", func() (time.Duration, int, error) { d, err := client("Native"); return d, -1, err }},
		{"clickhouse-client TSV", func() (time.Duration, int, error) { d, err := client("TabSeparated"); return d, -1, err }},
		{"ioc Arrow (Go ipc reader)", func() (time.Duration, int, error) { return post("arrow", arrowReader) }},
		{"ioc JSON (line count)", func() (time.Duration, int, error) { return post("json", lineReader(2)) }},
		{"ioc NDJSON (line count)", func() (time.Duration, int, error) { return post("ndjson", lineReader(0)) }},
		{"ioc CSV (line count)", func() (time.Duration, int, error) { return post("csv", lineReader(1)) }},
	}
	stopProfile, err := startCPUProfile(*cpuProfile)
	if err != nil {
		return err
	}
	defer stopProfile()
	for _, s := range steps {
		if *only != "" && !strings.Contains(s.name, *only) && !strings.Contains(s.name, "Native") {
			continue
		}
		if err := measure(s.name, s.f); err != nil {
			return err
		}
	}
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	fmt.Fprintf(stdout, "\nratios to clickhouse-client Native: ")
	base := results[0].times[len(results[0].times)/2]
	for _, r := range results[1:] {
		fmt.Fprintf(stdout, "%s %.2f; ", r.name, base.Seconds()/r.times[len(r.times)/2].Seconds())
	}
	fmt.Fprintf(stdout, "\npeak RSS of this process (server + readers): %d MiB\n", ru.Maxrss>>10)
	return nil
}
