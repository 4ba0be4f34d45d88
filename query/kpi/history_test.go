package kpi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/vn-ioc/ioc/internal/testenv"
	"github.com/vn-ioc/ioc/query/kpi"
)

func TestHistoryCopiesEachValueOnce(t *testing.T) {
	db, _ := testenv.ClickHouse(t)
	_, nc := testenv.NATS(t)
	ctx := context.Background()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	cat, err := kpi.Load()
	if err != nil {
		t.Fatal(err)
	}
	cfg := kpi.StoreConfig{Bucket: "test_history"}
	if _, err := kpi.OpenStore(ctx, js, cfg, cat, time.UTC); err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(ctx, cfg.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 20, 8, 30, 0, 0, time.UTC)
	put := func(k kpi.Key, seq uint64, num, den int64) {
		t.Helper()
		v := kpi.Value{Key: k, Numerator: num, Denominator: den, At: at.Add(time.Duration(seq) * time.Minute),
			From: at.Truncate(24 * time.Hour), To: at.Truncate(24 * time.Hour).Add(24 * time.Hour), AsOf: at, Version: 1, Seq: seq}
		if den != 0 {
			f := float64(num) / float64(den)
			v.Value = &f
		}
		b, _ := json.Marshal(v)
		if _, err := kv.Put(ctx, k.KPI+"."+k.Unit+"."+k.Window, b); err != nil {
			t.Fatal(err)
		}
	}
	a := kpi.Key{KPI: "dossier.on_time_rate", Unit: "26740", Window: "today"}
	b := kpi.Key{KPI: "dossier.received", Unit: "79", Window: "month"}
	put(a, 1, 9, 10)
	put(a, 2, 19, 20)
	put(b, 1, 0, 0)
	// A rate per minute is not copied, and a delete marker is no value.
	put(kpi.Key{KPI: "camera.detections_per_min", Unit: "79", Window: "24h"}, 1, 600, 0)
	if err := kv.Delete(ctx, b.KPI+"."+b.Unit+"."+b.Window); err != nil {
		t.Fatal(err)
	}

	var reg *prometheus.Registry
	run := func() context.CancelFunc {
		reg = prometheus.NewRegistry()
		h := kpi.NewHistory(js, db, cfg, cat, reg, slog.Default())
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { _ = h.Run(rctx); close(done) }()
		return func() { cancel(); <-done }
	}
	count := func(table string) uint64 {
		var n uint64
		if err := db.Conn.QueryRow(ctx, "SELECT count() FROM "+db.Table(table)).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	waitRows := func(want uint64) {
		t.Helper()
		testenv.Eventually(t, 30*time.Second, "kpi_values rows", func() (bool, error) { return count("kpi_values") == want, nil })
	}
	stop := run()
	waitRows(3)
	var value *float64
	var num, den int64
	var from, asOf time.Time
	err = db.Conn.QueryRow(ctx, "SELECT value, numerator, denominator, window_from, as_of FROM "+db.Table("kpi_values")+
		" WHERE kpi = ? AND unit = ? AND period = ? AND seq = 2", a.KPI, a.Unit, a.Window).Scan(&value, &num, &den, &from, &asOf)
	if err != nil || value == nil || *value != 0.95 || num != 19 || den != 20 || !from.Equal(at.Truncate(24*time.Hour)) || !asOf.Equal(at) {
		t.Fatalf("row of seq 2: %v %d/%d from %v as of %v, err %v", value, num, den, from, asOf, err)
	}
	var nulls uint64
	if err := db.Conn.QueryRow(ctx, "SELECT count() FROM "+db.Table("kpi_values")+" WHERE kpi = ? AND value IS NULL", b.KPI).Scan(&nulls); err != nil || nulls != 1 {
		t.Fatalf("a value with no denominator: %d NULL rows, err %v", nulls, err)
	}
	// A row copied twice counts once.
	if err := db.Conn.Exec(db.InsertContext(ctx), "INSERT INTO "+db.Table("kpi_value_log")+" SELECT * FROM "+db.Table("kpi_value_log")); err != nil {
		t.Fatal(err)
	}
	if n := count("kpi_values"); n != 3 {
		t.Fatalf("after copying every row twice the view has %d rows, want 3", n)
	}
	// A node that starts again goes on where the consumer was: only the
	// new value is copied.
	stop()
	put(a, 3, 20, 21)
	stop = run()
	defer stop()
	waitRows(4)
	time.Sleep(1500 * time.Millisecond) // one more fetch: nothing else comes
	if n, err := testutil.GatherAndCount(reg, "ioc_kpi_history_rows_total"); err != nil || n != 1 {
		t.Fatalf("metric: %d series, err %v", n, err)
	}
	if n := testenv.Metric(t, reg, "ioc_kpi_history_rows_total"); n != 1 {
		t.Fatalf("the second run copied %v values, want 1", n)
	}
}

// BenchmarkHistoryCatchUp: a node copying a backlog of 100,000 values of
// 6,000 keys of every KPI into ClickHouse, as after a restart (fewer
// values per key than the bucket's history, so all are there).
func BenchmarkHistoryCatchUp(b *testing.B) {
	db, _ := testenv.ClickHouse(b)
	_, nc := testenv.NATS(b)
	ctx := context.Background()
	js, err := jetstream.New(nc)
	if err != nil {
		b.Fatal(err)
	}
	cat, err := kpi.Load()
	if err != nil {
		b.Fatal(err)
	}
	const values = 100_000
	want := 0
	for i := range values {
		if cat.KPIs[i%len(cat.KPIs)].Kind != kpi.KindPerMinute {
			want++
		}
	}
	at := time.Date(2026, 11, 20, 8, 30, 0, 0, time.UTC)
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		cfg := kpi.StoreConfig{Bucket: fmt.Sprintf("bench_history_%d", i)}
		if _, err := kpi.OpenStore(ctx, js, cfg, cat, time.UTC); err != nil {
			b.Fatal(err)
		}
		for j := range values {
			k := kpi.Key{KPI: cat.KPIs[j%len(cat.KPIs)].ID, Unit: fmt.Sprintf("u%d", (j/len(cat.KPIs))%200), Window: "today"}
			v, _ := json.Marshal(kpi.Value{Key: k, Numerator: int64(j), Denominator: 1, At: at, AsOf: at, Version: 1, Seq: uint64(j)})
			if _, err := js.PublishAsync("$KV."+cfg.Bucket+"."+k.KPI+"."+k.Unit+"."+k.Window, v); err != nil {
				b.Fatal(err)
			}
		}
		<-js.PublishAsyncComplete()
		reg := prometheus.NewRegistry()
		h := kpi.NewHistory(js, db, cfg, cat, reg, slog.Default())
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		b.StartTimer()
		go func() { _ = h.Run(rctx); close(done) }()
		for deadline := time.Now().Add(5 * time.Minute); testenv.Metric(b, reg, "ioc_kpi_history_rows_total") < float64(want); {
			if time.Now().After(deadline) {
				b.Fatalf("copied %v of %d values in 5 minutes", testenv.Metric(b, reg, "ioc_kpi_history_rows_total"), want)
			}
			time.Sleep(5 * time.Millisecond)
		}
		b.StopTimer()
		cancel()
		<-done
	}
	b.ReportMetric(float64(values), "values/op")
}
