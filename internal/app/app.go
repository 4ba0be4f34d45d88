// Package app assembles one ioc node: embedded or external NATS JetStream,
// ClickHouse with its migrations and reference data, the intake (HTTP and
// NATS), the writer, and the HTTP API. Run starts everything under one
// errgroup and shuts down in order: stop intake, drain the writer, close
// connections, stop the embedded NATS server.
package app

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"golang.org/x/sync/errgroup"

	"github.com/vn-ioc/ioc/dashboards"
	"github.com/vn-ioc/ioc/ingest"
	"github.com/vn-ioc/ioc/ingest/refdata"
	"github.com/vn-ioc/ioc/internal/auth"
	"github.com/vn-ioc/ioc/internal/natsembed"
	"github.com/vn-ioc/ioc/query"
	"github.com/vn-ioc/ioc/query/alert"
	"github.com/vn-ioc/ioc/query/kpi"
	"github.com/vn-ioc/ioc/query/sqlapi"
	"github.com/vn-ioc/ioc/stream"
)

// Config of a node. The zero value of each field means its default.
type Config struct {
	// HTTPAddr to listen on. Default 127.0.0.1:8080.
	HTTPAddr string
	// DataDir holds the embedded NATS store and generated keys. Default ./data.
	DataDir string
	// NATSURL of an external NATS cluster; empty runs NATS embedded.
	NATSURL string
	// NATSPort of the embedded server. Default 4222; -1 picks a free port.
	NATSPort int
	// NATSSyncAlways makes the embedded JetStream fsync every write.
	NATSSyncAlways bool
	// TokenKey signs tokens (≥ 32 bytes). Default: generated once and kept
	// in DataDir/token.key.
	TokenKey []byte
	// PseudonymKey keys the pseudonyms of personal data (≥ 16 bytes).
	// Default: generated once and kept in DataDir/pseudonym.key.
	PseudonymKey []byte
	// LoadReference seeds the bundled Ho Chi Minh City reference data when
	// the database has none. Default true (set SkipReference to disable).
	SkipReference bool

	ClickHouse query.Config
	Stream     ingest.StreamConfig
	Intake     ingest.IntakeConfig
	Writer     ingest.WriterConfig
	SQL        sqlapi.Config
	KPI        kpi.Config
	Alert      alert.Config
	WS         stream.Config
	// AlertRules is a rules file replacing the bundled one
	// (query/alert/rules.yaml); empty keeps the bundled rules.
	AlertRules string

	// Log; default slog.Default().
	Log *slog.Logger
}

func (c *Config) setDefaults() {
	if c.HTTPAddr == "" {
		c.HTTPAddr = "127.0.0.1:8080"
	}
	if c.DataDir == "" {
		c.DataDir = "data"
	}
	if c.NATSPort == 0 {
		c.NATSPort = 4222
	}
	if c.Log == nil {
		c.Log = slog.Default()
	}
}

// Validate names the field that is wrong.
func (c *Config) Validate() error {
	if _, _, err := net.SplitHostPort(c.HTTPAddr); c.HTTPAddr != "" && err != nil {
		return fmt.Errorf("http addr %q: %v", c.HTTPAddr, err)
	}
	if c.TokenKey != nil && len(c.TokenKey) < 32 {
		return errors.New("token key (IOC_TOKEN_KEY) must be at least 32 bytes")
	}
	if c.PseudonymKey != nil && len(c.PseudonymKey) < 16 {
		return errors.New("pseudonym key (IOC_PSEUDONYM_KEY) must be at least 16 bytes")
	}
	if err := c.ClickHouse.Validate(); err != nil {
		return err
	}
	if err := c.Stream.Validate(); err != nil {
		return err
	}
	if err := c.Intake.Validate(); err != nil {
		return err
	}
	if err := c.SQL.Validate(); err != nil {
		return err
	}
	if err := c.KPI.Validate(); err != nil {
		return err
	}
	if err := c.Alert.Validate(); err != nil {
		return err
	}
	if err := c.WS.Validate(); err != nil {
		return err
	}
	return c.Writer.Validate()
}

