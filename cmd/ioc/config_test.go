package main

import (
	"flag"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
)

// The websocket's allowed origins come from IOC_WS_ORIGINS or
// --ws-origins, comma-separated; a malformed one stops the node at start.
func TestWSOrigins(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	parse := func(vars map[string]string, args ...string) *nodeFlags {
		t.Helper()
		fs := flag.NewFlagSet("serve", flag.ContinueOnError)
		n := bindNode(fs, func(k string) string { return vars[k] })
		if err := fs.Parse(args); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if c := parse(nil).appConfig(log); c.WS.AllowedOrigins != nil {
		t.Errorf("default origins %q, want none (any origin)", c.WS.AllowedOrigins)
	}
	c := parse(map[string]string{"IOC_WS_ORIGINS": " https://ioc.hcmc.gov.vn, http://wall.local:8080 ,"}).appConfig(log)
	if want := []string{"https://ioc.hcmc.gov.vn", "http://wall.local:8080"}; !slices.Equal(c.WS.AllowedOrigins, want) {
		t.Errorf("origins %q, want %q", c.WS.AllowedOrigins, want)
	}
	c = parse(map[string]string{"IOC_WS_ORIGINS": "https://a.vn"}, "--ws-origins", "https://b.vn").appConfig(log)
	if !slices.Equal(c.WS.AllowedOrigins, []string{"https://b.vn"}) {
		t.Errorf("the flag gives %q, want it over the variable", c.WS.AllowedOrigins)
	}
	c = parse(nil, "--ws-origins", "ioc.hcmc.gov.vn/wall").appConfig(log)
	if err := c.WS.Validate(); err == nil || !strings.Contains(err.Error(), "AllowedOrigins") {
		t.Errorf("a malformed origin: %v, want an error naming AllowedOrigins", err)
	}
}
