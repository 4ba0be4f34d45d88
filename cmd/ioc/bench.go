package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/vn-ioc/ioc/ingest"
	"github.com/vn-ioc/ioc/ingest/refdata"
	"github.com/vn-ioc/ioc/internal/app"
	"github.com/vn-ioc/ioc/internal/auth"
	"github.com/vn-ioc/ioc/internal/chlocal"
	"github.com/vn-ioc/ioc/internal/sim"
	"github.com/vn-ioc/ioc/internal/worktime"
)

// startCPUProfile writes a CPU profile of this process to path until the
// returned stop is called; nothing when path is empty.
func startCPUProfile(path string) (stop func(), err error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

// runBench is the benchmark driver. It starts everything on this machine —
// a private ClickHouse, a node with embedded NATS — feeds it as fast as
// asked over HTTP and NATS with the simulated city's mixed events, and
// reports rates, acceptance → visible latency and, as the floor,
// clickhouse-client inserting the same rows natively.
func runBench(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	duration := fs.Duration("duration", time.Minute, "how long to send")
	rate := fs.Float64("rate", 0, "target events/s (0: as fast as possible)")
	clients := fs.Int("clients", 8, "concurrent senders")
	batch := fs.Int("batch", 1000, "events per request")
	natsShare := fs.Float64("nats-share", 0.5, "share of requests sent over NATS (the rest over HTTP)")
	pool := fs.Int("pool", 200_000, "distinct events generated up front (re-sent with fresh ids)")
	dataDir := fs.String("data-dir", "", "folder for ClickHouse and NATS data (default: a temporary one, removed after)")
	floor := fs.Bool("floor", true, "measure clickhouse-client inserting the same rows")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the node and senders to this file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	dir := *dataDir
	if dir == "" {
		d, err := os.MkdirTemp("", "ioc-bench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	ch, err := chlocal.Start(ctx, chlocal.Options{Dir: filepath.Join(dir, "clickhouse")})
	if err != nil {
		return err
	}
	defer ch.Stop()
	port, _ := chlocal.FreePort()
	cfg := app.Config{HTTPAddr: fmt.Sprintf("127.0.0.1:%d", port), DataDir: dir, NATSPort: -1, Log: log}
	cfg.ClickHouse.Addr = ch.Addr()
	cfg.ClickHouse.HTTPAddr = ch.HTTPAddr()
	a, err := app.New(ctx, cfg)
	if err != nil {
		return err
	}
	defer a.Close()
	lat := &latencies{}
	a.Writer().OnCommit = lat.add
	runCtx, stopNode := context.WithCancel(ctx)
	nodeDone := make(chan error, 1)
	go func() { nodeDone <- a.Run(runCtx) }()
	defer func() { stopNode(); <-nodeDone }()

	tok, err := a.Tokens.Issue(auth.Claims{Role: auth.RoleAdmin}, "bench", time.Hour)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "machine: %d CPUs, %s; ClickHouse %s; generating %d events …\n", runtime.NumCPU(), runtime.GOARCH, ch.Addr(), *pool)
	bodies, span, mix, err := benchPool(*pool, *batch)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "mix: %s\n", mix)
	nc, err := nats.Connect(a.NATSURL())
	if err != nil {
		return err
	}
	defer nc.Close()

	stopProfile, err := startCPUProfile(*cpuProfile)
	if err != nil {
		return err
	}
	defer stopProfile()
	var sent, accepted, failed atomic.Int64
	start := time.Now()
	deadline := start.Add(*duration)
	var next atomic.Int64
	var wg sync.WaitGroup
	interval := time.Duration(0)
	if *rate > 0 {
		interval = time.Duration(float64(time.Second) * float64(*batch) / *rate)
	}
	var tick <-chan time.Time
	if interval > 0 {
		t := time.NewTicker(interval)
		defer t.Stop()
		tick = t.C
	}
	client := &http.Client{Timeout: 60 * time.Second}
	for c := 0; c < *clients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) && ctx.Err() == nil {
				if tick != nil {
					select {
					case <-tick:
					case <-ctx.Done():
						return
					}
				}
				i := next.Add(1)
				body := passBody(bodies[int(i)%len(bodies)], "p", int(i)/len(bodies), span)
				var res ingest.Result
				var err error
				if float64(i%100) < *natsShare*100 {
					err = sendNATS(nc, tok, body, &res)
				} else {
					err = sendHTTP(client, a.URL(), tok, body, &res)
				}
				if err != nil {
					failed.Add(1)
					continue
				}
				sent.Add(int64(*batch))
				accepted.Add(int64(res.Accepted))
			}
		}()
	}
	// Progress, and the rows landed in ClickHouse.
	landed := func() int64 { return landedRows(ctx, a, ch.Addr()) }
	go func() {
		t := time.NewTicker(10 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				el := time.Since(start).Seconds()
				fmt.Fprintf(stdout, "  %4.0fs accepted %9d (%6.0f/s)  in ClickHouse %9d\n", el, accepted.Load(), float64(accepted.Load())/el, landed())
			case <-ctx.Done():
				return
			}
			if time.Now().After(deadline) {
				return
			}
		}
	}()
	wg.Wait()
	sendTime := time.Since(start)
	want := accepted.Load()
	for landed() < want && ctx.Err() == nil {
		time.Sleep(100 * time.Millisecond)
	}
	drainTime := time.Since(start)
	p50, p99, n := lat.quantiles()
	fmt.Fprintf(stdout, "\nsent for %s: %d events accepted (%.0f/s), %d failed requests\n", sendTime.Round(time.Millisecond), want, float64(want)/sendTime.Seconds(), failed.Load())
	fmt.Fprintf(stdout, "all in ClickHouse after %s: %.0f events/s end to end\n", drainTime.Round(time.Millisecond), float64(want)/drainTime.Seconds())
	fmt.Fprintf(stdout, "acceptance → visible in ClickHouse: p50 %s, p99 %s (%d events)\n", p50.Round(time.Millisecond), p99.Round(time.Millisecond), n)
	if *floor {
		return benchFloor(ctx, stdout, ch, a.DB().Database(), float64(want)/drainTime.Seconds())
	}
	return nil
}

