package app

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/vn-ioc/ioc/ingest"
	"github.com/vn-ioc/ioc/ingest/refdata"
	"github.com/vn-ioc/ioc/internal/auth"
	"github.com/vn-ioc/ioc/internal/sim"
	"github.com/vn-ioc/ioc/internal/testenv"
	"github.com/vn-ioc/ioc/internal/worktime"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// node starts a whole App against the test ClickHouse and an embedded NATS.
func node(t testing.TB) (*App, map[string]string) {
	t.Helper()
	return nodeWith(t, nil)
}

// nodeWith starts a node whose configuration tune adjusts first.
func nodeWith(t testing.TB, tune func(*Config)) (*App, map[string]string) {
	t.Helper()
	// Tests send events now and read them over "today".
	testenv.AwayFromMidnight(t, 3*time.Minute)
	chAddr := testenv.ClickHouseAddr(t)
	dir := t.TempDir()
	cfg := Config{HTTPAddr: "127.0.0.1:0", DataDir: dir, NATSPort: -1,
		TokenKey: []byte("app-test-token-key-0123456789abcdef"), PseudonymKey: []byte("app-test-pseudonym-key")}
	cfg.ClickHouse.Addr = chAddr
	cfg.ClickHouse.HTTPAddr = testenv.ClickHouseHTTPAddr(t)
	cfg.ClickHouse.Database = "app_" + testenv.RandomHex(4)
	if testenv.OnCluster() {
		c := testenv.Cluster(t)
		cfg.ClickHouse.Addr, cfg.ClickHouse.HTTPAddr = c.Servers[0].Addr(), c.Servers[0].HTTPAddr()
		cfg.ClickHouse.Cluster = testenv.ClusterName
	}
	if tune != nil {
		tune(&cfg)
	}
	ctx, cancel := context.WithCancel(context.Background())
	a, err := New(ctx, cfg)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
		drop := "DROP DATABASE IF EXISTS " + cfg.ClickHouse.Database
		if cfg.ClickHouse.Cluster != "" {
			drop += " ON CLUSTER " + cfg.ClickHouse.Cluster
		}
		_ = a.DB().Conn.Exec(context.Background(), drop)
		a.Close()
	})
	// Run starts its parts concurrently; the tests begin once it serves,
	// as a client waiting for /readyz would.
	select {
	case <-a.Serving():
	case err := <-done:
		done <- err
		t.Fatalf("run ended before serving: %v", err)
	case <-time.After(time.Minute):
		t.Fatal("node not serving after a minute")
	}
	toks := map[string]string{}
	for role, c := range map[string]auth.Claims{
		"admin": {Role: auth.RoleAdmin}, "analyst": {Role: auth.RoleAnalyst},
		"ingest": {Role: auth.RoleIngest, Source: "hcmc/one-stop"},
	} {
		tok, err := a.Tokens.Issue(c, role, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		toks[role] = tok
	}
	return a, toks
}

func call(t *testing.T, method, url, token, ct, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func callAccept(t *testing.T, url, token, ct, accept, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", url, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Content-Type", ct)
	req.Header.Set("Accept", accept)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestNodeHealthMetricsAndAuth(t *testing.T) {
	a, toks := node(t)
	u := a.URL()
	cases := []struct {
		name, method, path, token string
		want                      int
	}{
		{"health needs no token", "GET", "/healthz", "", 200},
		{"ready", "GET", "/readyz", "", 200},
		{"metrics need a token", "GET", "/metrics", "", 401},
		{"metrics need admin", "GET", "/metrics", toks["analyst"], 403},
		{"metrics for admin", "GET", "/metrics", toks["admin"], 200},
		{"openapi needs a token", "GET", "/api/v1/openapi.yaml", "", 401},
		{"openapi with any token", "GET", "/api/v1/openapi.yaml", toks["ingest"], 200},
		{"event types", "GET", "/api/v1/events/types", toks["analyst"], 200},
		{"a type's schema", "GET", "/api/v1/events/types/vn.ioc.survey.submitted/schema", toks["analyst"], 200},
		{"unknown type", "GET", "/api/v1/events/types/vn.ioc.nope/schema", toks["analyst"], 404},
		{"ingest may not read reference data", "GET", "/api/v1/reference/units", toks["ingest"], 403},
		{"bad token", "GET", "/api/v1/reference/units", "not-a-token", 401},
		{"unknown reference kind", "GET", "/api/v1/reference/planets", toks["analyst"], 404},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if code, body := call(t, c.method, u+c.path, c.token, "", ""); code != c.want {
				t.Fatalf("%s %s: %d, want %d: %s", c.method, c.path, code, c.want, body)
			}
		})
	}
	_, body := call(t, "GET", u+"/metrics", toks["admin"], "", "")
	for _, m := range []string{"go_goroutines", "process_resident_memory_bytes"} {
		if !strings.Contains(body, m) {
			t.Errorf("metric %s missing", m)
		}
	}
}

