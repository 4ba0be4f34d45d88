package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
	"github.com/nats-io/nats.go"

	"github.com/vn-ioc/ioc/ingest"
	"github.com/vn-ioc/ioc/ingest/refdata"
	"github.com/vn-ioc/ioc/internal/app"
	"github.com/vn-ioc/ioc/internal/auth"
	"github.com/vn-ioc/ioc/query/kpi"
)

// runBenchWS measures the websocket path against its two targets, on a
// throwaway node of this machine:
//
//  1. latency: with the simulated city sent over HTTP as background load,
//     a probe survey of one ward is posted every --interval; each probe
//     raises the numerator of kpi:survey.count:<ward>:today by one. The
//     time from the POST's 202 (the event is in JetStream) to the update
//     that shows it at a websocket client is measured per probe.
//  2. fan-out: --clients websocket clients, --keys channels each, all
//     subscribed to that same probe channel; per probe, the time until the
//     last client saw it, and the memory the idle connections hold. The
//     clients run in this process, or in a child process (this program
//     with --child) when the open-file limit cannot hold both ends of
//     every connection in one.
//
// The ward's own surveys are removed from the background pool, so that
// only probes move its count. Targets are printed beside the figures,
// never asserted: missing one is a result, not an error.
func runBenchWS(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench ws", flag.ContinueOnError)
	fs.SetOutput(stderr)
	only := fs.String("only", "", `run one part: "latency" or "fanout" (default both)`)
	duration := fs.Duration("duration", time.Minute, "latency: how long to post probes")
	warmup := fs.Duration("warmup", 5*time.Second, "latency: background load alone before the first probe")
	rate := fs.Float64("rate", 10_000, "latency: background events/s over HTTP (0: none)")
	interval := fs.Duration("interval", 200*time.Millisecond, "latency: time between probes")
	flush := fs.Duration("writer-flush", 0, "the node's writer flush interval (0: the default, as ioc serve's --writer-flush)")
	ward := fs.String("ward", "26740", "the ward the probes are surveys of (its surveys are removed from the background)")
	clients := fs.Int("clients", 10_000, "fanout: websocket clients")
	keys := fs.Int("keys", 20, "fanout: channels per client (one of them the probe channel)")
	probes := fs.Int("probes", 20, "fanout: probes, each awaited at every client")
	gap := fs.Duration("gap", 500*time.Millisecond, "fanout: pause after a probe reached every client")
	fanRate := fs.Float64("fanout-rate", 0, "fanout: background events/s during the probes (0: none)")
	dialers := fs.Int("dial-workers", 16, "fanout: clients connecting at once")
	batch := fs.Int("batch", 1000, "background: events per request")
	senders := fs.Int("senders", 8, "background: concurrent HTTP senders")
	pool := fs.Int("pool", 200_000, "background: distinct events generated up front (re-sent with fresh ids)")
	memProfile := fs.String("memprofile", "", "fanout: write a heap profile here once every client is connected")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of this process (node, background senders, probes and, unless in a child, the fan-out's clients) to this file, from the node's start to the end")
	clientsIn := fs.String("clients-in", "auto", `fanout: where the clients run: "process" (this one, with the node), "child" (a child process), "auto" (this process when the open-file limit holds both ends of every connection)`)
	child := fs.String("child", "", "internal: run the fan-out's clients for a parent ioc bench ws (JSON config)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *child != "" {
		return runFanoutChild(ctx, *child, os.Stdin, stdout, stderr)
	}
	doLatency, doFanout := *only == "" || *only == "latency", *only == "" || *only == "fanout"
	switch {
	case !doLatency && !doFanout:
		return fmt.Errorf(`--only %q: "latency" or "fanout"`, *only)
	case *keys < 1 || *keys > 40:
		// 40 is the burst of the message rate limit: more subscribes at
		// once would be refused.
		return fmt.Errorf("--keys %d: between 1 and 40", *keys)
	case *clients < 1 || *probes < 1 || *dialers < 1 || *interval <= 0 || *senders < 1 || *batch < 1:
		return errors.New("--clients, --probes, --dial-workers, --interval, --senders and --batch must be positive")
	}
	inChild := false
	if doFanout {
		// In this process, both ends of every connection need a file; the
		// node itself needs some hundred (NATS, ClickHouse, HTTP).
		const spare = 1024
		limit := raiseFileLimit(uint64(2**clients + spare))
		switch *clientsIn {
		case "process":
		case "child":
			inChild = true
		case "auto":
			inChild = limit < uint64(2**clients+spare)
		default:
			return fmt.Errorf(`--clients-in %q: "auto", "process" or "child"`, *clientsIn)
		}
		switch {
		case inChild && limit < uint64(*clients+spare):
			return fmt.Errorf("open files: at most %d, and even with the clients in a child process the node needs %d for --clients %d",
				limit, *clients+spare, *clients)
		case inChild && *clientsIn == "auto":
			fmt.Fprintf(stdout, "open files: at most %d (RLIMIT_NOFILE; raising the hard limit was refused), fewer than both ends of %d connections need: the clients run in a child process\n",
				limit, *clients)
		}
	}
	set, err := refdata.HCMC()
	if err != nil {
		return err
	}
	wardName := ""
	for _, u := range set.Units {
		if u.Code == *ward {
			wardName = u.Name
		}
	}
	if wardName == "" {
		return fmt.Errorf("--ward %s: not a unit of the reference data", *ward)
	}
	cat, err := kpi.Load()
	if err != nil {
		return err
	}

	var bg *bgPool
	if (doLatency && *rate > 0) || (doFanout && *fanRate > 0) {
		fmt.Fprintf(stdout, "generating %d background events …\n", *pool)
		bodies, span, mix, err := benchPool(*pool, *batch)
		if err != nil {
			return err
		}
		removed, err := dropWardSurveys(bodies, *ward)
		if err != nil {
			return err
		}
		bg = &bgPool{bodies: bodies, span: span, batch: *batch, senders: *senders}
		fmt.Fprintf(stdout, "background mix: %s; %d surveys of ward %s removed\n", mix, removed, *ward)
	}

	started := time.Now()
	n, err := startBenchNode(ctx, "ws", stderr, func(c *app.Config) { c.Writer.FlushInterval = *flush })
	if err != nil {
		return err
	}
	defer n.Close()
	stopProfile, err := startCPUProfile(*cpuProfile)
	if err != nil {
		return err
	}
	defer stopProfile()
	tok, err := n.Tokens.Issue(auth.Claims{Role: auth.RoleAdmin}, "bench", 4*time.Hour)
	if err != nil {
		return err
	}
	channel := kpi.Key{KPI: "survey.count", Unit: *ward, Window: kpi.WindowToday}.Channel()
	fmt.Fprintf(stdout, "machine: %d CPUs, %s; node %s, ClickHouse %s (started in %s)\n", runtime.NumCPU(), runtime.GOARCH,
		n.URL(), n.ch.Addr(), time.Since(started).Round(time.Millisecond))
	fmt.Fprintf(stdout, "probe: vn.ioc.survey.submitted of ward %s (%s), seen on %s\n", *ward, wardName, channel)

	// The monitor client and the KV watcher give every probe its arrival
	// times; the numerator before the first probe is the base.
	plog := &probeLog{}
	wsURL := "ws" + strings.TrimPrefix(n.URL(), "http") + "/ws?token=" + tok
	mon, err := newMonitor(ctx, wsURL, channel, plog)
	if err != nil {
		return err
	}
	defer mon.Close()
	nc, err := nats.Connect(n.NATSURL())
	if err != nil {
		return err
	}
	defer nc.Close()
	// The engine publishes into the KV bucket's subject ("ioc_kpi", the
	// default of kpi.StoreConfig): a plain subscriber sees each value as
	// it is stored, the moment the node's own watcher does.
	kvSub, err := nc.Subscribe("$KV.ioc_kpi.survey.count."+*ward+"."+kpi.WindowToday, func(m *nats.Msg) {
		at := time.Now()
		var v struct{ Numerator int64 }
		if json.Unmarshal(m.Data, &v) == nil {
			plog.saw(&plog.kv, v.Numerator, at)
		}
	})
	if err != nil {
		return err
	}
	defer kvSub.Unsubscribe()
	pr := &prober{client: &http.Client{Timeout: 30 * time.Second}, url: n.URL(), tok: tok, ward: *ward,
		run: strconv.FormatInt(time.Now().UnixNano(), 36), log: plog}
	scrape := func() (promSnap, error) { return scrapeMetrics(ctx, n.URL(), tok) }

	if doLatency {
		t0 := time.Now()
		if err := benchWSLatency(ctx, stdout, n.URL(), tok, bg, pr, scrape, *rate, *warmup, *duration, *interval); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "(part 1 took %s)\n", time.Since(t0).Round(time.Second))
	}
	if doFanout {
		t0 := time.Now()
		fo := fanoutConfig{url: wsURL, channel: channel, clients: *clients, keys: *keys, probes: *probes, gap: *gap,
			dialers: *dialers, rate: *fanRate, memProfile: *memProfile, child: inChild}
		if err := benchWSFanout(ctx, stdout, stderr, fo, n.URL(), tok, bg, pr, scrape, channelPool(cat, set)); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "(part 2 took %s)\n", time.Since(t0).Round(time.Second))
	}
	return nil
}

