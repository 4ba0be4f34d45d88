package query_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/vn-ioc/ioc/internal/testenv"
	"github.com/vn-ioc/ioc/query"
)

// A ticket passed to another unit by an `assigned` event naming no officer
// is held by nobody yet: the tickets view shows no officer, not the one it
// had before. Checked for tickets folded by the view of schema 2 and then
// upgraded by schema 14, and for tickets folded by the view of schema 14,
// with the events in and out of order.
func TestTicketReassignedWithoutAnOfficer(t *testing.T) {
	ctx := context.Background()
	db, apply := unmigrated(t)
	// events inserts one event per statement, so each is folded on its own
	// (an insert's block is folded at once; the order of arrival is the
	// order of the list).
	events := func(rows ...string) {
		t.Helper()
		for _, r := range rows {
			if err := db.Conn.Exec(ctx, "INSERT INTO "+db.Table("feedback_events")+
				" (source, id, type, subject, time, unit, officer) SELECT "+r); err != nil {
				t.Fatal(err)
			}
		}
	}
	received := func(id, subject, at string) string {
		return "'s', '" + id + "', 'received', '" + subject + "', toDateTime('" + at + "', 'UTC'), '26740', ''"
	}
	assigned := func(id, subject, at, unit, officer string) string {
		return "'s', '" + id + "', 'assigned', '" + subject + "', toDateTime('" + at + "', 'UTC'), '" + unit + "', '" + officer + "'"
	}
	apply(1, 13)
	events(
		received("old-r", "T-OLD", "2026-03-02 02:00:00"),
		assigned("old-a1", "T-OLD", "2026-03-02 03:00:00", "26740", "CB-1"),
		assigned("old-a2", "T-OLD", "2026-03-03 03:00:00", "26734", ""),
		received("kept-r", "T-KEPT", "2026-03-02 02:00:00"),
		assigned("kept-a1", "T-KEPT", "2026-03-02 03:00:00", "26740", "CB-2"),
	)
	if got := ticketOfficer(t, db, "T-OLD"); got != "CB-1" {
		t.Fatalf("before schema 14 the view shows %q: the test would not show the change", got)
	}
	apply(14, query.LatestVersion())
	events(
		// reassigned without an officer, the events in order
		received("new-r", "T-NEW", "2026-03-02 02:00:00"),
		assigned("new-a1", "T-NEW", "2026-03-02 03:00:00", "26740", "CB-3"),
		assigned("new-a2", "T-NEW", "2026-03-03 03:00:00", "26734", ""),
		// the same, the empty assignment arriving first
		assigned("ooo-a2", "T-OOO", "2026-03-03 03:00:00", "26734", ""),
		assigned("ooo-a1", "T-OOO", "2026-03-02 03:00:00", "26740", "CB-4"),
		received("ooo-r", "T-OOO", "2026-03-02 02:00:00"),
		// an officer named again after the empty assignment
		received("back-r", "T-BACK", "2026-03-02 02:00:00"),
		assigned("back-a1", "T-BACK", "2026-03-02 03:00:00", "26740", "CB-5"),
		assigned("back-a2", "T-BACK", "2026-03-03 03:00:00", "26734", ""),
		assigned("back-a3", "T-BACK", "2026-03-04 03:00:00", "26734", "CB-6"),
		// a later assignment to T-KEPT's officer after the upgrade
		assigned("kept-a2", "T-KEPT", "2026-03-04 03:00:00", "26734", "CB-7"),
	)
	for subject, want := range map[string]string{"T-OLD": "", "T-KEPT": "CB-7", "T-NEW": "", "T-OOO": "", "T-BACK": "CB-6"} {
		if got := ticketOfficer(t, db, subject); got != want {
			t.Errorf("%s: officer %q, want %q", subject, got, want)
		}
	}
	var holder string
	if err := db.Conn.QueryRow(ctx, "SELECT holder_unit FROM "+db.Table("tickets")+" WHERE ticket_id = 'T-OLD'").Scan(&holder); err != nil {
		t.Fatal(err)
	}
	if holder != "26734" {
		t.Errorf("T-OLD held by %q, want 26734", holder)
	}
}

// unmigrated is an empty database and a function that applies the
// migrations numbered from to to.
func unmigrated(t *testing.T) (*query.DB, func(from, to int)) {
	ctx := context.Background()
	cfg := query.Config{Addr: testenv.ClickHouseAddr(t), Database: "test_" + testenv.RandomHex(6)}
	db, err := query.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = db.Conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+cfg.Database)
		db.Close()
	})
	ms, err := query.Migrations(cfg.Database, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Conn.Exec(ctx, "CREATE DATABASE "+cfg.Database); err != nil {
		t.Fatal(err)
	}
	return db, func(from, to int) {
		t.Helper()
		for _, m := range ms {
			if m.Version < from || m.Version > to {
				continue
			}
			for i, s := range m.Statements {
				if err := db.Conn.Exec(ctx, s); err != nil {
					t.Fatalf("migration %d statement %d: %v", m.Version, i+1, err)
				}
			}
		}
	}
}

