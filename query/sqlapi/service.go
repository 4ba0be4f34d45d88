package sqlapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/vn-ioc/ioc/internal/api"
	"github.com/vn-ioc/ioc/query"
)

// Config of the SQL API. The zero value of each field means its default.
type Config struct {
	// ReaderUser and ReaderPassword: the read-only ClickHouse user the
	// statements run as (profile with readonly=1 and server-side limits).
	// Default "ioc_reader" / "ioc_reader".
	ReaderUser     string
	ReaderPassword string
	// DefaultRows is max_rows when a request gives none. Default 100,000.
	DefaultRows int64
	// MaxRows is the largest max_rows a request may ask for. Default 100,000,000.
	MaxRows int64
	// MaxBytes bounds the bytes of one response. Default 16 GiB.
	MaxBytes int64
	// DefaultTimeout when a request gives none. Default 30s.
	DefaultTimeout time.Duration
	// MaxTimeout is the longest timeout a request may ask for. Default 5m.
	MaxTimeout time.Duration
	// PerToken is the number of statements one token may run at once;
	// beyond it the answer is 429 with Retry-After. Default 4.
	PerToken int
	// MaxConcurrent statements on this node. Default 32.
	MaxConcurrent int
	// MaxSQLBytes bounds the statement text. Default 256 KiB.
	MaxSQLBytes int
	// MaxBlockBytes bounds the memory one block of a result takes in the
	// node while it is written out (ClickHouse sends up to 65,536 rows a
	// block); a statement whose block would take more fails with a clear
	// error. Default 128 MiB.
	MaxBlockBytes int
}

func (c *Config) setDefaults() {
	if c.ReaderUser == "" {
		c.ReaderUser = "ioc_reader"
	}
	if c.ReaderPassword == "" {
		c.ReaderPassword = "ioc_reader"
	}
	if c.DefaultRows == 0 {
		c.DefaultRows = 100_000
	}
	if c.MaxRows == 0 {
		c.MaxRows = 100_000_000
	}
	if c.MaxBytes == 0 {
		c.MaxBytes = 16 << 30
	}
	if c.DefaultTimeout == 0 {
		c.DefaultTimeout = 30 * time.Second
	}
	if c.MaxTimeout == 0 {
		c.MaxTimeout = 5 * time.Minute
	}
	if c.PerToken == 0 {
		c.PerToken = 4
	}
	if c.MaxConcurrent == 0 {
		c.MaxConcurrent = 32
	}
	if c.MaxSQLBytes == 0 {
		c.MaxSQLBytes = 256 << 10
	}
	if c.MaxBlockBytes == 0 {
		c.MaxBlockBytes = 128 << 20
	}
}

// Validate rejects nonsense, naming the field.
func (c Config) Validate() error {
	c.setDefaults()
	switch {
	case c.DefaultRows < 0 || c.MaxRows < 0 || c.DefaultRows > c.MaxRows:
		return fmt.Errorf("sql: DefaultRows (%d) must be between 1 and MaxRows (%d)", c.DefaultRows, c.MaxRows)
	case c.DefaultTimeout < 0 || c.DefaultTimeout > c.MaxTimeout:
		return fmt.Errorf("sql: DefaultTimeout (%s) must be between 0 and MaxTimeout (%s)", c.DefaultTimeout, c.MaxTimeout)
	case c.PerToken < 0 || c.MaxConcurrent < 0 || c.MaxBytes < 0 || c.MaxSQLBytes < 0 || c.MaxBlockBytes < 0:
		return errors.New("sql: PerToken, MaxConcurrent, MaxBytes, MaxSQLBytes and MaxBlockBytes must be positive")
	}
	return nil
}

// Request is one statement to run.
type Request struct {
	SQL     string         `json:"sql"`
	Params  map[string]any `json:"params,omitempty"`
	Format  string         `json:"format,omitempty"`
	MaxRows int64          `json:"max_rows,omitempty"`
	// Timeout in seconds, or a Go duration string ("90s").
	Timeout any `json:"timeout,omitempty"`
}