// KeyFromDir returns the key in DataDir/name, creating a random one (hex,
// 64 characters) the first time.
func KeyFromDir(dataDir, name string) ([]byte, error) {
	path := filepath.Join(dataDir, name)
	if b, err := os.ReadFile(path); err == nil {
		k := strings.TrimSpace(string(b))
		if len(k) < 32 {
			return nil, fmt.Errorf("%s: key shorter than 32 characters", path)
		}
		return []byte(k), nil
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, err
	}
	buf := make([]byte, 32)
	if _, err := rand.Read(buf); err != nil {
		return nil, err
	}
	k := hex.EncodeToString(buf)
	if err := os.WriteFile(path, []byte(k+"\n"), 0o600); err != nil {
		return nil, err
	}
	return []byte(k), nil
}

// App is a running node.
type App struct {
	cfg      Config
	log      *slog.Logger
	ns       *server.Server
	nc       *nats.Conn
	wnc      *nats.Conn // the writer's
	js       jetstream.JetStream
	stream   jetstream.Stream
	db       *query.DB
	Tokens   *auth.Issuer
	refs     *refdata.Index
	refStore *refdata.Store
	// refMu orders the reloads of the reference data with its
	// replacements, so that a reload read before a replacement is never
	// applied after it.
	refMu  sync.Mutex
	intake *ingest.Intake
	writer *ingest.Writer
	sql    *sqlapi.Service
	sqlErr error // why the SQL API is off, when it is
	// computes bounds the KPI computations of REST: 8 a token, 32 a node.
	computes *computeLimit
	reg      *prometheus.Registry

	kpiCat     *kpi.Catalog
	kpiBuilder *kpi.Builder
	kpiStore   *kpi.Store
	kpiHistory *kpi.History
	kpiReader  *kpi.Reader
	engine     *kpi.Engine
	hub        *stream.Hub
	lists      *listFeed
	alertRules *alert.Rules
	alertStore *alert.Store
	evaluator  *alert.Evaluator
	alertFeed  *alert.Feed
	dashboards map[string]*dashboards.Dashboard
	metrics    *ingest.Metrics
	listener   net.Listener
	ready      atomic.Bool
	serving    chan struct{}
	natsURL    string
}

