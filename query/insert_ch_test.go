package query_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

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