// Caller is who runs a statement, for limits, scoping and the audit.
type Caller struct {
	Key   string            // concurrency key: one per token
	Who   string            // role:subject, for the audit
	Scope map[string]string // nil: the whole database; else Policy.Scope
	Addr  string            // client address
}

// Service runs analysts' statements against ClickHouse as the read-only
// user, streams results, enforces the limits and writes the audit.
type Service struct {
	cfg      Config
	db       *query.DB // the main connection: KILL QUERY and the audit
	reader   driver.Conn
	native   *nativeHTTP // nil: the Arrow export reads through the driver
	serverTZ *time.Location
	audit    *auditor
	metrics  *metrics
	log      *slog.Logger
	readonly error           // non-nil when the reader user turned out not to be read-only
	closing  context.Context // done once Close is called: ends the kill loops
	closed   context.CancelFunc

	mu      sync.Mutex
	running map[string]int // per Caller.Key
	total   int
}

// New opens the reader connection and checks the user is read-only.
func New(ctx context.Context, cfg Config, db *query.DB, reg metricsRegisterer, log *slog.Logger) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	if log == nil {
		log = slog.Default()
	}
	dbc := db.Config()
	reader, err := clickhouse.Open(&clickhouse.Options{
		Addr:             []string{dbc.Addr},
		Auth:             clickhouse.Auth{Database: db.Database(), Username: cfg.ReaderUser, Password: cfg.ReaderPassword},
		DialTimeout:      5 * time.Second,
		MaxOpenConns:     cfg.MaxConcurrent + 2,
		MaxIdleConns:     4,
		ConnMaxLifetime:  time.Hour,
		ConnOpenStrategy: clickhouse.ConnOpenInOrder,
		Compression:      &clickhouse.Compression{Method: clickhouse.CompressionLZ4},
	})
	if err != nil {
		return nil, fmt.Errorf("open clickhouse as %s: %w", cfg.ReaderUser, err)
	}
	s := &Service{cfg: cfg, db: db, reader: reader, log: log, running: map[string]int{}, serverTZ: time.UTC}
	s.closing, s.closed = context.WithCancel(context.Background())
	s.metrics = newMetrics(reg)
	s.audit = newAuditor(db, s.metrics, log)
	if err := s.checkReader(ctx); err != nil {
		reader.Close()
		return nil, err
	}
	s.native = s.openNative(ctx, dbc.HTTPAddr)
	return s, nil
}

// checkReader makes sure statements run as a read-only user: the second
// line of defence behind the guard.
func (s *Service) checkReader(ctx context.Context) error {
	var ro, tz string
	err := s.reader.QueryRow(ctx, "SELECT toString(value), timezone() FROM system.settings WHERE name = 'readonly'").Scan(&ro, &tz)
	if err != nil {
		return fmt.Errorf("connect to clickhouse as %s (the read-only user of the SQL API; see docs/operations.md): %w", s.cfg.ReaderUser, err)
	}
	if ro != "1" {
		return fmt.Errorf("clickhouse user %s has readonly=%s: the SQL API needs a user whose profile sets readonly=1 (see docs/operations.md)", s.cfg.ReaderUser, ro)
	}
	if s.db.Config().Cluster != "" {
		if err := query.CheckProductMode(ctx, s.reader, s.cfg.ReaderUser); err != nil {
			return err
		}
	}
	if loc, err := time.LoadLocation(tz); err == nil {
		s.serverTZ = loc
	}
	return nil
}

// Run writes the audit until ctx ends, then flushes it.
func (s *Service) Run(ctx context.Context) error { return s.audit.run(ctx) }

// Close the reader connection and end the kill loops.
func (s *Service) Close() error {
	s.closed()
	return s.reader.Close()
}

// Policy returns the guard policy for a caller.
func (s *Service) policy(c Caller) Policy {
	return Policy{Database: s.db.Database(), Scope: c.Scope}
}

