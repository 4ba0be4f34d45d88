package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/vn-ioc/ioc/ingest/refdata"
	"github.com/vn-ioc/ioc/internal/app"
	"github.com/vn-ioc/ioc/internal/auth"
	"github.com/vn-ioc/ioc/internal/sim"
	"github.com/vn-ioc/ioc/internal/worktime"
)

// simFlags are the simulator's settings.
type simFlags struct {
	url, token, dataDir, scenario, start string
	seed                                 uint64
	rate, speed, dossiersPerDay          float64
	feedbackPerDay                       float64
	invalid, duplicate                   float64
	batch, cameras                       int
	duration                             time.Duration
	maxEvents                            int64
	list                                 bool
	closeLeftOpen                        bool
	// history, set by the demo on a fresh data folder: the live city
	// starts this long ago, replayed at catchUpRate (cameras only for
	// their last historyCameras).
	history, historyCameras time.Duration
	catchUpRate             float64
}

// bindSim binds the simulator's flags; standalone adds those that say which
// node to feed (the demo feeds its own).
func bindSim(fs *flag.FlagSet, e env, standalone bool) *simFlags {
	s := &simFlags{}
	if standalone {
		s.bindTarget(fs, e)
	}
	fs.StringVar(&s.scenario, "scenario", "", "play a scenario (a bundled name or a file) instead of the live city; -list shows the bundled ones")
	fs.BoolVar(&s.list, "list", false, "list the bundled scenarios and exit")
	fs.Uint64Var(&s.seed, "seed", 1, "random seed: the same seed and flags give the same events")
	fs.StringVar(&s.start, "start", "", "simulated start time, RFC 3339 (default now)")
	fs.Float64Var(&s.rate, "rate", 500, "most events per second sent")
	fs.IntVar(&s.batch, "batch", 500, "events per request (≤ 10000)")
	fs.Float64Var(&s.speed, "speed", 1, "simulated seconds per wall second (e.g. 60 replays an hour a minute)")
	fs.DurationVar(&s.duration, "duration", 0, "stop after this long (default: until Ctrl-C)")
	fs.Int64Var(&s.maxEvents, "max-events", 0, "stop after this many events (default: no limit)")
	fs.Float64Var(&s.dossiersPerDay, "dossiers-per-day", 5000, "new dossiers per day, city-wide")
	fs.Float64Var(&s.feedbackPerDay, "feedback-per-day", 3000, "new feedback tickets per day")
	fs.IntVar(&s.cameras, "cameras", 0, "cameras simulated (0: all 721, -1: none)")
	fs.Float64Var(&s.invalid, "invalid-share", 0, "share of deliberately invalid events (exercises rejections)")
	fs.Float64Var(&s.duplicate, "duplicate-share", 0, "share of events sent twice (exercises idempotency)")
	fs.BoolVar(&s.closeLeftOpen, "close-left-open", true, "live city from now: first resolve the dossiers and tickets an earlier run left open (the simulator keeps no state between runs); needs a token that may use the SQL API")
	return s
}

func (s *simFlags) bindTarget(fs *flag.FlagSet, e env) {
	fs.StringVar(&s.url, "url", e.str("IOC_SIM_URL", "http://127.0.0.1:8080"), "base URL of the ioc node to feed (IOC_SIM_URL)")
	fs.StringVar(&s.token, "token", e.str("IOC_SIM_TOKEN", ""), "bearer token (admin, or ingest bound to the sources sent); default: an admin token from the data folder's key (IOC_SIM_TOKEN)")
	fs.StringVar(&s.dataDir, "data-dir", e.str("IOC_DATA_DIR", "data"), "data folder holding the token key (IOC_DATA_DIR)")
}