// benchWSLatency is part 1: probes under background load.
func benchWSLatency(ctx context.Context, stdout io.Writer, url, tok string, bg *bgPool, pr *prober,
	scrape func() (promSnap, error), rate float64, warmup, duration, interval time.Duration) error {
	fmt.Fprintf(stdout, "\n== 1. event accepted → websocket update, background %.0f events/s over HTTP ==\n", rate)
	var load *bgRun
	if rate > 0 {
		load = bg.start(ctx, url, tok, rate)
		if err := sleepCtx(ctx, warmup); err != nil {
			return err
		}
	}
	m0, err := scrape()
	if err != nil {
		return err
	}
	cpu0 := takeCPU()
	first := pr.count() + 1
	tick := time.NewTicker(interval)
	deadline := time.Now().Add(duration)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if _, err := pr.post(); err != nil {
			tick.Stop()
			if load != nil {
				load.stop()
			}
			return fmt.Errorf("probe %d: %w", pr.count()+1, err)
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
		}
	}
	tick.Stop()
	last := pr.count()
	// The last probes still travel; the load goes on meanwhile.
	waitUntil(ctx, 30*time.Second, time.Millisecond, func() bool { return pr.log.arrived(&pr.log.ws) >= last })
	cpu1 := takeCPU()
	var sent float64
	var failed int64
	var took time.Duration
	if load != nil {
		sent, failed, took = load.stop()
	}
	m1, err := scrape()
	if err != nil {
		return err
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}

	ack, toWS, toKV, kvToWS, missing := pr.log.latencies(first, last)
	if load != nil {
		fmt.Fprintf(stdout, "background: %.0f events accepted in %s = %.0f events/s (asked %.0f), %d failed requests\n",
			sent, took.Round(time.Millisecond), sent/took.Seconds(), rate, failed)
	}
	fmt.Fprintf(stdout, "probes: %d posted every %s for %s; %d seen at the websocket client, %d never\n",
		last-first+1, interval, duration, len(toWS), missing)
	fmt.Fprintf(stdout, "202 → websocket update    %s   (target p50 < 300 ms, p99 < 1 s: %s)\n", quantileLine(toWS),
		verdict(len(toWS) > 0 && pct(toWS, 0.5) < 300*time.Millisecond && pct(toWS, 0.99) < time.Second))
	fmt.Fprintf(stdout, "  202 → KV publish          %s   (writer flush + insert + engine debounce + recompute)\n", quantileLine(toKV))
	fmt.Fprintf(stdout, "  KV publish → websocket    %s   (KV watch + hub + socket)\n", quantileLine(kvToWS))
	fmt.Fprintf(stdout, "  POST → 202                %s\n", quantileLine(ack))
	fmt.Fprintf(stdout, "writer, accepted → committed in ClickHouse (all events, from ioc_writer_visible_seconds buckets): %s\n",
		histLine(m0, m1, "ioc_writer_visible_seconds", ""))
	fmt.Fprintf(stdout, "writer inserts (ioc_writer_insert_seconds): %s\n", histLine(m0, m1, "ioc_writer_insert_seconds", ""))
	printRecompute(stdout, m0, m1)
	fmt.Fprintf(stdout, "CPU: %s\n", cpu0.to(cpu1, 0))
	return nil
}

// fanoutConfig is part 2's flags.
type fanoutConfig struct {
	url, channel                   string
	clients, keys, probes, dialers int
	gap                            time.Duration
	rate                           float64
	memProfile                     string
	child                          bool // the clients run in a child process
}