// acquire takes a concurrency slot, or answers 429.
func (s *Service) acquire(key string) (func(), error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.running[key] >= s.cfg.PerToken {
		s.metrics.limited.WithLabelValues("per_token").Inc()
		return nil, &api.Error{Code: api.ETOOMANY, Message: fmt.Sprintf("this token already runs %d statements (the limit); retry when one ends", s.cfg.PerToken), RetryAfter: 1}
	}
	if s.total >= s.cfg.MaxConcurrent {
		s.metrics.limited.WithLabelValues("node").Inc()
		return nil, &api.Error{Code: api.ETOOMANY, Message: "the server runs its maximum of concurrent statements; retry shortly", RetryAfter: 1}
	}
	s.running[key]++
	s.total++
	s.metrics.running.Inc()
	return func() {
		s.mu.Lock()
		s.running[key]--
		if s.running[key] == 0 {
			delete(s.running, key)
		}
		s.total--
		s.mu.Unlock()
		s.metrics.running.Dec()
	}, nil
}

func (s *Service) timeout(v any) (time.Duration, error) {
	var d time.Duration
	switch x := v.(type) {
	case nil:
		return s.cfg.DefaultTimeout, nil
	case float64:
		d = time.Duration(x * float64(time.Second))
	case string:
		var err error
		if d, err = time.ParseDuration(x); err != nil {
			return 0, api.Errorf(api.EINVALID, fmt.Sprintf("timeout %q: want seconds or a duration such as 90s", x))
		}
	default:
		return 0, api.Errorf(api.EINVALID, "timeout: want seconds or a duration such as 90s")
	}
	if d <= 0 || d > s.cfg.MaxTimeout {
		return 0, api.Errorf(api.EINVALID, fmt.Sprintf("timeout must be between 0 and %s", s.cfg.MaxTimeout))
	}
	return d, nil
}

// Sink is where a result goes. QueryID is called first; Start once the
// columns are known, with the content type; Write receives the body, and
// Written tells how much of it reached the client.
type Sink interface {
	io.Writer
	QueryID(id string)
	Start(contentType string)
	Written() int64
}

