package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/vn-ioc/ioc/internal/app"
	"github.com/vn-ioc/ioc/internal/auth"
	"github.com/vn-ioc/ioc/query"
)

func runServe(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	n := bindNode(fs, getenv)
	if err := fs.Parse(args); err != nil {
		return err
	}
	log, err := n.logger(stderr)
	if err != nil {
		return err
	}
	a, err := app.New(ctx, n.appConfig(log))
	if err != nil {
		return err
	}
	defer a.Close()
	fmt.Fprintf(stdout, "ioc serving on %s (NATS %s)\n", a.URL(), a.NATSURL())
	return a.Run(ctx)
}

func runMigrate(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	n := bindNode(fs, getenv)
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg := n.appConfig(nil).ClickHouse
	db, err := query.Open(ctx, cfg)
	if err != nil {
		return err
	}
	defer db.Close()
	v, err := db.Migrate(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "schema of %s at version %d\n", db.Database(), v)
	return nil
}

func runToken(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	e := env(getenv)
	dataDir := fs.String("data-dir", e.str("IOC_DATA_DIR", "data"), "data folder holding the generated token key (IOC_DATA_DIR)")
	key := fs.String("token-key", e.str("IOC_TOKEN_KEY", ""), "token signing key (IOC_TOKEN_KEY); default the data folder's")
	role := fs.String("role", "", "admin, ingest, wall, leader or analyst")
	source := fs.String("source", "", "ingest: the source the token may send for")
	unit := fs.String("unit", "", "leader: the unit whose subtree the token sees")
	dashboard := fs.String("dashboard", "", "wall: the dashboard the token shows")
	subject := fs.String("subject", "", "who the token is for (default: the role)")
	ttl := fs.Duration("ttl", 24*time.Hour, "how long the token is valid")
	if err := fs.Parse(args); err != nil {
		return err
	}
	k := []byte(*key)
	if *key == "" {
		var err error
		if k, err = app.KeyFromDir(*dataDir, "token.key"); err != nil {
			return err
		}
	}
	is, err := auth.NewIssuer(k)
	if err != nil {
		return err
	}
	sub := *subject
	if sub == "" {
		sub = *role
	}
	tok, err := is.Issue(auth.Claims{Role: *role, Source: *source, Unit: *unit, Dashboard: *dashboard}, sub, *ttl)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, tok)
	return nil
}
