package app

import (
	"fmt"
	"net/http"
	"sync"

	"github.com/vn-ioc/ioc/internal/api"
	"github.com/vn-ioc/ioc/internal/auth"
)

// computeLimit bounds the KPI computations REST runs at once — series,
// breakdowns, rankings, maps, lists, values over custom windows: each reads
// ClickHouse, some over long histories. One token runs at most perToken,
// the node at most total; past them the answer is 429 with Retry-After, as
// on the SQL API. Values published by the engine are read from NATS and
// are not limited.
type computeLimit struct {
	perToken, total int
	mu              sync.Mutex
	running         map[string]int
	all             int
}

func newComputeLimit(perToken, total int) *computeLimit {
	return &computeLimit{perToken: perToken, total: total, running: map[string]int{}}
}

// acquire takes a slot for key, or says why not.
func (l *computeLimit) acquire(key string) (release func(), err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.running[key] >= l.perToken:
		e := api.Errorf(api.ETOOMANY, fmt.Sprintf("this token already runs %d KPI computations (series, breakdowns, rankings, maps, lists, custom windows), the limit; retry when one ends", l.perToken))
		e.RetryAfter = 1
		return nil, e
	case l.all >= l.total:
		e := api.Errorf(api.ETOOMANY, "the node runs its maximum of KPI computations; retry shortly")
		e.RetryAfter = 1
		return nil, e
	}
	l.running[key]++
	l.all++
	return func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		if l.running[key]--; l.running[key] == 0 {
			delete(l.running, key)
		}
		l.all--
	}, nil
}

// limit is the middleware of a computing route; when is nil for every
// request of the route, else it says which requests compute.
func (l *computeLimit) limit(when func(*http.Request) bool) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if when != nil && !when(r) {
				next.ServeHTTP(w, r)
				return
			}
			c := auth.FromContext(r.Context())
			release, err := l.acquire(c.Role + "\x00" + c.Subject + "\x00" + c.Unit + "\x00" + c.Dashboard)
			if err != nil {
				api.WriteError(w, r, err)
				return
			}
			defer release()
			next.ServeHTTP(w, r)
		})
	}
}
