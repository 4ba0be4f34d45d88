package query_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/vn-ioc/ioc/internal/testenv"
	"github.com/vn-ioc/ioc/query"
)

// Inserts whose context is cancelled the moment they return, as a deferred
// cancel or an errgroup does, never close a connection of the pool: the
// statements that run next on the same connection all succeed.
func TestInsertLeavesItsConnectionUsable(t *testing.T) {
	db, table := probe(t, 2)
	ctx := context.Background()
	insert := func(n uint32) error {
		ictx, cancel := context.WithCancel(ctx)
		defer cancel()
		return db.Insert(ictx, "INSERT INTO "+table+" (n)", func(b driver.Batch) error { return b.Append(n) })
	}
	const rounds, workers = 500, 4
	var wg sync.WaitGroup
	errs := make(chan error, rounds*workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range rounds {
				if err := insert(uint32(w*rounds + i)); err != nil {
					errs <- err
					continue
				}
				var n uint64
				if err := db.Conn.QueryRow(ctx, "SELECT count() FROM "+table).Scan(&n); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	var all []error
	for err := range errs {
		all = append(all, err)
	}
	if len(all) > 0 {
		t.Fatalf("%d of %d inserts and queries failed, first: %v", len(all), 2*rounds*workers, errors.Join(all[0]))
	}
	var n uint64
	if err := db.Conn.QueryRow(ctx, "SELECT count() FROM "+table).Scan(&n); err != nil || n != rounds*workers {
		t.Fatalf("%d rows (%v), want %d", n, err, rounds*workers)
	}
}

// An insert whose context ends before it is sent is not sent.
func TestInsertStopsWithItsContext(t *testing.T) {
	db, table := probe(t, 0)
	ctx, cancel := context.WithCancel(context.Background())
	err := db.Insert(ctx, "INSERT INTO "+table+" (n)", func(b driver.Batch) error { cancel(); return b.Append(uint32(1)) })
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	var n uint64
	if err := db.Conn.QueryRow(context.Background(), "SELECT count() FROM "+table).Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d rows (%v), want 0", n, err)
	}
}

// A context that ends while the rows are being sent does not stop the
// insert: the rows land, Insert says so, and the connection is intact (on a
// pool of one, the next statement gets it). The watchdog of the library's
// Send would otherwise close the connection under the send.
func TestInsertEndsWhatItSends(t *testing.T) {
	db, table := probe(t, 1)
	before := count(t, db, table)
	if err := insertEndingWhileSent(t, db, table, false); err != nil {
		t.Fatalf("insert: %v, want it to finish its send", err)
	}
	if n := count(t, db, table) - before; n != slowRows {
		t.Fatalf("%d rows landed, want %d", n, slowRows)
	}
}

// Past the grace, a send is cut short: Insert says so, and the pool
// still serves the next statement.
func TestInsertCutShortPastTheGrace(t *testing.T) {
	db, table := probe(t, 1)
	defer func(g time.Duration) { query.SendGrace = g }(query.SendGrace)
	query.SendGrace = 0
	if err := insertEndingWhileSent(t, db, table, true); !errors.Is(err, context.Canceled) {
		t.Fatalf("insert: %v, want it cut short", err)
	}
	count(t, db, table)
}

// slowRows take tens of milliseconds to send.
const slowRows = 2_000_000

// insertEndingWhileSent inserts slowRows with a context that ends a few
// milliseconds into their send, and returns what Insert said. On a busy
// machine the end can miss the send (come before it began, or after it
// returned): that attempt is made again, up to five times. With cut (no
// grace), a send that succeeded also missed it: the cut, which runs on a
// goroutine of its own once the context ended, came after the send
// returned.
func insertEndingWhileSent(t *testing.T, db *query.DB, table string, cut bool) error {
	t.Helper()
	for range 5 {
		parent, cancel := context.WithCancel(context.Background())
		ctx := &endsWhenAsked{Context: parent, cancel: cancel}
		err := db.Insert(ctx, "INSERT INTO "+table+" (n)", func(b driver.Batch) error {
			for i := range uint32(slowRows) {
				if err := b.Append(i); err != nil {
					return err
				}
			}
			ctx.armed.Store(true)
			return nil
		})
		ended := parent.Err() != nil
		cancel()
		if !ctx.fired.Load() {
			t.Fatalf("the context was not asked once the rows were appended (%v)", err)
		}
		before := err != nil && !strings.HasPrefix(err.Error(), "send: ")
		if !before && ended && !(cut && err == nil) {
			return err
		}
		t.Logf("the context ended before the send began or after it returned (%v): again", err)
	}
	t.Fatal("the context never ended while the rows were sent")
	return nil
}

// endsWhenAsked is a context that ends a few milliseconds after it is
// first asked, once armed, whether it has ended: Insert asks just before
// it sends the rows.
type endsWhenAsked struct {
	context.Context
	cancel       context.CancelFunc
	armed, fired atomic.Bool
}

func (c *endsWhenAsked) Err() error {
	if c.armed.Load() && !c.fired.Swap(true) {
		time.AfterFunc(5*time.Millisecond, c.cancel)
		return nil
	}
	return c.Context.Err()
}

// count is the table's rows, read on a fresh context: the pool must still
// serve it.
func count(t *testing.T, db *query.DB, table string) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var n uint64
	if err := db.Conn.QueryRow(ctx, "SELECT count() FROM "+table).Scan(&n); err != nil {
		t.Fatalf("count: %v", err)
	}
	return n
}