// benchWSFanout is part 2: many clients, one common channel.
func benchWSFanout(ctx context.Context, stdout, stderr io.Writer, cfg fanoutConfig, url, tok string, bg *bgPool, pr *prober,
	scrape func() (promSnap, error), pool []string) error {
	where := "in this process"
	if cfg.child {
		where = "in a child process"
	}
	fmt.Fprintf(stdout, "\n== 2. fan-out: %d websocket clients × %d channels on one node (clients %s) ==\n", cfg.clients, cfg.keys, where)
	fmt.Fprintf(stdout, "channels: %s for every client, %d more each drawn from %d (every KPI × the city and its level-1 units × today/week/month)\n",
		cfg.channel, cfg.keys-1, len(pool))

	ranBefore := pr.count() > 0
	// One probe first, when part 1 did not run: the writer, the engine and
	// the hub allocate their buffers for good at their first event, which
	// must not count as the clients' memory.
	if pr.count() == 0 {
		if _, err := pr.post(); err != nil {
			return fmt.Errorf("warm-up probe: %w", err)
		}
	}
	// A backlog left by part 1's load would slow the probes down.
	t0 := time.Now()
	waitUntil(ctx, 5*time.Minute, 500*time.Millisecond, func() bool {
		m, err := scrape()
		return err == nil && m.get("ioc_jetstream_pending", "") == 0
	})
	if d := time.Since(t0); d > time.Second {
		fmt.Fprintf(stdout, "waited %s for the writer to drain JetStream\n", d.Round(time.Second))
	}
	if !waitUntil(ctx, 30*time.Second, time.Millisecond, func() bool { return pr.log.arrived(&pr.log.ws) >= pr.count() }) {
		fmt.Fprintf(stdout, "warning: the earlier probes did not all reach the monitor client within 30 s\n")
	}
	// The engine's work in flight would count as the connections' memory:
	// wait until it has not recomputed for 3 s.
	t0 = time.Now()
	lastCount, lastChange := -1.0, time.Now()
	quiet := waitUntil(ctx, time.Minute, 250*time.Millisecond, func() bool {
		m, err := scrape()
		if err != nil {
			return false
		}
		if c := m.get("ioc_kpi_recompute_seconds_count", ""); c != lastCount {
			lastCount, lastChange = c, time.Now()
		}
		return time.Since(lastChange) >= 3*time.Second
	})
	if !quiet {
		fmt.Fprintf(stdout, "warning: the KPI engine did not go quiet for 3 s within a minute; the memory figures include its work\n")
	} else if d := time.Since(t0); d > 4*time.Second {
		fmt.Fprintf(stdout, "waited %s for the KPI engine to go quiet\n", d.Round(time.Second))
	}
	if ranBefore {
		fmt.Fprintf(stdout, "note: part 1 ran on this node; its heap's state blurs the memory delta below (use --only fanout for the memory figure)\n")
	}

	// In this process, the clients' own share is measured apart: the same
	// clients against a server that keeps only the socket.
	var clientShare perConn
	if !cfg.child {
		calAddr, calStop, err := calibrationServer(cfg.keys)
		if err != nil {
			return err
		}
		cal := newFanout(childConfig{URL: "ws://" + calAddr + "/ws", Channel: cfg.channel, Clients: cfg.clients, Keys: cfg.keys,
			Dialers: cfg.dialers}, pool)
		before := sampleMem()
		t0 := time.Now()
		err = cal.connectAll(ctx, stdout, "calibration")
		after := sampleMem()
		cal.closeAll()
		calStop()
		if err != nil {
			return err
		}
		clientShare = after.minus(before, cal.connected())
		fmt.Fprintf(stdout, "calibration: %d gorilla clients (512 B read buffer, pooled write buffer, one reader goroutine) against a bare socket server, in %s: %s per client\n",
			cal.connected(), time.Since(t0).Round(time.Millisecond), clientShare)
	}

	// The node, the real thing: its numerator has reached every earlier
	// probe; the clients mark the probes from First on.
	cc := childConfig{URL: cfg.url, Channel: cfg.channel, Clients: cfg.clients, Keys: cfg.keys, Dialers: cfg.dialers,
		Base: pr.log.base, First: pr.count() + 1, Probes: cfg.probes}
	m0, err := scrape()
	if err != nil {
		return err
	}
	before := sampleMem()
	var cr crowd
	if cfg.child {
		cr, err = startChildCrowd(ctx, cc, stdout, stderr)
		if err != nil {
			return err
		}
	} else {
		cr = &localCrowd{newFanout(cc, pool)}
	}
	defer cr.close()
	st, err := cr.connect(ctx, stdout)
	if err != nil {
		return err
	}
	var mconn promSnap
	waitUntil(ctx, time.Minute, 200*time.Millisecond, func() bool {
		mconn, err = scrape()
		return err == nil && mconn.get("ioc_ws_subscriptions", "") >= float64(st.Connected*cfg.keys)
	})
	after := sampleMem()
	if cfg.memProfile != "" {
		if err := writeHeapProfile(cfg.memProfile); err != nil {
			return err
		}
	}
	firstErr := ""
	if st.FirstErr != "" {
		firstErr = " (first: " + st.FirstErr + ")"
	}
	fmt.Fprintf(stdout, "connected %d clients in %s (%.0f/s), %d failed%s; hub: %.0f connections, %.0f subscriptions (the monitor client included)\n",
		st.Connected, st.Took.Round(time.Millisecond), float64(st.Connected)/st.Took.Seconds(), st.Failed, firstErr,
		mconn.get("ioc_ws_connections", ""), mconn.get("ioc_ws_subscriptions", ""))
	here := after.minus(before, st.Connected)
	rss := float64(int64(after.rss)-int64(before.rss)) / float64(max(1, st.Connected))
	fmt.Fprintf(stdout, "memory per connection, after GC (heap in use + goroutine stacks):\n")
	var server perConn
	if cfg.child {
		server = here
		fmt.Fprintf(stdout, "  client side (child process)              %s\n", st.Mem)
		fmt.Fprintf(stdout, "  both ends (sum)                          %.1f KiB\n", server.kib()+st.Mem.kib())
		fmt.Fprintf(stdout, "  node side (this process), idle, %d subscriptions: %s   (target ≤ 20 KiB: %s)\n", cfg.keys, server,
			verdict(server.kib() <= 20))
		fmt.Fprintf(stdout, "  RSS grew %.1f KiB per connection in this process (node), %.1f KiB in the child (client); allocator slack included, kernel socket buffers not\n",
			rss/1024, st.RSS/1024)
	} else {
		server = here.sub(clientShare)
		fmt.Fprintf(stdout, "  both ends (node + client, one process)   %s\n", here)
		fmt.Fprintf(stdout, "  client side (calibration above)          %s\n", clientShare)
		fmt.Fprintf(stdout, "  node side = the difference, idle, %d subscriptions: %.1f KiB (live objects + stacks %.1f KiB)   (target ≤ 20 KiB: %s)\n",
			cfg.keys, server.kib(), (server.Live+server.Stack)/1024, verdict(server.kib() <= 20))
		fmt.Fprintf(stdout, "  process RSS grew %.1f KiB per connection, both ends (allocator slack included, kernel socket buffers not)\n", rss/1024)
	}

	var load *bgRun
	if cfg.rate > 0 {
		load = bg.start(ctx, url, tok, cfg.rate)
		fmt.Fprintf(stdout, "background load during the probes: %.0f events/s over HTTP\n", cfg.rate)
	} else {
		fmt.Fprintf(stdout, "background load during the probes: none (--fanout-rate)\n")
	}
	m1, err := scrape()
	if err != nil {
		return err
	}
	cpu0 := takeCPU()
	childCPU0 := st.CPU
	fmt.Fprintf(stdout, "probe   clients  202→KV  KV→first  KV→p50  KV→p99  KV→last   202→p50  202→p99  202→last\n")
	var rows []fanRow
	lost := 0
	for i := 0; i < cfg.probes && ctx.Err() == nil; i++ {
		k, err := pr.post()
		if err != nil {
			if load != nil {
				load.stop()
			}
			return fmt.Errorf("probe %d: %w", k, err)
		}
		got, err := cr.await(ctx, k-cc.First, 20*time.Second)
		if err != nil {
			return err
		}
		lost, st.CPU = got.Lost, got.CPU
		r := fanRowOf(got.Arrivals, pr.log.at(&pr.log.accepted, k), pr.log.at(&pr.log.kv, k))
		rows = append(rows, r)
		fmt.Fprintf(stdout, "%5d  %8d  %s\n", k, r.n, r)
		if err := sleepCtx(ctx, cfg.gap); err != nil {
			break
		}
	}
	cpu1 := takeCPU()
	if load != nil {
		sent, failed, took := load.stop()
		fmt.Fprintf(stdout, "background: %.0f events/s achieved, %d failed requests\n", sent/took.Seconds(), failed)
	}
	m2, err := scrape()
	if err != nil {
		return err
	}
	if len(rows) == 0 {
		return ctx.Err()
	}
	med := func(f func(fanRow) time.Duration) time.Duration {
		var ds []time.Duration
		for _, r := range rows {
			if d := f(r); d != unknown {
				ds = append(ds, d)
			}
		}
		if len(ds) == 0 {
			return unknown
		}
		return pct(ds, 0.5)
	}
	worst := func(f func(fanRow) time.Duration) time.Duration {
		w := unknown
		for _, r := range rows {
			w = max(w, f(r))
		}
		return w
	}
	incomplete, within := 0, 0
	for _, r := range rows {
		if r.n < st.Connected {
			incomplete++
		}
		if r.kvP99 != unknown && r.kvP99 < 250*time.Millisecond {
			within++
		}
	}
	kvLast := func(r fanRow) time.Duration { return r.kvLast }
	kvP99 := func(r fanRow) time.Duration { return r.kvP99 }
	last := func(r fanRow) time.Duration { return r.last }
	fmt.Fprintf(stdout, "medians over %d probes [worst probe]; %d probes did not reach every client within 20 s:\n", len(rows), incomplete)
	fmt.Fprintf(stdout, "  KV publish → last client (fan-out)   %s [%s]   p99 across clients %s [%s]   (target p99 < 250 ms: %s; in %d of %d probes)\n",
		ms(med(kvLast)), ms(worst(kvLast)), ms(med(kvP99)), ms(worst(kvP99)), verdict(med(kvP99) != unknown && med(kvP99) < 250*time.Millisecond),
		within, len(rows))
	fmt.Fprintf(stdout, "  KV publish → first client            %s   p50 across clients %s\n",
		ms(med(func(r fanRow) time.Duration { return r.kvFirst })), ms(med(func(r fanRow) time.Duration { return r.kvP50 })))
	fmt.Fprintf(stdout, "  202 → last client (end to end)       %s [%s]   p50 %s   p99 %s across clients\n", ms(med(last)), ms(worst(last)),
		ms(med(func(r fanRow) time.Duration { return r.p50 })), ms(med(func(r fanRow) time.Duration { return r.p99 })))
	fmt.Fprintf(stdout, "  202 → KV publish (writer + engine)   %s\n", ms(med(func(r fanRow) time.Duration { return r.toKV })))
	fmt.Fprintf(stdout, "hub during the probes: %.0f updates sent, %.0f coalesced; disconnects since the clients connected: %.0f (%s); clients lost: %d\n",
		m2.delta(m1, "ioc_ws_messages_sent_total", `type="update"`), m2.delta(m1, "ioc_ws_updates_coalesced_total", ""),
		m2.delta(m0, "ioc_ws_disconnects_total", ""), m2.labels("ioc_ws_disconnects_total"), lost)
	printRecompute(stdout, m1, m2)
	fmt.Fprintf(stdout, "CPU during the probes: %s\n", cpu0.to(cpu1, st.CPU-childCPU0))
	return nil
}