func TestReferenceReplacedByAPIIsUsedByValidation(t *testing.T) {
	a, toks := node(t)
	u := a.URL()
	// The bundled city is seeded.
	code, body := call(t, "GET", u+"/api/v1/reference/units", toks["analyst"], "", "")
	var units struct {
		Units []struct{ Code, Kind string }
	}
	if code != 200 || json.Unmarshal([]byte(body), &units) != nil || len(units.Units) != 477 {
		t.Fatalf("units: %d, %d rows", code, len(units.Units))
	}
	// A bad replacement is refused naming the row and field; nothing changes.
	bad := "code,parent,name,level,kind,lat,lon\n79,,Thành phố Hồ Chí Minh,0,city,10.77,106.70\n99901,12345,Phường Mới,1,ward,10.7,106.6\n"
	code, body = call(t, "PUT", u+"/api/v1/reference/units", toks["admin"], "text/csv", bad)
	if code != 400 || !strings.Contains(body, "99901") || !strings.Contains(body, "parent") {
		t.Fatalf("bad units: %d %s", code, body)
	}
	if code, _ := call(t, "PUT", u+"/api/v1/reference/units", toks["analyst"], "text/csv", bad); code != 403 {
		t.Fatalf("analyst replaced reference data: %d", code)
	}
	if code, _ := call(t, "PUT", u+"/api/v1/reference/units", toks["admin"], "text/plain", bad); code != 415 {
		t.Fatalf("text/plain: %d", code)
	}
	huge := "id,unit,name\n" + strings.Repeat("CB-X,79,Nguyễn Văn A\n", 33<<20/20)
	if code, body := call(t, "PUT", u+"/api/v1/reference/officers", toks["admin"], "text/csv", huge); code != 413 {
		t.Fatalf("33 MiB of officers: %d %.200s", code, body)
	}
	// An event for a ward that does not exist yet is rejected …
	ev := `{"specversion":"1.0","id":"x1","source":"hcmc/one-stop","type":"vn.ioc.survey.submitted","subject":"S1",
	        "time":"2025-09-01T09:00:00+07:00","data":{"unit":"99902","rating":"satisfied"}}`
	code, body = call(t, "POST", u+"/api/v1/events", toks["ingest"], "application/cloudevents+json", ev)
	if code != 202 || !strings.Contains(body, `"field":"data.unit"`) {
		t.Fatalf("unknown unit: %d %s", code, body)
	}
	// … and accepted once the units are replaced through the API.
	_, cur := call(t, "GET", u+"/api/v1/reference/units", toks["admin"], "", "")
	var all struct{ Units []map[string]any }
	if err := json.Unmarshal([]byte(cur), &all); err != nil {
		t.Fatal(err)
	}
	all.Units = append(all.Units, map[string]any{"code": "99902", "parent": "79", "name": "Phường Thử", "level": 1,
		"kind": "ward", "lat": 10.8, "lon": 106.7, "valid_from": "2025-07-01T00:00:00Z"})
	next, _ := json.Marshal(all.Units)
	code, body = call(t, "PUT", u+"/api/v1/reference/units", toks["admin"], "application/json", string(next))
	if code != 200 {
		t.Fatalf("replace units: %d %s", code, body)
	}
	code, body = call(t, "POST", u+"/api/v1/events", toks["ingest"], "application/cloudevents+json", ev)
	if code != 202 || !strings.Contains(body, `"accepted":1`) {
		t.Fatalf("after replacement: %d %s", code, body)
	}
	_, metrics := call(t, "GET", u+"/metrics", toks["admin"], "", "")
	for _, m := range []string{`ioc_events_accepted_total{family="survey",source="hcmc/one-stop"} 1`,
		`ioc_events_rejected_total{family="survey",source="hcmc/one-stop"} 1`} {
		if !strings.Contains(metrics, m) {
			t.Errorf("metrics lack %s", m)
		}
	}
	testenv.Eventually(t, 20*time.Second, "survey in ClickHouse", func() (bool, error) {
		var n uint64
		err := a.DB().Conn.QueryRow(context.Background(), "SELECT count() FROM "+a.DB().Table("surveys")+" WHERE unit = '99902'").Scan(&n)
		return n == 1, err
	})
}

