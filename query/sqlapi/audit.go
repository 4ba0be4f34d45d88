package sqlapi

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"sync/atomic"
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
	Outcome  string // ok, truncated, refused, forbidden, invalid, limited, unavailable, timeout, canceled, error
	Error    string
}

// auditor writes audit records to ClickHouse in small batches. It fails
// closed: records it could not write are kept and written again, and while
// they wait the service refuses new statements (behind). add blocks when
// the queue is full rather than lose a record.
type auditor struct {
	db      *query.DB
	metrics *metrics
	log     *slog.Logger
	queue   chan auditRecord
	// flushEvery is the interval between writes.
	flushEvery time.Duration
	// maxPending bounds the bytes of records kept while writes fail; past
	// it the oldest are dropped (and counted). Records of refused
	// statements keep arriving while the audit is behind.
	maxPending int
	failing    atomic.Bool
}

func newAuditor(db *query.DB, m *metrics, log *slog.Logger) *auditor {
	return &auditor{db: db, metrics: m, log: log, queue: make(chan auditRecord, 4096),
		flushEvery: 500 * time.Millisecond, maxPending: 64 << 20}
}

func (a *auditor) add(r auditRecord) {
	select {
	case a.queue <- r:
	case <-time.After(10 * time.Second):
		a.log.Error("sql audit queue full: record dropped", "query_id", r.QueryID, "who", r.Who)
		a.metrics.auditDropped.Inc()
	}
}

// behind reports whether records wait because their write failed.
func (a *auditor) behind() bool { return a.failing.Load() }

// size approximates the memory a record holds.
func (r *auditRecord) size() int {
	return 256 + len(r.QueryID) + len(r.Who) + len(r.Addr) + len(r.SQL) + len(r.Params) + len(r.Format) + len(r.Error)
}

func (a *auditor) run(ctx context.Context) error {
	t := time.NewTicker(a.flushEvery)
	defer t.Stop()
	var (
		pending  []auditRecord
		bytes    int
		failures int
		next     time.Time // no write before this, after a failure
		since    time.Time // first failure of the current spell
	)
	keep := func(r auditRecord) {
		pending = append(pending, r)
		bytes += r.size()
		drop := 0
		for bytes > a.maxPending && drop < len(pending)-1 {
			bytes -= pending[drop].size()
			drop++
		}
		if drop > 0 {
			a.log.Error("sql audit: records waiting past the memory bound, oldest dropped", "n", drop)
			a.metrics.auditDropped.Add(float64(drop))
			pending = append(pending[:0], pending[drop:]...)
		}
	}
	write := func(budget time.Duration) bool {
		wctx, cancel := context.WithTimeout(context.Background(), budget)
		defer cancel()
		err := a.write(wctx, pending)
		if err != nil {
			failures++
			if failures == 1 {
				since = time.Now()
				a.log.Error("sql audit: write failed; statements are refused until the audit is written", "n", len(pending), "err", err)
			}
			a.failing.Store(true)
			next = time.Now().Add(min(time.Duration(200<<min(failures, 5))*time.Millisecond, 5*time.Second))
			return false
		}
		if failures > 0 {
			a.log.Info("sql audit written again; statements are accepted", "n", len(pending), "after", time.Since(since).Round(time.Millisecond))
		}
		failures, pending, bytes = 0, pending[:0], 0
		a.failing.Store(false)
		return true
	}
	for {
		select {
		case r := <-a.queue:
			keep(r)
			if len(pending) >= 1000 && failures == 0 {
				write(30 * time.Second)
			}
		case <-t.C:
			if len(pending) > 0 && !time.Now().Before(next) {
				write(10 * time.Second)
			}
		case <-ctx.Done():
			for drained := false; !drained; {
				select {
				case r := <-a.queue:
					keep(r)
				default:
					drained = true
				}
			}
			if len(pending) > 0 && !write(30*time.Second) {
				a.log.Error("sql audit: records not written at shutdown", "n", len(pending))
				a.metrics.auditDropped.Add(float64(len(pending)))
			}
			return nil
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
	case ae.Code == api.EFORBIDDEN:
		return "forbidden", ae.Message
	case ae.Code == api.EUNAVAILABLE:
		return "unavailable", ae.Message
	case len(ae.Message) > 8 && ae.Message[:8] == "refused:":
		return "refused", ae.Message
	case ae.Message == "the query ran past its timeout and was stopped":
		return "timeout", ae.Message
	case ae.Code == api.EINVALID || ae.Code == api.ETOOLARGE:
		return "invalid", ae.Message
	}
	return "error", ae.Message
}
