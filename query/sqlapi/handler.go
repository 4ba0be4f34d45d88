package sqlapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/vn-ioc/ioc/internal/api"
)

// responseSink streams a result into an HTTP response.
// The status line goes out with the first bytes of the result, so an error
// before them is still answered with its own status.
type responseSink struct {
	w           http.ResponseWriter
	contentType string
	started     bool
	n           int64
}

func (s *responseSink) QueryID(id string) { s.w.Header().Set("X-Ioc-Query-Id", id) }

func (s *responseSink) Start(contentType string) { s.contentType = contentType }

func (s *responseSink) Write(p []byte) (int, error) {
	if !s.started {
		h := s.w.Header()
		h.Set("Content-Type", s.contentType)
		h.Set("Cache-Control", "no-store")
		h.Set("Trailer", "X-Ioc-Rows, X-Ioc-Truncated")
		s.w.WriteHeader(http.StatusOK)
		s.started = true
	}
	n, err := s.w.Write(p)
	s.n += int64(n)
	return n, err
}

func (s *responseSink) Written() int64 { return s.n }

// ServeSQL answers POST /api/v1/sql for the caller the request carries.
//
// The body is either JSON {sql, params, format, max_rows, timeout} or the
// raw statement (any other content type), with the format from Accept (or
// ?format=) and max_rows and timeout from the query string.
func (s *Service) ServeSQL(w http.ResponseWriter, r *http.Request, c Caller) {
	req, err := s.readRequest(r)
	if err != nil {
		s.refuse(w, r, c, req, err)
		return
	}
	sink := &responseSink{w: w}
	sum, err := s.Exec(r.Context(), c, req, sink)
	switch {
	case err == nil:
		w.Header().Set("X-Ioc-Rows", strconv.FormatInt(sum.Rows, 10))
		w.Header().Set("X-Ioc-Truncated", strconv.FormatBool(sum.Truncated))
	case !sink.started:
		api.WriteError(w, r, err)
	case errors.Is(err, errStreamBroken) && req.Format != FormatJSON:
		// CSV, NDJSON and Arrow cannot carry an error after their first
		// rows: cut the response so no client takes it for complete.
		panic(http.ErrAbortHandler)
	}
}

// Refuse answers a request to the SQL API that its caller may not make (a
// token whose scope is unknown) and audits it with the statement it
// carried: every request that reaches the SQL API with a token leaves a row.
func (s *Service) Refuse(w http.ResponseWriter, r *http.Request, c Caller, err error) {
	req, _ := s.readRequest(r)
	s.refuse(w, r, c, req, err)
}

// refuse answers and audits a request refused before its statement ran.
func (s *Service) refuse(w http.ResponseWriter, r *http.Request, c Caller, req Request, err error) {
	id := newQueryID()
	w.Header().Set("X-Ioc-Query-Id", id)
	if len(req.SQL) > s.cfg.MaxSQLBytes {
		req.SQL = req.SQL[:s.cfg.MaxSQLBytes]
	}
	rec := auditRecord{Time: time.Now(), QueryID: id, Who: c.Who, Addr: c.Addr, SQL: req.SQL, Format: req.Format, Params: marshalParams(req.Params)}
	rec.Outcome, rec.Error = outcome(err, summary{})
	s.audit.add(rec)
	s.metrics.observe(rec)
	api.WriteError(w, r, err)
}

func (s *Service) readRequest(r *http.Request) (Request, error) {
	// Room for the statement as JSON escapes it (up to 6 bytes a byte) and
	// the other members; a body beyond is refused whole, never decoded cut.
	// A raw statement cut there is still longer than allowed (413 below).
	limit := int64(s.cfg.MaxSQLBytes)*6 + 64<<10
	body, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		return Request{}, api.Errorf(api.EINVALID, "read body: "+err.Error())
	}
	if int64(len(body)) > limit {
		return Request{}, &api.Error{Code: api.ETOOLARGE, Message: fmt.Sprintf("body larger than %d bytes (the statement is at most %d)", limit, s.cfg.MaxSQLBytes)}
	}
	var req Request
	ct := r.Header.Get("Content-Type")
	if strings.HasPrefix(ct, "application/json") {
		dec := json.NewDecoder(strings.NewReader(string(body)))
		dec.UseNumber()
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			return req, api.Errorf(api.EINVALID, "body: "+err.Error())
		}
		if n, ok := req.Timeout.(json.Number); ok {
			f, err := n.Float64()
			if err != nil {
				return req, api.Errorf(api.EINVALID, "timeout: want seconds")
			}
			req.Timeout = f
		}
	} else {
		req.SQL = string(body)
		q := r.URL.Query()
		if v := q.Get("max_rows"); v != "" {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return req, api.Errorf(api.EINVALID, "max_rows: want an integer")
			}
			req.MaxRows = n
		}
		if v := q.Get("timeout"); v != "" {
			if f, err := strconv.ParseFloat(v, 64); err == nil {
				req.Timeout = f
			} else {
				req.Timeout = v
			}
		}
		req.Format = q.Get("format")
	}
	if strings.TrimSpace(req.SQL) == "" {
		return req, api.Errorf(api.EINVALID, "sql: the statement is empty")
	}
	if req.Format == "" {
		req.Format = formatFor(r.Header.Get("Accept"))
		if req.Format == "" {
			return req, api.Errorf(api.EINVALID, "Accept: none of application/json, application/x-ndjson, text/csv, application/vnd.apache.arrow.stream")
		}
	}
	return req, nil
}
