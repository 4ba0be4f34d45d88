package query

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// Config of the ClickHouse connection.
type Config struct {
	// Addr is host:port of the native protocol. Default 127.0.0.1:9000.
	Addr string
	// HTTPAddr is host:port of ClickHouse's HTTP interface, which the SQL
	// API's Arrow export reads ClickHouse's columnar Native format from.
	// Default: the host of Addr with port 8123; "off" reads through the
	// native protocol only.
	HTTPAddr string
	// Database holding ioc's tables. Default "ioc".
	Database string
	// User and Password of the writing user. Default "default", "".
	User     string
	Password string
	// Cluster, when set, makes migrations create Replicated tables behind
	// Distributed ones on this cluster (remote_servers name). Default: none.
	Cluster string
	// MaxOpenConns bounds the pool. Default 16.
	MaxOpenConns int
	// DialTimeout for a new connection. Default 5s.
	DialTimeout time.Duration
}

func (c *Config) setDefaults() {
	if c.Addr == "" {
		c.Addr = "127.0.0.1:9000"
	}
	if c.HTTPAddr == "" {
		host, _, err := net.SplitHostPort(c.Addr)
		if err != nil {
			host = "127.0.0.1"
		}
		c.HTTPAddr = net.JoinHostPort(host, "8123")
	}
	if c.Database == "" {
		c.Database = "ioc"
	}
	if c.User == "" {
		c.User = "default"
	}
	if c.MaxOpenConns == 0 {
		c.MaxOpenConns = 16
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = 5 * time.Second
	}
}

// Validate rejects a configuration that cannot work.
func (c Config) Validate() error {
	c.setDefaults()
	if !identRe.MatchString(c.Database) {
		return fmt.Errorf("clickhouse database %q: use letters, digits and _ only", c.Database)
	}
	if c.Cluster != "" && !identRe.MatchString(c.Cluster) {
		return fmt.Errorf("clickhouse cluster %q: use letters, digits and _ only", c.Cluster)
	}
	if !strings.Contains(c.Addr, ":") {
		return fmt.Errorf("clickhouse addr %q: want host:port", c.Addr)
	}
	if c.HTTPAddr != "off" && !strings.Contains(c.HTTPAddr, ":") {
		return fmt.Errorf("clickhouse http addr %q: want host:port or off", c.HTTPAddr)
	}
	return nil
}

// DB is ioc's handle on ClickHouse.
type DB struct {
	Conn driver.Conn
	cfg  Config
}

// Open connects to ClickHouse (not to the database, which may not exist
// yet) and checks the server answers.
func Open(ctx context.Context, cfg Config) (*DB, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	conn, err := clickhouse.Open(&clickhouse.Options{
		Addr:             []string{cfg.Addr},
		Auth:             clickhouse.Auth{Database: "default", Username: cfg.User, Password: cfg.Password},
		DialTimeout:      cfg.DialTimeout,
		MaxOpenConns:     cfg.MaxOpenConns,
		MaxIdleConns:     cfg.MaxOpenConns,
		ConnMaxLifetime:  time.Hour,
		ConnOpenStrategy: clickhouse.ConnOpenInOrder,
		Compression:      &clickhouse.Compression{Method: clickhouse.CompressionLZ4},
	})
	if err != nil {
		return nil, fmt.Errorf("open clickhouse: %w", err)
	}
	db := &DB{Conn: conn, cfg: cfg}
	if err := conn.Ping(ctx); err != nil {
		conn.Close()
		return nil, fmt.Errorf("ping clickhouse at %s: %w", cfg.Addr, err)
	}
	if cfg.Cluster != "" {
		if err := CheckProductMode(ctx, conn, cfg.User); err != nil {
			conn.Close()
			return nil, err
		}
	}
	return db, nil
}

// Database is the name of ioc's database.
func (db *DB) Database() string { return db.cfg.Database }

// Table qualifies a table name with the database.
func (db *DB) Table(name string) string { return db.cfg.Database + "." + name }

// CheckProductMode checks, for cluster mode, that the profile of user sets
// distributed_product_mode = global. A subquery over a Distributed table
// inside a query over another (a unit subtree from units, the open
// entities from kpi_open) must run once, on the server asked, and go to
// every shard with the query: ClickHouse refuses it by default ("deny"),
// and "local" would read one shard's rows of the subquery's table. The
// setting cannot be sent with each query: over the native protocol of
// ClickHouse 18.16 a query carries numeric settings only.
func CheckProductMode(ctx context.Context, conn driver.Conn, user string) error {
	var mode string
	if err := conn.QueryRow(ctx, "SELECT value FROM system.settings WHERE name = 'distributed_product_mode'").Scan(&mode); err != nil {
		return fmt.Errorf("read distributed_product_mode: %w", err)
	}
	if mode != "global" {
		return fmt.Errorf("clickhouse cluster mode: the profile of user %s sets distributed_product_mode = %s; set it to global (docs/operations.md, Cluster mode)", user, mode)
	}
	return nil
}

// InsertContext is the context for writes: on a cluster, an insert into a
// Distributed table returns only once the shards hold the rows
// (insert_distributed_sync), so the writer never acks JetStream early and
// the KPI engine reads back what it just wrote. Insert applies it itself;
// an INSERT … SELECT run with Exec needs it.
func (db *DB) InsertContext(ctx context.Context) context.Context {
	if db.cfg.Cluster == "" {
		return ctx
	}
	return WithSettings(ctx, clickhouse.Settings{"insert_distributed_sync": 1})
}

