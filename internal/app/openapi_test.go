package app

import (
	"bufio"
	"bytes"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vn-ioc/ioc/docs"
	"github.com/vn-ioc/ioc/internal/auth"
)

// TestOpenAPIMatchesRoutes keeps docs/openapi.yaml and the router in step:
// every route registered by (*App).routes() is documented, and the spec
// documents no route the server does not have. The router is built from an
// App with only what route registration touches (the token issuer and the
// metrics registry); handlers are never called.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	spec := specOperations(t, docs.OpenAPI)
	served := routerOperations(t)

	for op := range served {
		if !spec[op] {
			t.Errorf("route %s is served but not in docs/openapi.yaml", op)
		}
	}
	for op := range spec {
		if !served[op] {
			t.Errorf("docs/openapi.yaml documents %s, which the router does not serve", op)
		}
	}
	if t.Failed() {
		t.Logf("served: %s", strings.Join(sortedKeys(served), ", "))
		t.Logf("in the spec: %s", strings.Join(sortedKeys(spec), ", "))
	}
}

// TestOpenAPIHeader checks the document is OpenAPI 3.0.3 with bearer auth.
func TestOpenAPIHeader(t *testing.T) {
	for _, want := range []string{"openapi: 3.0.3\n", "\n  securitySchemes:\n    bearerAuth:\n", "\n      scheme: bearer\n"} {
		if !bytes.Contains(docs.OpenAPI, []byte(want)) {
			t.Errorf("docs/openapi.yaml lacks %q", strings.TrimSpace(want))
		}
	}
}

// allMethods are the methods chi registers for a route added with Handle
// (any method); such a route is documented as a GET.
var allMethods = []string{
	http.MethodConnect, http.MethodDelete, http.MethodGet, http.MethodHead, http.MethodOptions,
	http.MethodPatch, http.MethodPost, http.MethodPut, http.MethodTrace,
}

// routerOperations walks the router and returns "METHOD /path" for each route.
func routerOperations(t *testing.T) map[string]bool {
	t.Helper()
	is, err := auth.NewIssuer([]byte(strings.Repeat("k", 32)))
	if err != nil {
		t.Fatal(err)
	}
	a := &App{Tokens: is, reg: prometheus.NewRegistry()}
	h := a.routes()
	routes, ok := h.(chi.Routes)
	if !ok {
		t.Fatalf("routes() returned %T, not a chi router", h)
	}
	byPath := map[string]map[string]bool{}
	err = chi.Walk(routes, func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		if slices.Contains(uiPaths, route) {
			return nil // the web UI's pages and assets (docs/ui.md), not API operations
		}
		route = strings.ReplaceAll(route, "/*/", "/") // a mounted sub-router's joint
		if byPath[route] == nil {
			byPath[route] = map[string]bool{}
		}
		byPath[route][method] = true
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(byPath) == 0 {
		t.Fatal("the router has no routes")
	}
	ops := map[string]bool{}
	for path, methods := range byPath {
		any := true
		for _, m := range allMethods {
			any = any && methods[m]
		}
		if any {
			ops["GET "+path] = true
			continue
		}
		for m := range methods {
			ops[m+" "+path] = true
		}
	}
	return ops
}

var (
	pathKeyRe   = regexp.MustCompile(`^  (/[^:\s]*):\s*$`)
	methodKeyRe = regexp.MustCompile(`^    (get|put|post|delete|options|head|patch|trace):\s*$`)
	topKeyRe    = regexp.MustCompile(`^[A-Za-z]`)
)

// specOperations reads "METHOD /path" for each operation under the
// top-level "paths:" key. It relies on the file's two-space indentation
// (checked by the test failing when nothing is found), which keeps the test
// free of a YAML dependency.
func specOperations(t *testing.T, doc []byte) map[string]bool {
	t.Helper()
	ops := map[string]bool{}
	in, path := false, ""
	sc := bufio.NewScanner(bytes.NewReader(doc))
	for line := 1; sc.Scan(); line++ {
		l := strings.TrimRight(sc.Text(), " \t\r")
		if topKeyRe.MatchString(l) {
			in, path = l == "paths:", ""
			continue
		}
		if !in || strings.TrimSpace(l) == "" || strings.HasPrefix(strings.TrimSpace(l), "#") {
			continue
		}
		if m := pathKeyRe.FindStringSubmatch(l); m != nil {
			path = m[1]
			continue
		}
		if m := methodKeyRe.FindStringSubmatch(l); m != nil {
			if path == "" {
				t.Fatalf("openapi.yaml line %d: method %s outside a path", line, m[1])
			}
			op := strings.ToUpper(m[1]) + " " + path
			if ops[op] {
				t.Fatalf("openapi.yaml line %d: %s documented twice", line, op)
			}
			ops[op] = true
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(ops) == 0 {
		t.Fatal("no operations found under paths: in docs/openapi.yaml")
	}
	return ops
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
