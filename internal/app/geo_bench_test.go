package app

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/vn-ioc/ioc/ingest"
	"github.com/vn-ioc/ioc/internal/testenv"
	"github.com/vn-ioc/ioc/query"
	"github.com/vn-ioc/ioc/query/drill"
	"github.com/vn-ioc/ioc/query/kpi"
)

// BenchmarkMapTickets measures the tickets of the city's map and the
// city's list of overdue tickets at growing histories, as ioc reads them
// (from the open tickets the KPI engine keeps, then by key) and by their
// SQL over the whole tickets view (the map's two statements of before, the
// list's SQL and count). ClickHouse makes the tickets itself: one every
// 63 s back from now over the city's wards, with coordinates, due three
// days after reception; every one is resolved a day after reception except
// one in 20 of the last 30 days, so about 2,000 are open whatever the
// history. Sizes: IOC_BENCH_TICKETS (default 100000,1000000).
func BenchmarkMapTickets(b *testing.B) {
	a, _ := node(b)
	ctx := context.Background()
	db := a.db.Database()
	var wards []string
	for _, u := range a.refs.Set().Units {
		if u.Kind == "ward" {
			wards = append(wards, query.Quote(u.Code))
		}
	}
	units := "[" + strings.Join(wards, ",") + "]"
	now := time.Now().Truncate(time.Second)
	loaded := 0
	for _, n := range testenv.Sizes(b, "IOC_BENCH_TICKETS", "100000,1000000") {
		start := time.Now()
		for _, q := range []string{
			fmt.Sprintf(`INSERT INTO %s.feedback_events (source, id, type, subject, time, accepted_at, unit, channel, category, due_at, lat, lon)
SELECT 'bench', concat('r', toString(number)), 'received', concat('T', toString(1000000000 + number)), t, t,
       %s[number %% %d + 1], 'zalo', 'traffic', t + 3 * 86400, 10.7 + (number %% 100) / 1000, 106.6 + (number %% 97) / 1000
FROM (SELECT number, toDateTime(%d - number * 63) AS t FROM system.numbers LIMIT %d, %d)`,
				db, units, len(wards), now.Unix(), loaded, n-loaded),
			fmt.Sprintf(`INSERT INTO %s.feedback_events (source, id, type, subject, time, accepted_at, outcome)
SELECT 'bench', concat('s', toString(number)), 'resolved', concat('T', toString(1000000000 + number)), t, t, 'done'
FROM (SELECT number, toDateTime(%d - number * 63 + 86400) AS t FROM system.numbers LIMIT %d, %d)
WHERE NOT (number %% 20 = 0 AND number * 63 < 30 * 86400)`, db, now.Unix(), loaded, n-loaded),
		} {
			if err := a.db.Conn.Exec(ctx, q); err != nil {
				b.Fatal(err)
			}
		}
		_ = a.db.Conn.Exec(ctx, "OPTIMIZE TABLE "+db+".feedback_state2 FINAL")
		loaded = n
		// The open tickets as the engine keeps them after a takeover.
		if err := a.engine.Rebuild(ctx, ingest.FamilyFeedback, now); err != nil {
			b.Fatal(err)
		}
		fmt.Printf("%d tickets: loaded and rebuilt in %v\n", n, time.Since(start).Round(time.Millisecond))

		var open int64
		b.Run(fmt.Sprintf("map/tickets=%d", n), func(b *testing.B) {
			testenv.MedianLoop(b, nil, func() {
				p, err := a.geo(ctx, "79", now)
				if err != nil {
					b.Fatal(err)
				}
				open = p.TicketsTotal
			})
			b.ReportMetric(float64(open), "tickets")
		})
		b.Run(fmt.Sprintf("map-view/tickets=%d", n), func(b *testing.B) {
			where := "WHERE unit IN (SELECT code FROM " + db + ".units WHERE has(path, '79'))\n" +
				"  AND received_at > toDateTime(0) AND resolved_at = toDateTime(0) AND closed_at = toDateTime(0)\n" +
				"  AND (lat != 0 OR lon != 0)"
			var total int64
			testenv.MedianLoop(b, nil, func() {
				if err := a.db.Conn.QueryRow(ctx, "SELECT toInt64(count()) FROM "+db+".tickets\n"+where).Scan(&total); err != nil {
					b.Fatal(err)
				}
				rows, err := a.db.Conn.Query(ctx, "SELECT ticket_id, unit, lat, lon, category, due_at, received_at FROM "+db+".tickets\n"+
					where+"\nORDER BY received_at DESC, ticket_id LIMIT 2000")
				if err != nil {
					b.Fatal(err)
				}
				for rows.Next() {
				}
				rows.Close()
			})
			if total != open {
				b.Fatalf("%d open tickets over the view, %d on the map", total, open)
			}
		})
		req := drill.Request{List: drill.FeedbackOverdue, Unit: "79", At: now}
		var total uint64
		b.Run(fmt.Sprintf("list/tickets=%d", n), func(b *testing.B) {
			testenv.MedianLoop(b, nil, func() {
				res, err := drill.Run(ctx, a.db, a.calendar(), req)
				if err != nil {
					b.Fatal(err)
				}
				total = res.Total
			})
			b.ReportMetric(float64(total), "rows")
		})
		b.Run(fmt.Sprintf("list-view/tickets=%d", n), func(b *testing.B) {
			st, err := drill.Build(db, a.calendar(), req)
			if err != nil {
				b.Fatal(err)
			}
			var viewTotal uint64
			testenv.MedianLoop(b, nil, func() {
				rows, err := a.db.Conn.Query(ctx, st.SQL)
				if err != nil {
					b.Fatal(err)
				}
				for rows.Next() {
				}
				rows.Close()
				if err := a.db.Conn.QueryRow(ctx, st.CountSQL).Scan(&viewTotal); err != nil {
					b.Fatal(err)
				}
			})
			if viewTotal != total {
				b.Fatalf("%d overdue tickets over the view, %d in the list", viewTotal, total)
			}
		})
	}
	if g, err := kpi.Generation(ctx, a.db.Conn, db, "kpi_open", ingest.FamilyFeedback); err != nil || g == 0 {
		b.Fatalf("no generation of open tickets (%v): the map read the view", err)
	}
}
