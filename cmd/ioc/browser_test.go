package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vn-ioc/ioc/internal/auth"
	"github.com/vn-ioc/ioc/internal/sim"
	"github.com/vn-ioc/ioc/internal/testenv"
	"github.com/vn-ioc/ioc/web"
)

// TestBrowserWallTabletConsole drives the web UI in a real browser (Debian's
// chromium, through playwright-core) against a real node fed by the
// simulated city: web/e2e/browser.mjs checks the city wall, the leader's
// tablet and the analysts' console, and takes screenshots (into
// web/e2e/screenshots, which docs/ui.md shows, with
// IOC_UPDATE_SCREENSHOTS=1). Without chromium, Node.js or a built UI the
// test is skipped with a clear message, except under CI=true, where it
// fails: `make test` installs and builds all of them.
func TestBrowserWallTabletConsole(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test")
	}
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	tools := browserTools(root)
	if len(tools.missing) > 0 {
		msg := "browser test needs " + strings.Join(tools.missing, "; ") + " (run `make test`, which installs and builds them)"
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}

	chAddr := testenv.ClickHouseAddr(t)
	n := startNode(t, t.TempDir(), chAddr, testenv.ClickHouseHTTPAddr(t), "e2e_browser_"+testenv.RandomHex(4))
	is, err := auth.NewIssuer([]byte(e2eTokenKey))
	if err != nil {
		t.Fatal(err)
	}
	tok := func(c auth.Claims, sub string) string {
		s, err := is.Issue(c, sub, 2*time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	admin := tok(auth.Claims{Role: auth.RoleAdmin}, "e2e-admin")

	stopCameras := feedSimulatedCity(t, n.url, admin)
	defer stopCameras()

	out := filepath.Join(root, "web", "e2e", "out")
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	heap := os.Getenv("IOC_E2E_HEAP_SECONDS")
	if heap == "" {
		heap = "60"
	}
	// The screenshots docs/ui.md shows are rewritten only when asked
	// (IOC_UPDATE_SCREENSHOTS=1): a test run leaves the clone as it was.
	shots := t.TempDir()
	if os.Getenv("IOC_UPDATE_SCREENSHOTS") == "1" {
		shots = filepath.Join(root, "web", "e2e", "screenshots")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, tools.node, filepath.Join(root, "web", "e2e", "browser.mjs"))
	cmd.Dir = filepath.Join(root, "web")
	cmd.Env = append(os.Environ(),
		"IOC_E2E_URL="+n.url,
		"IOC_E2E_CHROMIUM="+tools.chromium,
		"IOC_E2E_ARROW="+tools.arrow,
		"IOC_E2E_OUT="+out,
		"IOC_E2E_SCREENSHOTS="+shots,
		"IOC_E2E_HEAP_SECONDS="+heap,
		"IOC_E2E_TOKEN_ADMIN="+admin,
		"IOC_E2E_TOKEN_ANALYST="+tok(auth.Claims{Role: auth.RoleAnalyst}, "e2e-analyst"),
		"IOC_E2E_TOKEN_LEADER="+tok(auth.Claims{Role: auth.RoleLeader, Unit: "26740"}, "e2e-leader"),
		"IOC_E2E_TOKEN_WALL="+tok(auth.Claims{Role: auth.RoleWall, Dashboard: "city"}, "e2e-wall"),
	)
	// The script and the browser it starts are one process group, ended
	// together whatever happens.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	var output bytes.Buffer
	logf, err := os.Create(filepath.Join(out, "browser.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd.Stdout = io.MultiWriter(&output, logf)
	cmd.Stderr = cmd.Stdout
	start := time.Now()
	err = cmd.Run()
	if cmd.Process != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // a browser left behind
	}
	if err != nil {
		if b, rerr := os.ReadFile(n.logPath); rerr == nil { // kept for a look after the test
			_ = os.WriteFile(filepath.Join(out, "node.log"), b, 0o644)
		}
		t.Fatalf("web/e2e/browser.mjs: %v after %s\n%s\n%s", err, time.Since(start).Round(time.Second), output.String(), n.problems(40))
	}
	t.Logf("web/e2e/browser.mjs passed in %s:\n%s", time.Since(start).Round(time.Second), output.String())
}

type browserToolset struct {
	node, chromium, arrow string
	missing               []string
}

// browserTools finds what the browser test runs, and names what is missing.
func browserTools(root string) browserToolset {
	var b browserToolset
	b.chromium = os.Getenv("IOC_E2E_CHROMIUM")
	if b.chromium == "" {
		b.chromium = "/usr/bin/chromium"
	}
	if fi, err := os.Stat(b.chromium); err != nil || fi.IsDir() {
		b.missing = append(b.missing, b.chromium+" (Debian's chromium: deploy/local/setup.sh --test)")
	}
	if p, err := exec.LookPath("node"); err == nil {
		b.node = p
	} else {
		b.missing = append(b.missing, "node (Node.js)")
	}
	if _, err := os.Stat(filepath.Join(root, "web", "node_modules", "playwright-core", "package.json")); err != nil {
		b.missing = append(b.missing, "playwright-core in web/node_modules (deploy/local/ui.sh)")
	}
	if _, built := web.Dist(); !built {
		b.missing = append(b.missing, "a built UI in web/dist, embedded when the test was compiled (deploy/local/ui.sh)")
	}
	b.arrow = filepath.Join(root, "query", "sqlapi", "testdata", "arrowcheck")
	if _, err := os.Stat(filepath.Join(b.arrow, "node_modules", "apache-arrow", "package.json")); err != nil {
		b.missing = append(b.missing, "apache-arrow in "+b.arrow+"/node_modules (deploy/local/setup.sh --test)")
	}
	return b
}

// feedSimulatedCity feeds the node the simulated city — a week of
// dossiers, feedback and surveys of the 168 wards (at a tenth of the city's
// daily numbers, so it fits in a few seconds), then the last two minutes of
// its 721 cameras — and waits until the node has written it all, so the
// pages open on realistic values. The cameras then go on in real time (a
// detection every 30 s each) until the returned function stops them: the
// wall's camera tiles stay current, and the dossier, feedback and survey
// tiles hold still until the browser script sends events itself.
func feedSimulatedCity(t *testing.T, url, token string) (stop func()) {
	t.Helper()
	set, cal := hcmc(t)
	const none = 1 // a day: cameras all but alone (zero means the generator's default)
	quiet := slog.New(slog.NewTextHandler(tlog{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	now := time.Now().Truncate(time.Second)
	replay := func(what string, cfg sim.Config) {
		g, err := sim.NewGenerator(cfg, set, cal)
		if err != nil {
			t.Fatal(err)
		}
		rc := sim.RunConfig{Rate: 20000, BatchSize: 2000, Unpaced: true, Duration: 60 * time.Second}
		st, err := sim.Run(context.Background(), rc, until{g, now}, &sim.HTTPSender{URL: url, Token: token}, quiet)
		if err != nil {
			t.Fatalf("simulator (%s): %v", what, err)
		}
		if st.Accepted == 0 || st.Rejected > 0 {
			t.Fatalf("simulator (%s): %d events sent, %d accepted, %d rejected", what, st.Sent, st.Accepted, st.Rejected)
		}
		t.Logf("simulator: %s, %d events accepted in %s", what, st.Accepted, st.Elapsed.Round(time.Millisecond))
	}
	replay("a week of dossiers, feedback and surveys", sim.Config{Seed: 7, Start: now.Add(-7 * 24 * time.Hour), Cameras: -1,
		DossiersPerDay: 500, FeedbackPerDay: 300})
	replay("two minutes of the cameras", sim.Config{Seed: 8, Start: now.Add(-2 * time.Minute), DossiersPerDay: none, FeedbackPerDay: none,
		DetectionEvery: 30 * time.Second, NoIndicators: true})
	// Written, then counted: the pages open on the KPI values of every
	// event sent (the tiles are checked against the API, which answers
	// from the views for a value the engine has not published yet).
	testenv.Eventually(t, 120*time.Second, "the node writes and counts the simulated events", func() (bool, error) {
		req, _ := http.NewRequest("GET", url+"/api/v1/ingest/status", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false, err
		}
		defer resp.Body.Close()
		var s struct {
			Pending map[string]uint64
			KPI     struct {
				Leading  bool
				Families map[string]struct {
					CaughtUp bool `json:"caught_up"`
				}
			}
		}
		if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
			return false, err
		}
		var pending uint64
		for _, n := range s.Pending {
			pending += n
		}
		if len(s.Pending) == 0 || pending > 0 {
			return false, fmt.Errorf("events not written: pending %v", s.Pending)
		}
		var behind []string
		for f, st := range s.KPI.Families {
			if !st.CaughtUp {
				behind = append(behind, f)
			}
		}
		slices.Sort(behind)
		if !s.KPI.Leading || len(s.KPI.Families) == 0 || len(behind) > 0 {
			return false, fmt.Errorf("KPI engine leading %v, families not caught up: %v", s.KPI.Leading, behind)
		}
		return true, nil
	})
	g, err := sim.NewGenerator(sim.Config{Seed: 9, Start: time.Now(), DossiersPerDay: none, FeedbackPerDay: none,
		DetectionEvery: 30 * time.Second, NoIndicators: true}, set, cal)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = sim.Run(ctx, sim.RunConfig{Rate: 1000, FlushEvery: 250 * time.Millisecond}, g, &sim.HTTPSender{URL: url, Token: token}, quiet)
	}()
	return func() { cancel(); <-done }
}

// until ends a source before its first event after end.
type until struct {
	src sim.Source
	end time.Time
}

func (u until) Next() (sim.Event, bool) {
	ev, ok := u.src.Next()
	if !ok || ev.Time.After(u.end) {
		return sim.Event{}, false
	}
	return ev, true
}

// tlog writes to the test's log.
type tlog struct{ t *testing.T }

func (w tlog) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}
