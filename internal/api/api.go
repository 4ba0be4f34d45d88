// Package api holds what every HTTP handler of ioc shares: one error type
// with a few codes, mapped to HTTP status codes in exactly one function, and
// one way to write JSON. A client never sees an internal error's text.
package api

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
)

// Error codes.
const (
	EINVALID      = "invalid"       // 400: the request is malformed or fails validation
	EUNAUTHORIZED = "unauthorized"  // 401: no valid token
	EFORBIDDEN    = "forbidden"     // 403: the token's role or scope does not allow it
	ENOTFOUND     = "not_found"     // 404
	ECONFLICT     = "conflict"      // 409: the resource's state does not allow it
	ETOOLARGE     = "too_large"     // 413: body or event count over the limit
	EUNSUPPORTED  = "unsupported"   // 415: media type
	ETOOMANY      = "too_many"      // 429: rate or concurrency limit
	EUNAVAILABLE  = "unavailable"   // 503: a dependency is down; retry
	EINTERNAL     = "internal"      // 500
	ECANCELED     = "client_closed" // 499: the client went away
)

// Error is an error a client may see.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	// RetryAfter, in seconds, for ETOOMANY and EUNAVAILABLE.
	RetryAfter int `json:"-"`
	// Detail is extra structured information (e.g. a byte offset).
	Detail any `json:"detail,omitempty"`
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Errorf builds an *Error.
func Errorf(code, msg string) *Error { return &Error{Code: code, Message: msg} }

// Status maps an error code to its HTTP status.
func Status(code string) int {
	switch code {
	case EINVALID:
		return http.StatusBadRequest
	case EUNAUTHORIZED:
		return http.StatusUnauthorized
	case EFORBIDDEN:
		return http.StatusForbidden
	case ENOTFOUND:
		return http.StatusNotFound
	case ECONFLICT:
		return http.StatusConflict
	case ETOOLARGE:
		return http.StatusRequestEntityTooLarge
	case EUNSUPPORTED:
		return http.StatusUnsupportedMediaType
	case ETOOMANY:
		return http.StatusTooManyRequests
	case EUNAVAILABLE:
		return http.StatusServiceUnavailable
	case ECANCELED:
		return 499
	}
	return http.StatusInternalServerError
}

// WriteError answers with the error as {"error": {code, message}}. Errors that
// are not *Error become EINTERNAL with a generic message, and are logged.
func WriteError(w http.ResponseWriter, r *http.Request, err error) {
	var e *Error
	if !errors.As(err, &e) {
		if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
			e = Errorf(ECANCELED, "client closed the request")
		} else {
			slog.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
			e = Errorf(EINTERNAL, "internal error")
		}
	}
	if e.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(e.RetryAfter))
	}
	WriteJSON(w, Status(e.Code), map[string]any{"error": e})
}

// WriteJSON writes v as JSON with the status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}