// New connects everything a node needs, applies migrations and seeds the
// reference data; Run then serves. Close releases what New opened.
func New(ctx context.Context, cfg Config) (*App, error) {
	tuneGC()
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	a := &App{cfg: cfg, log: cfg.Log, serving: make(chan struct{}), computes: newComputeLimit(8, 32)}
	ok := false
	defer func() {
		if !ok {
			a.Close()
		}
	}()
	var err error
	if cfg.TokenKey == nil {
		if cfg.TokenKey, err = KeyFromDir(cfg.DataDir, "token.key"); err != nil {
			return nil, fmt.Errorf("token key: %w", err)
		}
	}
	if cfg.PseudonymKey == nil {
		if cfg.PseudonymKey, err = KeyFromDir(cfg.DataDir, "pseudonym.key"); err != nil {
			return nil, fmt.Errorf("pseudonym key: %w", err)
		}
	}
	if a.Tokens, err = auth.NewIssuer(cfg.TokenKey); err != nil {
		return nil, err
	}
	pseudo, err := ingest.NewPseudonymizer(cfg.PseudonymKey)
	if err != nil {
		return nil, err
	}

	url := cfg.NATSURL
	if url == "" {
		// The embedded server wants a token, kept in the data folder, so
		// that no other local process can write to the streams.
		tok, err := KeyFromDir(cfg.DataDir, "nats.key")
		if err != nil {
			return nil, fmt.Errorf("nats token: %w", err)
		}
		a.ns, err = natsembed.Start(natsembed.Options{StoreDir: filepath.Join(cfg.DataDir, "nats"), Port: cfg.NATSPort,
			Token: string(tok), SyncAlways: cfg.NATSSyncAlways, Log: a.log})
		if err != nil {
			return nil, err
		}
		url = strings.Replace(a.ns.ClientURL(), "nats://", "nats://"+string(tok)+"@", 1)
		a.log.Info("embedded NATS JetStream started", "url", a.ns.ClientURL(), "store", filepath.Join(cfg.DataDir, "nats"))
	}
	a.natsURL = url
	if a.nc, err = ingest.Connect(url, "ioc", a.log); err != nil {
		return nil, fmt.Errorf("connect nats %s: %w", url, err)
	}
	if a.js, err = jetstream.New(a.nc, jetstream.WithPublishAsyncMaxPending(16384)); err != nil {
		return nil, err
	}
	if a.stream, err = ingest.EnsureStream(ctx, a.js, cfg.Stream); err != nil {
		return nil, err
	}

	if a.db, err = query.Open(ctx, cfg.ClickHouse); err != nil {
		return nil, err
	}
	v, err := a.db.Migrate(ctx)
	if err != nil {
		return nil, err
	}
	a.log.Info("clickhouse schema ready", "addr", cfg.ClickHouse.Addr, "database", a.db.Database(), "version", v)

	a.refStore = refdata.NewStore(a.db)
	set, err := a.seedReference(ctx)
	if err != nil {
		return nil, err
	}
	a.refs = refdata.NewIndex(set)

	contract, err := ingest.LoadContract()
	if err != nil {
		return nil, err
	}
	a.reg = prometheus.NewRegistry()
	a.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	a.metrics = ingest.NewMetrics(a.reg)
	// The SQL API needs ClickHouse's read-only user. Without it the node
	// still ingests; the API answers 503 with the reason, and /readyz says so.
	if a.sql, err = sqlapi.New(ctx, cfg.SQL, a.db, a.reg, a.log); err != nil {
		a.sqlErr = err
		a.log.Error("SQL API disabled", "err", err)
	}
	if err := a.setupKPIs(ctx); err != nil {
		return nil, err
	}
	validator := ingest.NewValidator(contract, a.refs, pseudo)
	if a.intake, err = ingest.NewIntake(cfg.Intake, a.js, validator, a.metrics, a.log); err != nil {
		return nil, err
	}
	// The writer has a connection of its own, so that deliveries to it never
	// queue in front of the intake's publish acknowledgements.
	if a.wnc, err = ingest.Connect(url, "ioc-writer", a.log); err != nil {
		return nil, fmt.Errorf("connect nats %s: %w", url, err)
	}
	wjs, err := jetstream.New(a.wnc)
	if err != nil {
		return nil, err
	}
	wstream, err := wjs.Stream(ctx, a.stream.CachedInfo().Config.Name)
	if err != nil {
		return nil, err
	}
	if a.writer, err = ingest.NewWriter(cfg.Writer, a.db, a.wnc, wstream, a.metrics, a.log); err != nil {
		return nil, err
	}
	if a.listener, err = net.Listen("tcp", cfg.HTTPAddr); err != nil {
		return nil, fmt.Errorf("listen %s: %w", cfg.HTTPAddr, err)
	}
	ok = true
	return a, nil
}

// gcPercent is the GC target of a node (serve, demo, bench), unless the
// environment sets GOGC. A node's heap is mostly short-lived event buffers
// (request bodies, records, the writer's batches); collecting when the heap
// has grown 4× instead of 2× past the live data roughly quarters the GC's
// CPU, which intake and the writer then use, for some hundred MB more
// memory at full load.
const gcPercent = 400

func tuneGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
}

// seedReference loads the bundled city when the database has no units yet.
func (a *App) seedReference(ctx context.Context) (*refdata.Set, error) {
	empty, err := a.refStore.Empty(ctx)
	if err != nil {
		return nil, err
	}
	if empty && !a.cfg.SkipReference {
		set, err := refdata.HCMC()
		if err != nil {
			return nil, err
		}
		if err := a.refStore.SaveAll(ctx, set); err != nil {
			return nil, fmt.Errorf("seed reference data: %w", err)
		}
		a.log.Info("reference data seeded", "units", len(set.Units), "procedures", len(set.Procedures),
			"officers", len(set.Officers), "cameras", len(set.Cameras), "calendar_days", len(set.Calendar))
		return set, nil
	}
	return a.refStore.Load(ctx)
}

// Serving is closed once Run has started every part, the KPI watch that
// feeds the websocket clients is established, and /readyz can answer
// ready.
func (a *App) Serving() <-chan struct{} { return a.serving }

// URL of the HTTP API.
func (a *App) URL() string { return "http://" + a.listener.Addr().String() }

// NATSURL the node is connected to, with the embedded server's token.
func (a *App) NATSURL() string { return a.natsURL }

// DB is the node's ClickHouse handle.
func (a *App) DB() *query.DB { return a.db }