// A panic while the rows are appended leaves no connection taken: on a pool
// of one, the next statement still gets it.
func TestInsertReleasesOnPanic(t *testing.T) {
	db, table := probe(t, 1)
	ctx := context.Background()
	func() {
		defer func() { _ = recover() }()
		_ = db.Insert(ctx, "INSERT INTO "+table+" (n)", func(b driver.Batch) error { panic("fill") })
	}()
	qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var n uint64
	if err := db.Conn.QueryRow(qctx, "SELECT count() FROM "+table).Scan(&n); err != nil || n != 0 {
		t.Fatalf("after a panic in fill: %d rows, %v", n, err)
	}
}

// probe opens a pool of conns connections (0: the default) on a fresh test
// database, closed when the test ends, with a table of one UInt32 column.
func probe(t *testing.T, conns int) (*query.DB, string) {
	t.Helper()
	db, cfg := testenv.ClickHouse(t)
	if conns > 0 {
		cfg.MaxOpenConns = conns
		var err error
		if db, err = query.Open(context.Background(), cfg); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
	}
	table := db.Table("insert_probe")
	if err := db.Conn.Exec(context.Background(), "CREATE TABLE "+table+" (n UInt32) ENGINE = Memory"); err != nil {
		t.Fatal(err)
	}
	return db, table
}

// Settings given in turn all reach ClickHouse: the driver keeps only the
// last set it was given, so InsertContext inside Pushdown (an INSERT …
// SELECT of the KPI engine on a cluster) would lose its own.
func TestSettingsAddUp(t *testing.T) {
	db, _ := testenv.ClickHouse(t)
	ctx := query.Pushdown(query.WithSettings(context.Background(), clickhouse.Settings{"max_threads": 1, "insert_distributed_sync": 1}))
	rows, err := db.Conn.Query(ctx, "SELECT name, value FROM system.settings WHERE name IN ('max_threads', 'insert_distributed_sync', 'enable_optimize_predicate_expression') ORDER BY name")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	got := map[string]string{}
	for rows.Next() {
		var name, value string
		if err := rows.Scan(&name, &value); err != nil {
			t.Fatal(err)
		}
		got[name] = value
	}
	for name, want := range map[string]string{"max_threads": "1", "insert_distributed_sync": "1", "enable_optimize_predicate_expression": "1"} {
		if !strings.HasPrefix(got[name], want) { // max_threads reads "1" or "auto(…)"-like on newer servers
			t.Errorf("%s = %q, want %s (settings seen: %v)", name, got[name], want, got)
		}
	}
}
