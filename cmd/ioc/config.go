package main

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strconv"
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

// nodeFlags binds the flags every command that talks to a node's backends
// shares, with IOC_* environment variables as defaults.
type nodeFlags struct {
	httpAddr, dataDir, natsURL                  string
	natsPort                                    int
	chAddr, chDB, chUser, chPassword, chCluster string
	tokenKey, pseudonymKey, logLevel            string
	maxBatch                                    int
	flush, dupWindow                            time.Duration
}

func bindNode(fs *flag.FlagSet, e env) *nodeFlags {
	n := &nodeFlags{}
	fs.StringVar(&n.httpAddr, "http-addr", e.str("IOC_HTTP_ADDR", "127.0.0.1:8080"), "HTTP listen address (IOC_HTTP_ADDR)")
	fs.StringVar(&n.dataDir, "data-dir", e.str("IOC_DATA_DIR", "data"), "data folder: embedded NATS store, keys, private ClickHouse (IOC_DATA_DIR)")
	fs.StringVar(&n.natsURL, "nats-url", e.str("IOC_NATS_URL", ""), "external NATS URL; empty runs NATS embedded (IOC_NATS_URL)")
	fs.IntVar(&n.natsPort, "nats-port", e.num("IOC_NATS_PORT", 4222), "port of the embedded NATS server, -1 for a free one (IOC_NATS_PORT)")
	fs.StringVar(&n.chAddr, "clickhouse-addr", e.str("IOC_CLICKHOUSE_ADDR", "127.0.0.1:9000"), "ClickHouse native host:port (IOC_CLICKHOUSE_ADDR)")
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
		HTTPAddr: n.httpAddr,
		DataDir:  n.dataDir,
		NATSURL:  n.natsURL,
		NATSPort: n.natsPort,
		Log:      log,
	}
	if n.tokenKey != "" {
		c.TokenKey = []byte(n.tokenKey)
	}
	if n.pseudonymKey != "" {
		c.PseudonymKey = []byte(n.pseudonymKey)
	}
	c.ClickHouse.Addr = n.chAddr
	c.ClickHouse.Database = n.chDB
	c.ClickHouse.User = n.chUser
	c.ClickHouse.Password = n.chPassword
	c.ClickHouse.Cluster = n.chCluster
	c.Writer.MaxBatch = n.maxBatch
	c.Writer.FlushInterval = n.flush
	c.Stream.DuplicateWindow = n.dupWindow
	return c
}
