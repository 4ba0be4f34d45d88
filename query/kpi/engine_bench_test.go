package kpi_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vn-ioc/ioc/ingest"
	"github.com/vn-ioc/ioc/ingest/refdata"
	"github.com/vn-ioc/ioc/internal/testenv"
	"github.com/vn-ioc/ioc/internal/worktime"
	"github.com/vn-ioc/ioc/query"
	"github.com/vn-ioc/ioc/query/drill"
	"github.com/vn-ioc/ioc/query/kpi"
)

// BenchmarkRecomputeDossiers measures what the engine does on a commit of
// 1,000 dossiers: bring the rollups and the open entities up to date for
// them, then compute every dossier KPI for every unit and window — at
// growing histories (windows-med-ms: the part computing the windows, from
// the window sums kept up to date; "walk": the same summed from every sum
// held, as the first commit of an hour does). Before each commit (untimed) the 1,000 dossiers are
// received again by other units, so that every one of them changes;
// "replay" applies a commit whose dossiers did not change. The dossiers are made by ClickHouse itself (INSERT …
// SELECT from system.numbers): a received and, for 3 in 4, a resolved
// event each, one every 63 s back from the instant of computation, over
// the city's wards; the unresolved ones older than 30 days are withdrawn,
// so that about 10,000 are open whatever the history. Sizes:
// IOC_BENCH_DOSSIERS (default 100000,1000000; 10000000 takes some minutes
// to load). The time of the full rebuild a leader does when it takes over
// is logged. The city's drill-down lists of open dossiers are timed as
// ioc reads them (from the open entities) and by their SQL over the view.
func BenchmarkRecomputeDossiers(b *testing.B) {
	ctx := context.Background()
	db, set, cal, cat, bld, eng := benchEngine(b)
	var wards []string
	for _, u := range set.Units {
		if u.Kind == "ward" {
			wards = append(wards, "'"+u.Code+"'")
		}
	}
	units := "[" + strings.Join(wards, ",") + "]"
	loaded := 0
	// The passes of the commit go on from one size to the next: a pass's
	// events, of the same ids, would otherwise be duplicates of the last
	// size's, and change nothing.
	pass := 0
	// Dossier k is received 63·k seconds before the instant of computation
	// (a million over two years): a larger size adds older years, at the
	// same density, as history grows in a city. Ids have a fixed width, so
	// that recent ones sort together as a city's numbered dossiers do
	// (HS-2025-000042): a commit's dossiers then sit in a few granules.
	const atUnix = 1763072000
	for _, n := range testenv.Sizes(b, "IOC_BENCH_DOSSIERS", "100000,1000000") {
		// Grow the history to n dossiers.
		start := time.Now()
		insert := fmt.Sprintf(`INSERT INTO %s (source, id, type, subject, time, accepted_at, unit, channel, service_level, due_at)
SELECT 'bench', concat('r', toString(number)), 'received', concat('D', toString(1000000000 + number)), t, t,
       %s[number %% %d + 1], ['online', 'counter', 'postal'][number %% 3 + 1], ['full_online', 'partial_online', 'offline'][number %% 3 + 1],
       t + 86400 * (number %% 15 + 1)
FROM (SELECT number, toDateTime(%d - number * 63) AS t FROM system.numbers LIMIT %d, %d)`,
			db.Table("dossier_events"), units, len(wards), atUnix, loaded, n-loaded)
		if err := db.Conn.Exec(ctx, insert); err != nil {
			b.Fatal(err)
		}
		resolve := fmt.Sprintf(`INSERT INTO %s (source, id, type, subject, time, accepted_at, e_result)
SELECT 'bench', concat('s', toString(number)), 'resolved', concat('D', toString(1000000000 + number)), t, t, toUInt8(number %% 2)
FROM (SELECT number, toDateTime(%d - number * 63 + 3600 * (number %% 500)) AS t FROM system.numbers LIMIT %d, %d)
WHERE number %% 4 != 0`, db.Table("dossier_events"), atUnix, loaded, n-loaded)
		if err := db.Conn.Exec(ctx, resolve); err != nil {
			b.Fatal(err)
		}
		withdraw := fmt.Sprintf(`INSERT INTO %s (source, id, type, subject, time, accepted_at)
SELECT 'bench', concat('w', toString(number)), 'withdrawn', concat('D', toString(1000000000 + number)), t, t
FROM (SELECT number, toDateTime(%d - number * 63 + 86400 * 20) AS t FROM system.numbers LIMIT %d, %d)
WHERE number %% 4 = 0 AND number * 63 > 86400 * 30`, db.Table("dossier_events"), atUnix, loaded, n-loaded)
		if err := db.Conn.Exec(ctx, withdraw); err != nil {
			b.Fatal(err)
		}
		_ = db.Conn.Exec(ctx, "OPTIMIZE TABLE "+db.Table("dossier_state2")+" FINAL")
		loaded = n
		at := time.Unix(atUnix, 0)
		if err := eng.Rebuild(ctx, "dossier", at); err != nil {
			b.Fatal(err)
		}
		var open uint64
		if err := db.Conn.QueryRow(ctx, "SELECT count() FROM "+db.Table("dossiers")+" WHERE received_at > toDateTime(0) AND resolved_at = toDateTime(0) AND withdrawn_at = toDateTime(0)").Scan(&open); err != nil {
			b.Fatal(err)
		}
		fmt.Printf("%d dossiers (%d open): loaded and rebuilt in %v\n", n, open, time.Since(start).Round(time.Millisecond))
		// The load's merges done (for at most 3 minutes), so that what is
		// timed is the engine's work, not ClickHouse merging the load.
		settle := time.Now()
		for time.Since(settle) < 3*time.Minute {
			var merges uint64
			if err := db.Conn.QueryRow(ctx, "SELECT count() FROM system.merges WHERE database = '"+db.Database()+"'").Scan(&merges); err != nil {
				b.Fatal(err)
			}
			if merges == 0 {
				break
			}
			time.Sleep(time.Second)
		}
		fmt.Printf("merges of the load done in %v\n", time.Since(settle).Round(time.Second))
		// The commit: the 1,000 latest dossiers.
		notice := ingest.CommitNotice{Family: "dossier", MinTime: at.Add(-time.Hour), MaxTime: at}
		for i := 0; i < 1000; i++ {
			notice.Subjects = append(notice.Subjects, fmt.Sprintf("D%d", 1000000000+i))
		}
		move := func() {
			// The 1,000 dossiers received again by the next ward, a
			// second later each pass, after their first reception (at
			// the instant of computation and after; a reception before
			// the latest would not change the state).
			pass++
			q := fmt.Sprintf(`INSERT INTO %s (source, id, type, subject, time, accepted_at, unit, channel, service_level, due_at)
SELECT 'bench', concat('m', toString(number), '-', toString(%d)), 'received', concat('D', toString(1000000000 + number)), t, t,
       %s[(number + %d) %% %d + 1], 'online', 'full_online', t + 86400 * 10
FROM (SELECT number, toDateTime(%d + %d) AS t FROM system.numbers LIMIT 1000)`,
				db.Table("dossier_events"), pass, units, pass, len(wards), atUnix, pass)
			if err := db.Conn.Exec(ctx, q); err != nil {
				b.Fatal(err)
			}
		}
		// Every dossier of a commit changed: its contributions are written
		// again (a commit that changed nothing would be a replay).
		var mark int64
		changed := func() {
			if mark == 0 {
				return
			}
			var rows uint64
			q := fmt.Sprintf("SELECT uniqExact(id) FROM %s WHERE family = 'dossier' AND version > %d", db.Table("kpi_contrib"), mark)
			if err := db.Conn.QueryRow(ctx, q).Scan(&rows); err != nil {
				b.Fatal(err)
			}
			if rows != 1000 {
				b.Fatalf("the commit wrote the contributions of %d dossiers, not of the 1,000 it changed", rows)
			}
		}
		b.Run(fmt.Sprintf("commit/dossiers=%d", n), func(b *testing.B) {
			var keys int
			var windows []time.Duration
			prep := func() {
				changed()
				move()
				mark = time.Now().UnixNano()
			}
			testenv.MedianLoop(b, prep, func() {
				if err := eng.ApplyCommit(ctx, notice, at); err != nil {
					b.Fatal(err)
				}
				start := time.Now()
				vals, err := eng.ComputeWindows(ctx, "dossier", at)
				if err != nil {
					b.Fatal(err)
				}
				windows = append(windows, time.Since(start))
				keys = len(vals)
			})
			changed()
			mark = 0
			b.ReportMetric(float64(keys), "keys")
			slices.Sort(windows)
			b.ReportMetric(float64(windows[len(windows)/2])/float64(time.Millisecond), "windows-med-ms")
		})
		// The windows summed from every sum held, as the first commit of
		// an hour does (the others add what they changed).
		b.Run(fmt.Sprintf("walk/dossiers=%d", n), func(b *testing.B) {
			testenv.MedianLoop(b, eng.ForgetWindowSums, func() {
				if _, err := eng.ComputeWindows(ctx, "dossier", at); err != nil {
					b.Fatal(err)
				}
			})
		})
		b.Run(fmt.Sprintf("replay/dossiers=%d", n), func(b *testing.B) {
			testenv.MedianLoop(b, nil, func() {
				if err := eng.ApplyCommit(ctx, notice, at); err != nil {
					b.Fatal(err)
				}
				if _, err := eng.ComputeWindows(ctx, "dossier", at); err != nil {
					b.Fatal(err)
				}
			})
		})
		// The instant KPIs (dossier.overdue_open, dossier.due_soon): from
		// the open entities the engine keeps, and, as they were taken
		// before, from the whole dossiers view.
		b.Run(fmt.Sprintf("instant/dossiers=%d", n), func(b *testing.B) {
			testenv.MedianLoop(b, nil, func() {
				if _, err := eng.ComputeInstants(ctx, "dossier", at); err != nil {
					b.Fatal(err)
				}
			})
		})
		b.Run(fmt.Sprintf("instant-view/dossiers=%d", n), func(b *testing.B) {
			var instant []*kpi.KPI
			for _, k := range cat.KPIs {
				if k.Family == "dossier" && k.Instant() {
					instant = append(instant, k)
				}
			}
			now, _ := kpi.Resolve(kpi.WindowNow, at, bld.Loc)
			sql, _ := bld.AllUnits(cat, "dossiers", instant, map[string]kpi.Span{kpi.WindowNow: now})
			testenv.MedianLoop(b, nil, func() {
				rows, err := db.Conn.Query(ctx, sql)
				if err != nil {
					b.Fatal(err)
				}
				for rows.Next() {
				}
				rows.Close()
				if err := rows.Err(); err != nil {
					b.Fatal(err)
				}
			})
		})
		// A trend of the city's wall (dossier.on_time_rate over 30d by
		// day), as ioc reads it (from the rollups) and from the view.
		span, err := kpi.Resolve(kpi.Window30d, at, bld.Loc)
		if err != nil {
			b.Fatal(err)
		}
		onTime, _ := cat.KPI("dossier.on_time_rate")
		reader := &kpi.Reader{Cat: cat, B: bld, DB: db}
		b.Run(fmt.Sprintf("series/dossiers=%d", n), func(b *testing.B) {
			testenv.MedianLoop(b, nil, func() {
				sql, points, err := reader.Series(ctx, onTime, "79", span, "day")
				if err != nil || !strings.Contains(sql, ".kpi_daily") || len(points) < 20 {
					b.Fatalf("%d points, %v:\n%s", len(points), err, sql)
				}
			})
		})
		b.Run(fmt.Sprintf("series-view/dossiers=%d", n), func(b *testing.B) {
			sql, err := bld.SeriesSQL(cat, onTime, "79", span, "day")
			if err != nil {
				b.Fatal(err)
			}
			testenv.MedianLoop(b, nil, func() {
				rows, err := db.Conn.Query(ctx, sql)
				if err != nil {
					b.Fatal(err)
				}
				n := 0
				for rows.Next() {
					n++
				}
				if rows.Close(); n < 20 {
					b.Fatalf("%d points", n)
				}
			})
		})
		// The drill-down lists of the city (overdue, due soon): read from
		// the open entities, and by their SQL over the whole view.
		for _, list := range []string{drill.DossierOverdue, drill.DossierDueSoon} {
			req := drill.Request{List: list, Unit: "79", At: at}
			var total uint64
			b.Run(fmt.Sprintf("list/%s/dossiers=%d", list, n), func(b *testing.B) {
				testenv.MedianLoop(b, nil, func() {
					res, err := drill.Run(ctx, db, cal, req)
					if err != nil {
						b.Fatal(err)
					}
					total = res.Total
				})
				b.ReportMetric(float64(total), "rows")
			})
			b.Run(fmt.Sprintf("list-view/%s/dossiers=%d", list, n), func(b *testing.B) {
				st, err := drill.Build(db.Database(), cal, req)
				if err != nil {
					b.Fatal(err)
				}
				var viewTotal uint64
				testenv.MedianLoop(b, nil, func() {
					rows, err := db.Conn.Query(ctx, st.SQL)
					if err != nil {
						b.Fatal(err)
					}
					for rows.Next() {
					}
					rows.Close()
					if err := db.Conn.QueryRow(ctx, st.CountSQL).Scan(&viewTotal); err != nil {
						b.Fatal(err)
					}
				})
				if viewTotal != total {
					b.Fatalf("%s: %d rows over the view, %d from the open entities", list, viewTotal, total)
				}
				b.ReportMetric(float64(viewTotal), "rows")
			})
		}
		b.Run(fmt.Sprintf("all/dossiers=%d", n), func(b *testing.B) {
			testenv.MedianLoop(b, nil, func() {
				if _, err := eng.Compute(ctx, "dossier", at); err != nil {
					b.Fatal(err)
				}
			})
		})
	}
}