// Schema 16 orders the events of one entity within a second. The entities
// folded before it get the order of the lifecycle (their events have no
// microseconds); the events stored after it are ordered by their
// microseconds, whatever their order of arrival. Every view keeps its rows.
func TestEventsOfOneSecondAfterSchema16(t *testing.T) {
	ctx := context.Background()
	db, apply := unmigrated(t)
	exec := func(sqls ...string) {
		t.Helper()
		for _, s := range sqls {
			if err := db.Conn.Exec(ctx, s); err != nil {
				t.Fatalf("%s: %v", s, err)
			}
		}
	}
	one := func(sql string, args ...any) string {
		t.Helper()
		var v string
		if err := db.Conn.QueryRow(ctx, sql, args...).Scan(&v); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		return v
	}
	at := "toDateTime('2026-03-02 02:00:00', 'UTC')"
	apply(1, 15)
	// one insert per event, in the order of the lifecycle
	exec(
		"INSERT INTO "+db.Table("dossier_events")+" (source, id, type, subject, time, unit) SELECT 's', 'r', 'received', 'D-1', "+at+", '26740'",
		"INSERT INTO "+db.Table("dossier_events")+" (source, id, type, subject, time, unit, officer) SELECT 's', 'a', 'assigned', 'D-1', "+at+", '26734', 'CB-1'",
		"INSERT INTO "+db.Table("feedback_events")+" (source, id, type, subject, time, unit) SELECT 's', 'r', 'received', 'T-1', "+at+", '26740'",
		"INSERT INTO "+db.Table("feedback_events")+" (source, id, type, subject, time, unit, officer) SELECT 's', 'a', 'assigned', 'T-1', "+at+", '26734', 'CB-2'",
		"INSERT INTO "+db.Table("camera_events")+" (source, id, type, subject, time, online) SELECT 's', 'c1', 'status', 'CAM-1', "+at+", 1",
		// the KPI engine's note that it built the dossier family
		"INSERT INTO "+db.Table("kpi_definitions")+" (family, fingerprint, written) SELECT 'dossier', 'f15', 1",
	)
	if got := one("SELECT holder_unit FROM " + db.Table("dossiers") + " WHERE dossier_id = 'D-1'"); got != "26740" {
		t.Logf("before schema 16 the view shows %q, the later transition's unit", got)
	}
	apply(16, query.LatestVersion())
	for _, c := range [][3]string{
		{"SELECT holder_unit FROM dossiers WHERE dossier_id = 'D-1'", "26734"},
		{"SELECT last_type FROM dossiers WHERE dossier_id = 'D-1'", "assigned"},
		{"SELECT unit FROM dossiers WHERE dossier_id = 'D-1'", "26740"},
		{"SELECT holder_unit FROM tickets WHERE ticket_id = 'T-1'", "26734"},
		{"SELECT officer FROM tickets WHERE ticket_id = 'T-1'", "CB-2"},
		{"SELECT toString(online) FROM camera_status WHERE camera_id = 'CAM-1'", "1"},
	} {
		if got := one(strings.Replace(c[0], "FROM ", "FROM "+db.Database()+".", 1)); got != c[1] {
			t.Errorf("%s: %q, want %q", c[0], got, c[1])
		}
	}
	// what the engine built from the old state is to be rebuilt
	if got := one("SELECT argMax(fingerprint, written) FROM " + db.Table("kpi_definitions") + " WHERE family = 'dossier'"); got != "" {
		t.Errorf("the dossier family is noted as built with %q after schema 16", got)
	}
	// after the upgrade, the later event of the second arriving first
	exec(
		"INSERT INTO "+db.Table("camera_events")+" (source, id, type, subject, time, time_us, online) SELECT 's', 'c3', 'status', 'CAM-1', toDateTime('2026-03-02 03:00:00', 'UTC'), 800000, 0",
		"INSERT INTO "+db.Table("camera_events")+" (source, id, type, subject, time, time_us, online) SELECT 's', 'c2', 'status', 'CAM-1', toDateTime('2026-03-02 03:00:00', 'UTC'), 200000, 1",
		"INSERT INTO "+db.Table("indicator_events")+" (source, id, type, subject, time, time_us, unit, period, value) SELECT 's', 'i2', 'reported', '766.total', "+at+", 900000, '79', '2026-02', 2",
		"INSERT INTO "+db.Table("indicator_events")+" (source, id, type, subject, time, time_us, unit, period, value) SELECT 's', 'i1', 'reported', '766.total', "+at+", 100000, '79', '2026-02', 1",
	)
	if got := one("SELECT toString(online) FROM " + db.Table("camera_status") + " WHERE camera_id = 'CAM-1'"); got != "0" {
		t.Errorf("camera online %s after going offline 0.6 s after it came back", got)
	}
	if got := one("SELECT toString(value) FROM " + db.Table("indicators") + " WHERE indicator = '766.total'"); got != "2" {
		t.Errorf("indicator %s, want the later report's 2", got)
	}
	if got := one("SELECT toString(count()) FROM system.tables WHERE database = ? AND name IN ('dossier_state', 'feedback_state', 'camera_state', 'dossier_state_mv2', 'feedback_state_mv2', 'camera_state_mv')", db.Database()); got != "0" {
		t.Errorf("%s of the old state tables and their views are left", got)
	}
}

