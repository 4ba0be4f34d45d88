package app

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/vn-ioc/ioc/ingest/refdata"
	"github.com/vn-ioc/ioc/internal/api"
	"github.com/vn-ioc/ioc/internal/auth"
)

func referenceKind(r *http.Request) (string, error) {
	kind := chi.URLParam(r, "kind")
	if !slices.Contains(refdata.Kinds, kind) {
		return "", api.Errorf(api.ENOTFOUND, fmt.Sprintf("unknown reference kind %q (one of %s)", kind, strings.Join(refdata.Kinds, ", ")))
	}
	return kind, nil
}

// handleReferenceGet serves GET /api/v1/reference/{kind}: the current rows.
func (a *App) handleReferenceGet(w http.ResponseWriter, r *http.Request) {
	kind, err := referenceKind(r)
	if err != nil {
		api.WriteError(w, r, err)
		return
	}
	// Officers (names) and cameras are scoped like the SQL API's views of
	// them: a leader reads those of its subtree; a wall, whose dashboard
	// shows neither, none (its map shows cameras through /map). The org
	// tree, procedures and calendar are for every reader.
	cl := auth.FromContext(r.Context())
	var sc *scope
	if kind == "officers" || kind == "cameras" {
		if cl.Role == auth.RoleWall {
			api.WriteError(w, r, api.Errorf(api.EFORBIDDEN, "a wall token reads units, procedures and the calendar; "+kind+" are for leaders, analysts and admins"))
			return
		}
		if sc, err = a.scopeOf(cl); err != nil {
			api.WriteError(w, r, err)
			return
		}
	}
	set, err := a.refStore.Load(r.Context())
	if err != nil {
		api.WriteError(w, r, err)
		return
	}
	if sc != nil && sc.subtree != nil {
		set.Officers = slices.DeleteFunc(set.Officers, func(o refdata.Officer) bool { return !sc.subtree[o.Unit] })
		set.Cameras = slices.DeleteFunc(set.Cameras, func(c refdata.Camera) bool { return !sc.subtree[c.Unit] })
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{kind: set.Rows(kind)})
}

// handleReferencePut serves PUT /api/v1/reference/{kind}: replaces the whole
// kind with the body (CSV or JSON). The new set is validated together with
// the other kinds before anything is written.
func (a *App) handleReferencePut(w http.ResponseWriter, r *http.Request) {
	kind, err := referenceKind(r)
	if err != nil {
		api.WriteError(w, r, err)
		return
	}
	set, err := a.ReplaceReference(r, kind)
	if err != nil {
		api.WriteError(w, r, err)
		return
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"kind": kind, "rows": set.Count(kind)})
}

// ReplaceReference parses, validates and saves one kind, then refreshes
// the in-memory index used by validation.
func (a *App) ReplaceReference(r *http.Request, kind string) (*refdata.Set, error) {
	ct := strings.ToLower(strings.TrimSpace(strings.SplitN(r.Header.Get("Content-Type"), ";", 2)[0]))
	if ct != "text/csv" && ct != "application/json" {
		return nil, api.Errorf(api.EUNSUPPORTED, fmt.Sprintf("content type %q: send text/csv or application/json", ct))
	}
	// Read it whole first: a body cut at the limit must be refused, never
	// parsed as if it ended there.
	const maxBody = 32 << 20
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		return nil, api.Errorf(api.EINVALID, "read body: "+err.Error())
	}
	if len(body) > maxBody {
		return nil, api.Errorf(api.ETOOLARGE, "reference data larger than 32 MiB")
	}
	parsed, err := refdata.Parse(kind, ct, bytes.NewReader(body))
	if err != nil {
		return nil, api.Errorf(api.EINVALID, err.Error())
	}
	a.refMu.Lock()
	defer a.refMu.Unlock()
	next, err := a.refStore.Replace(r.Context(), kind, parsed)
	var invalid *refdata.Invalid
	switch {
	case errors.As(err, &invalid):
		return nil, api.Errorf(api.EINVALID, err.Error())
	case errors.Is(err, refdata.ErrConflict):
		return nil, api.Errorf(api.ECONFLICT, err.Error())
	case err != nil:
		return nil, err
	}
	a.refs.Replace(next)
	a.recheckScopes()
	return next, nil
}

// recheckScopes closes the websockets whose token's scope the new
// reference data changed (wsGrant); REST derives scopes per request.
func (a *App) recheckScopes() {
	if a.hub != nil {
		a.hub.Recheck()
	}
}
