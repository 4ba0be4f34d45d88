// Package auth issues and verifies ioc's bearer tokens: HS256 JWTs carrying
// a role and its scope — the source an ingest token may send for, the unit
// subtree a leader sees, the dashboard a wall shows. Scopes are enforced by
// the server on every path; the client's word is never trusted.
package auth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/vn-ioc/ioc/internal/api"
)

// Roles.
const (
	RoleAdmin   = "admin"
	RoleIngest  = "ingest"
	RoleWall    = "wall"
	RoleLeader  = "leader"
	RoleAnalyst = "analyst"
)

// Roles lists every role.
var Roles = []string{RoleAdmin, RoleIngest, RoleWall, RoleLeader, RoleAnalyst}

// Claims of an ioc token.
type Claims struct {
	Role      string `json:"role"`
	Source    string `json:"source,omitempty"`    // ingest: the only source it may send for
	Unit      string `json:"unit,omitempty"`      // leader: root of the subtree it sees
	Dashboard string `json:"dashboard,omitempty"` // wall: the dashboard it shows
	jwt.RegisteredClaims
}

// Validate checks the role has the scope it needs.
func (c *Claims) Validate() error {
	// A scope the role does not use would be ignored: a token meant to be
	// restricted would read everything, so it is refused.
	unused := func(field, value string) error {
		if value != "" {
			return fmt.Errorf("%s tokens take no %s (it would not restrict them)", c.Role, field)
		}
		return nil
	}
	var err error
	switch c.Role {
	case RoleIngest:
		err = errors.Join(unused("unit", c.Unit), unused("dashboard", c.Dashboard))
	case RoleLeader:
		err = errors.Join(unused("source", c.Source), unused("dashboard", c.Dashboard))
	case RoleWall:
		err = unused("source", c.Source)
	case RoleAdmin, RoleAnalyst:
		err = errors.Join(unused("unit", c.Unit), unused("source", c.Source), unused("dashboard", c.Dashboard))
	}
	if err != nil {
		return err
	}
	switch c.Role {
	case RoleIngest:
		if c.Source == "" {
			return errors.New("an ingest token needs a source")
		}
	case RoleLeader:
		if c.Unit == "" {
			return errors.New("a leader token needs a unit")
		}
	case RoleWall:
		if c.Dashboard == "" {
			return errors.New("a wall token needs a dashboard")
		}
	case RoleAdmin, RoleAnalyst:
	default:
		return fmt.Errorf("unknown role %q (one of %s)", c.Role, strings.Join(Roles, ", "))
	}
	return nil
}

// Issuer signs and verifies tokens with one secret key.
type Issuer struct {
	key []byte
	now func() time.Time
}

// NewIssuer needs a key of at least 32 bytes.
func NewIssuer(key []byte) (*Issuer, error) {
	if len(key) < 32 {
		return nil, errors.New("token key must be at least 32 bytes")
	}
	return &Issuer{key: append([]byte(nil), key...), now: time.Now}, nil
}

const issuerName = "ioc"

// Issue signs a token valid for ttl.
func (is *Issuer) Issue(c Claims, subject string, ttl time.Duration) (string, error) {
	if err := c.Validate(); err != nil {
		return "", err
	}
	if ttl <= 0 {
		return "", errors.New("ttl must be positive")
	}
	now := is.now()
	c.RegisteredClaims = jwt.RegisteredClaims{
		Issuer:    issuerName,
		Subject:   subject,
		IssuedAt:  jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
	}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(is.key)
}

// Leeway is the clock skew allowed between the issuer of a token and the
// nodes: a token is accepted until Leeway past its expiry, on every
// transport.
const Leeway = 30 * time.Second

// Verify checks the signature, expiry and scope of a token.
func (is *Issuer) Verify(token string) (*Claims, error) {
	var c Claims
	_, err := jwt.ParseWithClaims(token, &c, func(*jwt.Token) (any, error) { return is.key, nil },
		jwt.WithValidMethods([]string{"HS256"}), jwt.WithIssuer(issuerName), jwt.WithExpirationRequired(),
		jwt.WithTimeFunc(is.now), jwt.WithLeeway(Leeway))
	if err != nil {
		if errors.Is(err, jwt.ErrTokenExpired) {
			return nil, errors.New("token expired")
		}
		return nil, errors.New("invalid token")
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

type ctxKey struct{}

// WithClaims stores claims in a context.
func WithClaims(ctx context.Context, c *Claims) context.Context {
	return context.WithValue(ctx, ctxKey{}, c)
}

// FromContext returns the caller's claims (nil when unauthenticated).
func FromContext(ctx context.Context) *Claims {
	c, _ := ctx.Value(ctxKey{}).(*Claims)
	return c
}

// BearerToken extracts the token of an "Authorization: Bearer …" value.
func BearerToken(h string) string {
	if t, ok := strings.CutPrefix(h, "Bearer "); ok {
		return strings.TrimSpace(t)
	}
	return ""
}

// Require is middleware that admits only a valid token of one of the roles.
func (is *Issuer) Require(roles ...string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			tok := BearerToken(r.Header.Get("Authorization"))
			if tok == "" {
				w.Header().Set("WWW-Authenticate", `Bearer realm="ioc"`)
				api.WriteError(w, r, api.Errorf(api.EUNAUTHORIZED, "missing bearer token (Authorization: Bearer <token>)"))
				return
			}
			c, err := is.Verify(tok)
			if err != nil {
				w.Header().Set("WWW-Authenticate", `Bearer realm="ioc", error="invalid_token"`)
				api.WriteError(w, r, api.Errorf(api.EUNAUTHORIZED, err.Error()))
				return
			}
			if !slices.Contains(roles, c.Role) {
				api.WriteError(w, r, api.Errorf(api.EFORBIDDEN, fmt.Sprintf("role %q may not do this (needs %s)", c.Role, strings.Join(roles, " or "))))
				return
			}
			next.ServeHTTP(w, r.WithContext(WithClaims(r.Context(), c)))
		})
	}
}
