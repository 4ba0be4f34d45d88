package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"time"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/apache/arrow/go/v15/arrow/ipc"
	"github.com/apache/arrow/go/v15/arrow/memory"

	"github.com/vn-ioc/ioc/ingest"
	"github.com/vn-ioc/ioc/internal/auth"
)

// runBenchArrow measures the Arrow backfill end to end: a stream of
// dossier.received rows (flat columns) posted to a node on this machine,
// timed until the answer and until every row is in ClickHouse.
func runBenchArrow(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench arrow", flag.ContinueOnError)
	fs.SetOutput(stderr)
	rows := fs.Int("rows", 2_000_000, "rows to backfill")
	perBatch := fs.Int("batch-rows", 100_000, "rows per Arrow record batch")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the node (intake and writer) to this file")
	floor := fs.Bool("floor", true, "measure clickhouse-client inserting the same rows, without and with the materialized views")
	if err := fs.Parse(args); err != nil {
		return err
	}
	a, err := startBenchNode(ctx, "arrow", stderr, nil)
	if err != nil {
		return err
	}
	defer a.Close()
	tok, err := a.Tokens.Issue(auth.Claims{Role: auth.RoleIngest, Source: "legacy/one-stop"}, "bench", time.Hour)
	if err != nil {
		return err
	}
	body, err := arrowDossiers(*rows, *perBatch)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "machine: %d CPUs; %d dossier.received rows, %d MiB of Arrow IPC\n", runtime.NumCPU(), *rows, len(body)>>20)
	stopProfile, err := startCPUProfile(*cpuProfile)
	if err != nil {
		return err
	}
	defer stopProfile()
	start := time.Now()
	req, _ := http.NewRequestWithContext(ctx, "POST", a.URL()+"/api/v1/events/arrow?family=dossier", bytes.NewReader(body))
	req.Header.Set("Content-Type", ingest.ContentArrowStream)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	var res ingest.ArrowResult
	err = json.NewDecoder(resp.Body).Decode(&res)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 202 {
		return fmt.Errorf("backfill answered %d: %v", resp.StatusCode, err)
	}
	answered := time.Since(start)
	for landedRows(ctx, a.App, "") < int64(res.Accepted) && ctx.Err() == nil {
		time.Sleep(50 * time.Millisecond)
	}
	landed := time.Since(start)
	fmt.Fprintf(stdout, "accepted %d (rejected %d) in %s: %.0f rows/s into JetStream\n", res.Accepted, res.RejectedTotal,
		answered.Round(time.Millisecond), float64(res.Accepted)/answered.Seconds())
	fmt.Fprintf(stdout, "all in ClickHouse after %s: %.0f rows/s end to end\n", landed.Round(time.Millisecond), float64(res.Accepted)/landed.Seconds())
	admin, err := a.Tokens.Issue(auth.Claims{Role: auth.RoleAdmin}, "bench", time.Hour)
	if err != nil {
		return err
	}
	if m, err := scrapeMetrics(ctx, a.URL(), admin); err == nil {
		if n := m.get("ioc_alert_eval_seconds_count", `kind="dossier_due"`); n > 0 {
			fmt.Fprintf(stdout, "meanwhile: %.0f evaluations of the dossier_due alert rule, %.0f ms each on average\n",
				n, 1000*m.get("ioc_alert_eval_seconds_sum", `kind="dossier_due"`)/n)
		}
	}
	if *floor {
		stopProfile()
		return benchFloor(ctx, stdout, a.ch, a.DB().Database(), float64(res.Accepted)/landed.Seconds())
	}
	return nil
}

// arrowDossiers builds an IPC stream of n distinct dossier.received rows.
func arrowDossiers(n, perBatch int) ([]byte, error) {
	mem := memory.NewGoAllocator()
	str := arrow.BinaryTypes.String
	ts := &arrow.TimestampType{Unit: arrow.Second, TimeZone: "Asia/Ho_Chi_Minh"}
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "id", Type: str}, {Name: "source", Type: str}, {Name: "type", Type: str}, {Name: "subject", Type: str},
		{Name: "time", Type: ts}, {Name: "procedure_code", Type: str}, {Name: "channel", Type: str},
		{Name: "service_level", Type: str}, {Name: "unit", Type: str}, {Name: "due_at", Type: ts},
		{Name: "applicant_kind", Type: str}, {Name: "applicant_id", Type: str},
	}, nil)
	var buf bytes.Buffer
	w := ipc.NewWriter(&buf, ipc.WithSchema(schema))
	units := []string{"25747", "25750", "25760", "25768", "25771"}
	channels := []string{"online", "counter", "postal", "kiosk"}
	base := time.Date(2022, 1, 3, 1, 0, 0, 0, time.UTC)
	b := array.NewRecordBuilder(mem, schema)
	defer b.Release()
	for i := 0; i < n; {
		for j := 0; j < perBatch && i < n; j, i = j+1, i+1 {
			t := base.Add(time.Duration(i) * 20 * time.Second)
			b.Field(0).(*array.StringBuilder).Append(fmt.Sprintf("bf-%d", i))
			b.Field(1).(*array.StringBuilder).Append("legacy/one-stop")
			b.Field(2).(*array.StringBuilder).Append("received")
			b.Field(3).(*array.StringBuilder).Append(fmt.Sprintf("HS-%09d", i))
			b.Field(4).(*array.TimestampBuilder).Append(arrow.Timestamp(t.Unix()))
			b.Field(5).(*array.StringBuilder).Append(fmt.Sprintf("TP-%03d", 1+i%20))
			b.Field(6).(*array.StringBuilder).Append(channels[i%4])
			b.Field(7).(*array.StringBuilder).Append("partial_online")
			b.Field(8).(*array.StringBuilder).Append(units[i%len(units)])
			b.Field(9).(*array.TimestampBuilder).Append(arrow.Timestamp(t.Add(72 * time.Hour).Unix()))
			b.Field(10).(*array.StringBuilder).Append("citizen")
			b.Field(11).(*array.StringBuilder).Append(fmt.Sprintf("0791%08d", i))
		}
		rec := b.NewRecord()
		err := w.Write(rec)
		rec.Release()
		if err != nil {
			return nil, err
		}
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