// BenchmarkCommitCameras measures what the engine does on a commit of the
// cameras, the bulk of a city's events: 2,000 detections of the last ten
// seconds by the city's cameras, applied to the rollups (the 10-s buckets
// the events span, read again; the changed hours and their days written),
// then every windowed camera KPI computed for every unit and window. The
// history is two days of detections, one every 30 s per camera (4.2
// million), made by ClickHouse itself. Each pass's detections are new
// (untimed insert before it), a few seconds after the last pass's.
func BenchmarkCommitCameras(b *testing.B) {
	ctx := context.Background()
	db, set, _, _, _, eng := benchEngine(b)
	var ids []string
	for _, c := range set.Cameras {
		ids = append(ids, "'"+c.ID+"'")
	}
	cams := "[" + strings.Join(ids, ",") + "]"
	// The history ends a minute before the first pass.
	at := time.Now().Truncate(time.Second)
	hist := 2 * 24 * 3600 / 30 * len(ids)
	start := time.Now()
	q := fmt.Sprintf(`INSERT INTO %s (source, id, type, subject, time, accepted_at, kind, level, car, motorcycle)
SELECT 'bench', concat('h', toString(number)), 'detection', %s[number %% %d + 1], t, t, 'vehicle_count', toInt8(number %% 5),
       toUInt32(number %% 40), toUInt32(number %% 90)
FROM (SELECT number, toDateTime(%d - 60 - intDiv(number * 30, %d)) AS t FROM system.numbers LIMIT %d)`,
		db.Table("camera_events"), cams, len(ids), at.Unix(), len(ids), hist)
	if err := db.Conn.Exec(ctx, q); err != nil {
		b.Fatal(err)
	}
	if err := eng.Rebuild(ctx, "camera", at); err != nil {
		b.Fatal(err)
	}
	fmt.Printf("%d detections: loaded and rebuilt in %v\n", hist, time.Since(start).Round(time.Millisecond))
	if _, err := eng.ComputeWindows(ctx, "camera", at); err != nil {
		b.Fatal(err)
	}
	pass := 0
	var notice ingest.CommitNotice
	prep := func() {
		pass++
		end := at.Add(time.Duration(pass) * 10 * time.Second)
		q := fmt.Sprintf(`INSERT INTO %s (source, id, type, subject, time, accepted_at, kind, level, car, motorcycle)
SELECT 'bench', concat('p%d-', toString(number)), 'detection', %s[number %% %d + 1], t, t, 'vehicle_count', toInt8(number %% 5),
       toUInt32(number %% 40), toUInt32(number %% 90)
FROM (SELECT number, toDateTime(%d - number %% 10) AS t FROM system.numbers LIMIT 2000)`,
			db.Table("camera_events"), pass, cams, len(ids), end.Unix())
		if err := db.Conn.Exec(ctx, q); err != nil {
			b.Fatal(err)
		}
		notice = ingest.CommitNotice{Family: "camera", Count: 2000, MinTime: end.Add(-9 * time.Second), MaxTime: end}
	}
	testenv.MedianLoop(b, prep, func() {
		now := notice.MaxTime.Add(time.Second)
		if err := eng.ApplyCommit(ctx, notice, now); err != nil {
			b.Fatal(err)
		}
		if _, err := eng.ComputeWindows(ctx, "camera", now); err != nil {
			b.Fatal(err)
		}
	})
}

// benchEngine is a database with the city's reference data and an engine
// over it (no NATS: the benchmarks call its steps).
func benchEngine(b *testing.B) (*query.DB, *refdata.Set, *worktime.Calendar, *kpi.Catalog, *kpi.Builder, *kpi.Engine) {
	db, _ := testenv.ClickHouse(b)
	set, err := refdata.HCMC()
	if err != nil {
		b.Fatal(err)
	}
	if err := refdata.NewStore(db).SaveAll(context.Background(), set); err != nil {
		b.Fatal(err)
	}
	cal, _ := worktime.New(set.Calendar, worktime.Config{})
	cat, _ := kpi.Load()
	bld := &kpi.Builder{DB: db.Database(), Loc: cal.Location(), Calendar: func() *worktime.Calendar { return cal }}
	eng, err := kpi.NewEngine(kpi.Config{QueryTimeout: 10 * time.Minute}, cat, bld, db, nil, nil, nil, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	return db, set, cal, cat, bld, eng
}
