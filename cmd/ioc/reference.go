package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/vn-ioc/ioc/ingest/refdata"
	"github.com/vn-ioc/ioc/query"
)

// runReference exports (get) or replaces (load) one kind of reference data
// directly in ClickHouse; nodes pick a replacement up within 30 seconds.
// The same is possible over HTTP: GET/PUT /api/v1/reference/{kind}.
func runReference(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || (args[0] != "get" && args[0] != "load" && args[0] != "seed") {
		fmt.Fprintln(stderr, "usage: ioc reference get  -kind K            print the current rows as JSON\n"+
			"       ioc reference load -kind K -file F   replace kind K with a CSV or JSON file\n"+
			"       ioc reference seed                   (re)load the bundled Ho Chi Minh City data\n"+
			"kinds: "+strings.Join(refdata.Kinds, ", "))
		return fmt.Errorf("reference: a subcommand is required")
	}
	verb := args[0]
	fs := flag.NewFlagSet("reference "+verb, flag.ContinueOnError)
	fs.SetOutput(stderr)
	n := bindNode(fs, getenv)
	kind := fs.String("kind", "", "units, procedures, officers, cameras or calendar")
	file := fs.String("file", "", "load: a .csv or .json file")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	db, err := query.Open(ctx, n.appConfig(nil).ClickHouse)
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := db.Migrate(ctx); err != nil {
		return err
	}
	store := refdata.NewStore(db)
	if verb == "seed" {
		set, err := refdata.HCMC()
		if err != nil {
			return err
		}
		if err := store.SaveAll(ctx, set); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "loaded %d units, %d procedures, %d officers, %d cameras, %d calendar days\n",
			len(set.Units), len(set.Procedures), len(set.Officers), len(set.Cameras), len(set.Calendar))
		return nil
	}
	if !refdata.KnownKind(*kind) {
		return fmt.Errorf("-kind %q: one of %s", *kind, strings.Join(refdata.Kinds, ", "))
	}
	if verb == "get" {
		cur, err := store.Load(ctx)
		if err != nil {
			return err
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(cur.Rows(*kind))
	}
	if *file == "" {
		return fmt.Errorf("-file is required")
	}
	f, err := os.Open(*file)
	if err != nil {
		return err
	}
	defer f.Close()
	ct := "text/csv"
	if strings.EqualFold(filepath.Ext(*file), ".json") {
		ct = "application/json"
	}
	part, err := refdata.Parse(*kind, ct, f)
	if err != nil {
		return fmt.Errorf("%s: %w", *file, err)
	}
	if _, err := store.Replace(ctx, *kind, part); err != nil {
		var invalid *refdata.Invalid
		if errors.As(err, &invalid) {
			return fmt.Errorf("%s: %w", *file, err)
		}
		return err
	}
	fmt.Fprintf(stdout, "replaced %s from %s\n", *kind, *file)
	return nil
}
