package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/vn-ioc/ioc/internal/app"
	"github.com/vn-ioc/ioc/internal/chlocal"
)

// benchNode is a throwaway node for a benchmark: a private ClickHouse and a
// node with embedded NATS in a temporary folder.
type benchNode struct {
	*app.App
	ch    *chlocal.Server
	close func()
}

// startBenchNode starts a node and runs it until Close; tune, if not nil,
// adjusts its configuration first.
func startBenchNode(ctx context.Context, name string, stderr io.Writer, tune func(*app.Config)) (*benchNode, error) {
	dir, err := os.MkdirTemp("", "ioc-bench-"+name+"-")
	if err != nil {
		return nil, err
	}
	ch, err := chlocal.Start(ctx, chlocal.Options{Dir: filepath.Join(dir, "clickhouse")})
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	port, _ := chlocal.FreePort()
	cfg := app.Config{HTTPAddr: fmt.Sprintf("127.0.0.1:%d", port), DataDir: dir, NATSPort: -1,
		Log: slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	cfg.ClickHouse.Addr = ch.Addr()
	cfg.ClickHouse.HTTPAddr = ch.HTTPAddr()
	if tune != nil {
		tune(&cfg)
	}
	a, err := app.New(ctx, cfg)
	if err != nil {
		ch.Stop()
		os.RemoveAll(dir)
		return nil, err
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- a.Run(runCtx) }()
	// Serving: the websocket takes clients once the node follows the KPI
	// values.
	select {
	case <-a.Serving():
	case err := <-done:
		stop()
		a.Close()
		ch.Stop()
		os.RemoveAll(dir)
		if err == nil {
			err = errors.New("the node stopped before serving")
		}
		return nil, err
	}
	return &benchNode{App: a, ch: ch, close: func() {
		stop()
		<-done
		a.Close()
		ch.Stop()
		os.RemoveAll(dir)
	}}, nil
}

// Close stops the node, its ClickHouse, and removes the folder.
func (n *benchNode) Close() { n.close() }
