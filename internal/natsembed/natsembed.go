// Package natsembed runs a NATS server with JetStream inside the ioc process,
// for a single node without a separate NATS deployment. Its file store lives
// under the data folder, so a restart resumes with everything it had stored.
package natsembed

import (
	"errors"
	"fmt"
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
		NoLog:              true,
	})
	if err != nil {
		return nil, fmt.Errorf("nats server: %w", err)
	}
	s.Start()
	if !s.ReadyForConnections(30 * time.Second) {
		s.Shutdown()
		return nil, errors.New("embedded nats did not become ready within 30s")
	}
	return s, nil
}
