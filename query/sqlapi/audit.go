package sqlapi

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/vn-ioc/ioc/internal/api"
	"github.com/vn-ioc/ioc/query"
)

// auditRecord is one row of sql_audit.
type auditRecord struct {
	Time     time.Time
	QueryID  string
	Who      string
	Addr     string
	SQL      string
	Params   string
	Format   string
	Duration time.Duration
	Rows     int64
	Bytes    int64
	Outcome  string // ok, truncated, refused, invalid, limited, timeout, canceled, error
	Error    string
}

// auditor writes audit records to ClickHouse in small batches. add blocks
// when the queue is full rather than lose a record.
type auditor struct {
	db      *query.DB
	metrics *metrics
	log     *slog.Logger
	queue   chan auditRecord
	// flushed receives after each write, for tests.
	flushEvery time.Duration
}

func newAuditor(db *query.DB, m *metrics, log *slog.Logger) *auditor {
	return &auditor{db: db, metrics: m, log: log, queue: make(chan auditRecord, 4096), flushEvery: 500 * time.Millisecond}
}

func (a *auditor) add(r auditRecord) {
	select {
	case a.queue <- r:
	case <-time.After(10 * time.Second):
		a.log.Error("sql audit queue full: record dropped", "query_id", r.QueryID, "who", r.Who)
		a.metrics.auditDropped.Inc()
	}
}

func (a *auditor) run(ctx context.Context) error {
	t := time.NewTicker(a.flushEvery)
	defer t.Stop()
	var batch []auditRecord
	flush := func() {
		if len(batch) == 0 {
			return
		}
		wctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for attempt := 0; ; attempt++ {
			err := a.write(wctx, batch)
			if err == nil {
				break
			}
			if attempt == 5 || wctx.Err() != nil {
				a.log.Error("sql audit: write failed, records dropped", "n", len(batch), "err", err)
				a.metrics.auditDropped.Add(float64(len(batch)))
				break
			}
			time.Sleep(time.Duration(200<<attempt) * time.Millisecond)
		}
		batch = batch[:0]
	}
	for {
		select {
		case r := <-a.queue:
			batch = append(batch, r)
			if len(batch) >= 1000 {
				flush()
			}
		case <-t.C:
			flush()
		case <-ctx.Done():
			for {
				select {
				case r := <-a.queue:
					batch = append(batch, r)
				default:
					flush()
					return nil
				}
			}
		}
	}
}

func (a *auditor) write(ctx context.Context, recs []auditRecord) error {
	return a.db.Insert(ctx, "INSERT INTO "+a.db.Table("sql_audit")+
		" (time, query_id, who, addr, sql, params, format, duration_ms, rows, bytes, outcome, error)", func(b driver.Batch) error {
		for _, r := range recs {
			if err := b.Append(r.Time, r.QueryID, r.Who, r.Addr, r.SQL, r.Params, r.Format,
				uint32(r.Duration.Milliseconds()), uint64(r.Rows), uint64(r.Bytes), r.Outcome, r.Error); err != nil {
				return err
			}
		}
		return nil
	})
}

func marshalParams(p map[string]any) string {
	if len(p) == 0 {
		return ""
	}
	b, _ := json.Marshal(p)
	return string(b)
}

// outcome classifies how a statement ended, for the audit and metrics.
func outcome(err error, s summary) (string, string) {
	if err == nil {
		if s.Truncated {
			return "truncated", ""
		}
		return "ok", ""
	}
	var ae *api.Error
	if !errors.As(err, &ae) {
		return "error", "internal error"
	}
	switch {
	case ae.Code == api.ETOOMANY:
		return "limited", ae.Message
	case ae.Code == api.ECANCELED:
		return "canceled", ae.Message
	case len(ae.Message) > 8 && ae.Message[:8] == "refused:":
		return "refused", ae.Message
	case ae.Message == "the query ran past its timeout and was stopped":
		return "timeout", ae.Message
	case ae.Code == api.EINVALID || ae.Code == api.ETOOLARGE:
		return "invalid", ae.Message
	}
	return "error", ae.Message
}