func sendHTTP(c *http.Client, url, tok string, body []byte, res *ingest.Result) error {
	req, _ := http.NewRequest("POST", url+"/api/v1/events", bytes.NewReader(body))
	req.Header.Set("Content-Type", ingest.ContentBatch)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 202 {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("status %d: %s", resp.StatusCode, b)
	}
	return json.NewDecoder(resp.Body).Decode(res)
}

func sendNATS(nc *nats.Conn, tok string, body []byte, res *ingest.Result) error {
	m := nats.NewMsg(ingest.IngestSubject)
	m.Header.Set("Authorization", "Bearer "+tok)
	m.Header.Set("Content-Type", ingest.ContentBatch)
	m.Data = body
	reply, err := nc.RequestMsg(m, 60*time.Second)
	if err != nil {
		return err
	}
	return json.Unmarshal(reply.Data, res)
}

// benchPool generates n events of the simulated city, in batches; span is
// the time they cover, rounded up to a minute.
func benchPool(n, batch int) (bodies [][]byte, span time.Duration, mix string, err error) {
	set, err := refdata.HCMC()
	if err != nil {
		return nil, 0, "", err
	}
	cal, err := worktime.New(set.Calendar, worktime.Config{})
	if err != nil {
		return nil, 0, "", err
	}
	// A busy city: dossiers and tickets at ten times HCMC's daily volume, so
	// the mix is not only camera detections; in office hours, so that the
	// mix is the same whatever the hour of the run.
	g, err := sim.NewGenerator(sim.Config{Seed: 7, Start: benchStart(time.Now(), cal),
		DossiersPerDay: 500_000, FeedbackPerDay: 100_000, NoIndicators: true}, set, cal)
	if err != nil {
		return nil, 0, "", err
	}
	counts := map[string]int{}
	var first, last time.Time
	for len(bodies)*batch < n {
		evs := g.Batch(batch)
		if len(evs) == 0 {
			break
		}
		for _, e := range evs {
			var head struct {
				Type string
				Time time.Time
			}
			_ = json.Unmarshal(e, &head)
			if first.IsZero() || head.Time.Before(first) {
				first = head.Time
			}
			if head.Time.After(last) {
				last = head.Time
			}
			f, _, _ := ingest.SplitType(head.Type)
			counts[f]++
		}
		b, err := json.Marshal(evs)
		if err != nil {
			return nil, 0, "", err
		}
		bodies = append(bodies, b)
	}
	var parts []string
	for _, f := range ingest.Families {
		parts = append(parts, fmt.Sprintf("%s %.1f%%", f, 100*float64(counts[f])/float64(len(bodies)*batch)))
	}
	return bodies, last.Sub(first).Truncate(time.Minute) + time.Minute, strings.Join(parts, ", "), nil
}

