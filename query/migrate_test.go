package query

import (
	"strings"
	"testing"
)

func TestMigrationsRenderForOneServer(t *testing.T) {
	ms, err := Migrations("ioc", "")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		for _, s := range m.Statements {
			if strings.Contains(s, "ON CLUSTER") || strings.Contains(s, "Replicated") || strings.Contains(s, "_local") || strings.Contains(s, "{{") {
				t.Errorf("%04d: cluster syntax in single-server DDL: %s", m.Version, s)
			}
		}
	}
	if LatestVersion() != ms[len(ms)-1].Version {
		t.Fatal("LatestVersion disagrees")
	}
}

// The cluster DDL is checked as rendered SQL: no ClickHouse cluster runs in
// the tests.
func TestMigrationsRenderForACluster(t *testing.T) {
	ms, err := Migrations("ioc", "city")
	if err != nil {
		t.Fatal(err)
	}
	local, distributed := map[string]bool{}, map[string]bool{}
	for _, m := range ms {
		for _, s := range m.Statements {
			// A backfill INSERT goes through the Distributed table, from
			// one node: DDL only takes ON CLUSTER.
			if strings.HasPrefix(s, "INSERT INTO ") {
				if !strings.HasPrefix(s, "INSERT INTO ioc.") || strings.Contains(s, "_local") {
					t.Errorf("%04d: backfill not through the distributed tables: %.80s", m.Version, s)
				}
				continue
			}
			if !strings.Contains(s, "ON CLUSTER city") {
				t.Errorf("%04d: statement without ON CLUSTER: %.80s", m.Version, s)
			}
			head := strings.Fields(s)
			if len(head) < 6 || head[0] != "CREATE" {
				continue
			}
			switch {
			case strings.HasPrefix(s, "CREATE TABLE") && strings.Contains(s, "ENGINE = Distributed(city, ioc, "):
				name := strings.TrimPrefix(head[5], "ioc.")
				distributed[name] = true
				if !strings.Contains(s, "AS ioc."+name+"_local") {
					t.Errorf("distributed %s is not over %s_local", name, name)
				}
			case strings.HasPrefix(s, "CREATE TABLE"):
				name := strings.TrimSuffix(strings.TrimPrefix(head[5], "ioc."), "_local")
				if !strings.HasSuffix(head[5], "_local") {
					t.Errorf("storage table %s not named _local", head[5])
				}
				if !strings.Contains(s, "ENGINE = Replicated") || !strings.Contains(s, "'/clickhouse/tables/{shard}/ioc/"+name+"', '{replica}'") {
					t.Errorf("%s is not Replicated with its own ZooKeeper path: %.200s", name, s)
				}
				local[name] = true
			case strings.HasPrefix(s, "CREATE MATERIALIZED VIEW"):
				if !strings.Contains(s, "_local") {
					t.Errorf("materialized view not on local tables: %.120s", s)
				}
			}
		}
	}
	for name := range local {
		if !distributed[name] {
			t.Errorf("%s has no Distributed table", name)
		}
	}
	if len(local) < 10 {
		t.Fatalf("only %d replicated tables rendered", len(local))
	}
}

func TestReplicatedEngineKeepsItsArguments(t *testing.T) {
	out, err := render(`{{engine "ReplacingMergeTree(version)" "t"}}`, "db", "c")
	if err != nil {
		t.Fatal(err)
	}
	if out != "ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/db/t', '{replica}', version)" {
		t.Fatal(out)
	}
}

func TestRedistributeOnlyOnACluster(t *testing.T) {
	src := `{{redistribute "t" "rand()"}}`
	if out, err := render(src, "db", ""); err != nil || out != "" {
		t.Fatalf("one server: %q %v", out, err)
	}
	out, err := render(src, "db", "c")
	if err != nil || out != "DROP TABLE IF EXISTS db.t ON CLUSTER c;\n"+
		"CREATE TABLE IF NOT EXISTS db.t ON CLUSTER c AS db.t_local ENGINE = Distributed(c, db, t_local, rand());" {
		t.Fatalf("cluster: %q %v", out, err)
	}
}
