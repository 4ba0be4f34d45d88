package kpi

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vn-ioc/ioc/query"
)

// History copies every value published to the KV bucket into ClickHouse
// (table kpi_value_log, view kpi_values), so that analysts read a KPI's
// past in SQL. Every node runs one on the same durable consumer of the
// bucket's stream: each value is copied by one of them, acknowledged only
// once ClickHouse took it, and a redelivered value is counted once by the
// view. A value replaced in the bucket before any node copied it (more
// than the bucket's history of changes of one key while no node ran) is
// not in the table. Per-minute rates (camera.detections_per_min) are not
// copied: they change with every detection, some 750 values a second in the
// simulated city, twenty times all the other KPIs together; their counts are.
// They live in a bucket of their own (StoreConfig.RatesBucket), which this
// copy does not read.
type History struct {
	js     jetstream.JetStream
	db     *query.DB
	cat    *Catalog
	bucket string
	log    *slog.Logger
	copied prometheus.Counter
	failed prometheus.Counter
}

// historyConsumer is the durable consumer the nodes share.
const historyConsumer = "ioc_kpi_history"

// NewHistory prepares the copy of the bucket of cfg (defaults applied).
func NewHistory(js jetstream.JetStream, db *query.DB, cfg StoreConfig, cat *Catalog, reg prometheus.Registerer, log *slog.Logger) *History {
	cfg.setDefaults()
	h := &History{js: js, db: db, cat: cat, bucket: cfg.Bucket, log: log,
		copied: prometheus.NewCounter(prometheus.CounterOpts{Name: "ioc_kpi_history_rows_total", Help: "KPI values copied from the KV bucket into ClickHouse (kpi_value_log)."}),
		failed: prometheus.NewCounter(prometheus.CounterOpts{Name: "ioc_kpi_history_insert_errors_total", Help: "Failed inserts into kpi_value_log (retried)."}),
	}
	if reg != nil {
		reg.MustRegister(h.copied, h.failed)
	}
	return h
}

// Run copies values until ctx ends.
func (h *History) Run(ctx context.Context) error {
	// One filter naming the bucket's own subjects: a consumer with one
	// filter per KPI made the server intersect the subjects of a message
	// block with the filters for every message it handed out, a quarter of
	// the node's CPU at 10,000 events/s (BENCHMARKS.md). Values of rates
	// per minute that an earlier version stored in this bucket are skipped.
	var skip []string
	for _, k := range h.cat.KPIs {
		if inRatesBucket(k) {
			skip = append(skip, "$KV."+h.bucket+"."+k.ID+".")
		}
	}
	cons, err := h.js.CreateOrUpdateConsumer(ctx, "KV_"+h.bucket, jetstream.ConsumerConfig{
		Durable:       historyConsumer,
		Description:   "ioc: copies KPI values into ClickHouse",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       2 * time.Minute,
		MaxAckPending: 100_000,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		FilterSubject: "$KV." + h.bucket + ".>",
	})
	if err != nil {
		return fmt.Errorf("kpi history consumer: %w", err)
	}
	for ctx.Err() == nil {
		batch, err := cons.Fetch(5000, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			if ctx.Err() == nil {
				h.log.Warn("kpi history: fetch", "err", err)
				sleep(ctx, time.Second)
			}
			continue
		}
		var msgs []jetstream.Msg
		var rows []Value
		var published []time.Time
		for m := range batch.Messages() {
			msgs = append(msgs, m)
			if op := m.Headers().Get("KV-Operation"); op != "" { // DEL or PURGE
				continue
			}
			if slices.ContainsFunc(skip, func(p string) bool { return strings.HasPrefix(m.Subject(), p) }) {
				continue
			}
			var v Value
			if err := json.Unmarshal(m.Data(), &v); err != nil || v.KPI == "" {
				h.log.Error("kpi history: a value in the bucket is not a KPI value; skipped", "subject", m.Subject(), "err", err)
				continue
			}
			t := time.Now()
			if md, err := m.Metadata(); err == nil {
				t = md.Timestamp
			}
			rows = append(rows, v)
			published = append(published, t)
		}
		if len(msgs) == 0 {
			continue
		}
		// Retried until ClickHouse takes the rows: they are acknowledged
		// only then, and redelivered to some node if this one stops first.
		for pause := 200 * time.Millisecond; ; pause = min(2*pause, 10*time.Second) {
			err := h.insert(ctx, rows, published)
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				return nil
			}
			h.failed.Inc()
			h.log.Warn("kpi history: insert failed; retrying", "rows", len(rows), "err", err)
			sleep(ctx, pause)
		}
		for _, m := range msgs {
			_ = m.Ack()
		}
		h.copied.Add(float64(len(rows)))
	}
	return nil
}

func (h *History) insert(ctx context.Context, vals []Value, published []time.Time) error {
	if len(vals) == 0 {
		return nil
	}
	return h.db.Insert(h.db.InsertContext(ctx), "INSERT INTO "+h.db.Table("kpi_value_log")+
		" (kpi, unit, period, seq, value, numerator, denominator, window_from, window_to, at, as_of, version, published_at)", func(b driver.Batch) error {
		for i, v := range vals {
			if err := b.Append(v.KPI, v.Unit, v.Window, v.Seq, v.Value, v.Numerator, v.Denominator,
				query.DateTime(v.From), query.DateTime(v.To), query.DateTime(v.At), query.DateTime(v.AsOf), uint32(v.Version), query.DateTime(published[i])); err != nil {
				return err
			}
		}
		return nil
	})
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