// benchStart is 10:00 in the city of the latest working day that starts
// at least 12 hours before now: the pool's city is in office hours (a
// one-stop shop's peak) and recent, whatever the hour the bench runs at.
func benchStart(now time.Time, cal *worktime.Calendar) time.Time {
	loc := cal.Location()
	d := now.Add(-12 * time.Hour).In(loc)
	for day := time.Date(d.Year(), d.Month(), d.Day(), 10, 0, 0, 0, loc); ; day = day.AddDate(0, 0, -1) {
		if !day.After(d) && cal.IsWorkingDay(day) {
			return day
		}
	}
}

// passBody is a body of the pool as sent in its pass'th pass: ids with a
// prefix of their own, and times moved back by pass spans, so that the
// passes follow one another in the city's time instead of piling up on the
// same minutes (as a city's events do; piled up, every pass would make the
// minutes the KPIs re-read denser).
func passBody(body []byte, prefix string, pass int, span time.Duration) []byte {
	body = bytes.ReplaceAll(body, []byte(`"id":"`), fmt.Appendf(nil, `"id":"%s%d-`, prefix, pass))
	if pass == 0 {
		return body
	}
	const key = `"time":"`
	shift := -time.Duration(pass) * span
	out := make([]byte, 0, len(body))
	for {
		i := bytes.Index(body, []byte(key))
		if i < 0 {
			return append(out, body...)
		}
		i += len(key)
		out = append(out, body[:i]...)
		body = body[i:]
		j := bytes.IndexByte(body, '"')
		t, err := time.Parse(time.RFC3339Nano, string(body[:j]))
		if err != nil {
			out = append(out, body[:j]...)
		} else {
			out = t.Add(shift).AppendFormat(out, time.RFC3339Nano)
		}
		body = body[j:]
	}
}

func landedRows(ctx context.Context, a *app.App, _ string) int64 {
	var n uint64
	err := a.DB().Conn.QueryRow(ctx, "SELECT sum(rows) FROM system.parts WHERE database = ? AND active AND table LIKE '%_events'",
		a.DB().Database()).Scan(&n)
	if err != nil {
		return 0
	}
	return int64(n)
}

// latencies collects acceptance → commit times.
type latencies struct {
	mu sync.Mutex
	d  []time.Duration
}

func (l *latencies) add(_ string, accepted []time.Time, at time.Time) {
	l.mu.Lock()
	for _, t := range accepted {
		l.d = append(l.d, at.Sub(t))
	}
	l.mu.Unlock()
}

func (l *latencies) quantiles() (p50, p99 time.Duration, n int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.d) == 0 {
		return 0, 0, 0
	}
	slices.Sort(l.d)
	return l.d[len(l.d)/2], l.d[len(l.d)*99/100], len(l.d)
}