// ── probes ──────────────────────────────────────────────────────────────

// probeLog holds, per probe (index k from 1), when it was posted and
// answered, and when the probe channel's numerator first reached base+k
// in the KV bucket and at the monitor client. A numerator that skips
// (updates coalesced) marks every probe it covers.
type probeLog struct {
	mu       sync.Mutex
	base     int64
	posted   []time.Time
	accepted []time.Time
	kv, ws   []time.Time
}

func (l *probeLog) saw(list *[]time.Time, numerator int64, at time.Time) {
	l.mu.Lock()
	for int64(len(*list)) < numerator-l.base {
		*list = append(*list, at)
	}
	l.mu.Unlock()
}

func (l *probeLog) arrived(list *[]time.Time) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(*list)
}

// at is the time of probe k in list, zero when not there (yet).
func (l *probeLog) at(list *[]time.Time, k int) time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	if k < 1 || k > len(*list) {
		return time.Time{}
	}
	return (*list)[k-1]
}

// latencies of probes first…last: POST → 202, 202 → websocket, 202 → KV,
// KV → websocket; missing counts the probes never seen at the client.
func (l *probeLog) latencies(first, last int) (ack, toWS, toKV, kvToWS []time.Duration, missing int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for k := first; k <= last; k++ {
		acc := l.accepted[k-1]
		ack = append(ack, acc.Sub(l.posted[k-1]))
		var kv time.Time
		if k <= len(l.kv) {
			kv = l.kv[k-1]
			toKV = append(toKV, kv.Sub(acc))
		}
		if k > len(l.ws) {
			missing++
			continue
		}
		toWS = append(toWS, l.ws[k-1].Sub(acc))
		if !kv.IsZero() {
			kvToWS = append(kvToWS, l.ws[k-1].Sub(kv))
		}
	}
	return ack, toWS, toKV, kvToWS, missing
}

// prober posts probe surveys one at a time over HTTP.
type prober struct {
	client              *http.Client
	url, tok, ward, run string
	log                 *probeLog
}

func (p *prober) count() int {
	p.log.mu.Lock()
	defer p.log.mu.Unlock()
	return len(p.log.accepted)
}

// post sends the next probe and returns its index once it is accepted. A
// probe that is not accepted ends the measurement: the numerators would no
// longer say which probe they show.
func (p *prober) post() (int, error) {
	k := p.count() + 1
	now := time.Now()
	ev := map[string]any{"specversion": "1.0", "id": fmt.Sprintf("wsprobe-%s-%d", p.run, k), "source": "bench/ws-probe",
		"type": "vn.ioc.survey.submitted", "subject": fmt.Sprintf("KS-WSPROBE-%s-%d", p.run, k), "time": now.Format(time.RFC3339Nano),
		"data": map[string]any{"unit": p.ward, "rating": "satisfied", "channel": "online"}}
	body, err := json.Marshal([]any{ev})
	if err != nil {
		return k, err
	}
	var res ingest.Result
	if err := sendHTTP(p.client, p.url, p.tok, body, &res); err != nil {
		return k, err
	}
	acc := time.Now()
	if res.Accepted != 1 {
		return k, fmt.Errorf("not accepted: %d duplicates, rejected %+v", res.Duplicates, res.Rejected)
	}
	p.log.mu.Lock()
	p.log.posted = append(p.log.posted, now)
	p.log.accepted = append(p.log.accepted, acc)
	p.log.mu.Unlock()
	return k, nil
}

// monitor is one websocket client on the probe channel.
type monitor struct {
	ws   *websocket.Conn
	done chan struct{}
}

// newMonitor subscribes and takes the snapshot's numerator as the base.
func newMonitor(ctx context.Context, url, channel string, l *probeLog) (*monitor, error) {
	ws, _, err := websocket.DefaultDialer.DialContext(ctx, url, nil)
	if err != nil {
		return nil, fmt.Errorf("websocket: %w", err)
	}
	if err := ws.WriteJSON(map[string]string{"type": "subscribe", "id": "monitor", "channel": channel}); err != nil {
		ws.Close()
		return nil, err
	}
	for {
		var m serverMsg
		if err := ws.ReadJSON(&m); err != nil {
			ws.Close()
			return nil, fmt.Errorf("websocket: %w", err)
		}
		if m.Type == "error" {
			ws.Close()
			return nil, fmt.Errorf("subscribe %s: %s: %s", channel, m.Code, m.Message)
		}
		if m.Type == "snapshot" {
			if m.Data != nil {
				l.base = m.Data.Numerator
			}
			break
		}
	}
	mon := &monitor{ws: ws, done: make(chan struct{})}
	go func() {
		defer close(mon.done)
		for {
			var m serverMsg
			if err := ws.ReadJSON(&m); err != nil {
				return
			}
			at := time.Now()
			if (m.Type == "update" || m.Type == "snapshot") && m.Channel == channel && m.Data != nil {
				l.saw(&l.ws, m.Data.Numerator, at)
			}
		}
	}()
	return mon, nil
}

