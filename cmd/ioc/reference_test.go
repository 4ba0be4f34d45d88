package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vn-ioc/ioc/internal/testenv"
)

// ioc reference: seed, a load refused with the file, row and field named
// (nothing written), a load that replaces the kind, and get.
func TestReferenceCommand(t *testing.T) {
	database := "test_" + testenv.RandomHex(6)
	env := map[string]string{"IOC_CLICKHOUSE_ADDR": testenv.ClickHouseAddr(t), "IOC_CLICKHOUSE_DATABASE": database}
	getenv := func(k string) string { return env[k] }
	db, _ := testenv.ClickHouse(t) // for the cleanup of the command's database
	t.Cleanup(func() { _ = db.Conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+database) })
	run := func(args ...string) (string, error) {
		var out, errb bytes.Buffer
		err := runReference(context.Background(), args, getenv, &out, &errb)
		return out.String() + errb.String(), err
	}
	if out, err := run("seed"); err != nil || !strings.HasPrefix(out, "loaded ") || !strings.Contains(out, " units, ") {
		t.Fatalf("seed: %v\n%s", err, out)
	}
	dir := t.TempDir()
	bad := filepath.Join(dir, "officers.csv")
	if err := os.WriteFile(bad, []byte("id,unit,name,title\nCB-X-01,99999,Nguyễn Văn X,\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := run("load", "-kind", "officers", "-file", bad)
	if err == nil || !strings.Contains(err.Error(), bad) || !strings.Contains(err.Error(), "officers line 2") || !strings.Contains(err.Error(), `unit "99999" does not exist`) {
		t.Fatalf("load of an officer in an unknown unit: %v", err)
	}
	good := filepath.Join(dir, "officers.json")
	if err := os.WriteFile(good, []byte(`[{"id":"CB-26740-99","unit":"26740","name":"Lê Thị Hoa","title":"Chuyên viên"}]`), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := run("load", "-kind", "officers", "-file", good); err != nil || !strings.Contains(out, "replaced officers") {
		t.Fatalf("load: %v\n%s", err, out)
	}
	out, err := run("get", "-kind", "officers")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Count(out, `"id"`) != 1 || !strings.Contains(out, "CB-26740-99") {
		t.Fatalf("officers after the load:\n%s", out)
	}
}
