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
// it, and migrating again changes nothing.
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
			if !strings.HasPrefix(name, "schema_migrations") { // local to the server migrated through
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
		case !local && (strings.Contains(engine, "MergeTree") || engine == "Memory"):
			t.Errorf("%s: engine %s holds rows under a plain name", name, engine)
		}
	}
	v, err := db.Migrate(ctx)
	if err != nil || v != query.LatestVersion() {
		t.Fatalf("migrating again: version %d, %v", v, err)
	}
}
