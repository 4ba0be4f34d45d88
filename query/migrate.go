package query

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

var identRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// Migration is one versioned schema step.
type Migration struct {
	Version    int
	Name       string
	Statements []string
}

// Migrations renders the embedded migrations for a database and an optional
// cluster, in version order.
func Migrations(database, cluster string) ([]Migration, error) {
	entries, err := migrationFS.ReadDir("migrations")
	if err != nil {
		return nil, err
	}
	var out []Migration
	for _, e := range entries {
		name := strings.TrimSuffix(e.Name(), ".sql")
		num, rest, ok := strings.Cut(name, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil {
			return nil, fmt.Errorf("migration %s: name must be NNNN_name.sql", e.Name())
		}
		src, err := migrationFS.ReadFile("migrations/" + e.Name())
		if err != nil {
			return nil, err
		}
		text, err := render(string(src), database, cluster)
		if err != nil {
			return nil, fmt.Errorf("migration %s: %w", e.Name(), err)
		}
		out = append(out, Migration{Version: v, Name: rest, Statements: splitStatements(text)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	for i := 1; i < len(out); i++ {
		if out[i].Version == out[i-1].Version {
			return nil, fmt.Errorf("two migrations with version %d", out[i].Version)
		}
	}
	return out, nil
}

// render expands the template helpers that let one schema serve a single
// server and a cluster:
//
//	{{local "t"}}        the table that holds rows: db.t, or db.t_local on a cluster
//	{{onCluster}}        "" or ON CLUSTER name
//	{{engine "E()" "t"}} E(), or ReplicatedE('/clickhouse/tables/{shard}/db/t', '{replica}')
//	{{distributed "t" k}} nothing, or db.t as a Distributed table over db.t_local sharded by k
//	{{redistribute "t" k}} nothing, or the Distributed table db.t created again over
//	                     db.t_local, after an ALTER of db.t_local (on one server that
//	                     ALTER already changed db.t)
//	{{range slices n}}   0 … n-1, to repeat a statement over slices of the rows
func render(src, database, cluster string) (string, error) {
	funcs := template.FuncMap{
		"local": func(t string) string {
			if cluster != "" {
				return database + "." + t + "_local"
			}
			return database + "." + t
		},
		"onCluster": func() string {
			if cluster != "" {
				return "ON CLUSTER " + cluster
			}
			return ""
		},
		"engine": func(e, t string) string {
			if cluster == "" {
				return e
			}
			name, args, _ := strings.Cut(e, "(")
			args = strings.TrimSuffix(args, ")")
			zk := fmt.Sprintf("'/clickhouse/tables/{shard}/%s/%s', '{replica}'", database, t)
			if args != "" {
				zk += ", " + args
			}
			return "Replicated" + name + "(" + zk + ")"
		},
	}
	funcs["distributed"] = func(t, key string) string {
		if cluster == "" {
			return ""
		}
		return fmt.Sprintf("CREATE TABLE IF NOT EXISTS %[1]s.%[2]s ON CLUSTER %[3]s AS %[1]s.%[2]s_local ENGINE = Distributed(%[3]s, %[1]s, %[2]s_local, %[4]s);",
			database, t, cluster, key)
	}
	funcs["slices"] = func(n int) []int {
		out := make([]int, n)
		for i := range out {
			out[i] = i
		}
		return out
	}
	// A Distributed table holds no rows (inserts wait for the shards), so
	// its columns follow its local table's by creating it again: ClickHouse
	// refuses an ALTER … ON CLUSTER of a table that is not Replicated on a
	// cluster whose shards replicate internally.
	funcs["redistribute"] = func(t, key string) string {
		if cluster == "" {
			return ""
		}
		return fmt.Sprintf("DROP TABLE IF EXISTS %s.%s ON CLUSTER %s;\n", database, t, cluster) +
			funcs["distributed"].(func(string, string) string)(t, key)
	}
	tpl, err := template.New("m").Funcs(funcs).Parse(src)
	if err != nil {
		return "", err
	}
	var buf bytes.Buffer
	if err := tpl.Execute(&buf, struct{ DB string }{database}); err != nil {
		return "", err
	}
	return buf.String(), nil
}

// splitStatements splits on ";" at line ends and drops comment-only parts.
func splitStatements(text string) []string {
	var out []string
	for _, part := range strings.Split(text, ";\n") {
		var lines []string
		for _, l := range strings.Split(part, "\n") {
			t := strings.TrimSpace(l)
			if t == "" || strings.HasPrefix(t, "--") {
				continue
			}
			lines = append(lines, l)
		}
		stmt := strings.TrimSuffix(strings.TrimSpace(strings.Join(lines, "\n")), ";")
		if stmt != "" {
			out = append(out, stmt)
		}
	}
	return out
}

// Migrate creates the database and applies every migration not yet recorded
// in schema_migrations. Each statement is idempotent (IF NOT EXISTS), so a
// migration interrupted half-way is simply applied again. It returns the
// schema version reached.
func (db *DB) Migrate(ctx context.Context) (int, error) {
	ms, err := Migrations(db.cfg.Database, db.cfg.Cluster)
	if err != nil {
		return 0, err
	}
	// A schema at the latest version is left as it is, without a
	// statement of DDL: on a cluster each waits for every server (ON
	// CLUSTER), and a node would not start while one of them was down.
	if done, err := db.appliedVersions(ctx); err == nil && !slices.ContainsFunc(ms, func(m Migration) bool { return !done[m.Version] }) {
		return ms[len(ms)-1].Version, nil
	}
	onCluster := ""
	if db.cfg.Cluster != "" {
		onCluster = " ON CLUSTER " + db.cfg.Cluster
	}
	if err := db.Conn.Exec(ctx, "CREATE DATABASE IF NOT EXISTS "+db.cfg.Database+onCluster); err != nil {
		return 0, fmt.Errorf("create database: %w", err)
	}
	// On a cluster every server holds every record: the table is one
	// Replicated table with a replica on each server (not one per shard),
	// so a node that migrates through another server finds what was
	// applied through the first.
	engine := "MergeTree()"
	if db.cfg.Cluster != "" {
		engine = fmt.Sprintf("ReplicatedMergeTree('/clickhouse/tables/all/%s/schema_migrations', '{shard}_{replica}')", db.cfg.Database)
	}
	if err := db.Conn.Exec(ctx, "CREATE TABLE IF NOT EXISTS "+db.Table("schema_migrations")+onCluster+
		" (version UInt32, name String, applied_at DateTime) ENGINE = "+engine+" ORDER BY version"); err != nil {
		return 0, fmt.Errorf("create schema_migrations: %w", err)
	}
	if db.cfg.Cluster != "" {
		if err := db.clusterRecords(ctx); err != nil {
			return 0, err
		}
	}
	unlock, err := db.lockMigrations(ctx)
	if err != nil {
		return 0, err
	}
	defer unlock()
	if db.cfg.Cluster != "" {
		// What was recorded through another server, fetched before it is
		// read: a node starting just after another migrated would
		// otherwise apply again what is not replicated here yet.
		if err := db.Conn.Exec(ctx, "SYSTEM SYNC REPLICA "+db.Table("schema_migrations")); err != nil {
			return 0, fmt.Errorf("sync schema_migrations: %w", err)
		}
	}
	done, err := db.appliedVersions(ctx)
	if err != nil {
		return 0, err
	}
	version := 0
	for _, m := range ms {
		if !done[m.Version] {
			for i, s := range m.Statements {
				if err := db.Conn.Exec(ctx, s); err != nil && !columnAdded(s, err) {
					return version, fmt.Errorf("migration %04d_%s statement %d: %w", m.Version, m.Name, i+1, err)
				}
			}
			if err := db.record(ctx, m); err != nil {
				return version, fmt.Errorf("record migration %d: %w", m.Version, err)
			}
		}
		version = m.Version
	}
	return version, nil
}

// clusterRecords checks that schema_migrations on this server is the
// replicated table of cluster mode: one created by an earlier version of
// ioc holds this server's records only, and every migration would be
// applied again through the others.
func (db *DB) clusterRecords(ctx context.Context) error {
	var engine string
	err := db.Conn.QueryRow(ctx, "SELECT engine FROM system.tables WHERE database = ? AND name = 'schema_migrations'", db.cfg.Database).Scan(&engine)
	if err != nil {
		return fmt.Errorf("read the engine of schema_migrations: %w", err)
	}
	if engine != "ReplicatedMergeTree" {
		return fmt.Errorf("cluster mode: %s is a %s table on this server, not one replicated to every server (made by an earlier version of ioc): copy its rows into a table created as docs/schema.md, \"Cluster mode\", says, then start again", db.Table("schema_migrations"), engine)
	}
	return nil
}

// columnAdded: ClickHouse 18.16 has no ADD COLUMN IF NOT EXISTS, so an
// ALTER that added its columns before an interruption fails when the
// migration is applied again ("column with this name already exists"):
// that step is done.
func columnAdded(stmt string, err error) bool {
	var ex *clickhouse.Exception
	return strings.HasPrefix(stmt, "ALTER TABLE ") && errors.As(err, &ex) && strings.Contains(ex.Message, "already exists")
}

func (db *DB) appliedVersions(ctx context.Context) (map[int]bool, error) {
	rows, err := db.Conn.Query(ctx, "SELECT DISTINCT version FROM "+db.Table("schema_migrations"))
	if err != nil {
		return nil, fmt.Errorf("read schema_migrations: %w", err)
	}
	defer rows.Close()
	done := map[int]bool{}
	for rows.Next() {
		var v uint32
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		done[int(v)] = true
	}
	return done, rows.Err()
}

// SchemaVersion is the highest applied migration, 0 when none.
func (db *DB) SchemaVersion(ctx context.Context) (int, error) {
	done, err := db.appliedVersions(ctx)
	if err != nil {
		return 0, err
	}
	v := 0
	for k := range done {
		if k > v {
			v = k
		}
	}
	return v, nil
}

// LatestVersion is the version of the newest embedded migration.
func LatestVersion() int {
	ms, err := Migrations("x", "")
	if err != nil || len(ms) == 0 {
		return 0
	}
	return ms[len(ms)-1].Version
}

// record notes an applied migration. Inserts go through a batch: over the
// native protocol an INSERT … VALUES with bound arguments is not answered by
// ClickHouse 18.16.
func (db *DB) record(ctx context.Context, m Migration) error {
	return db.Insert(ctx, "INSERT INTO "+db.Table("schema_migrations")+" (version, name, applied_at)", func(b driver.Batch) error {
		return b.Append(uint32(m.Version), m.Name, time.Now().UTC())
	})
}

// MigrationLockStale is how long a lock on the migrations may go without
// its holder's heartbeat before another node breaks it (its holder died
// half-way). The holder beats every MigrationLockStale / 6.
var MigrationLockStale = 30 * time.Second

// lockMigrations makes the migrations of one server run one at a time.
// Two nodes started at once (an upgrade) would otherwise both apply a
// migration not yet recorded, and one that replaces a table (0012 drops and
// creates the rollups again) would drop, the second time, what the first
// node's KPI engine had begun to write. The lock is a table created
// without IF NOT EXISTS, which the server creates once; its holder writes
// a heartbeat into it and drops it when done. A lock with no heartbeat for
// MigrationLockStale (its node was killed, or the server restarted: the
// table keeps no rows) is moved aside and dropped by the next node. On a
// cluster the lock is that of the server the node migrates through.
func (db *DB) lockMigrations(ctx context.Context) (unlock func(), err error) {
	lock := db.Table("schema_migrations_lock")
	owner := strconv.FormatInt(time.Now().UnixNano(), 36)
	for {
		err := db.Conn.Exec(ctx, "CREATE TABLE "+lock+" (owner String, beat DateTime) ENGINE = Memory")
		if err == nil {
			break
		}
		var ex *clickhouse.Exception
		if !errors.As(err, &ex) || !strings.Contains(ex.Message, "already exists") {
			return nil, fmt.Errorf("lock the migrations: %w", err)
		}
		// Held: for how long without a heartbeat (or since it was made)?
		var silent int64
		err = db.Conn.QueryRow(ctx, fmt.Sprintf(`SELECT toInt64(now()) - toInt64(greatest(
    (SELECT max(beat) FROM %s),
    (SELECT max(metadata_modification_time) FROM system.tables WHERE database = %s AND name = 'schema_migrations_lock')))`,
			lock, Quote(db.cfg.Database))).Scan(&silent)
		if err == nil && time.Duration(silent)*time.Second > MigrationLockStale {
			// Moved aside first: of two nodes breaking it at once, one
			// renames it and the other finds it gone.
			aside := db.Table("schema_migrations_lock_" + owner)
			if db.Conn.Exec(ctx, "RENAME TABLE "+lock+" TO "+aside) == nil {
				_ = db.Conn.Exec(ctx, "DROP TABLE IF EXISTS "+aside)
			}
			continue
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("wait for the migrations another node runs: %w", ctx.Err())
		case <-time.After(250 * time.Millisecond):
		}
	}
	beat := func() error {
		return db.Conn.Exec(ctx, "INSERT INTO "+lock+" (owner, beat) SELECT "+Quote(owner)+", now()")
	}
	if err := beat(); err != nil {
		_ = db.Conn.Exec(context.WithoutCancel(ctx), "DROP TABLE IF EXISTS "+lock)
		return nil, fmt.Errorf("lock the migrations: %w", err)
	}
	stop := make(chan struct{})
	beating := make(chan struct{})
	go func() {
		defer close(beating)
		t := time.NewTicker(MigrationLockStale / 6)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				_ = beat()
			}
		}
	}()
	return func() {
		close(stop)
		<-beating
		_ = db.Conn.Exec(context.WithoutCancel(ctx), "DROP TABLE IF EXISTS "+lock)
	}, nil
}
