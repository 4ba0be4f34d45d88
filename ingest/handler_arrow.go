package ingest

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"

	"github.com/vn-ioc/ioc/internal/api"
)

// Limits of one Arrow backfill request.
const (
	// ArrowMaxRows per request.
	ArrowMaxRows = 50_000_000
	// ArrowMaxBodyBytes per request.
	ArrowMaxBodyBytes = 4 << 30
	// arrowMaxListed rejections are listed; the rest are counted.
	arrowMaxListed = 1000
)

// ArrowResult is the answer to a backfill: like Result, with the rejections
// listed up to a bound and counted in full.
type ArrowResult struct {
	Result
	RejectedTotal int `json:"rejected_total"`
}

// HandleArrow serves POST /api/v1/events/arrow?family=F: an Arrow IPC
// stream of one family's events (the column contract is DecodeArrow's). It
// reads the stream chunk by chunk and publishes each chunk to JetStream
// before reading on, so memory stays flat whatever the size. The answer
// comes once every accepted row is stored.
func (in *Intake) HandleArrow(w http.ResponseWriter, r *http.Request) {
	code := http.StatusAccepted
	defer func() { in.m.Requests.WithLabelValues("arrow", strconv.Itoa(code)).Inc() }()
	fail := func(err error) {
		var e *api.Error
		if errors.As(err, &e) {
			code = api.Status(e.Code)
		} else {
			code = 500
		}
		api.WriteError(w, r, err)
	}
	ct := r.Header.Get("Content-Type")
	if mt, _, err := mime.ParseMediaType(ct); ct != "" && (err != nil || mt != ContentArrowStream) {
		fail(api.Errorf(api.EUNSUPPORTED, fmt.Sprintf("content type %q: send application/vnd.apache.arrow.stream", ct)))
		return
	}
	family := r.URL.Query().Get("family")
	bound := boundSource(r.Context())
	out := ArrowResult{Result: Result{Rejected: []Rejection{}}}
	// done counts the rows dealt with (accepted, duplicates, rejected as
	// invalid) in the chunks that ended: a backfill stopped early resumes
	// from that row, as the answer says.
	done := 0
	body := http.MaxBytesReader(w, r.Body, ArrowMaxBodyBytes)
	err := DecodeArrow(body, family, in.v, bound, ArrowMaxRows, func(recs []*Record, idx []int, rejected []Rejection) error {
		for _, rej := range rejected {
			in.m.Rejected.WithLabelValues(family, sourceOf(nil, bound)).Inc()
			out.RejectedTotal++
			if len(out.Rejected) < arrowMaxListed {
				out.Rejected = append(out.Rejected, rej)
			}
		}
		res, err := in.publish(r.Context(), recs, idx, Result{})
		out.Accepted += res.Accepted
		out.Duplicates += res.Duplicates
		// Rows JetStream did not store (a chunk timed out) stop the
		// backfill: listed among thousands of invalid rows they could go
		// unseen, and a 202 would read as done.
		for _, rej := range res.Rejected {
			if rej.Retryable {
				return &notStoredError{row: rej.Index, msg: rej.Error}
			}
		}
		if err != nil {
			return err
		}
		done += len(recs) + len(rejected)
		return nil
	})
	detail := map[string]any{"accepted": out.Accepted, "duplicates": out.Duplicates, "rejected_total": out.RejectedTotal, "rows_done": done}
	var ae *ArrowError
	var tm *TooManyEventsError
	var mb *http.MaxBytesError
	switch {
	case err == nil:
		api.WriteJSON(w, code, out)
	case errors.As(err, &ae):
		e := api.Errorf(api.EINVALID, ae.Error())
		detail["accepted_before_error"] = out.Accepted
		e.Detail = detail
		fail(e)
	case errors.As(err, &tm), errors.As(err, &mb):
		e := api.Errorf(api.ETOOLARGE, fmt.Sprintf("backfill larger than %d rows or %d bytes; its first %d rows were dealt with (%d accepted), send the rest from row %d in another request",
			ArrowMaxRows, int64(ArrowMaxBodyBytes), done, out.Accepted, done))
		e.Detail = detail
		fail(e)
	case errors.Is(err, io.ErrUnexpectedEOF):
		e := api.Errorf(api.EINVALID, "arrow stream cut short")
		e.Detail = detail
		fail(e)
	default:
		in.log.Warn("arrow backfill stopped", "accepted", out.Accepted, "rows_done", done, "err", err)
		e := api.Errorf(api.EUNAVAILABLE, fmt.Sprintf("events could not be stored now (%v); the first %d rows were dealt with (%d accepted): send the stream again, or the rest from row %d",
			err, done, out.Accepted, done))
		e.Detail = detail
		e.RetryAfter = 1
		fail(e)
	}
}

// notStoredError: a row of a chunk JetStream did not store.
type notStoredError struct {
	row int
	msg string
}

func (e *notStoredError) Error() string { return fmt.Sprintf("row %d %s", e.row, e.msg) }
