package main

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/vn-ioc/ioc/internal/app"
)

// env reads IOC_* variables as flag defaults, so a flag always wins.
type env func(string) string

func (e env) str(name, def string) string {
	if v := e(name); v != "" {
		return v
	}
	return def
}

func (e env) dur(name string, def time.Duration) time.Duration {
	if v := e(name); v != "" {
		if d, err := time.ParseDuration(v); err == nil {
			return d
		}
	}
	return def
}

func (e env) num(name string, def int) int {
	if v := e(name); v != "" {
		if n, err := strconv.Atoi(v); err == nil {
			return n
		}
	}
	return def
}

// Numeric and duration variables, checked before any command runs so that
// a typo is an error rather than a silently ignored setting.
var (
	numberVars   = []string{"IOC_NATS_PORT", "IOC_NATS_REPLICAS", "IOC_WRITER_MAX_BATCH", "IOC_DEMO_CLICKHOUSE_PORT", "IOC_SQL_MAX_ROWS", "IOC_SQL_PER_TOKEN"}
	durationVars = []string{"IOC_WRITER_FLUSH", "IOC_DEDUP_WINDOW", "IOC_SQL_MAX_TIMEOUT", "IOC_ALERT_INTERVAL"}
	boolVars     = []string{"IOC_NATS_SYNC_ALWAYS"}
)

func checkEnv(getenv func(string) string) error {
	for _, name := range numberVars {
		if v := getenv(name); v != "" {
			if _, err := strconv.Atoi(v); err != nil {
				return fmt.Errorf("%s=%q: want a whole number", name, v)
			}
		}
	}
	for _, name := range durationVars {
		if v := getenv(name); v != "" {
			if _, err := time.ParseDuration(v); err != nil {
				return fmt.Errorf("%s=%q: want a duration such as 250ms or 2m", name, v)
			}
		}
	}
	for _, name := range boolVars {
		if v := getenv(name); v != "" {
			if _, err := strconv.ParseBool(v); err != nil {
				return fmt.Errorf("%s=%q: want true or false", name, v)
			}
		}
	}
	return nil
}

func (e env) flag(name string) bool {
	b, _ := strconv.ParseBool(e(name))
	return b
}

// nodeFlags binds the flags every command that talks to a node's backends
// shares, with IOC_* environment variables as defaults.
type nodeFlags struct {
	httpAddr, dataDir, natsURL                   string
	natsPort, natsReplicas                       int
	natsSync                                     bool
	chAddr, chHTTPAddr, chDB, chUser, chPassword string
	chCluster                                    string
	tokenKey, pseudonymKey, logLevel             string
	maxBatch                                     int
	flush, dupWindow                             time.Duration
	readerUser, readerPassword                   string
	sqlMaxRows                                   int64
	sqlPerToken                                  int
	sqlMaxTimeout                                time.Duration
	alertRules                                   string
	alertInterval                                time.Duration
	wsOrigins                                    string
}

