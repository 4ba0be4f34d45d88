// Package natsembed runs a NATS server with JetStream inside the ioc process,
// for a single node without a separate NATS deployment. Its file store lives
// under the data folder, so a restart resumes with everything it had stored.
package natsembed

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Options of the embedded server.
type Options struct {
	// StoreDir for JetStream file storage. Required.
	StoreDir string
	// Host to listen on. Default 127.0.0.1.
	Host string
	// Port to listen on; 0 means the NATS default 4222, -1 a random port.
	Port int
	// MaxStore bounds JetStream file storage in bytes. Default 10 GiB: the
	// events stream (8 GiB), the KPI bucket (1 GiB) and its rates (256 MiB)
	// with room to spare.
	MaxStore int64
	// Token clients must present. Default: none (tests only; ioc always
	// sets one, so no other local process can write to the streams).
	Token string
	// SyncAlways makes JetStream fsync every write: survives power loss,
	// at a cost in throughput. Default false (a process crash loses
	// nothing; the OS flushes every 2 minutes).
	SyncAlways bool
	// Log receives the server's warnings and errors (JetStream disabled
	// when the disk is full, a store recovered after a crash); its notices
	// at debug level. Default: none.
	Log *slog.Logger
}

// logger writes the server's log to slog, and keeps its last error.
type logger struct {
	log  *slog.Logger
	mu   sync.Mutex
	last string
}

func (l *logger) out(level slog.Level, format string, v []any) {
	msg := fmt.Sprintf(format, v...)
	if level >= slog.LevelError {
		l.mu.Lock()
		l.last = msg
		l.mu.Unlock()
	}
	if l.log != nil {
		l.log.Log(context.Background(), level, "nats: "+msg)
	}
}

func (l *logger) Noticef(format string, v ...any) { l.out(slog.LevelDebug, format, v) }
func (l *logger) Warnf(format string, v ...any)   { l.out(slog.LevelWarn, format, v) }
func (l *logger) Fatalf(format string, v ...any)  { l.out(slog.LevelError, format, v) }
func (l *logger) Errorf(format string, v ...any)  { l.out(slog.LevelError, format, v) }
func (l *logger) Debugf(format string, v ...any)  {}
func (l *logger) Tracef(format string, v ...any)  {}

func (l *logger) lastError() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.last
}

// Start runs the server and waits until it is ready for connections.
func Start(o Options) (*server.Server, error) {
	if o.StoreDir == "" {
		return nil, errors.New("natsembed: StoreDir is required")
	}
	if o.Host == "" {
		o.Host = "127.0.0.1"
	}
	if o.MaxStore == 0 {
		o.MaxStore = 10 << 30
	}
	s, err := server.NewServer(&server.Options{
		ServerName:         "ioc-embedded",
		Host:               o.Host,
		Port:               o.Port,
		JetStream:          true,
		StoreDir:           o.StoreDir,
		JetStreamMaxStore:  o.MaxStore,
		JetStreamMaxMemory: 256 << 20,
		MaxPayload:         8 << 20,
		NoSigs:             true,
		Authorization:      o.Token,
		SyncAlways:         o.SyncAlways,
	})
	if err != nil {
		return nil, fmt.Errorf("nats server: %w", err)
	}
	// The server reports a port it cannot listen on only to its log, and
	// then never becomes ready: try the port first, and say which.
	if o.Port > 0 {
		l, err := net.Listen("tcp", net.JoinHostPort(o.Host, strconv.Itoa(o.Port)))
		if err != nil {
			return nil, fmt.Errorf("embedded nats: port %d on %s is taken (another NATS server, or another ioc on this port; choose another with --nats-port / IOC_NATS_PORT): %w", o.Port, o.Host, err)
		}
		l.Close()
	}
	lg := &logger{log: o.Log}
	s.SetLoggerV2(lg, false, false, false)
	s.Start()
	if !s.ReadyForConnections(30 * time.Second) {
		s.Shutdown()
		if why := lg.lastError(); why != "" {
			return nil, fmt.Errorf("embedded nats did not become ready within 30s: %s", why)
		}
		return nil, errors.New("embedded nats did not become ready within 30s")
	}
	return s, nil
}
