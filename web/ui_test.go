package web

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestWebsocketClient runs the unit tests of the pages' websocket client
// (test/live.test.mjs: reconnects, backoff, errors) with Node, on the
// client compiled by the project's TypeScript.
func TestWebsocketClient(t *testing.T) {
	node, err := exec.LookPath("node")
	tsc := filepath.Join("node_modules", "typescript", "bin", "tsc")
	if _, serr := os.Stat(tsc); err != nil || serr != nil {
		msg := "needs node and web/node_modules (deploy/local/ui.sh; `make test` installs them)"
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	out := t.TempDir()
	build := exec.Command(node, tsc, "--outDir", out, "--target", "ES2022", "--module", "ES2022",
		"--moduleResolution", "bundler", "--lib", "ES2022,DOM", "--strict", "--skipLibCheck", "src/lib/live.ts")
	if b, err := build.CombinedOutput(); err != nil {
		t.Fatalf("tsc: %v\n%s", err, b)
	}
	run := exec.Command(node, "--test", "test/live.test.mjs")
	run.Env = append(os.Environ(), "IOC_LIVE_JS="+filepath.Join(out, "live.js"))
	b, err := run.CombinedOutput()
	if err != nil {
		t.Fatalf("node --test: %v\n%s", err, b)
	}
	t.Logf("%s", b)
}
