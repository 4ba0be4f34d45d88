package chlocal

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// A supervised server that crashes (SIGKILL) is started again on the same
// port; after Stop it stays down.
func TestSuperviseRestartsAfterCrash(t *testing.T) {
	needBinary(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var restarts, failures atomic.Int32
	sv, err := Supervise(ctx, Options{Dir: t.TempDir()}, func(exit, restarted error) {
		if restarted == nil {
			restarts.Add(1)
		} else {
			failures.Add(1)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	first := sv.Server()
	addr := sv.Addr()
	first.Kill() // as a crash would

	deadline := time.Now().Add(90 * time.Second)
	for sv.Server() == first {
		if time.Now().After(deadline) {
			t.Fatalf("not started again after the crash (%d failed restarts)", failures.Load())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if got := sv.Addr(); got != addr {
		t.Fatalf("restarted on %s, was %s", got, addr)
	}
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("restarted server does not accept connections: %v", err)
	}
	c.Close()
	// The report follows the switch to the new server (on the supervisor's
	// goroutine): wait for it.
	for restarts.Load() == 0 && failures.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if restarts.Load() != 1 {
		t.Fatalf("%d restarts reported, want 1 (%d failed)", restarts.Load(), failures.Load())
	}

	second := sv.Server()
	if err := sv.Stop(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-second.Exited():
	default:
		t.Fatal("Stop returned with the server still running")
	}
	time.Sleep(2 * time.Second)
	if sv.Server() != second || restarts.Load() != 1 {
		t.Fatal("started again after Stop")
	}
}

// A port another process holds is refused at once, with the port named:
// the server would exit, and the wait for its port would take the other
// process for it.
func TestStartRefusesATakenPort(t *testing.T) {
	needBinary(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	s, err := Start(context.Background(), Options{Dir: t.TempDir(), TCPPort: port})
	if err == nil {
		s.Stop()
		t.Fatalf("started on port %d, which another process holds", port)
	}
	if want := "TCP port " + strconv.Itoa(port) + " of the private ClickHouse is taken"; !strings.Contains(err.Error(), want) {
		t.Fatalf("error %q does not say %q", err, want)
	}
}

// A port Start picked that another process takes before the server binds
// it: Start tries again with other ports.
func TestStartPicksOtherPortsWhenOneIsTaken(t *testing.T) {
	needBinary(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	held := l.Addr().(*net.TCPAddr).Port
	var picks atomic.Int32
	freePort = func() (int, error) {
		if picks.Add(1) == 1 {
			return held, nil // taken between the pick and the start
		}
		return FreePort()
	}
	defer func() { freePort = FreePort }()
	s, err := Start(context.Background(), Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatalf("start with the first picked port taken: %v", err)
	}
	defer s.Stop()
	if s.TCPPort == held || s.HTTPPort == held || picks.Load() < 4 {
		t.Fatalf("ports %d and %d after %d picks; the held port was %d", s.TCPPort, s.HTTPPort, picks.Load(), held)
	}
	c, err := net.DialTimeout("tcp", s.Addr(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
}

// needBinary skips the test without clickhouse-server, or fails it under
// CI, which must never pass by skipping.
func needBinary(t *testing.T) {
	t.Helper()
	if _, _, err := Binary(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("clickhouse-server is required under CI: %v", err)
		}
		t.Skipf("no clickhouse-server here: %v", err)
	}
}

// A stale server.pid naming a process that is not this folder's server —
// another ClickHouse, any process after a reboot — is left alone; this
// folder's is stopped.
func TestStopStaleStopsOnlyThisFoldersServer(t *testing.T) {
	dir := t.TempDir()
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh")
	}
	// start runs a shell whose command line is that of a ClickHouse
	// server; the channel closes when it has ended (it is reaped at once:
	// a zombie still answers signal 0).
	start := func(config string) (*exec.Cmd, chan struct{}) {
		t.Helper()
		cmd := &exec.Cmd{Path: sh, Args: []string{"sh", "-c", "trap 'kill $!; exit' TERM; sleep 60 & wait", "clickhouse-server", "--config-file=" + config}}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		t.Cleanup(func() { _ = cmd.Process.Kill(); <-done })
		// Start returns once the child has begun its exec, which can be
		// before the kernel shows the new command line (an empty one
		// meanwhile): such a process is no ClickHouse of any folder yet.
		for i := 0; ; i++ {
			if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", cmd.Process.Pid)); err == nil && strings.Contains(string(b), "clickhouse-server") {
				break
			}
			if i == 500 {
				t.Fatal("the command line of the process never showed")
			}
			time.Sleep(time.Millisecond)
		}
		if err := os.WriteFile(filepath.Join(dir, "server.pid"), []byte(strconv.Itoa(cmd.Process.Pid)), 0o644); err != nil {
			t.Fatal(err)
		}
		return cmd, done
	}
	ended := func(done chan struct{}, within time.Duration) bool {
		select {
		case <-done:
			return true
		case <-time.After(within):
			return false
		}
	}
	_, other := start("/etc/clickhouse-server/config.xml")
	stopStale(dir)
	if ended(other, 500*time.Millisecond) {
		t.Fatal("stopped another ClickHouse")
	}
	_, ours := start(filepath.Join(dir, "config.xml"))
	stopStale(dir)
	if !ended(ours, 5*time.Second) {
		t.Fatal("this folder's server not stopped")
	}
}

// The read-only user takes the name and password asked for (the demo's
// IOC_CLICKHOUSE_READER_USER and _PASSWORD), a password with XML's special
// characters included; it may read and not write. A name that is not one
// is refused before anything starts.
func TestReaderUserAndPassword(t *testing.T) {
	needBinary(t)
	if _, err := Start(context.Background(), Options{Dir: t.TempDir(), ReaderUser: "a<b"}); err == nil || !strings.Contains(err.Error(), `reader user "a<b"`) {
		t.Fatalf("a reader user named a<b: %v", err)
	}
	if _, err := Start(context.Background(), Options{Dir: t.TempDir(), ReaderPassword: "a\x01b"}); err == nil || !strings.Contains(err.Error(), "control characters") {
		t.Fatalf("a reader password with a control character: %v", err)
	}
	const user, password = "city_analysts", `p<&"'>w`
	s, err := Start(context.Background(), Options{Dir: t.TempDir(), ReaderUser: user, ReaderPassword: password, DieWithParent: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	ctx := context.Background()
	as := func(user, password string) driver.Conn {
		conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{s.Addr()}, Auth: clickhouse.Auth{Username: user, Password: password}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return conn
	}
	reader := as(user, password)
	var one uint8
	if err := reader.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil || one != 1 {
		t.Fatalf("SELECT 1 as %s: %d, %v", user, one, err)
	}
	if err := reader.Exec(ctx, "CREATE DATABASE written_by_the_reader"); err == nil || !strings.Contains(err.Error(), "readonly") {
		t.Fatalf("CREATE DATABASE as %s: %v, want a readonly refusal", user, err)
	}
	if err := as("ioc_reader", "ioc_reader").Ping(ctx); err == nil {
		t.Fatal("the default reader user still exists")
	}
}
