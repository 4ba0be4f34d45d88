// Package testenv starts the real servers integration tests need: a private
// ClickHouse (from the installed clickhouse-server, or the one named by
// IOC_TEST_CLICKHOUSE_ADDR) and an embedded NATS JetStream server. Without
// ClickHouse a test is skipped with a clear message, except under CI=true,
// where it fails: CI must never pass by skipping.
package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/vn-ioc/ioc/internal/chlocal"
	"github.com/vn-ioc/ioc/internal/natsembed"
	"github.com/vn-ioc/ioc/query"
)

var (
	chOnce     sync.Once
	chServer   *chlocal.Supervised
	chCrashes  atomic.Int32
	chAddr     string
	chHTTPAddr string
	chErr      error
	chDir      string
)

// Main runs the package's tests and stops the shared ClickHouse afterwards.
// Use it from TestMain: func TestMain(m *testing.M) { testenv.Main(m) }.
func Main(m *testing.M) {
	code := m.Run()
	stopCluster(code != 0)
	if chServer != nil {
		chServer.Stop()
		if chCrashes.Load() == 0 {
			os.RemoveAll(chDir)
		} else {
			fmt.Fprintf(os.Stderr, "testenv: the test ClickHouse exited by itself %d time(s); its logs are kept in %s\n", chCrashes.Load(), filepath.Join(chDir, "log"))
		}
	}
	os.Exit(code)
}

// ClickHouseAddr returns the address of a real ClickHouse for this test
// process, starting a private one on first use.
func ClickHouseAddr(t testing.TB) string {
	t.Helper()
	chOnce.Do(func() {
		if a := os.Getenv("IOC_TEST_CLICKHOUSE_ADDR"); a != "" {
			chAddr = a
			chHTTPAddr = os.Getenv("IOC_TEST_CLICKHOUSE_HTTP_ADDR") // "": port 8123 of the same host
			return
		}
		if _, _, err := chlocal.Binary(); err != nil {
			chErr = err
			return
		}
		chDir, chErr = os.MkdirTemp("", "ioc-test-ch-")
		if chErr != nil {
			return
		}
		// Supervised: ClickHouse 18.16 has been seen to crash (a segmentation
		// fault) under these tests' load; it is started again on the same
		// port and data, said loudly, and its logs are kept.
		// Its log is at level debug, so that a crash can be traced to the
		// statements of the thread that crashed, which are printed.
		chServer, chErr = chlocal.Supervise(context.Background(), chlocal.Options{Dir: chDir, LogLevel: "debug", DieWithParent: true}, func(exit, restarted error) {
			chCrashes.Add(1)
			fmt.Fprintf(os.Stderr, "testenv: the test ClickHouse exited by itself (%v); started again: %v; logs in %s\n",
				exit, restarted, filepath.Join(chDir, "log"))
			thread, entries, ok, err := chlocal.CrashContext(chDir, 8)
			switch {
			case err != nil:
				fmt.Fprintf(os.Stderr, "testenv: reading its logs: %v\n", err)
			case ok:
				fmt.Fprintf(os.Stderr, "testenv: thread %s crashed; its last %d log entries:\n", thread, len(entries))
				for _, e := range entries {
					fmt.Fprintf(os.Stderr, "testenv:   %s\n", e)
				}
			}
		})
		if chErr == nil {
			chAddr = chServer.Addr()
			chHTTPAddr = chServer.HTTPAddr()
		}
	})
	if chErr != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("ClickHouse is required under CI: %v", chErr)
		}
		t.Skipf("no ClickHouse for integration tests: %v (run `make test`, which installs it)", chErr)
	}
	return chAddr
}

// ClickHouseHTTPAddr is the HTTP interface of the test ClickHouse ("" when
// it is the default port 8123 of the ClickHouseAddr host).
func ClickHouseHTTPAddr(t testing.TB) string {
	ClickHouseAddr(t)
	return chHTTPAddr
}

