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

// A statement listing MaxKeys of the longest ids an event may carry, with
// characters that quoting expands, is taken by ClickHouse (past its default
// max_query_size of 256 KiB) and finds exactly the listed ids.
func TestLongKeyListsFitOneStatement(t *testing.T) {
	db, _ := testenv.ClickHouse(t)
	long := func(i int) string {
		p := fmt.Sprintf("%05d'\\\x01", i)
		return p + strings.Repeat("\x02", 256-len(p))
	}
	ids := make([]string, query.MaxKeys)
	for i := range ids {
		ids[i] = long(i)
	}
	cond := query.In("s", ids)
	if len(cond) < 4<<20 {
		t.Fatalf("the condition is only %d bytes: the test would not pass the default limit", len(cond))
	}
	sql := fmt.Sprintf("SELECT s FROM (SELECT arrayJoin([%s, %s, %s]) AS s) WHERE %s ORDER BY s",
		query.Quote(long(7)), query.Quote(long(query.MaxKeys)), query.Quote(long(4999)), cond)
	got, err := query.Strings(context.Background(), db.Conn, sql)
	if err != nil {
		t.Fatalf("%d-byte statement: %v", len(sql), err)
	}
	if len(got) != 2 || got[0] != long(7) || got[1] != long(4999) {
		t.Fatalf("got %d ids %q, want the 7th and the 4999th", len(got), got)
	}
}
