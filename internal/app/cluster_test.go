package app

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/vn-ioc/ioc/internal/auth"
	"github.com/vn-ioc/ioc/internal/testenv"
)

// clusterNode starts a node on the test ClickHouse cluster: the schema in
// cluster mode (Replicated tables behind Distributed ones, two shards),
// every read and write through the cluster's first server.
func clusterNode(t *testing.T) (*App, map[string]string) {
	t.Helper()
	c := testenv.Cluster(t)
	return nodeWith(t, func(cfg *Config) {
		cfg.ClickHouse.Addr = c.Servers[0].Addr()
		cfg.ClickHouse.HTTPAddr = c.Servers[0].HTTPAddr()
		cfg.ClickHouse.Cluster = testenv.ClusterName
	})
}

// The whole node on a cluster: events through the HTTP intake, JetStream
// and the writer land on both shards once each; the KPI engine's values are
// the published figures; repeats change nothing.
func TestNodeOnACluster(t *testing.T) {
	a, _ := clusterNode(t)
	var err error
	tok := playScenario(t, a, "caukho-2023")
	year := "&from=2023-01-01T00:00:00%2B07:00&to=2024-01-01T00:00:00%2B07:00"
	wantPercent(t, a, tok, "survey.satisfied_rate?unit=L-26761"+year, 1328, 1331, 2, "99.77")
	ctx := context.Background()
	for i, n := range testenv.Cluster(t).ShardRows(t, a.DB(), "survey_events") {
		if n == 0 {
			t.Errorf("no survey on shard %d", i+1)
		}
		t.Logf("%d surveys on shard %d", n, i+1)
	}
	q := "SELECT count(), countIf(rating IN ('very_satisfied', 'satisfied')) FROM " + a.DB().Table("surveys") +
		" WHERE unit IN (SELECT code FROM " + a.DB().Table("units") + " WHERE has(path, 'L-26761'))" +
		" AND toYear(toTimeZone(time, 'Asia/Ho_Chi_Minh')) = 2023"
	var n, sat uint64
	if err := a.DB().Conn.QueryRow(ctx, q).Scan(&n, &sat); err != nil || n != 1331 || sat != 1328 {
		t.Fatalf("surveys of L-26761: %d, %d satisfied (%v); want 1331, 1328", n, sat, err)
	}
	// A drill-down list and its SQL: the open entities (kpi_open) and the
	// dossiers' state are read across the shards.
	toks := map[string]string{}
	for role, c := range map[string]auth.Claims{
		"ingest": {Role: auth.RoleIngest, Source: "hcmc/one-stop"}, "analyst": {Role: auth.RoleAnalyst},
		"leader": {Role: auth.RoleLeader, Unit: "26740"},
	} {
		if toks[role], err = a.Tokens.Issue(c, role, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now().Truncate(time.Second)
	due := now.Add(-75 * time.Hour)
	var events []string
	for i := range 6 {
		events = append(events, dossierReceived(fmt.Sprintf("CL-D%d", i), "26740", now.Add(-8*24*time.Hour), due))
	}
	events = append(events, dossierReceived("CL-OTHER", "25747", now.Add(-8*24*time.Hour), due))
	postEvents(t, a, toks["ingest"], events...)
	for i := range 6 {
		waitList(t, a, toks["analyst"], "dossier.overdue?unit=26740", fmt.Sprintf("CL-D%d", i), true)
	}
	l := getList(t, a, toks["analyst"], "dossier.overdue?unit=26740")
	var rows, total uint64
	if err := a.DB().Conn.QueryRow(ctx, "SELECT count() FROM ("+l.SQL+")").Scan(&rows); err != nil || rows != 6 || l.Total != 6 {
		t.Fatalf("list total %d; its SQL gives %d rows (%v)", l.Total, rows, err)
	}
	if err := a.DB().Conn.QueryRow(ctx, l.CountSQL).Scan(&total); err != nil || total != 6 {
		t.Fatalf("count sql gives %d (%v)", total, err)
	}
	// The KPI of the ward equals its SQL, run by the SQL API as a leader
	// of the ward (scoped by its unit subtree, on the read-only user).
	v := waitKPI(t, a, toks["analyst"], "dossier.overdue_open?unit=26740&window=now", 6, 6)
	code, sql := call(t, "GET", a.URL()+"/api/v1/kpis/dossier.overdue_open/sql?unit=26740&window=now", toks["analyst"], "", "")
	if code != 200 {
		t.Fatalf("sql of the KPI: %d %s", code, sql)
	}
	var num, den int64
	var val *float64
	if err := a.DB().Conn.QueryRow(ctx, sql).Scan(&num, &den, &val); err != nil || num != v.Numerator || den != v.Denominator {
		t.Fatalf("its SQL gives %d/%d (%v), the value %d/%d:\n%s", num, den, err, v.Numerator, v.Denominator, sql)
	}
	for who, want := range map[string]string{"leader": "6", "analyst": "7"} {
		code, body := callAccept(t, a.URL()+"/api/v1/sql", toks[who], "text/plain", "text/csv",
			"SELECT count() AS n FROM dossiers WHERE dossier_id LIKE 'CL-%'")
		if code != 200 || body != "\"n\"\r\n"+want+"\r\n" {
			t.Errorf("%s counts the dossiers: %d %q, want %s", who, code, body, want)
		}
	}
}