// ClickHouse returns a config for a fresh, migrated database of its own on
// the test ClickHouse, dropped when the test ends.
//
// With IOC_TEST_CLUSTER=1 it is a database on the test cluster instead
// (ClusterClickHouse): the tests that use it then run in cluster mode.
func ClickHouse(t testing.TB) (*query.DB, query.Config) {
	t.Helper()
	if OnCluster() {
		return ClusterClickHouse(t)
	}
	return migrated(t, query.Config{Addr: ClickHouseAddr(t), HTTPAddr: chHTTPAddr, Database: "test_" + RandomHex(6)})
}

// OnCluster says whether IOC_TEST_CLUSTER=1 asks the tests to run on the
// test cluster.
func OnCluster() bool { return os.Getenv("IOC_TEST_CLUSTER") == "1" }

// ClusterClickHouse is ClickHouse on the test cluster: a fresh database
// migrated in cluster mode through its first server, dropped on every
// server when the test ends.
func ClusterClickHouse(t testing.TB) (*query.DB, query.Config) {
	t.Helper()
	c := Cluster(t)
	return migrated(t, query.Config{Addr: c.Servers[0].Addr(), HTTPAddr: c.Servers[0].HTTPAddr(),
		Database: "test_" + RandomHex(6), Cluster: ClusterName})
}

func migrated(t testing.TB, cfg query.Config) (*query.DB, query.Config) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	db, err := query.Open(ctx, cfg)
	for err != nil && chServer != nil && ctx.Err() == nil {
		// The supervised server may be starting again after a crash.
		time.Sleep(250 * time.Millisecond)
		db, err = query.Open(ctx, cfg)
	}
	if err != nil {
		t.Fatalf("open clickhouse: %v", err)
	}
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		drop := "DROP DATABASE IF EXISTS " + cfg.Database
		if cfg.Cluster != "" {
			drop += " ON CLUSTER " + cfg.Cluster
		}
		_ = db.Conn.Exec(ctx, drop)
		db.Close()
	})
	return db, cfg
}

// NATS starts an embedded JetStream server on a random port, stopped when
// the test ends, and returns it with a connection.
func NATS(t testing.TB) (*server.Server, *nats.Conn) {
	t.Helper()
	s, err := natsembed.Start(natsembed.Options{StoreDir: filepath.Join(t.TempDir(), "nats"), Port: -1})
	if err != nil {
		t.Fatalf("start nats: %v", err)
	}
	t.Cleanup(s.Shutdown)
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatalf("connect nats: %v", err)
	}
	t.Cleanup(nc.Close)
	return s, nc
}

// RandomHex returns n random bytes as hex.
func RandomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

// Eventually polls cond every 20ms until it holds or the timeout passes.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last error
	for {
		ok, err := cond()
		if ok {
			return
		}
		last = err
		if time.Now().After(deadline) {
			if last != nil {
				t.Fatalf("%s: not reached within %v: %v", what, timeout, last)
			}
			t.Fatalf("%s: not reached within %v", what, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Errorf is fmt.Errorf, for conditions.
var Errorf = fmt.Errorf

// AwayFromMidnight waits, when local midnight in Asia/Ho_Chi_Minh (UTC+7,
// no daylight saving) is less than margin away, until it has passed: a
// test that sends events now and reads them back in the window "today"
// must not see the day turn between the two.
func AwayFromMidnight(t testing.TB, margin time.Duration) {
	t.Helper()
	if d := pastMidnight(time.Now(), margin); d > 0 {
		t.Logf("waiting %v for midnight in Ho Chi Minh City to pass", d.Round(time.Second))
		time.Sleep(d)
	}
}

// pastMidnight is how long to wait at now so that the next midnight in
// Ho Chi Minh City is behind by 2 s, when it is less than margin ahead; 0
// otherwise.
func pastMidnight(now time.Time, margin time.Duration) time.Duration {
	ict := time.FixedZone("ICT", 7*3600)
	y, m, d := now.In(ict).Date()
	left := time.Date(y, m, d+1, 0, 0, 0, 0, ict).Sub(now)
	if left >= margin {
		return 0
	}
	return left + 2*time.Second
}
