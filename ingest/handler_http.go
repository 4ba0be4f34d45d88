package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/vn-ioc/ioc/internal/api"
	"github.com/vn-ioc/ioc/internal/auth"
)

// HandleEvents serves POST /api/v1/events: one event, a JSON batch or NDJSON.
// It answers 202 {accepted, duplicates, rejected} once JetStream stored the
// accepted events; 400 with the byte offset when the body cannot be split
// into events; 413 beyond the limits; 503 when JetStream stored nothing.
func (in *Intake) HandleEvents(w http.ResponseWriter, r *http.Request) {
	res, code, err := in.handle(r.Context(), r.Header.Get("Content-Type"), r.Body, r.ContentLength, boundSource(r.Context()))
	in.m.Requests.WithLabelValues("http", strconv.Itoa(code)).Inc()
	if err != nil {
		api.WriteError(w, r, err)
		return
	}
	api.WriteJSON(w, code, res)
}

func boundSource(ctx context.Context) string {
	if c := auth.FromContext(ctx); c != nil && c.Role == auth.RoleIngest {
		return c.Source
	}
	return ""
}

// handle is the transport-independent part of an intake request; size is
// the body's length when known, else -1.
func (in *Intake) handle(ctx context.Context, contentType string, body io.Reader, size int64, bound string) (Result, int, error) {
	data, err := readAllLimited(body, in.cfg.MaxBodyBytes+1, size)
	if err != nil {
		return Result{}, 400, api.Errorf(api.EINVALID, "read body: "+err.Error())
	}
	return in.handleData(ctx, contentType, data, bound)
}

// handleData is handle of a body already in memory (a NATS message's).
func (in *Intake) handleData(ctx context.Context, contentType string, data []byte, bound string) (Result, int, error) {
	if int64(len(data)) > in.cfg.MaxBodyBytes {
		return Result{}, 413, api.Errorf(api.ETOOLARGE, fmt.Sprintf("body larger than %d bytes", in.cfg.MaxBodyBytes))
	}
	raws, err := SplitBody(contentType, data, in.cfg.MaxEvents)
	if err != nil {
		var se *SyntaxError
		var um *UnsupportedMediaError
		var tm *TooManyEventsError
		switch {
		case errors.As(err, &se):
			e := api.Errorf(api.EINVALID, "body is not valid JSON at "+se.Error())
			e.Detail = map[string]int64{"offset": se.Offset}
			return Result{}, 400, e
		case errors.As(err, &um):
			return Result{}, 415, api.Errorf(api.EUNSUPPORTED, um.Error())
		case errors.As(err, &tm):
			return Result{}, 413, api.Errorf(api.ETOOLARGE, tm.Error())
		}
		return Result{}, 400, api.Errorf(api.EINVALID, err.Error())
	}
	if len(raws) == 0 {
		return Result{}, 400, api.Errorf(api.EINVALID, "no events in the body")
	}
	res, err := in.Submit(ctx, raws, bound)
	if err != nil {
		e := api.Errorf(api.EUNAVAILABLE, "events could not be stored now; send them again")
		e.RetryAfter = 1
		e.Detail = map[string]any{"rejected": res.Rejected}
		return res, 503, e
	}
	return res, http.StatusAccepted, nil
}

// readAllLimited is io.ReadAll(io.LimitReader(r, limit)), reading into a
// buffer of the expected size at once when the size is known.
func readAllLimited(r io.Reader, limit, size int64) ([]byte, error) {
	if size < 0 || size >= limit {
		return io.ReadAll(io.LimitReader(r, limit))
	}
	lr := io.LimitReader(r, limit)
	// One byte more than announced, so that reading the end needs no growth.
	b := make([]byte, 0, size+1)
	for {
		n, err := lr.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err != nil {
			if err == io.EOF {
				err = nil
			}
			return b, err
		}
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)] // longer than announced
		}
	}
}

// errorBody is what NATS requesters receive on a request-level failure.
type errorBody struct {
	Error *api.Error `json:"error"`
}

func marshalError(err error) []byte {
	var e *api.Error
	if !errors.As(err, &e) {
		e = api.Errorf(api.EINTERNAL, "internal error")
	}
	b, _ := json.Marshal(errorBody{e})
	return b
}
