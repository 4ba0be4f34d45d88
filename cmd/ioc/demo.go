package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/vn-ioc/ioc/internal/app"
	"github.com/vn-ioc/ioc/internal/auth"
	"github.com/vn-ioc/ioc/internal/chlocal"
	"github.com/vn-ioc/ioc/internal/sim"
	"github.com/vn-ioc/ioc/query/alert"
)

// runDemo runs everything on this machine: a private ClickHouse under the
// data folder (unless IOC_CLICKHOUSE_ADDR names one), a node with embedded
// NATS JetStream, and the simulated city feeding it, until Ctrl-C. A second
// run resumes with the data kept.
func runDemo(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	e := env(getenv)
	n := bindNode(fs, e)
	chPort := fs.Int("clickhouse-port", e.num("IOC_DEMO_CLICKHOUSE_PORT", 19000), "port of the private ClickHouse (IOC_DEMO_CLICKHOUSE_PORT)")
	s := bindSim(fs, e, false)
	noSim := fs.Bool("no-sim", false, "do not start the simulator")
	history := fs.Duration("history", 7*24*time.Hour, "on a fresh data folder, the simulated city starts this long ago and its past is replayed first, as fast as the node takes it (cameras: their last 2 minutes only); 0: start now")
	if err := fs.Parse(args); err != nil {
		return err
	}
	s.dataDir = n.dataDir
	log, err := n.logger(stderr)
	if err != nil {
		return err
	}
	unlock, err := app.LockDataDir(n.dataDir)
	if err != nil {
		return err
	}
	defer unlock()
	if getenv("IOC_CLICKHOUSE_ADDR") == "" && !flagSet(fs, "clickhouse-addr") {
		chLog, err := os.OpenFile(filepath.Join(mkdir(n.dataDir), "clickhouse.out"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return err
		}
		defer chLog.Close()
		fmt.Fprintf(stdout, "starting a private ClickHouse in %s on 127.0.0.1:%d …\n", filepath.Join(n.dataDir, "clickhouse"), *chPort)
		ch, err := chlocal.Supervise(ctx, chlocal.Options{Dir: filepath.Join(n.dataDir, "clickhouse"), TCPPort: *chPort, HTTPPort: *chPort + 1, Log: chLog,
			ReaderUser: n.readerUser, ReaderPassword: n.readerPassword},
			func(exit, restarted error) {
				if restarted == nil {
					log.Warn("the private ClickHouse exited; started it again", "exit", exit, "errors", filepath.Join(n.dataDir, "clickhouse", "log", "err.log"))
				} else {
					log.Error("the private ClickHouse exited and could not be started again; retrying", "exit", exit, "err", restarted)
				}
			})
		if err != nil {
			return fmt.Errorf("%w (the ports are --clickhouse-port or IOC_DEMO_CLICKHOUSE_PORT, and the next one)", err)
		}
		defer func() {
			fmt.Fprintln(stdout, "stopping ClickHouse …")
			ch.Stop()
		}()
		n.chAddr = ch.Addr()
		n.chHTTPAddr = ch.HTTPAddr()
	}
	a, err := app.New(ctx, n.appConfig(log))
	if err != nil {
		return err
	}
	defer a.Close()
	runCtx, stopRun := context.WithCancel(ctx)
	defer stopRun()
	runDone := make(chan error, 1)
	go func() { runDone <- a.Run(runCtx) }()
	// Once the node runs, a failure stops it in order (writers drained, the
	// audit flushed) before the demo ends; one that is only Ctrl-C coming
	// in (a statement cut short) is no failure.
	fail := func(err error) error {
		stopRun()
		rerr := <-runDone
		if ctx.Err() != nil {
			return rerr
		}
		return err
	}

	tokens := map[string]string{}
	for _, c := range []struct {
		name string
		cl   auth.Claims
	}{
		{"admin", auth.Claims{Role: auth.RoleAdmin}},
		{"analyst", auth.Claims{Role: auth.RoleAnalyst}},
		{"ingest (source hcmc/one-stop)", auth.Claims{Role: auth.RoleIngest, Source: "hcmc/one-stop"}},
		{"leader (ward 26740, Sài Gòn)", auth.Claims{Role: auth.RoleLeader, Unit: "26740"}},
		{"wall (dashboard city)", auth.Claims{Role: auth.RoleWall, Dashboard: "city"}},
		{"wall (dashboard ward, 26740)", auth.Claims{Role: auth.RoleWall, Dashboard: "ward", Unit: "26740"}},
	} {
		tok, err := a.Tokens.Issue(c.cl, strings.Fields(c.name)[0], 7*24*time.Hour)
		if err != nil {
			return fail(err)
		}
		tokens[c.name] = tok
	}
	chAddr := n.chAddr
	host, port, _ := strings.Cut(chAddr, ":")
	fmt.Fprintf(stdout, `
ioc is running.
  HTTP API     %[1]s   (health: %[1]s/healthz, readiness: %[1]s/readyz, OpenAPI: %[1]s/api/v1/openapi.yaml)
  websocket    %[8]s/ws   (live KPIs, lists, alerts: docs/websocket.md)
  NATS         %[2]s   (intake subject ioc.ingest.events)
  ClickHouse   %[3]s   (clickhouse-client --host %[4]s --port %[5]s --database %[6]s)
  data folder  %[7]s

Tokens (valid 7 days; more with: go run ./cmd/ioc token --data-dir %[7]s --role analyst):
`, a.URL(), a.NATSURL(), chAddr, host, port, n.chDB, n.dataDir, "ws"+strings.TrimPrefix(a.URL(), "http"))
	for _, name := range []string{"admin", "analyst", "ingest (source hcmc/one-stop)", "leader (ward 26740, Sài Gòn)", "wall (dashboard city)",
		"wall (dashboard ward, 26740)"} {
		fmt.Fprintf(stdout, "  %-30s %s\n", name, tokens[name])
	}
	// The token of a wall goes in the URL's fragment: browsers never send
	// it, so it stays out of server and proxy logs.
	fmt.Fprintf(stdout, `
Web UI (sign in to the tablet and the console with the leader's or analyst's token above):
  city wall    %[1]s/wall/city#token=%[2]s
  ward wall    %[1]s/wall/ward#token=%[3]s
  tablet       %[1]s/tablet
  console      %[1]s/console
`, a.URL(), tokens["wall (dashboard city)"], tokens["wall (dashboard ward, 26740)"])
	fmt.Fprintf(stdout, `
Try (ADMIN, WALL: the tokens above):
  curl -s -H "Authorization: Bearer $ADMIN" %[1]s/api/v1/ingest/status
  curl -s -H "Authorization: Bearer $WALL" "%[1]s/api/v1/kpis/camera.online_ratio?window=now"
  curl -s -H "Authorization: Bearer $ADMIN" "%[1]s/api/v1/kpis/dossier.received/sql?unit=79&window=month"
  curl -s -H "Authorization: Bearer $WALL" "%[1]s/api/v1/alerts"   (open alerts: docs/alerts.md)
  clickhouse-client --port %[2]s -q "SELECT last_type, count() FROM %[3]s.dossiers GROUP BY last_type"

Press Ctrl-C to stop.
`, a.URL(), port, n.chDB)

	simDone := make(chan error, 1)
	if *noSim {
		simDone <- nil
		// A hold an interrupted replay left.
		if err := (&replayHold{st: a.AlertStore(), log: log}).start(ctx, false); err != nil {
			return fail(err)
		}
	} else {
		s.url, s.token = a.URL(), tokens["admin"]
		replay := false
		if *history > 0 && s.scenario == "" && s.start == "" {
			if replay, err = noEvents(ctx, a); err != nil {
				return fail(err)
			}
			if replay {
				// The cameras' last 2 minutes: under the 10 minutes after
				// which a camera heard from counts as silent (alert rule
				// camera.silent), so the replay raises no such alert.
				s.history, s.historyCameras, s.catchUpRate = *history, 2*time.Minute, max(s.rate, 5000)
				fmt.Fprintf(stdout, "The data folder is new: the simulator replays the city's last %s first (progress: \"sim progress\" lines, sim_time); the windows fill as it goes, and the alert rules are held until it is done.\n\n", span(*history))
			}
		}
		hold := &replayHold{st: a.AlertStore(), log: log}
		if err := hold.start(ctx, replay); err != nil {
			return fail(err)
		}
		src, rc, err := s.source()
		if err != nil {
			return fail(err)
		}
		if replay {
			rc.CaughtUp = func(st sim.Stats) {
				log.Info("replay sent; the alert rules resume once it is stored and the KPIs caught up", "events", st.Sent, "took", st.Elapsed.Round(time.Second))
				go func() {
					sctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
					err := a.Settle(sctx)
					cancel()
					if ctx.Err() != nil {
						return
					}
					if err != nil {
						log.Warn("the replay is not all stored, or the KPIs not caught up, after 10 minutes; lifting the hold on the alert rules anyway", "err", err)
					}
					hold.lift(ctx)
				}()
			}
		}
		s.endLeftOpen(ctx, s.url, s.token, log.With("component", "sim"))
		go func() {
			st, err := sim.Run(ctx, rc, src, &sim.HTTPSender{URL: s.url, Token: s.token}, log.With("component", "sim"))
			log.Info("simulator stopped", "sent", st.Sent, "accepted", st.Accepted, "duplicates", st.Duplicates, "rejected", st.Rejected)
			simDone <- err
		}()
	}
	err = <-runDone
	if serr := <-simDone; serr != nil && ctx.Err() == nil {
		log.Warn("simulator", "err", serr)
	}
	return err
}

func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) {
		if f.Name == name {
			set = true
		}
	})
	return set
}

