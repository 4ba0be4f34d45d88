package stream

import (
	"context"
	"encoding/json"
	"errors"
	"time"
)

// Authenticator turns a token into a session. Its errors are shown to the
// client as they are: clear text, no internals.
type Authenticator interface {
	Authenticate(ctx context.Context, token string) (Session, error)
}

// Session is one authenticated client. Its methods are called from the
// connection's own goroutine only.
type Session interface {
	// Allow says whether the session may subscribe to channel; the error
	// text is shown to the client (e.g. "unit 26734 is outside your unit
	// 760's subtree"). An error that wraps ErrUnknownChannel is answered
	// with code "not_found", any other with "forbidden".
	Allow(channel string) error
	// Subject names the client for logs, metrics and the welcome message
	// ("leader:760").
	Subject() string
}

// ErrUnknownChannel is what Session.Allow wraps for a channel that does not
// exist (an unknown KPI), so that the client gets "not_found" rather than
// "forbidden".
var ErrUnknownChannel = errors.New("unknown channel")

// ErrBadChannel is what Session.Allow wraps for a channel no one can
// subscribe to (malformed, or a window, step or KPI its kind does not
// take), so that the client gets "bad_request" rather than "forbidden".
var ErrBadChannel = errors.New("bad channel")

// Expirer is a Session whose token expires: the hub closes the connection
// (code 1008, an "unauthorized" error saying so) at the first heartbeat
// after Expires, so a revoked or short-lived token does not keep a
// websocket open for ever. The zero time never expires.
type Expirer interface {
	Expires() time.Time
}

// Revoker is a Session whose grant can end before its token expires (the
// unit tree changed under a scoped token): Revoked returns nil while the
// grant holds, else why it ended. The hub checks it before answering each
// message, at each heartbeat and on Recheck, and closes the connection
// (code 1008, an "unauthorized" error with the reason): the client
// connects again and gets what its token grants now. Revoked must be
// cheap while nothing changed, and must not call the hub.
type Revoker interface {
	Revoked() error
}

// RPCHandler is a Session that answers rpc messages ({"type":"rpc",
// "method", "data"}): commands a client sends over its websocket, such as
// acknowledging an alert. Each call runs on a goroutine of its own with the
// hub's SourceTimeout (so, unlike the other methods, concurrently with
// them); a connection has at most MaxRPCs calls running.
// The result must be valid JSON (nil is null). An error that is an
// *RPCError is answered with its code; any other with code "unavailable"
// and its text.
type RPCHandler interface {
	RPC(ctx context.Context, method string, data json.RawMessage) (json.RawMessage, error)
}

// RPCError is a refused call: Code is one of the protocol's error codes
// (bad_request, forbidden, not_found, conflict, unavailable), Msg the text
// the client sees.
type RPCError struct{ Code, Msg string }

func (e *RPCError) Error() string { return e.Msg }

// MaxRPCs bounds the rpc calls of one connection running at once.
const MaxRPCs = 4
