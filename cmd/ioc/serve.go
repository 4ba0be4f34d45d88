package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/vn-ioc/ioc/dashboards"
	"github.com/vn-ioc/ioc/internal/app"
	"github.com/vn-ioc/ioc/internal/auth"
	"github.com/vn-ioc/ioc/query"
	"github.com/vn-ioc/ioc/query/kpi"
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
	unlock, err := app.LockDataDir(n.dataDir)
	if err != nil {
		return err
	}
	defer unlock()
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
	unit := fs.String("unit", "", "leader: the unit whose subtree the token sees; wall: the unit of a dashboard of unit: token (ward: --unit 26740)")
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
	if *role == auth.RoleWall {
		if err := checkWallToken(*dashboard, *unit); err != nil {
			return err
		}
	}
	tok, err := is.Issue(auth.Claims{Role: *role, Source: *source, Unit: *unit, Dashboard: *dashboard}, sub, *ttl)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, tok)
	return nil
}

// checkWallToken refuses a wall token the node would refuse: a dashboard
// that is not a bundled wall, a unit: token wall without a unit, a unit for
// a wall of a fixed unit. The unit itself is checked by the node against
// its reference data.
func checkWallToken(id, unit string) error {
	cat, err := kpi.Load()
	if err != nil {
		return err
	}
	all, err := dashboards.Load(app.DashboardChecks(cat, nil))
	if err != nil {
		return err
	}
	d := all[id]
	switch {
	case id == "":
		return errors.New("a wall token needs --dashboard")
	case d == nil:
		ids := make([]string, 0, len(all))
		for k := range all {
			ids = append(ids, k)
		}
		slices.Sort(ids)
		return fmt.Errorf("--dashboard %s: no such dashboard (one of %s)", id, strings.Join(ids, ", "))
	case d.Kind != dashboards.KindWall:
		return fmt.Errorf("--dashboard %s is a %s: it opens with a leader's token, not a wall token", id, d.Kind)
	case d.UnitFromToken() && unit == "":
		what := "a unit"
		if len(d.UnitKind) > 0 {
			what = "a " + d.UnitKind.String()
		}
		return fmt.Errorf("--dashboard %s is shown for the unit of its token: give --unit, %s (--unit 26740)", id, what)
	case !d.UnitFromToken() && unit != "" && unit != d.Unit:
		return fmt.Errorf("--dashboard %s is of unit %s: leave --unit out", id, d.Unit)
	}
	return nil
}