func (m *monitor) Close() {
	m.ws.Close()
	<-m.done
}

// serverMsg is what the benchmark reads of a server message.
type serverMsg struct {
	Type    string `json:"type"`
	Channel string `json:"channel"`
	Code    string `json:"code"`
	Message string `json:"message"`
	Data    *struct {
		Numerator int64 `json:"numerator"`
	} `json:"data"`
}

// ── fan-out clients ─────────────────────────────────────────────────────

// childConfig is what the fan-out's clients need to know, also as the
// JSON a child process is started with.
type childConfig struct {
	URL, Channel           string
	Clients, Keys, Dialers int
	Base                   int64 // the probe channel's numerator before probe 1
	First, Probes          int   // the probes to note: First…First+Probes-1
}

// crowd is the fan-out's clients, in this process or in a child: both
// ends of 10,000 connections do not fit one process's open-file limit
// when it cannot be raised past 20,000.
type crowd interface {
	// connect dials every client and subscribes it.
	connect(ctx context.Context, progress io.Writer) (crowdStats, error)
	// await waits until every client saw probe slot (or timeout).
	await(ctx context.Context, slot int, timeout time.Duration) (awaitReply, error)
	close()
}

// crowdStats is the outcome of connect; Mem, RSS and CPU are measured by
// a child on its side alone (zero in this process).
type crowdStats struct {
	Connected, Failed int
	FirstErr          string
	Took              time.Duration
	Mem               perConn
	RSS               float64 // bytes per client
	CPU               time.Duration
}

// awaitReply has, per client, when it saw the probe (unix ns, 0: never).
type awaitReply struct {
	Arrivals []int64
	Lost     int // clients whose connection ended
	CPU      time.Duration
}

// localCrowd runs the clients in this process.
type localCrowd struct{ f *fanout }

func (l *localCrowd) connect(ctx context.Context, progress io.Writer) (crowdStats, error) {
	t0 := time.Now()
	err := l.f.connectAll(ctx, progress, "clients")
	return crowdStats{Connected: l.f.connected(), Failed: int(l.f.failed.Load()), FirstErr: l.f.firstErr(), Took: time.Since(t0)}, err
}

func (l *localCrowd) await(ctx context.Context, slot int, timeout time.Duration) (awaitReply, error) {
	return l.f.await(ctx, slot, timeout), nil
}

func (l *localCrowd) close() { l.f.closeAll() }

// childCrowd runs the clients in a child process (this program, with
// --child): one JSON line of crowdStats once connected, then one line of
// awaitReply for each probe slot written to its stdin.
type childCrowd struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *json.Decoder
}

func startChildCrowd(ctx context.Context, cfg childConfig, progress, stderr io.Writer) (*childCrowd, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	b, _ := json.Marshal(cfg)
	cmd := exec.CommandContext(ctx, exe, "bench", "ws", "--child", string(b))
	cmd.Stderr = progress
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start the client process: %w", err)
	}
	return &childCrowd{cmd: cmd, in: in, out: json.NewDecoder(out)}, nil
}

func (c *childCrowd) connect(context.Context, io.Writer) (crowdStats, error) {
	var st crowdStats
	if err := c.out.Decode(&st); err != nil {
		return st, fmt.Errorf("client process: %w", err)
	}
	if st.Connected == 0 {
		return st, fmt.Errorf("client process: no client could connect: %s", st.FirstErr)
	}
	return st, nil
}

func (c *childCrowd) await(_ context.Context, slot int, _ time.Duration) (awaitReply, error) {
	var r awaitReply
	if _, err := fmt.Fprintf(c.in, "%d\n", slot); err != nil {
		return r, fmt.Errorf("client process: %w", err)
	}
	if err := c.out.Decode(&r); err != nil {
		return r, fmt.Errorf("client process: %w", err)
	}
	return r, nil
}

func (c *childCrowd) close() {
	c.in.Close()
	_ = c.cmd.Wait()
}

// runFanoutChild is the child's side of childCrowd.
func runFanoutChild(ctx context.Context, cfgJSON string, stdin io.Reader, stdout, stderr io.Writer) error {
	var cfg childConfig
	if err := json.Unmarshal([]byte(cfgJSON), &cfg); err != nil {
		return fmt.Errorf("--child: %w", err)
	}
	set, err := refdata.HCMC()
	if err != nil {
		return err
	}
	cat, err := kpi.Load()
	if err != nil {
		return err
	}
	f := newFanout(cfg, channelPool(cat, set))
	defer f.closeAll()
	before := sampleMem()
	t0 := time.Now()
	connErr := f.connectAll(ctx, stderr, "clients")
	st := crowdStats{Connected: f.connected(), Failed: int(f.failed.Load()), FirstErr: f.firstErr(), Took: time.Since(t0)}
	after := sampleMem()
	st.Mem = after.minus(before, st.Connected)
	st.RSS = float64(int64(after.rss)-int64(before.rss)) / float64(max(1, st.Connected))
	st.CPU = takeCPU().self
	enc := json.NewEncoder(stdout)
	if err := enc.Encode(st); err != nil {
		return err
	}
	if connErr != nil {
		return connErr
	}
	sc := bufio.NewScanner(stdin)
	for sc.Scan() {
		slot, err := strconv.Atoi(sc.Text())
		if err != nil || slot < 0 || slot >= cfg.Probes {
			return fmt.Errorf("--child: bad probe slot %q", sc.Text())
		}
		r := f.await(ctx, slot, 20*time.Second)
		r.CPU = takeCPU().self
		if err := enc.Encode(r); err != nil {
			return err
		}
	}
	return sc.Err()
}

// fanout is a crowd of websocket clients, each with one reader goroutine
// and as little else as gorilla allows: a 512-byte read buffer, write
// buffers from a shared pool. Each notes when the probe channel's
// numerator reached Base+k, for the probes First…First+Probes-1.
type fanout struct {
	cfg      childConfig
	pool     []string
	common   []byte // `"channel":"<probe channel>"`
	dialer   *websocket.Dialer
	conns    []*websocket.Conn
	arrivals []atomic.Int64 // [slot*clients+client] unix ns
	got      []atomic.Int32 // clients that saw each probe
	failed   atomic.Int64
	lost     atomic.Int64 // readers ended before closeAll
	closing  atomic.Bool
	readers  sync.WaitGroup
	errMu    sync.Mutex
	err      error
}

func newFanout(cfg childConfig, pool []string) *fanout {
	return &fanout{cfg: cfg, pool: pool, common: []byte(`"channel":"` + cfg.Channel + `"`),
		dialer: &websocket.Dialer{HandshakeTimeout: 30 * time.Second, ReadBufferSize: 512, WriteBufferSize: 512,
			WriteBufferPool: &sync.Pool{}},
		conns: make([]*websocket.Conn, cfg.Clients), arrivals: make([]atomic.Int64, cfg.Probes*cfg.Clients),
		got: make([]atomic.Int32, cfg.Probes)}
}

func (f *fanout) connected() int { return f.cfg.Clients - int(f.failed.Load()) }

func (f *fanout) firstErr() string {
	f.errMu.Lock()
	defer f.errMu.Unlock()
	if f.err == nil {
		return ""
	}
	return f.err.Error()
}

