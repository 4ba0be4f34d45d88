package alert

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the rules table of docs/alerts.md")

func TestDocsUpToDate(t *testing.T) {
	rs, err := Load("", catalog(t))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("..", "..", "docs", "alerts.md")
	doc, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := string(doc)
	i, j := strings.Index(s, DocsBegin), strings.Index(s, DocsEnd)
	if i < 0 || j < i {
		t.Fatalf("docs/alerts.md lacks the markers %q and %q", DocsBegin, DocsEnd)
	}
	want := s[:i] + DocsBegin + "\n" + Markdown(rs) + s[j:]
	if *update {
		if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if s != want {
		t.Fatal("the rules table of docs/alerts.md is not generated from rules.yaml: run go test ./query/alert -run TestDocsUpToDate -update")
	}
}