// AdditiveContext is InsertContext for rows that add to others (deltas
// of a SummingMergeTree): on a cluster, a Replicated table also drops an
// inserted block equal to a recent one (insert_deduplicate), which would
// drop a second, equal, delta.
func (db *DB) AdditiveContext(ctx context.Context) context.Context {
	if db.cfg.Cluster == "" {
		return ctx
	}
	return WithSettings(db.InsertContext(ctx), clickhouse.Settings{"insert_deduplicate": 0})
}

type settingsKey struct{}

// WithSettings adds ClickHouse settings to those ctx carries (the driver
// keeps only the last set given to it).
func WithSettings(ctx context.Context, add clickhouse.Settings) context.Context {
	merged := clickhouse.Settings{}
	if prev, ok := ctx.Value(settingsKey{}).(clickhouse.Settings); ok {
		maps.Copy(merged, prev)
	}
	maps.Copy(merged, add)
	return clickhouse.Context(context.WithValue(ctx, settingsKey{}, merged), clickhouse.WithSettings(merged))
}

// Insert runs one batch insert: it prepares sql, lets fill append the
// rows and sends them, unless fill fails or ctx ended meanwhile (then, or
// on a panic in fill, the batch is aborted). Once the rows are being sent,
// ctx no longer stops the insert at once: it runs to its end, and its own
// error, or nil, is returned, unless it is still running SendGrace after
// ctx ended.
//
// The batch runs under a context of its own, which ends when ctx does
// until the rows are sent, then only past the grace, and never after the
// send returned. clickhouse-go's Send watches its context on a goroutine,
// stopped only by closing a channel: a context that ends while Send runs,
// or just after it returned when that goroutine has not run yet (a
// deferred cancel, an errgroup's Wait), makes it close the connection, by
// then perhaps back in the pool and serving another statement, which fails
// with "use of closed network connection"; an insert cut short that way
// may also have landed. The library's fix
// (clickhouse-go pull request 2032, open at v2.50.0) makes its watchdog
// wait for its goroutine, not the send.
//
// The batch's context keeps ctx's values but not its deadline, which is
// applied by cancellation instead (an insert stopped by it reports
// context.Canceled, or ctx's cause).
func (db *DB) Insert(ctx context.Context, sql string, fill func(driver.Batch) error) error {
	ctx = db.InsertContext(ctx)
	bctx, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, func() { cancel(context.Cause(ctx)) })
	defer stop()
	b, err := db.Conn.PrepareBatch(bctx, sql)
	if err != nil {
		return fmt.Errorf("prepare: %w", err)
	}
	defer func() { _ = b.Abort() }() // releases the connection unless sent
	if err := fill(b); err != nil {
		return err
	}
	// From here ctx no longer ends bctx at once: stop reports whether the
	// cancellation had already begun.
	if ctx.Err() != nil || !stop() {
		return context.Cause(ctx)
	}
	// Only a send still running SendGrace after ctx ended is cut short (a
	// server that stopped answering), and never once it has returned.
	var mu sync.Mutex
	sent := false
	late := context.AfterFunc(ctx, func() {
		time.AfterFunc(SendGrace, func() {
			mu.Lock()
			defer mu.Unlock()
			if !sent {
				cancel(context.Cause(ctx))
			}
		})
	})
	defer late()
	err = b.Send()
	mu.Lock()
	sent = true
	mu.Unlock()
	if err != nil {
		// Cut short past the grace, the send fails with ctx's cause or,
		// as the library closes the connection under it, a write error:
		// either way, say it was cut short.
		if cause := context.Cause(bctx); cause != nil && !errors.Is(err, cause) {
			return fmt.Errorf("send: cut short: %w: %w", cause, err)
		}
		return fmt.Errorf("send: %w", err)
	}
	return nil
}

// SendGrace is how long an insert whose rows are being sent goes on after
// its context ended, before it is cut short.
var SendGrace = 10 * time.Second

// Close the pool.
func (db *DB) Close() error { return db.Conn.Close() }

// Ping checks the server answers.
func (db *DB) Ping(ctx context.Context) error { return db.Conn.Ping(ctx) }

// IsServerError reports whether err is an exception raised by the server
// (the statement or its data was refused), as opposed to a network failure.
func IsServerError(err error) bool {
	var ex *clickhouse.Exception
	return errors.As(err, &ex)
}

// Pushdown lets ClickHouse apply a filter on a view's key before the
// view's GROUP BY (the default from ClickHouse 19 on; 18.16 needs it
// asked): a lookup of some dossiers then reads their state only.
func Pushdown(ctx context.Context) context.Context {
	return WithSettings(ctx, clickhouse.Settings{"enable_optimize_predicate_expression": 1})
}

// Config returns the configuration the pool was opened with (defaults
// applied), for components that open a connection of their own, such as
// the SQL API's read-only user.
func (db *DB) Config() Config { return db.cfg }

// DateTime maps a time to what a DateTime column holds: UTC, and the zero
// time (or one before 1970) as 1970-01-01 00:00:00, the columns' "not
// happened".
func DateTime(t time.Time) time.Time {
	if t.IsZero() || t.Unix() < 0 {
		return time.Unix(0, 0).UTC()
	}
	return t.UTC()
}

// Strings runs a statement of one String column and returns its values.
func Strings(ctx context.Context, conn driver.Conn, sql string) ([]string, error) {
	rows, err := conn.Query(ctx, sql)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}