// connectAll dials every client, cfg.Dialers at a time.
func (f *fanout) connectAll(ctx context.Context, progress io.Writer, what string) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range f.cfg.Dialers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= f.cfg.Clients {
					return
				}
				if err := f.connect(ctx, i); err != nil {
					f.failed.Add(1)
					f.errMu.Lock()
					if f.err == nil {
						f.err = err
					}
					f.errMu.Unlock()
				}
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	t := time.NewTicker(10 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-done:
			if f.failed.Load() == int64(f.cfg.Clients) {
				return fmt.Errorf("%s: no client could connect: %s", what, f.firstErr())
			}
			return ctx.Err()
		case <-t.C:
			i := min(int(next.Load()), f.cfg.Clients)
			fmt.Fprintf(progress, "  %s: %d connecting or connected after %s\n", what, i, time.Since(start).Round(time.Second))
		}
	}
}

// connect dials client i, subscribes to its channels, awaits the answers
// and leaves a reader behind.
func (f *fanout) connect(ctx context.Context, i int) error {
	ws, _, err := f.dialer.DialContext(ctx, f.cfg.URL, nil)
	if err != nil {
		return err
	}
	var m serverMsg
	if err := ws.ReadJSON(&m); err != nil || m.Type != "welcome" {
		ws.Close()
		return fmt.Errorf("client %d: no welcome (%q, %v)", i, m.Type, err)
	}
	r := rand.New(rand.NewPCG(uint64(i), 42))
	chans := []string{f.cfg.Channel}
	for len(chans) < f.cfg.Keys && len(chans) <= len(f.pool) {
		if c := f.pool[r.IntN(len(f.pool))]; !slices.Contains(chans, c) {
			chans = append(chans, c)
		}
	}
	for _, c := range chans {
		if err := ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"subscribe","channel":"`+c+`"}`)); err != nil {
			ws.Close()
			return err
		}
	}
	seen := int64(0)
	for answered := 0; answered < len(chans); {
		m = serverMsg{}
		if err := ws.ReadJSON(&m); err != nil {
			ws.Close()
			return fmt.Errorf("client %d: %w", i, err)
		}
		switch m.Type {
		case "error":
			ws.Close()
			return fmt.Errorf("client %d: %s: %s", i, m.Code, m.Message)
		case "snapshot":
			answered++
			if m.Channel == f.cfg.Channel && m.Data != nil {
				seen = m.Data.Numerator - f.cfg.Base
			}
		}
	}
	f.conns[i] = ws
	f.readers.Add(1)
	go f.read(i, ws, seen)
	return nil
}

// read notes the arrival of every probe the probe channel's numerator
// shows; everything else is read and dropped. Gorilla answers the
// server's pings while it reads.
func (f *fanout) read(i int, ws *websocket.Conn, seen int64) {
	defer f.readers.Done()
	for {
		_, msg, err := ws.ReadMessage()
		if err != nil {
			if !f.closing.Load() {
				f.lost.Add(1)
			}
			return
		}
		if !bytes.Contains(msg, f.common) {
			continue
		}
		at := time.Now().UnixNano()
		num, ok := numeratorOf(msg)
		if !ok || num-f.cfg.Base <= seen {
			continue
		}
		for k := seen + 1; k <= num-f.cfg.Base; k++ {
			if slot := int(k) - f.cfg.First; slot >= 0 && slot < f.cfg.Probes {
				f.arrivals[slot*f.cfg.Clients+i].Store(at)
				f.got[slot].Add(1)
			}
		}
		seen = num - f.cfg.Base
	}
}

// await waits until every client still connected saw probe slot, or
// timeout passes.
func (f *fanout) await(ctx context.Context, slot int, timeout time.Duration) awaitReply {
	waitUntil(ctx, timeout, time.Millisecond, func() bool {
		return int(f.got[slot].Load()) >= f.connected()-int(f.lost.Load())
	})
	r := awaitReply{Arrivals: make([]int64, f.cfg.Clients), Lost: int(f.lost.Load())}
	for i := range r.Arrivals {
		r.Arrivals[i] = f.arrivals[slot*f.cfg.Clients+i].Load()
	}
	return r
}

func (f *fanout) closeAll() {
	f.closing.Store(true)
	for _, ws := range f.conns {
		if ws != nil {
			ws.Close()
		}
	}
	f.readers.Wait()
}

// fanRow is one probe of part 2.
type fanRow struct {
	n                                   int
	toKV, kvFirst, kvP50, kvP99, kvLast time.Duration
	p50, p99, last                      time.Duration
}

func (r fanRow) String() string {
	return fmt.Sprintf("%6s  %8s  %6s  %6s  %7s   %7s  %7s  %8s", ms(r.toKV), ms(r.kvFirst), ms(r.kvP50), ms(r.kvP99), ms(r.kvLast),
		ms(r.p50), ms(r.p99), ms(r.last))
}

// fanRowOf sums up one probe across the clients that saw it.
func fanRowOf(arrivals []int64, accepted, kv time.Time) fanRow {
	var ds []time.Duration
	for _, ns := range arrivals {
		if ns != 0 {
			ds = append(ds, time.Duration(ns-accepted.UnixNano()))
		}
	}
	r := fanRow{n: len(ds), toKV: unknown, kvFirst: unknown, kvP50: unknown, kvP99: unknown, kvLast: unknown, p50: unknown,
		p99: unknown, last: unknown}
	if len(ds) == 0 {
		return r
	}
	slices.Sort(ds)
	r.p50, r.p99, r.last = pct(ds, 0.5), pct(ds, 0.99), ds[len(ds)-1]
	if !kv.IsZero() {
		off := kv.Sub(accepted)
		r.toKV = off
		r.kvFirst, r.kvP50, r.kvP99, r.kvLast = ds[0]-off, r.p50-off, r.p99-off, r.last-off
	}
	return r
}

// numeratorOf reads the first "numerator" of a message without decoding
// it: the clients share the CPU with the node they measure.
func numeratorOf(msg []byte) (int64, bool) {
	const field = `"numerator":`
	i := bytes.Index(msg, []byte(field))
	if i < 0 {
		return 0, false
	}
	var n int64
	ok := false
	for _, b := range msg[i+len(field):] {
		if b < '0' || b > '9' {
			break
		}
		n, ok = n*10+int64(b-'0'), true
	}
	return n, ok
}

// channelPool lists the channels the clients draw from: every KPI of the
// catalog over the city and its level-1 units (wards, departments), over
// today, week and month (instant KPIs over now).
func channelPool(cat *kpi.Catalog, set *refdata.Set) []string {
	var out []string
	for _, u := range set.Units {
		if u.Level > 1 {
			continue
		}
		for _, k := range cat.KPIs {
			windows := []string{kpi.WindowToday, "week", "month"}
			if k.Instant() {
				windows = []string{kpi.WindowNow}
			}
			for _, w := range windows {
				if k.CheckWindow(w) == nil {
					out = append(out, kpi.Key{KPI: k.ID, Unit: u.Code, Window: w}.Channel())
				}
			}
		}
	}
	return out
}

// calibrationServer accepts websockets by hand and answers them as the hub
// would (a welcome, then subscribed and a snapshot per key) but keeps only
// the socket: what the benchmark's clients hold, measured without a hub.
func calibrationServer(keys int) (addr string, stop func(), err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	var frames []byte
	frame := func(msg string) {
		frames = append(frames, 0x81)
		if len(msg) < 126 {
			frames = append(frames, byte(len(msg)))
		} else {
			frames = append(frames, 126, byte(len(msg)>>8), byte(len(msg)))
		}
		frames = append(frames, msg...)
	}
	frame(`{"type":"welcome","session":"admin:bench","heartbeat_s":25,"limits":{"subscriptions":500,"message_bytes":4096,"messages_per_s":20,"queue":256}}`)
	for i := range keys {
		ch := fmt.Sprintf("kpi:calibration.count:%d:today", i)
		frame(`{"type":"subscribed","id":"","channel":"` + ch + `","recovered":false}`)
		frame(`{"type":"snapshot","channel":"` + ch + `","seq":0,"data":null}`)
	}
	var mu sync.Mutex
	var held []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			br := bufio.NewReaderSize(c, 1024)
			key := ""
			for {
				line, err := br.ReadString('\n')
				if err != nil {
					break
				}
				if name, v, ok := strings.Cut(line, ":"); ok && strings.EqualFold(name, "Sec-WebSocket-Key") {
					key = strings.TrimSpace(v)
				}
				if line == "\r\n" {
					break
				}
			}
			h := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
			resp := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " +
				base64.StdEncoding.EncodeToString(h[:]) + "\r\n\r\n"
			if _, err := c.Write(append([]byte(resp), frames...)); err != nil {
				c.Close()
				continue
			}
			_ = c.SetDeadline(time.Time{})
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
		}
	}()
	return ln.Addr().String(), func() {
		ln.Close()
		<-done
		mu.Lock()
		for _, c := range held {
			c.Close()
		}
		mu.Unlock()
	}, nil
}

// ── memory ──────────────────────────────────────────────────────────────

// memSample is the process after a full GC.
type memSample struct {
	heap, live, stack, rss uint64
	goroutines             int
}

func sampleMem() memSample {
	for range 5 { // each GC may halve an idle goroutine's stack
		runtime.GC()
	}
	debug.FreeOSMemory() // so that RSS drops the garbage of earlier phases too
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	live := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(live)
	return memSample{heap: m.HeapInuse, live: live[0].Value.Uint64(), stack: m.StackInuse, rss: readRSS(),
		goroutines: runtime.NumGoroutine()}
}

// perConn is memory per connection.
// heap is the heap's spans in use (what the process holds), live the
// objects the last GC found reachable (without the spans' free slots).
type perConn struct{ Heap, Live, Stack, Goroutines float64 }

func (s memSample) minus(before memSample, n int) perConn {
	if n == 0 {
		return perConn{}
	}
	return perConn{Heap: float64(int64(s.heap)-int64(before.heap)) / float64(n),
		Live:       float64(int64(s.live)-int64(before.live)) / float64(n),
		Stack:      float64(int64(s.stack)-int64(before.stack)) / float64(n),
		Goroutines: float64(s.goroutines-before.goroutines) / float64(n)}
}

func (p perConn) sub(o perConn) perConn {
	return perConn{Heap: p.Heap - o.Heap, Live: p.Live - o.Live, Stack: p.Stack - o.Stack, Goroutines: p.Goroutines - o.Goroutines}
}

func (p perConn) kib() float64 { return (p.Heap + p.Stack) / 1024 }

func (p perConn) String() string {
	return fmt.Sprintf("%.1f KiB (heap in use %.1f KiB of which live objects %.1f KiB; stacks %.1f KiB, %.1f goroutines)",
		p.kib(), p.Heap/1024, p.Live/1024, p.Stack/1024, p.Goroutines)
}

func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := pprof.WriteHeapProfile(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// readRSS is the process's resident set, from /proc (0 elsewhere).
func readRSS() uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// raiseFileLimit raises the open-file limit towards want, the hard limit
// too when allowed (it is not in an unprivileged container), and returns
// the limit in force.
func raiseFileLimit(want uint64) uint64 {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return 0
	}
	if l.Cur >= want {
		return l.Cur
	}
	if syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: want, Max: max(l.Max, want)}) == nil {
		return want
	}
	if l.Cur < l.Max && syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: l.Max, Max: l.Max}) == nil {
		return l.Max
	}
	return l.Cur
}

// ── CPU ─────────────────────────────────────────────────────────────────

// cpuSample is the machine's CPU counters (/proc/stat) and this process's
// CPU time.
type cpuSample struct {
	at                 time.Time
	busy, steal, total uint64 // jiffies, all CPUs
	self               time.Duration
}

func takeCPU() cpuSample {
	s := cpuSample{at: time.Now()}
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		s.self = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return s
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	for i := 1; i < len(f) && i <= 8; i++ { // user nice system idle iowait irq softirq steal
		v, _ := strconv.ParseUint(f[i], 10, 64)
		s.total += v
		switch i {
		case 4, 5:
		case 8:
			s.steal += v
			s.busy += v
		default:
			s.busy += v
		}
	}
	return s
}

// to sums up the CPU from s to e; child is the CPU time a child process
// (the clients) used meanwhile, when there is one.
func (s cpuSample) to(e cpuSample, child time.Duration) string {
	wall := e.at.Sub(s.at).Seconds()
	cores := float64(runtime.NumCPU())
	self := (e.self - s.self).Seconds() / wall
	them := child.Seconds() / wall
	who := "node, NATS, clients, senders"
	if child > 0 {
		who = "node, NATS, senders"
	}
	out := fmt.Sprintf("this process (%s) %.2f cores", who, self)
	if child > 0 {
		out += fmt.Sprintf("; client process %.2f cores", them)
	}
	if e.total == s.total {
		return out
	}
	busy := float64(e.busy-s.busy) / float64(e.total-s.total)
	steal := float64(e.steal-s.steal) / float64(e.total-s.total)
	return fmt.Sprintf("machine %.0f%% busy of %d cores (steal %.0f%%); %s; the rest (ClickHouse, other tenants) %.2f cores",
		100*busy, int(cores), 100*steal, out, max(0, busy*cores-self-them))
}

// ── metrics ─────────────────────────────────────────────────────────────

// promSnap is one scrape of /metrics: value by series, as printed
// (name{labels}).
type promSnap map[string]float64

func scrapeMetrics(ctx context.Context, url, tok string) (promSnap, error) {
	req, _ := http.NewRequestWithContext(ctx, "GET", url+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return nil, fmt.Errorf("metrics: status %d", resp.StatusCode)
	}
	out := promSnap{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err == nil {
			out[line[:i]] = v
		}
	}
	return out, sc.Err()
}

// series splits name{labels} into its name and labels.
func series(s string) (name, labels string) {
	name, labels, _ = strings.Cut(s, "{")
	return name, strings.TrimSuffix(labels, "}")
}

// get sums the series of name whose labels contain match.
func (p promSnap) get(name, match string) float64 {
	var sum float64
	for s, v := range p {
		if n, l := series(s); n == name && strings.Contains(l, match) {
			sum += v
		}
	}
	return sum
}

func (p promSnap) delta(old promSnap, name, match string) float64 {
	return p.get(name, match) - old.get(name, match)
}

// labels lists the non-zero series of name, e.g. reason="slow" 3.
func (p promSnap) labels(name string) string {
	var out []string
	for s, v := range p {
		if n, l := series(s); n == name && v != 0 {
			out = append(out, fmt.Sprintf("%s %.0f", l, v))
		}
	}
	slices.Sort(out)
	if len(out) == 0 {
		return "none"
	}
	return strings.Join(out, ", ")
}

// hist is a histogram's change between two scrapes.
type hist struct {
	count, sum float64
	les        []float64 // upper bounds, ascending
	cum        []float64 // cumulative counts
}

func histDelta(a, b promSnap, name, match string) hist {
	h := hist{count: b.get(name+"_count", match) - a.get(name+"_count", match),
		sum: b.get(name+"_sum", match) - a.get(name+"_sum", match)}
	byLE := map[float64]float64{}
	for s, v := range b {
		n, l := series(s)
		if n != name+"_bucket" || !strings.Contains(l, match) {
			continue
		}
		_, rest, ok := strings.Cut(l, `le="`)
		raw, _, _ := strings.Cut(rest, `"`)
		le, err := strconv.ParseFloat(raw, 64)
		if !ok || err != nil {
			continue
		}
		byLE[le] += v - a[s]
	}
	for le := range byLE {
		h.les = append(h.les, le)
	}
	slices.Sort(h.les)
	for _, le := range h.les {
		h.cum = append(h.cum, byLE[le])
	}
	return h
}