// Run serves until ctx ends, then shuts down in order.
func (a *App) Run(ctx context.Context) error {
	srv := &http.Server{Handler: a.routes(), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 120 * time.Second}
	writerCtx, stopWriter := context.WithCancel(context.Background())
	defer stopWriter()
	intakeCtx, stopIntake := context.WithCancel(ctx)
	defer stopIntake()

	g, gctx := errgroup.WithContext(ctx)
	// The writer runs until the node has stopped taking events; should it
	// end before (it should not), the node stops with its error rather
	// than accept events no one writes.
	var writerErr error
	writerDone := make(chan struct{})
	go func() { writerErr = a.writer.Run(writerCtx); close(writerDone) }()
	g.Go(func() error {
		select {
		case <-writerDone:
			if writerErr == nil {
				return errors.New("the writer stopped while the node ran")
			}
			return fmt.Errorf("the writer stopped while the node ran: %w", writerErr)
		case <-gctx.Done():
			return nil
		}
	})
	g.Go(func() error { return a.intake.ServeNATS(intakeCtx, a.nc, a.Tokens) })
	g.Go(func() error {
		if err := srv.Serve(a.listener); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})
	g.Go(func() error { return a.refreshReference(intakeCtx) })
	g.Go(func() error { return a.engine.Run(intakeCtx) })
	g.Go(func() error { return a.kpiHistory.Run(intakeCtx) })
	g.Go(func() error { return a.lists.Run(intakeCtx, a.nc) })
	g.Go(func() error { return a.evaluator.Run(intakeCtx) })
	g.Go(func() error { return a.alertFeed.Run(intakeCtx) })
	// Ready once the KPI watch is established: a client subscribing then
	// gets a snapshot, and every value published after it.
	watching := make(chan struct{})
	g.Go(func() error {
		return a.kpiStore.Watch(intakeCtx, func(u stream.Update) {
			a.hub.Publish(u)
			a.lists.Published(u)
		}, func() { close(watching) })
	})
	auditDone := make(chan error, 1)
	auditCtx, stopAudit := context.WithCancel(context.Background())
	defer stopAudit()
	if a.sql != nil {
		go func() { auditDone <- a.sql.Run(auditCtx) }()
	} else {
		auditDone <- nil
	}
	select {
	case <-watching:
		a.ready.Store(true)
		close(a.serving)
		a.log.Info("ioc serving", "http", a.URL(), "nats", a.NATSURL())
	case <-gctx.Done():
	}

	<-gctx.Done()
	a.ready.Store(false)
	// 1. stop intake: no new events accepted; websocket clients are told
	// the node goes away, so that they reconnect to another one.
	a.hub.Close()
	shutCtx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	_ = srv.Shutdown(shutCtx)
	cancel()
	stopIntake()
	err := g.Wait()
	// 2. drain the writer: it finishes the batch in hand.
	stopWriter()
	<-writerDone
	if err == nil {
		err = writerErr
	}
	// 3. flush the SQL audit.
	stopAudit()
	if aerr := <-auditDone; err == nil {
		err = aerr
	}
	a.log.Info("ioc stopped")
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	return err
}

// refreshReference picks up reference data replaced through another node.
func (a *App) refreshReference(ctx context.Context) error {
	t := time.NewTicker(30 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			a.refMu.Lock()
			set, err := a.refStore.Load(ctx)
			changed := err == nil && !reflect.DeepEqual(set, a.refs.Set())
			if changed {
				a.refs.Replace(set)
			}
			a.refMu.Unlock()
			if changed {
				a.recheckScopes()
			}
			if err != nil {
				a.log.Warn("reference refresh", "err", err)
			}
		}
	}
}

// Close releases connections and stops the embedded NATS server.
func (a *App) Close() {
	if a.listener != nil {
		a.listener.Close()
	}
	for _, nc := range []*nats.Conn{a.nc, a.wnc} {
		if nc != nil {
			nc.Drain()
			nc.Close()
		}
	}
	if a.sql != nil {
		a.sql.Close()
	}
	if a.db != nil {
		a.db.Close()
	}
	if a.ns != nil {
		a.ns.Shutdown()
		a.ns.WaitForShutdown()
	}
}

// Writer is the node's ClickHouse writer (benchmarks hook into it).
func (a *App) Writer() *ingest.Writer { return a.writer }