func mkdir(dir string) string {
	_ = os.MkdirAll(dir, 0o755)
	return dir
}

// demoHolder is the name a replay's hold on the alert rules is set by.
const demoHolder = "ioc demo"

// replayHold holds the alert rules while a replay of the simulated city's
// past comes in: judged against the wall clock halfway through the
// replay, every ticket resolved later in the week is overdue.
type replayHold struct {
	st  *alert.Store
	log *slog.Logger

	mu     sync.Mutex
	lifted bool
}

// start sets the hold for a replay and renews it every 20 minutes until
// it is lifted (it ends by itself an hour after the last renewal, should
// the demo stop). Without a replay it lifts a hold an earlier replay left
// (a demo stopped during its replay); a hold set by someone else stays.
func (r *replayHold) start(ctx context.Context, replay bool) error {
	if !replay {
		r.lift(ctx)
		return nil
	}
	if err := r.renew(ctx); err != nil {
		return err
	}
	go func() {
		t := time.NewTicker(20 * time.Minute)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if err := r.renew(ctx); err != nil && ctx.Err() == nil {
					r.log.Warn("renew the hold on the alert rules", "err", err)
				}
			}
		}
	}()
	return nil
}

func (r *replayHold) renew(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.lifted {
		return nil
	}
	if h, err := r.st.Hold(ctx); err == nil && h.InForce(time.Now()) && h.By != demoHolder {
		return nil // an admin's hold: theirs to lift
	}
	_, err := r.st.SetHold(ctx, alert.Hold{Reason: "replaying the simulated city's past", By: demoHolder, Until: time.Now().Add(time.Hour)})
	return err
}

