package query_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/vn-ioc/ioc/internal/testenv"
	"github.com/vn-ioc/ioc/query"
)

// The migrations, from empty to the latest, on a cluster of two shards:
// every server has the same tables, each table that holds rows is
// Replicated under its plain name's _local with a Distributed table over
// it, and migrating again, through either server, changes nothing.
func TestMigrateOnACluster(t *testing.T) {
	db, cfg := testenv.ClusterClickHouse(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var tables []map[string]string
	for _, s := range testenv.Cluster(t).Servers {
		rows, err := db.Conn.Query(ctx, "SELECT name, engine FROM remote('"+s.Addr()+"', system.tables) WHERE database = ?", cfg.Database)
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]string{}
		for rows.Next() {
			var name, engine string
			if err := rows.Scan(&name, &engine); err != nil {
				t.Fatal(err)
			}
			if name != "schema_migrations_lock" { // on the server migrated through, while it migrates
				m[name] = engine
			}
		}
		rows.Close()
		tables = append(tables, m)
	}
	if len(tables[0]) < 20 || len(tables[0]) != len(tables[1]) {
		t.Fatalf("%d tables on the first server, %d on the second", len(tables[0]), len(tables[1]))
	}
	for name, engine := range tables[0] {
		if tables[1][name] != engine {
			t.Errorf("%s: %s on the first server, %q on the second", name, engine, tables[1][name])
		}
		base, local := strings.CutSuffix(name, "_local")
		switch {
		case local && !strings.HasPrefix(engine, "Replicated") && engine != "MaterializedView":
			t.Errorf("%s: engine %s, want Replicated…", name, engine)
		case local && engine != "MaterializedView" && tables[0][base] != "Distributed":
			t.Errorf("%s: no Distributed table %s over it (%q)", name, base, tables[0][base])
		case name == "schema_migrations" && engine != "ReplicatedMergeTree":
			t.Errorf("schema_migrations: engine %s, want one Replicated table on every server", engine)
		case name == "schema_migrations":
		case !local && (strings.Contains(engine, "MergeTree") || engine == "Memory"):
			t.Errorf("%s: engine %s holds rows under a plain name", name, engine)
		}
	}
	// Migrating an up-to-date schema queues no DDL for the servers (a node
	// then starts while one of them is down).
	// (The newest entry of the queue: ClickHouse prunes old ones.)
	newest := func() (name string) {
		if err := db.Conn.QueryRow(ctx, "SELECT max(name) FROM system.zookeeper WHERE path = '/clickhouse/task_queue/ddl'").Scan(&name); err != nil {
			t.Fatal(err)
		}
		return name
	}
	before := newest()
	v, err := db.Migrate(ctx)
	if err != nil || v != query.LatestVersion() {
		t.Fatalf("migrating again: version %d, %v", v, err)
	}
	if after := newest(); after != before {
		t.Errorf("migrating an up-to-date schema queued DDL (%s, then %s)", before, after)
	}
	// Through the second server: every migration is found applied, none
	// is applied or recorded again.
	second := cfg
	second.Addr, second.HTTPAddr = testenv.Cluster(t).Servers[1].Addr(), testenv.Cluster(t).Servers[1].HTTPAddr()
	db2, err := query.Open(ctx, second)
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	records := func(d *query.DB) (n uint64) {
		if err := d.Conn.QueryRow(ctx, "SELECT count() FROM "+d.Table("schema_migrations")).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	// At once: the records may not have reached the second server yet
	// (Migrate fetches them before it reads them).
	if v, err := db2.Migrate(ctx); err != nil || v != query.LatestVersion() {
		t.Fatalf("migrating through the second server: version %d, %v", v, err)
	}
	if a, b := records(db), records(db2); a != uint64(query.LatestVersion()) || b != a {
		t.Fatalf("%d records on the first server, %d on the second; want %d each", a, b, query.LatestVersion())
	}
}