// quantile interpolates within the bucket, as Prometheus does; past the
// last finite bound it answers that bound.
func (h hist) quantile(q float64) float64 {
	if h.count == 0 || len(h.les) == 0 {
		return math.NaN()
	}
	rank := q * h.count
	lo, below := 0.0, 0.0
	for i, le := range h.les {
		if h.cum[i] >= rank {
			if math.IsInf(le, 1) {
				return lo
			}
			if h.cum[i] == below {
				return le
			}
			return lo + (le-lo)*(rank-below)/(h.cum[i]-below)
		}
		lo, below = le, h.cum[i]
	}
	return lo
}

func histLine(a, b promSnap, name, match string) string {
	h := histDelta(a, b, name, match)
	if h.count == 0 {
		return "no observations"
	}
	return fmt.Sprintf("%.0f observations, mean %s, p50 ≈ %s, p99 ≈ %s", h.count, ms(sec(h.sum/h.count)),
		ms(sec(h.quantile(0.5))), ms(sec(h.quantile(0.99))))
}

// printRecompute reports the KPI engine's recomputations, per family.
func printRecompute(w io.Writer, a, b promSnap) {
	fmt.Fprintf(w, "KPI engine recomputations (ioc_kpi_recompute_seconds; estimates from buckets):\n")
	seen := false
	for _, f := range ingest.Families {
		h := histDelta(a, b, "ioc_kpi_recompute_seconds", `family="`+f+`"`)
		if h.count == 0 {
			continue
		}
		seen = true
		pub := b.delta(a, "ioc_kpi_values_published_total", `family="`+f+`"`)
		fmt.Fprintf(w, "  %-10s %s; %.0f values published, %.0f a round\n", f, histLine(a, b, "ioc_kpi_recompute_seconds", `family="`+f+`"`), pub, pub/h.count)
	}
	if !seen {
		fmt.Fprintf(w, "  none\n")
	}
}