// lift ends the replay's hold, unless the hold now in force was set by
// someone else.
func (r *replayHold) lift(ctx context.Context) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lifted = true
	h, err := r.st.Hold(ctx)
	if err == nil && (h == nil || h.By != demoHolder) {
		return
	}
	if err == nil {
		err = r.st.LiftHold(ctx)
	}
	if err != nil {
		r.log.Warn("lift the hold on the alert rules", "err", err)
		return
	}
	r.log.Info("the replay's hold on the alert rules lifted", "since", h.Since)
}

// noEvents reports whether the node's database holds no event of the
// simulated city's families yet (a new data folder).
func noEvents(ctx context.Context, a *app.App) (bool, error) {
	db := a.DB()
	var n uint64
	q := fmt.Sprintf("SELECT (SELECT count() FROM %s) + (SELECT count() FROM %s) + (SELECT count() FROM %s)",
		db.Table("dossier_events"), db.Table("feedback_events"), db.Table("camera_events"))
	if err := db.Conn.QueryRow(ctx, q).Scan(&n); err != nil {
		return false, fmt.Errorf("counting the events already stored: %w", err)
	}
	return n == 0, nil
}

// span says a duration in days when it is whole days.
func span(d time.Duration) string {
	if d%(24*time.Hour) == 0 {
		if d == 24*time.Hour {
			return "day"
		}
		return fmt.Sprintf("%d days", d/(24*time.Hour))
	}
	return d.String()
}
