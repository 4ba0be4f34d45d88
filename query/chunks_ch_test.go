package query_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/vn-ioc/ioc/internal/testenv"
	"github.com/vn-ioc/ioc/query"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// MaxKeys of the longest ids an event may carry, with characters that
// quoting expands, listed by query.Chunks: ClickHouse takes every run with
// its default max_query_size (256 KiB), and the runs find every id once.
// Listed by MaxKeys alone, they make a statement of ~5 MiB, which it
// refuses ("Max query size exceeded").
func TestChunksFitClickHouse(t *testing.T) {
	db, _ := testenv.ClickHouse(t)
	ctx := context.Background()
	long := func(i int) string {
		p := fmt.Sprintf("%05d'\\\x01", i)
		return p + strings.Repeat("\x02", 256-len(p))
	}
	table := db.Table("long_keys")
	if err := db.Conn.Exec(ctx, "CREATE TABLE "+table+" (s String) ENGINE = Memory"); err != nil {
		t.Fatal(err)
	}
	batch, err := db.Conn.PrepareBatch(ctx, "INSERT INTO "+table+" (s)")
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]string, query.MaxKeys)
	for i := range ids {
		ids[i] = long(i)
		if err := batch.Append(ids[i]); err != nil {
			t.Fatal(err)
		}
	}
	if err := batch.Send(); err != nil {
		t.Fatal(err)
	}
	if all := query.In("s", ids); len(all) < 1<<20 {
		t.Fatalf("the whole list is only %d bytes: the test would not reach the limit", len(all))
	}
	found, runs := uint64(0), 0
	for run := range query.Chunks(ids, false) {
		runs++
		var n uint64
		sql := "SELECT count() FROM " + table + " WHERE " + query.In("s", run)
		if err := db.Conn.QueryRow(ctx, sql).Scan(&n); err != nil {
			t.Fatalf("run %d, %d keys, %d-byte statement: %v", runs, len(run), len(sql), err)
		}
		if n != uint64(len(run)) {
			t.Errorf("run %d: %d of its %d keys found", runs, n, len(run))
		}
		found += n
	}
	if found != uint64(len(ids)) || runs < 2 {
		t.Errorf("%d runs found %d ids, want %d", runs, found, len(ids))
	}
}
