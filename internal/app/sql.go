package app

import (
	"net/http"

	"github.com/vn-ioc/ioc/internal/api"
	"github.com/vn-ioc/ioc/internal/auth"
	"github.com/vn-ioc/ioc/query/sqlapi"
)

// caller describes the token of a request to the SQL API: leaders are
// scoped to their unit's subtree by the server, whatever they send.
func (a *App) caller(r *http.Request) (sqlapi.Caller, error) {
	cl := auth.FromContext(r.Context())
	c := sqlapi.Caller{
		Key:  cl.Role + ":" + cl.Subject + ":" + cl.Unit,
		Who:  cl.Role + ":" + cl.Subject,
		Addr: r.RemoteAddr,
	}
	if cl.Role == auth.RoleLeader {
		if _, ok := a.refs.Unit(cl.Unit); !ok {
			return c, api.Errorf(api.EFORBIDDEN, "the token's unit "+cl.Unit+" is not a known unit")
		}
		c.Who += "@" + cl.Unit
		c.Scope = sqlapi.LeaderScope(a.db.Database(), a.refs.Subtree(cl.Unit))
	}
	return c, nil
}

func (a *App) sqlService() (*sqlapi.Service, error) {
	if a.sql == nil {
		return nil, &api.Error{Code: api.EUNAVAILABLE, Message: "the SQL API is disabled on this node: " + a.sqlErr.Error(), RetryAfter: 60}
	}
	return a.sql, nil
}

func (a *App) handleSQL(w http.ResponseWriter, r *http.Request) {
	s, err := a.sqlService()
	if err != nil {
		api.WriteError(w, r, err)
		return
	}
	c, err := a.caller(r)
	if err != nil {
		s.Refuse(w, r, c, err)
		return
	}
	s.ServeSQL(w, r, c)
}

func (a *App) handleSchema(w http.ResponseWriter, r *http.Request) {
	s, err := a.sqlService()
	if err != nil {
		api.WriteError(w, r, err)
		return
	}
	c, err := a.caller(r)
	if err != nil {
		api.WriteError(w, r, err)
		return
	}
	views, err := s.Schema(r.Context(), c)
	if err != nil {
		api.WriteError(w, r, err)
		return
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"database": a.db.Database(), "views": views})
}