// A scenario played through the whole node lands the published figures
// exactly: Cầu Kho ward, 2023, 1,328 of 1,331 surveys satisfied, all 756
// of those by QR satisfied (BRIEF.md).
func TestScenarioReproducesPublishedFiguresInClickHouse(t *testing.T) {
	a, _ := node(t)
	tok := playScenario(t, a, "caukho-2023")
	q := "SELECT count(), countIf(rating IN ('very_satisfied', 'satisfied')), countIf(channel = 'qr'), " +
		"countIf(channel = 'qr' AND rating IN ('very_satisfied', 'satisfied')) FROM " + a.DB().Table("surveys") +
		" WHERE unit IN (SELECT code FROM " + a.DB().Table("units") + " WHERE has(path, 'L-26761'))" +
		" AND toYear(toTimeZone(time, 'Asia/Ho_Chi_Minh')) = 2023"
	var n, sat, qr, qrSat uint64
	testenv.Eventually(t, 30*time.Second, "all surveys in ClickHouse", func() (bool, error) {
		if err := a.DB().Conn.QueryRow(context.Background(), q).Scan(&n, &sat, &qr, &qrSat); err != nil {
			return false, err
		}
		return n == 1331, fmt.Errorf("%d surveys", n)
	})
	if sat != 1328 || qr != 756 || qrSat != 756 {
		t.Fatalf("satisfied %d of %d, QR %d (%d satisfied); want 1328, 756, 756", sat, n, qr, qrSat)
	}
	// The KPIs give the published percentages to the last digit.
	year := "&from=2023-01-01T00:00:00%2B07:00&to=2024-01-01T00:00:00%2B07:00"
	wantPercent(t, a, tok, "survey.satisfied_rate?unit=L-26761"+year, 1328, 1331, 2, "99.77")
	wantPercent(t, a, tok, "survey.unsatisfied_rate?unit=L-26761"+year, 3, 1331, 2, "0.23")
}

// playScenario plays a simulator scenario through the node's HTTP intake
// as fast as it takes it, and returns the admin token it used.
func playScenario(t *testing.T, a *App, name string) string {
	t.Helper()
	sc, err := sim.LoadScenario(name)
	if err != nil {
		t.Fatal(err)
	}
	set, cal := hcmcCity(t)
	player, err := sc.Player(1, set, cal)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := a.Tokens.Issue(auth.Claims{Role: auth.RoleAdmin}, "sim", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	st, err := sim.Run(context.Background(), sim.RunConfig{Rate: 50_000, BatchSize: 1000, Unpaced: true}, player,
		&sim.HTTPSender{URL: a.URL(), Token: tok}, nil)
	if err != nil || st.Rejected != 0 {
		t.Fatalf("run %s: %v, %+v", name, err, st)
	}
	return tok
}

// /api/v1/ingest/status lists every family's messages waiting in the
// stream, read from the stream's state: none once the writer has written
// what was accepted.
func TestIngestStatusPending(t *testing.T) {
	a, toks := node(t)
	postEvents(t, a, toks["ingest"], survey("status-1", "26740", "satisfied", time.Now()))
	testenv.Eventually(t, 60*time.Second, "nothing left waiting", func() (bool, error) {
		code, body := call(t, "GET", a.URL()+"/api/v1/ingest/status", toks["admin"], "", "")
		var s struct{ Pending map[string]uint64 }
		if err := json.Unmarshal([]byte(body), &s); err != nil || code != 200 {
			return false, fmt.Errorf("%d %s: %v", code, body, err)
		}
		if len(s.Pending) != len(ingest.Families) {
			t.Fatalf("pending %v: want every family", s.Pending)
		}
		for _, n := range s.Pending {
			if n != 0 {
				return false, fmt.Errorf("pending %v", s.Pending)
			}
		}
		return true, nil
	})
	var n uint64
	if err := a.DB().Conn.QueryRow(context.Background(), "SELECT count() FROM "+a.DB().Table("survey_events")+" WHERE id = 'status-1'").Scan(&n); err != nil || n != 1 {
		t.Fatalf("the survey is not written (%d, %v) although nothing is pending", n, err)
	}
}

// hcmcCity is the bundled reference data and its business calendar.
func hcmcCity(t *testing.T) (*refdata.Set, *worktime.Calendar) {
	t.Helper()
	set, err := refdata.HCMC()
	if err != nil {
		t.Fatal(err)
	}
	cal, err := worktime.New(set.Calendar, worktime.Config{})
	if err != nil {
		t.Fatal(err)
	}
	return set, cal
}