// ── background load ─────────────────────────────────────────────────────

// bgPool is the background's events, sent in batches over HTTP.
type bgPool struct {
	bodies  [][]byte
	span    time.Duration // the time the bodies cover
	batch   int
	senders int
	next    atomic.Int64 // batches sent by every run: fresh ids across runs
}

// bgRun is one background run.
type bgRun struct {
	accepted, failed atomic.Int64
	start            time.Time
	cancel           context.CancelFunc
	wg               sync.WaitGroup
}

// start sends at rate events/s until stop.
func (p *bgPool) start(ctx context.Context, url, tok string, rate float64) *bgRun {
	ctx, cancel := context.WithCancel(ctx)
	r := &bgRun{start: time.Now(), cancel: cancel}
	tick := time.NewTicker(time.Duration(float64(time.Second) * float64(p.batch) / rate))
	client := &http.Client{Timeout: 60 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: p.senders, IdleConnTimeout: time.Minute}}
	for range p.senders {
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			for {
				select {
				case <-tick.C:
				case <-ctx.Done():
					return
				}
				i := p.next.Add(1)
				body := passBody(p.bodies[int(i)%len(p.bodies)], "w", int(i)/len(p.bodies), p.span)
				var res ingest.Result
				if err := sendHTTP(client, url, tok, body, &res); err != nil {
					if ctx.Err() == nil {
						r.failed.Add(1)
					}
					continue
				}
				r.accepted.Add(int64(res.Accepted))
			}
		}()
	}
	go func() { <-ctx.Done(); tick.Stop() }()
	return r
}

// stop ends the run: events accepted, failed requests, time sent.
func (r *bgRun) stop() (accepted float64, failed int64, took time.Duration) {
	took = time.Since(r.start)
	r.cancel()
	r.wg.Wait()
	return float64(r.accepted.Load()), r.failed.Load(), took
}

// dropWardSurveys removes the ward's surveys from the batches, in place:
// only the probes may move its survey count.
func dropWardSurveys(bodies [][]byte, ward string) (int, error) {
	removed := 0
	for i, b := range bodies {
		var evs []json.RawMessage
		if err := json.Unmarshal(b, &evs); err != nil {
			return 0, err
		}
		kept := evs[:0]
		for _, e := range evs {
			var head struct {
				Type string `json:"type"`
				Data struct {
					Unit string `json:"unit"`
				} `json:"data"`
			}
			if err := json.Unmarshal(e, &head); err != nil {
				return 0, err
			}
			if f, _, _ := ingest.SplitType(head.Type); f == ingest.FamilySurvey && head.Data.Unit == ward {
				removed++
				continue
			}
			kept = append(kept, e)
		}
		if len(kept) == len(evs) {
			continue
		}
		nb, err := json.Marshal(kept)
		if err != nil {
			return 0, err
		}
		bodies[i] = nb
	}
	return removed, nil
}

// ── small helpers ───────────────────────────────────────────────────────

// pct is the q-quantile (nearest rank) of ds.
func pct(ds []time.Duration, q float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(math.Ceil(q*float64(len(s)))) - 1
	return s[max(0, min(i, len(s)-1))]
}

func quantileLine(ds []time.Duration) string {
	if len(ds) == 0 {
		return "no samples"
	}
	return fmt.Sprintf("p50 %s  p90 %s  p99 %s  max %s  (n=%d)", ms(pct(ds, 0.5)), ms(pct(ds, 0.9)), ms(pct(ds, 0.99)),
		ms(pct(ds, 1)), len(ds))
}

// unknown is a duration not measured.
const unknown = time.Duration(math.MinInt64)

// ms prints a duration in milliseconds, "–" when unknown. A client may
// see a value a little before the benchmark's own NATS subscription
// does: the small negative times are real.
func ms(d time.Duration) string {
	if d == unknown {
		return "–"
	}
	return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond))
}

func sec(s float64) time.Duration {
	if math.IsNaN(s) {
		return unknown
	}
	return time.Duration(s * float64(time.Second))
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "NOT met"
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// waitUntil polls cond every interval until it holds, ctx ends or
// timeout passes.
func waitUntil(ctx context.Context, timeout, every time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if ctx.Err() != nil || time.Now().After(deadline) {
			return false
		}
		time.Sleep(every)
	}
	return true
}
