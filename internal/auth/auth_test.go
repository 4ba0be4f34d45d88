package auth

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestTokens(t *testing.T) {
	is, err := NewIssuer([]byte("auth-test-key-0123456789abcdef-0123"))
	if err != nil {
		t.Fatal(err)
	}
	other, _ := NewIssuer([]byte("another-key-0123456789abcdef-012345"))
	good, err := is.Issue(Claims{Role: RoleLeader, Unit: "26740"}, "lead", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	c, err := is.Verify(good)
	if err != nil || c.Role != RoleLeader || c.Unit != "26740" {
		t.Fatalf("verify: %+v %v", c, err)
	}
	if _, err := other.Verify(good); err == nil || err.Error() != "invalid token" {
		t.Fatalf("foreign key: %v", err)
	}
	past := time.Now().Add(-2 * time.Hour)
	is.now = func() time.Time { return past }
	old, _ := is.Issue(Claims{Role: RoleAdmin}, "a", time.Hour)
	is.now = time.Now
	if _, err := is.Verify(old); err == nil || err.Error() != "token expired" {
		t.Fatalf("expired: %v", err)
	}
	for _, c := range []Claims{{Role: RoleIngest}, {Role: RoleLeader}, {Role: RoleWall}, {Role: "mayor"}} {
		if _, err := is.Issue(c, "x", time.Hour); err == nil {
			t.Errorf("issued %+v without its scope", c)
		}
	}
	// A scope the role does not use is refused, not ignored: the token
	// would read everything.
	for _, c := range []Claims{{Role: RoleAnalyst, Unit: "26740"}, {Role: RoleAdmin, Dashboard: "city"},
		{Role: RoleIngest, Source: "dvc", Unit: "26740"}, {Role: RoleLeader, Unit: "26740", Source: "dvc"}, {Role: RoleWall, Dashboard: "city", Source: "dvc"}} {
		if _, err := is.Issue(c, "x", time.Hour); err == nil || !strings.Contains(err.Error(), "it would not restrict them") {
			t.Errorf("issued %+v: %v", c, err)
		}
	}
	if _, err := is.Issue(Claims{Role: RoleWall, Dashboard: "ward", Unit: "26740"}, "x", time.Hour); err != nil {
		t.Errorf("a wall of a ward: %v", err)
	}
	if _, err := NewIssuer([]byte("short")); err == nil {
		t.Error("short key accepted")
	}
}

func TestRequireAnswersWhy(t *testing.T) {
	is, _ := NewIssuer([]byte("auth-test-key-0123456789abcdef-0123"))
	h := is.Require(RoleAdmin)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) }))
	analyst, _ := is.Issue(Claims{Role: RoleAnalyst}, "a", time.Hour)
	admin, _ := is.Issue(Claims{Role: RoleAdmin}, "a", time.Hour)
	cases := []struct {
		name, header string
		code         int
		says         string
	}{
		{"no token", "", 401, "missing bearer token"},
		{"garbage", "Bearer x.y.z", 401, "invalid token"},
		{"wrong role", "Bearer " + analyst, 403, "may not"},
		{"admin", "Bearer " + admin, 204, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			req := httptest.NewRequest("GET", "/metrics", nil)
			if c.header != "" {
				req.Header.Set("Authorization", c.header)
			}
			h.ServeHTTP(rec, req)
			if rec.Code != c.code || !strings.Contains(rec.Body.String(), c.says) {
				t.Fatalf("%d %s", rec.Code, rec.Body.String())
			}
		})
	}
}