// Exec runs one statement and streams its result to the sink. Errors
// before the first byte are returned as *api.Error (or a *Refusal wrapped
// in one); an error after the result started is reported in-band (JSON),
// or by leaving the stream visibly incomplete (returned as errStreamBroken).
func (s *Service) Exec(ctx context.Context, c Caller, req Request, sink Sink) (sum summary, err error) {
	start := time.Now()
	sum.QueryID = newQueryID()
	sink.QueryID(sum.QueryID)
	rec := auditRecord{Time: start, QueryID: sum.QueryID, Who: c.Who, Addr: c.Addr, SQL: req.SQL, Format: req.Format}
	rec.Params = marshalParams(req.Params)
	defer func() {
		rec.Duration = time.Since(start)
		rec.Rows = sum.Rows
		rec.Outcome, rec.Error = outcome(err, sum)
		rec.Bytes = sink.Written()
		s.audit.add(rec)
		s.metrics.observe(rec)
	}()

	if s.audit.behind() {
		return sum, &api.Error{Code: api.EUNAVAILABLE, RetryAfter: 5,
			Message: "the SQL audit cannot be written to ClickHouse: statements are refused until it can"}
	}
	if len(req.SQL) > s.cfg.MaxSQLBytes {
		return sum, &api.Error{Code: api.ETOOLARGE, Message: fmt.Sprintf("sql is longer than %d bytes", s.cfg.MaxSQLBytes)}
	}
	format := req.Format
	if format == "" {
		format = FormatJSON
	}
	if _, ok := contentTypes[format]; !ok {
		return sum, api.Errorf(api.EINVALID, fmt.Sprintf("format %q: one of %s", format, strings.Join(Formats, ", ")))
	}
	maxRows := req.MaxRows
	if maxRows == 0 {
		maxRows = s.cfg.DefaultRows
	}
	if maxRows < 0 || maxRows > s.cfg.MaxRows {
		return sum, api.Errorf(api.EINVALID, fmt.Sprintf("max_rows must be between 1 and %d", s.cfg.MaxRows))
	}
	timeout, err := s.timeout(req.Timeout)
	if err != nil {
		return sum, err
	}
	st, err := Guard(req.SQL, s.policy(c), req.Params)
	if err != nil {
		var r *Refusal
		if errors.As(err, &r) {
			return sum, &api.Error{Code: api.EINVALID, Message: "refused: " + r.Reason, Detail: map[string]int{"offset": r.Pos}}
		}
		return sum, err
	}
	release, err := s.acquire(c.Key)
	if err != nil {
		return sum, err
	}
	defer release()

	qctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	// Stop the query in ClickHouse as soon as the client goes away or the
	// timeout passes: closing the connection alone leaves a long
	// aggregation running until it next tries to send a block.
	stop := context.AfterFunc(qctx, func() { s.kill(sum.QueryID) })
	// The driver's socket deadline can fire a moment before the context's:
	// the statement then ends here with the query still running in
	// ClickHouse (an aggregation sends nothing until it is done), and the
	// kill above would never run. Whatever ends it early is killed.
	finished := false
	defer func() {
		if stop() && !finished {
			s.kill(sum.QueryID)
		}
	}()

	// A SELECT is read over ClickHouse's HTTP interface when it can be:
	// ClickHouse 18.16 can crash when statements that read a view inside
	// an IN or JOIN subquery run at once over the native protocol (see
	// docs/sql.md), and Native blocks make the fastest Arrow.
	stream, path := s.streamRows, "driver"
	if s.native != nil && (st.Kind == "select" || st.Kind == "with") {
		if nc, ok := s.nativeColumns(qctx, st.SQL, sum.QueryID); ok {
			stream, path = nc.stream, "http"
		}
	}
	runErr, err := stream(qctx, cancel, st.SQL, format, sink, maxRows, &sum)
	if errors.Is(err, errBlockShape) {
		// Columns of the same name, which SELECT * FROM (…) LIMIT 0
		// merges into one: read through the driver, under a query id of
		// its own in case the first is still winding down.
		path, sum.idSuffix = "driver", "-driver"
		runErr, err = s.streamRows(qctx, cancel, st.SQL, format, sink, maxRows, &sum)
	}
	s.metrics.readPath.WithLabelValues(format, path).Inc()
	if err != nil {
		return sum, s.queryError(qctx, ctx, err)
	}
	finished = runErr == nil && !sum.Truncated
	if runErr != nil {
		runErr = s.queryError(qctx, ctx, runErr)
		if sink.Written() == 0 {
			// Nothing reached the client yet (the encoders buffer the
			// first rows): answer with a plain error status.
			return sum, runErr
		}
	}
	sum.Err = runErr
	sum.ElapsedMS = time.Since(start).Milliseconds()
	if sum.end == nil {
		sum.end = func(summary) error { return nil }
	}
	if err := sum.end(sum); err != nil && runErr == nil {
		runErr = err
	}
	if runErr != nil {
		return sum, fmt.Errorf("%w: %w", errStreamBroken, runErr)
	}
	return sum, nil
}

// streamFunc runs a statement and writes its rows to the sink, counting
// them in sum and setting sum.Truncated (then cancelling) when a limit is
// reached. It sets sum.end to what completes the output. err is an error
// before anything was written; runErr one while rows were read.
type streamFunc func(qctx context.Context, cancel context.CancelFunc, sql, format string, sink Sink, maxRows int64, sum *summary) (runErr, err error)

