package query_test

import (
	"context"
	"fmt"
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
	apply := func(from, to int) {
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

	// A lock its node left: broken once stale, and Migrate goes on.
	old := query.MigrationLockStale
	query.MigrationLockStale = 2 * time.Second
	t.Cleanup(func() { query.MigrationLockStale = old })
	if err := dbs[0].Conn.Exec(ctx, "CREATE TABLE "+dbs[0].Table("schema_migrations_lock")+" (owner String, beat DateTime) ENGINE = Memory"); err != nil {
		t.Fatal(err)
	}
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
}
