package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vn-ioc/ioc/internal/auth"
	"github.com/vn-ioc/ioc/internal/chlocal"
	"github.com/vn-ioc/ioc/internal/testenv"
	"github.com/vn-ioc/ioc/query"
)

// The test binary doubles as the ioc binary: with IOC_E2E_MAIN=1 it runs
// main, so the durability tests can kill -9 a real server process.
func TestMain(m *testing.M) {
	if os.Getenv("IOC_E2E_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	testenv.Main(m)
}

const e2eTokenKey = "e2e-token-key-0123456789abcdef0123456789"

// node is an ioc serve process.
type node struct {
	t       *testing.T
	args    []string
	cmd     *exec.Cmd
	url     string
	logPath string
}

// startNode starts a node on the ClickHouse at chAddr (native) and
// chHTTPAddr (HTTP; "" for the default, port 8123 of the native host).
func startNode(t *testing.T, dataDir, chAddr, chHTTPAddr, database string) *node {
	t.Helper()
	port, err := chlocal.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	n := &node{t: t, url: fmt.Sprintf("http://127.0.0.1:%d", port), logPath: filepath.Join(dataDir, "node.log"),
		args: []string{"serve", "--http-addr", fmt.Sprintf("127.0.0.1:%d", port), "--data-dir", dataDir, "--nats-port", "-1",
			"--clickhouse-addr", chAddr, "--clickhouse-database", database, "--writer-flush", "100ms"}}
	if chHTTPAddr != "" {
		n.args = append(n.args, "--clickhouse-http-addr", chHTTPAddr)
	}
	n.start()
	t.Cleanup(func() {
		if n.cmd != nil && n.cmd.ProcessState == nil {
			_ = n.cmd.Process.Signal(syscall.SIGTERM)
			_ = n.cmd.Wait()
		}
	})
	return n
}

func (n *node) start() {
	n.t.Helper()
	logf, err := os.OpenFile(n.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		n.t.Fatal(err)
	}
	n.cmd = exec.Command(os.Args[0], n.args...)
	n.cmd.Env = append(os.Environ(), "IOC_E2E_MAIN=1", "IOC_TOKEN_KEY="+e2eTokenKey, "IOC_PSEUDONYM_KEY=e2e-pseudonym-key-0123")
	n.cmd.Stdout, n.cmd.Stderr = logf, logf
	if err := n.cmd.Start(); err != nil {
		n.t.Fatal(err)
	}
	testenv.Eventually(n.t, 60*time.Second, "node ready", func() (bool, error) {
		resp, err := http.Get(n.url + "/readyz")
		if err != nil {
			return false, err
		}
		resp.Body.Close()
		return resp.StatusCode == 200, fmt.Errorf("readyz %d", resp.StatusCode)
	})
}

// problems returns the node log's last warnings and errors (at most max
// lines), for a failure message: the log itself is in the test's temporary
// folder, gone once the test ends.
func (n *node) problems(max int) string {
	b, err := os.ReadFile(n.logPath)
	if err != nil {
		return "node log: " + err.Error()
	}
	var lines []string
	for l := range strings.Lines(string(b)) {
		if strings.Contains(l, "level=WARN") || strings.Contains(l, "level=ERROR") {
			lines = append(lines, strings.TrimRight(l, "\n"))
		}
	}
	if len(lines) == 0 {
		return "no warning or error in the node log"
	}
	head := fmt.Sprintf("the node log's %d warnings and errors", len(lines))
	if len(lines) > max {
		head += fmt.Sprintf(", the last %d", max)
		lines = lines[len(lines)-max:]
	}
	return head + ":\n" + strings.Join(lines, "\n")
}

func (n *node) kill9() {
	_ = n.cmd.Process.Signal(syscall.SIGKILL)
	_ = n.cmd.Wait()
}

// loader sends dossier.received events with unique ids and remembers each
// batch until a 202 says every event of it is stored (accepted or duplicate).
type loader struct {
	url, token string
	mu         sync.Mutex
	seq        int
	stored     map[string]bool
	unsure     [][]map[string]any
}

func newLoader(t *testing.T, url string) *loader {
	is, err := auth.NewIssuer([]byte(e2eTokenKey))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := is.Issue(auth.Claims{Role: auth.RoleIngest, Source: "e2e/one-stop"}, "e2e", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return &loader{url: url, token: tok, stored: map[string]bool{}}
}

func (l *loader) next(n int) []map[string]any {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]map[string]any, n)
	base := time.Date(2025, 8, 4, 8, 0, 0, 0, time.FixedZone("ICT", 7*3600))
	for i := range out {
		l.seq++
		out[i] = map[string]any{"specversion": "1.0", "id": fmt.Sprintf("ev-%07d", l.seq), "source": "e2e/one-stop",
			"type": "vn.ioc.dossier.received", "subject": fmt.Sprintf("HS-%07d", l.seq),
			"time": base.Add(time.Duration(l.seq) * time.Second).Format(time.RFC3339),
			"data": map[string]any{"procedure_code": "TP-001", "channel": "online", "unit": "26740",
				"due_at": base.Add(72 * time.Hour).Format(time.RFC3339)}}
	}
	return out
}