// benchFloor exports the rows ioc wrote and times clickhouse-client
// inserting them natively into copies of the tables: the floor to compare
// with. Two floors: the raw tables alone, and the raw tables with their
// materialized views (state, hourly entities) writing into copies of
// their targets, which is what ClickHouse itself does with ioc's schema.
func benchFloor(ctx context.Context, stdout io.Writer, ch *chlocal.Server, db string, ours float64) error {
	client, err := exec.LookPath("clickhouse-client")
	if err != nil {
		fmt.Fprintln(stdout, "floor: clickhouse-client not installed, skipped")
		return nil
	}
	port := fmt.Sprint(ch.TCPPort)
	chq := func(q string, in io.Reader, out io.Writer) error {
		cmd := exec.CommandContext(ctx, client, "--port", port, "--query", q)
		cmd.Stdin, cmd.Stdout = in, out
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("clickhouse-client %q: %v: %s", q, err, stderr.String())
		}
		return nil
	}
	chs := func(q string) (string, error) {
		var out bytes.Buffer
		err := chq(q, nil, &out)
		return strings.TrimSpace(out.String()), err
	}
	// The materialized views of db, each with its source and target.
	type mview struct{ from, to, create string }
	var views []mview
	fromRe := regexp.MustCompile(`FROM ` + regexp.QuoteMeta(db) + `\.(\w+)`)
	toRe := regexp.MustCompile(`TO ` + regexp.QuoteMeta(db) + `\.(\w+)`)
	names, err := chs(fmt.Sprintf("SELECT name FROM system.tables WHERE database = '%s' AND engine = 'MaterializedView' ORDER BY name", db))
	if err != nil {
		return err
	}
	for _, name := range strings.Fields(names) {
		create, err := chs(fmt.Sprintf("SHOW CREATE TABLE %s.%s FORMAT TSVRaw", db, name))
		if err != nil {
			return err
		}
		from, to := fromRe.FindStringSubmatch(create), toRe.FindStringSubmatch(create)
		if from == nil || to == nil {
			continue
		}
		views = append(views, mview{from[1], to[1], create})
	}
	for _, fdb := range []string{"floor", "floor_mv"} {
		if err := chq("CREATE DATABASE IF NOT EXISTS "+fdb, nil, nil); err != nil {
			return err
		}
	}
	var total, viewRows int64
	var took [2]time.Duration // into floor, into floor_mv
	targets := map[string]bool{}
	for _, f := range ingest.Families {
		table := f + "_events"
		var n int64
		if c, err := chs(fmt.Sprintf("SELECT count() FROM %s.%s", db, table)); err == nil {
			fmt.Sscan(c, &n)
		}
		if n == 0 {
			continue
		}
		// The copies: the raw table in floor; in floor_mv also its views'
		// targets and the views, renamed.
		copies := []string{"floor." + table, "floor_mv." + table}
		var creates []string
		for _, v := range views {
			if v.from == table {
				copies = append(copies, "floor_mv."+v.to)
				targets[v.to] = true
				creates = append(creates, strings.ReplaceAll(v.create, db+".", "floor_mv."))
			}
		}
		for _, c := range copies {
			if err := chq(fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s AS %s.%s", c, db, c[strings.IndexByte(c, '.')+1:]), nil, nil); err != nil {
				return err
			}
		}
		for _, c := range creates {
			if err := chq(c, nil, nil); err != nil {
				return err
			}
		}
		colList, err := chs(fmt.Sprintf("SELECT arrayStringConcat(groupArray(name), ', ') FROM system.columns WHERE database = '%s' AND table = '%s' AND default_kind = ''", db, table))
		if err != nil {
			return err
		}
		// Through a file: the export can be larger than memory.
		data, err := os.CreateTemp("", "ioc-floor-*.native")
		if err != nil {
			return err
		}
		defer os.Remove(data.Name())
		defer data.Close()
		if err := chq(fmt.Sprintf("SELECT %s FROM %s.%s FORMAT Native", colList, db, table), nil, data); err != nil {
			return err
		}
		for i, fdb := range []string{"floor", "floor_mv"} {
			if _, err := data.Seek(0, io.SeekStart); err != nil {
				return err
			}
			t0 := time.Now()
			if err := chq(fmt.Sprintf("INSERT INTO %s.%s (%s) FORMAT Native", fdb, table, colList), data, nil); err != nil {
				return err
			}
			took[i] += time.Since(t0)
		}
		total += n
	}
	for t := range targets {
		var n int64
		c, err := chs("SELECT count() FROM floor_mv." + t)
		if err != nil {
			return err
		}
		fmt.Sscan(c, &n)
		viewRows += n
	}
	if total == 0 || (len(targets) > 0 && viewRows == 0) {
		return fmt.Errorf("floor: %d rows inserted, %d written by the materialized views: nothing measured", total, viewRows)
	}
	floor, floorMV := float64(total)/took[0].Seconds(), float64(total)/took[1].Seconds()
	fmt.Fprintf(stdout, "floor: clickhouse-client inserted the same %d rows (Native) in %s: %.0f rows/s; ioc end to end = %.2f × that\n",
		total, took[0].Round(time.Millisecond), floor, ours/floor)
	fmt.Fprintf(stdout, "floor with the materialized views (into %d tables, %d rows written by them): %s: %.0f rows/s; ioc end to end = %.2f × that\n",
		len(targets), viewRows, took[1].Round(time.Millisecond), floorMV, ours/floorMV)
	return nil
}