func (s *simFlags) resolveToken() (string, error) {
	if s.token != "" {
		return s.token, nil
	}
	key, err := app.KeyFromDir(s.dataDir, "token.key")
	if err != nil {
		return "", err
	}
	is, err := auth.NewIssuer(key)
	if err != nil {
		return "", err
	}
	return is.Issue(auth.Claims{Role: auth.RoleAdmin}, "simulator", 30*24*time.Hour)
}

// source builds the live city or a scenario's player.
func (s *simFlags) source() (sim.Source, sim.RunConfig, error) {
	rc := sim.RunConfig{Rate: s.rate, BatchSize: s.batch, Duration: s.duration, MaxEvents: s.maxEvents, Speed: s.speed}
	set, err := refdata.HCMC()
	if err != nil {
		return nil, rc, err
	}
	cal, err := worktime.New(set.Calendar, worktime.Config{})
	if err != nil {
		return nil, rc, err
	}
	if s.scenario != "" {
		sc, err := sim.LoadScenario(s.scenario)
		if err != nil {
			return nil, rc, err
		}
		p, err := sc.Player(s.seed, set, cal)
		if err != nil {
			return nil, rc, err
		}
		rc.Unpaced = true
		return p, rc, nil
	}
	cfg := sim.Config{Seed: s.seed, DossiersPerDay: s.dossiersPerDay, FeedbackPerDay: s.feedbackPerDay,
		Cameras: s.cameras, InvalidShare: s.invalid, DuplicateShare: s.duplicate}
	if s.start != "" {
		t, err := time.Parse(time.RFC3339, s.start)
		if err != nil {
			return nil, rc, fmt.Errorf("-start %q: want RFC 3339", s.start)
		}
		cfg.Start = t
	} else if s.history > 0 {
		now := time.Now().Truncate(time.Second)
		cfg.Start, cfg.CamerasFrom = now.Add(-s.history), now.Add(-s.historyCameras)
		// The simulated clock runs as fast as the catch-up rate lets it
		// until it reaches the wall clock, which it never passes.
		rc.Speed, rc.CatchUpRate = max(rc.Speed, 1e6), s.catchUpRate
	}
	g, err := sim.NewGenerator(cfg, set, cal)
	if err != nil {
		return nil, rc, err
	}
	return g, rc, nil
}

func runSim(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("sim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	s := bindSim(fs, getenv, true)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if s.list {
		fmt.Fprintln(stdout, strings.Join(sim.Scenarios(), "\n"))
		return nil
	}
	tok, err := s.resolveToken()
	if err != nil {
		return err
	}
	src, rc, err := s.source()
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	s.endLeftOpen(ctx, strings.TrimRight(s.url, "/"), tok, log)
	st, err := sim.Run(ctx, rc, src, &sim.HTTPSender{URL: strings.TrimRight(s.url, "/"), Token: tok}, log)
	fmt.Fprintf(stdout, "sent %d events in %s (%.0f/s): %d accepted, %d duplicates, %d rejected\n",
		st.Sent, st.Elapsed.Round(time.Millisecond), st.EventsPerSecond(), st.Accepted, st.Duplicates, st.Rejected)
	if p, ok := src.(*sim.Player); ok && p.Err() != nil {
		return p.Err()
	}
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// endLeftOpen resolves what an earlier run of the live city left open
// (sim.LeftOpen), when this run is the live city from now. A failure is
// logged: the run goes on.
func (s *simFlags) endLeftOpen(ctx context.Context, url, token string, log *slog.Logger) {
	if !s.closeLeftOpen || s.scenario != "" || s.start != "" || s.history > 0 {
		return
	}
	start := time.Now()
	d, t, err := (&sim.LeftOpen{URL: url, Token: token}).Close(ctx, start)
	if err != nil {
		log.Warn("could not end what an earlier run of the simulator left open", "err", err)
		return
	}
	if d+t > 0 {
		log.Info("ended what an earlier run of the simulator left open", "dossiers", d, "tickets", t, "took", time.Since(start).Round(time.Millisecond))
	}
}