// send posts one batch; it reports whether every event is now stored.
func (l *loader) send(ctx context.Context, url string, evs []map[string]any) bool {
	body, _ := json.Marshal(evs)
	req, _ := http.NewRequestWithContext(ctx, "POST", url+"/api/v1/events", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/cloudevents-batch+json")
	req.Header.Set("Authorization", "Bearer "+l.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	var r struct {
		Accepted, Duplicates int
		Rejected             []struct{ Index int }
	}
	if resp.StatusCode != 202 || json.NewDecoder(resp.Body).Decode(&r) != nil || len(r.Rejected) > 0 {
		return false
	}
	l.mu.Lock()
	for _, ev := range evs {
		l.stored[ev["id"].(string)] = true
	}
	l.mu.Unlock()
	return r.Accepted+r.Duplicates == len(evs)
}

// run sends batches until ctx ends; failed batches are kept for later.
func (l *loader) run(ctx context.Context, url func() string) {
	for ctx.Err() == nil {
		evs := l.next(100)
		if !l.send(ctx, url(), evs) {
			l.mu.Lock()
			l.unsure = append(l.unsure, evs)
			l.mu.Unlock()
			time.Sleep(20 * time.Millisecond) // the node is down: do not spin
		}
	}
}

// resend sends every unsure batch again until it is stored (idempotent).
func (l *loader) resend(t *testing.T, url string) {
	t.Helper()
	l.mu.Lock()
	batches := l.unsure
	l.unsure = nil
	l.mu.Unlock()
	for _, b := range batches {
		testenv.Eventually(t, 60*time.Second, "resend", func() (bool, error) { return l.send(context.Background(), url, b), nil })
	}
}

func (l *loader) total() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.seq
}

// checkExactlyOnce waits until ClickHouse holds every event once.
func checkExactlyOnce(t *testing.T, chAddr, database string, want int) {
	t.Helper()
	ctx := context.Background()
	db, err := query.Open(ctx, query.Config{Addr: chAddr, Database: database})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	q := func(sql string) uint64 {
		var n uint64
		if err := db.Conn.QueryRow(ctx, strings.ReplaceAll(sql, "DB.", database+".")).Scan(&n); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		return n
	}
	// A block becomes visible in the raw table a moment before the
	// materialized view's state rows: poll until both hold every event.
	testenv.Eventually(t, 120*time.Second, "every event in ClickHouse", func() (bool, error) {
		raw := q("SELECT uniqExact(id) FROM DB.dossier_events")
		state := q("SELECT count() FROM DB.dossiers")
		return raw == uint64(want) && state == uint64(want), fmt.Errorf("%d distinct events and %d dossiers of %d", raw, state, want)
	})
	if n := q("SELECT count() FROM DB.dossier_events FINAL"); n != uint64(want) {
		t.Fatalf("FINAL counts %d events, want %d", n, want)
	}
	if n := q("SELECT count() FROM DB.dossiers WHERE events != 1"); n != 0 {
		t.Fatalf("%d dossiers count an event twice", n)
	}
	t.Logf("%d events, each exactly once (%d raw rows before merges)", want, q("SELECT count() FROM DB.dossier_events"))
}

func TestKill9UnderLoadLosesNothingCountsNothingTwice(t *testing.T) {
	if testing.Short() {
		t.Skip("durability test")
	}
	chAddr := testenv.ClickHouseAddr(t)
	database := "e2e_kill_" + testenv.RandomHex(4)
	n := startNode(t, t.TempDir(), chAddr, testenv.ClickHouseHTTPAddr(t), database)
	l := newLoader(t, n.url)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { l.run(ctx, func() string { return n.url }); close(done) }()
	// Kill at a random moment under sustained load.
	time.Sleep(time.Duration(1000+rand.IntN(2000)) * time.Millisecond)
	n.kill9()
	t.Logf("killed -9 after %d events sent", l.total())
	time.Sleep(300 * time.Millisecond)
	n.start()
	time.Sleep(time.Second) // keep the load going on the restarted node
	cancel()
	<-done
	l.resend(t, n.url)
	checkExactlyOnce(t, chAddr, database, l.total())
}

func TestClickHouseRestartMidLoadLosesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("durability test")
	}
	testenv.ClickHouseAddr(t) // skip or fail clearly when ClickHouse is missing
	ctx := context.Background()
	ch, err := chlocal.Start(ctx, chlocal.Options{Dir: t.TempDir(), DieWithParent: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ch.Stop() })
	database := "e2e_chrestart"
	n := startNode(t, t.TempDir(), ch.Addr(), ch.HTTPAddr(), database)
	l := newLoader(t, n.url)
	lctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { l.run(lctx, func() string { return n.url }); close(done) }()
	time.Sleep(time.Second)
	ch.Kill()
	t.Logf("ClickHouse killed after %d events sent; intake goes on into JetStream", l.total())
	time.Sleep(2 * time.Second)
	ch, err = ch.Restart(ctx)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	cancel()
	<-done
	l.resend(t, n.url)
	checkExactlyOnce(t, ch.Addr(), database, l.total())
}