func ticketOfficer(t *testing.T, db *query.DB, subject string) string {
	t.Helper()
	var officer string
	if err := db.Conn.QueryRow(context.Background(), "SELECT officer FROM "+db.Table("tickets")+
		" WHERE ticket_id = ?", subject).Scan(&officer); err != nil {
		t.Fatalf("%s: %v", subject, err)
	}
	return officer
}

// Nodes started at once on one server migrate one after the other: each
// migration is applied and recorded once (two nodes applying 0012 at once
// would drop the rollups the first one's KPI engine had begun to write).
// A lock left by a node that died is broken once its heartbeat is stale.
func TestMigrationsOneAtATime(t *testing.T) {
	ctx := context.Background()
	cfg := query.Config{Addr: testenv.ClickHouseAddr(t), Database: "test_" + testenv.RandomHex(6)}
	var dbs []*query.DB
	for range 4 {
		db, err := query.Open(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		dbs = append(dbs, db)
	}
	t.Cleanup(func() {
		_ = dbs[0].Conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+cfg.Database)
		for _, db := range dbs {
			db.Close()
		}
	})
	errs := make(chan error, len(dbs))
	for _, db := range dbs {
		go func() {
			v, err := db.Migrate(ctx)
			if err == nil && v != query.LatestVersion() {
				err = fmt.Errorf("migrated to %d", v)
			}
			errs <- err
		}()
	}
	for range dbs {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	var records, versions uint64
	if err := dbs[0].Conn.QueryRow(ctx, "SELECT count(), uniqExact(version) FROM "+dbs[0].Table("schema_migrations")).Scan(&records, &versions); err != nil {
		t.Fatal(err)
	}
	if records != versions || versions != uint64(query.LatestVersion()) {
		t.Errorf("%d migrations recorded %d times", versions, records)
	}

	// A schema at the latest version is not locked: a node starts while
	// another holds the lock (or a server of a cluster is down).
	exec := func(q string) {
		t.Helper()
		if err := dbs[0].Conn.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	exec("CREATE TABLE " + dbs[0].Table("schema_migrations_lock") + " (owner String, beat DateTime) ENGINE = Memory")
	quick, cancelQuick := context.WithTimeout(ctx, 5*time.Second)
	defer cancelQuick()
	if v, err := dbs[2].Migrate(quick); err != nil || v != query.LatestVersion() {
		t.Fatalf("an up-to-date schema under a lock: version %d, %v", v, err)
	}

	// A lock its node left: broken once stale, and Migrate goes on to
	// apply what is missing (the latest migration, its record taken away).
	tbl := dbs[0].Table("schema_migrations")
	exec("CREATE TABLE " + tbl + "_older AS " + tbl)
	exec(fmt.Sprintf("INSERT INTO %s_older SELECT * FROM %s WHERE version < %d", tbl, tbl, query.LatestVersion()))
	exec("DROP TABLE " + tbl)
	exec("RENAME TABLE " + tbl + "_older TO " + tbl)
	old := query.MigrationLockStale
	query.MigrationLockStale = 2 * time.Second
	t.Cleanup(func() { query.MigrationLockStale = old })
	tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	start := time.Now()
	if _, err := dbs[1].Migrate(tctx); err != nil {
		t.Fatalf("with a stale lock: %v", err)
	}
	if waited := time.Since(start); waited < time.Second {
		t.Errorf("the lock was not waited for (%s)", waited)
	}
	var left uint64
	if err := dbs[0].Conn.QueryRow(ctx, "SELECT count() FROM system.tables WHERE database = ? AND name LIKE 'schema_migrations_lock%'", cfg.Database).Scan(&left); err != nil {
		t.Fatal(err)
	}
	if left != 0 {
		t.Errorf("%d lock tables left", left)
	}
	if err := dbs[0].Conn.QueryRow(ctx, "SELECT count(), uniqExact(version) FROM "+tbl).Scan(&records, &versions); err != nil {
		t.Fatal(err)
	}
	if records != versions || versions != uint64(query.LatestVersion()) {
		t.Errorf("after the stale lock: %d migrations recorded %d times", versions, records)
	}
}
