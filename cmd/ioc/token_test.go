package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/vn-ioc/ioc/internal/auth"
)

// The token command issues wall tokens the node accepts and refuses those
// it would refuse.
func TestTokenCommandWall(t *testing.T) {
	const key = "token-test-key-0123456789abcdef0123456789"
	run := func(args ...string) (string, error) {
		var out, errs bytes.Buffer
		err := runToken(context.Background(), append([]string{"--token-key", key}, args...), func(string) string { return "" }, &out, &errs)
		return strings.TrimSpace(out.String()), err
	}
	tok, err := run("--role", "wall", "--dashboard", "ward", "--unit", "26740")
	if err != nil {
		t.Fatal(err)
	}
	is, _ := auth.NewIssuer([]byte(key))
	c, err := is.Verify(tok)
	if err != nil || c.Role != auth.RoleWall || c.Dashboard != "ward" || c.Unit != "26740" {
		t.Fatalf("claims %+v (%v)", c, err)
	}
	if _, err := run("--role", "wall", "--dashboard", "city"); err != nil {
		t.Fatalf("city wall: %v", err)
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"ward wall without a unit", []string{"--role", "wall", "--dashboard", "ward"}, "give --unit, a ward"},
		{"unknown dashboard", []string{"--role", "wall", "--dashboard", "nowhere"}, "no such dashboard (one of city, tablet, ward)"},
		{"tablet", []string{"--role", "wall", "--dashboard", "tablet", "--unit", "26740"}, "is a tablet"},
		{"city wall of another unit", []string{"--role", "wall", "--dashboard", "city", "--unit", "26740"}, "is of unit 79"},
		{"no dashboard", []string{"--role", "wall"}, "needs --dashboard"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if out, err := run(tc.args...); err == nil || !strings.Contains(err.Error(), tc.want) || out != "" {
				t.Fatalf("%q, %v; want an error with %q", out, err, tc.want)
			}
		})
	}
}