func bindNode(fs *flag.FlagSet, e env) *nodeFlags {
	n := &nodeFlags{}
	fs.StringVar(&n.httpAddr, "http-addr", e.str("IOC_HTTP_ADDR", "127.0.0.1:8080"), "HTTP listen address (IOC_HTTP_ADDR)")
	fs.StringVar(&n.dataDir, "data-dir", e.str("IOC_DATA_DIR", "data"), "data folder: embedded NATS store, keys, private ClickHouse (IOC_DATA_DIR)")
	fs.StringVar(&n.natsURL, "nats-url", e.str("IOC_NATS_URL", ""), "external NATS URL; empty runs NATS embedded (IOC_NATS_URL)")
	fs.IntVar(&n.natsPort, "nats-port", e.num("IOC_NATS_PORT", 4222), "port of the embedded NATS server, -1 for a free one (IOC_NATS_PORT)")
	fs.IntVar(&n.natsReplicas, "nats-replicas", e.num("IOC_NATS_REPLICAS", 1), "replicas of the events stream on a NATS cluster (IOC_NATS_REPLICAS)")
	fs.BoolVar(&n.natsSync, "nats-sync-always", e.flag("IOC_NATS_SYNC_ALWAYS"), "embedded NATS: fsync every write, to survive power loss (IOC_NATS_SYNC_ALWAYS)")
	fs.StringVar(&n.chAddr, "clickhouse-addr", e.str("IOC_CLICKHOUSE_ADDR", "127.0.0.1:9000"), "ClickHouse native host:port (IOC_CLICKHOUSE_ADDR)")
	fs.StringVar(&n.chHTTPAddr, "clickhouse-http-addr", e.str("IOC_CLICKHOUSE_HTTP_ADDR", ""), "ClickHouse HTTP host:port, for the SQL API's Arrow export; empty: port 8123 of the native host; off: not used (IOC_CLICKHOUSE_HTTP_ADDR)")
	fs.StringVar(&n.chDB, "clickhouse-database", e.str("IOC_CLICKHOUSE_DATABASE", "ioc"), "ClickHouse database (IOC_CLICKHOUSE_DATABASE)")
	fs.StringVar(&n.chUser, "clickhouse-user", e.str("IOC_CLICKHOUSE_USER", "default"), "ClickHouse user (IOC_CLICKHOUSE_USER)")
	fs.StringVar(&n.chPassword, "clickhouse-password", e.str("IOC_CLICKHOUSE_PASSWORD", ""), "ClickHouse password (IOC_CLICKHOUSE_PASSWORD)")
	fs.StringVar(&n.chCluster, "clickhouse-cluster", e.str("IOC_CLICKHOUSE_CLUSTER", ""), "create Replicated+Distributed tables on this cluster (IOC_CLICKHOUSE_CLUSTER)")
	fs.StringVar(&n.tokenKey, "token-key", e.str("IOC_TOKEN_KEY", ""), "token signing key, ≥ 32 bytes; default generated in the data folder (IOC_TOKEN_KEY)")
	fs.StringVar(&n.pseudonymKey, "pseudonym-key", e.str("IOC_PSEUDONYM_KEY", ""), "personal-data pseudonym key, ≥ 16 bytes; default generated in the data folder (IOC_PSEUDONYM_KEY)")
	fs.StringVar(&n.logLevel, "log-level", e.str("IOC_LOG_LEVEL", "info"), "debug, info, warn or error (IOC_LOG_LEVEL)")
	fs.IntVar(&n.maxBatch, "writer-max-batch", e.num("IOC_WRITER_MAX_BATCH", 20000), "rows per ClickHouse insert (IOC_WRITER_MAX_BATCH)")
	fs.DurationVar(&n.flush, "writer-flush", e.dur("IOC_WRITER_FLUSH", 250*time.Millisecond), "longest wait before a batch is inserted (IOC_WRITER_FLUSH)")
	fs.DurationVar(&n.dupWindow, "dedup-window", e.dur("IOC_DEDUP_WINDOW", 2*time.Minute), "JetStream duplicate window (IOC_DEDUP_WINDOW)")
	fs.StringVar(&n.readerUser, "clickhouse-reader-user", e.str("IOC_CLICKHOUSE_READER_USER", "ioc_reader"), "read-only ClickHouse user of the SQL API (IOC_CLICKHOUSE_READER_USER)")
	fs.StringVar(&n.readerPassword, "clickhouse-reader-password", e.str("IOC_CLICKHOUSE_READER_PASSWORD", "ioc_reader"), "its password (IOC_CLICKHOUSE_READER_PASSWORD)")
	fs.Int64Var(&n.sqlMaxRows, "sql-max-rows", int64(e.num("IOC_SQL_MAX_ROWS", 100_000_000)), "largest max_rows a SQL request may ask for (IOC_SQL_MAX_ROWS)")
	fs.IntVar(&n.sqlPerToken, "sql-per-token", e.num("IOC_SQL_PER_TOKEN", 4), "SQL statements one token may run at once (IOC_SQL_PER_TOKEN)")
	fs.DurationVar(&n.sqlMaxTimeout, "sql-max-timeout", e.dur("IOC_SQL_MAX_TIMEOUT", 5*time.Minute), "longest timeout a SQL request may ask for (IOC_SQL_MAX_TIMEOUT)")
	fs.StringVar(&n.alertRules, "alert-rules", e.str("IOC_ALERT_RULES", ""), "alert rules file; empty uses the bundled rules (IOC_ALERT_RULES)")
	fs.DurationVar(&n.alertInterval, "alert-interval", e.dur("IOC_ALERT_INTERVAL", 30*time.Second), "how often the dossier, ticket and camera alert rules are evaluated besides after commits (IOC_ALERT_INTERVAL)")
	fs.StringVar(&n.wsOrigins, "ws-origins", e.str("IOC_WS_ORIGINS", ""), "browser origins allowed to open a websocket, comma-separated (https://ioc.example.vn); empty: any (IOC_WS_ORIGINS)")
	return n
}

func (n *nodeFlags) logger(w io.Writer) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(n.logLevel)); err != nil {
		return nil, fmt.Errorf("log level %q: want debug, info, warn or error", n.logLevel)
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: lvl})), nil
}

func (n *nodeFlags) appConfig(log *slog.Logger) app.Config {
	c := app.Config{
		HTTPAddr:       n.httpAddr,
		DataDir:        n.dataDir,
		NATSURL:        n.natsURL,
		NATSPort:       n.natsPort,
		NATSSyncAlways: n.natsSync,
		Log:            log,
	}
	if n.tokenKey != "" {
		c.TokenKey = []byte(n.tokenKey)
	}
	if n.pseudonymKey != "" {
		c.PseudonymKey = []byte(n.pseudonymKey)
	}
	c.ClickHouse.Addr = n.chAddr
	c.ClickHouse.HTTPAddr = n.chHTTPAddr
	c.ClickHouse.Database = n.chDB
	c.ClickHouse.User = n.chUser
	c.ClickHouse.Password = n.chPassword
	c.ClickHouse.Cluster = n.chCluster
	c.Writer.MaxBatch = n.maxBatch
	c.Writer.FlushInterval = n.flush
	c.Stream.DuplicateWindow = n.dupWindow
	c.Intake.DedupWindow = n.dupWindow
	c.Stream.Replicas = n.natsReplicas
	c.SQL.ReaderUser = n.readerUser
	c.SQL.ReaderPassword = n.readerPassword
	c.SQL.MaxRows = n.sqlMaxRows
	c.SQL.PerToken = n.sqlPerToken
	c.SQL.MaxTimeout = n.sqlMaxTimeout
	c.AlertRules = n.alertRules
	c.Alert.Interval = n.alertInterval
	for _, o := range strings.Split(n.wsOrigins, ",") {
		if o = strings.TrimSpace(o); o != "" {
			c.WS.AllowedOrigins = append(c.WS.AllowedOrigins, o)
		}
	}
	return c
}