// streamRows reads the result row by row through the driver, for every
// format and type.
func (s *Service) streamRows(qctx context.Context, cancel context.CancelFunc, sql, format string, sink Sink, maxRows int64, sum *summary) (runErr, err error) {
	rows, err := s.reader.Query(clickhouse.Context(qctx, clickhouse.WithQueryID(sum.QueryID+sum.idSuffix)), sql)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	cols := newColumns(rows.ColumnTypes(), s.serverTZ)
	dests := make([]any, len(cols))
	for i, col := range cols {
		dests[i] = col.dest
	}
	enc := newEncoder(format, sink)
	sink.Start(contentTypes[format])
	if err := enc.begin(cols); err != nil {
		return nil, err
	}
	sum.end = enc.end
	for rows.Next() {
		if sum.Rows >= maxRows || sink.Written() >= s.cfg.MaxBytes {
			sum.Truncated = true
			cancel()
			return nil, nil
		}
		if err := rows.Scan(dests...); err != nil {
			return err, nil
		}
		if err := enc.row(); err != nil {
			return err, nil
		}
		sum.Rows++
	}
	return rows.Err(), nil
}

// errStreamBroken marks an error after the response started.
var errStreamBroken = errors.New("result stream broken")

// queryError turns a driver error into what the client may see.
func (s *Service) queryError(qctx, ctx context.Context, err error) error {
	deadline, _ := qctx.Deadline()
	switch {
	case ctx.Err() != nil:
		return api.Errorf(api.ECANCELED, "client closed the request; the query was stopped")
	// The driver's socket deadline can fire a moment before the context's.
	case qctx.Err() != nil || time.Until(deadline) < 100*time.Millisecond:
		return &api.Error{Code: api.EINVALID, Message: "the query ran past its timeout and was stopped", Detail: map[string]string{"reason": "timeout"}}
	}
	var ex *clickhouse.Exception
	if errors.As(err, &ex) {
		return &api.Error{Code: api.EINVALID, Message: fmt.Sprintf("clickhouse: %s", firstLine(ex.Message)), Detail: map[string]any{"clickhouse_code": ex.Code, "clickhouse_name": ex.Name}}
	}
	var hx *httpException
	if errors.As(err, &hx) {
		detail := map[string]any{"clickhouse_code": hx.Code}
		if hx.Name != "" {
			detail["clickhouse_name"] = hx.Name
		}
		return &api.Error{Code: api.EINVALID, Message: fmt.Sprintf("clickhouse: %s", firstLine(hx.Message)), Detail: detail}
	}
	var ae *api.Error
	if errors.As(err, &ae) {
		return ae
	}
	s.log.Error("sql query failed", "err", err)
	return api.Errorf(api.EUNAVAILABLE, "clickhouse is unreachable; retry later")
}

func firstLine(s string) string {
	if i := strings.IndexAny(s, "\n"); i >= 0 {
		s = s[:i]
	}
	return strings.TrimSpace(strings.TrimPrefix(s, "DB::Exception: "))
}

// kill stops a query in ClickHouse by its id, and keeps at it until the
// query is gone: under load a KILL can reach the server before the query
// itself, and a query whose client left is otherwise only noticed when it
// next sends a block. It gives up after killPatience, or when the service
// closes.
func (s *Service) kill(id string) {
	s.metrics.killed.Inc()
	go func() {
		ctx, cancel := context.WithTimeout(s.closing, killPatience)
		defer cancel()
		pause := 100 * time.Millisecond
		for {
			// The id and its helpers (id-columns): ids are hex, safe to quote.
			if err := s.db.Conn.Exec(ctx, "KILL QUERY WHERE query_id LIKE '"+id+"%' ASYNC"); err != nil && ctx.Err() == nil {
				s.log.Warn("kill query", "query_id", id, "err", err)
			}
			select {
			case <-ctx.Done():
				if s.closing.Err() == nil {
					s.log.Error("query still running after KILL QUERY", "query_id", id, "patience", killPatience)
				}
				return
			case <-time.After(pause):
			}
			pause = min(2*pause, 2*time.Second)
			var n uint64
			if err := s.db.Conn.QueryRow(ctx, "SELECT count() FROM system.processes WHERE query_id LIKE ?", id+"%").Scan(&n); err == nil && n == 0 {
				return
			}
		}
	}()
}

// killPatience is how long kill keeps sending KILL QUERY.
const killPatience = 2 * time.Minute

func newQueryID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return "ioc-sql-" + hex.EncodeToString(b[:])
}
