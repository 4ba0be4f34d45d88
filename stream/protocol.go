package stream

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/vn-ioc/ioc/internal/jsonx"
)

// The protocol is JSON text frames; docs/websocket.md describes it for
// client authors.

// Client message types.
const (
	msgAuth        = "auth"
	msgSubscribe   = "subscribe"
	msgUnsubscribe = "unsubscribe"
	msgPing        = "ping"
	msgPong        = "pong"
	msgRPC         = "rpc"
)

// Error codes of {"type":"error"} messages.
const (
	codeBadRequest   = "bad_request"
	codeUnauthorized = "unauthorized"
	codeForbidden    = "forbidden"
	codeLimit        = "limit"
	codeRateLimited  = "rate_limited"
	codeNotFound     = "not_found"
	codeUnavailable  = "unavailable"
)

// maxChannelBytes bounds a channel name.
const maxChannelBytes = 256

// clientMsg is any message a client sends.
type clientMsg struct {
	Type    string          `json:"type"`
	ID      string          `json:"id"`
	Token   string          `json:"token"`
	Channel string          `json:"channel"`
	Key     *key            `json:"key"`
	Since   *uint64         `json:"since"`
	Method  string          `json:"method"`
	Data    json.RawMessage `json:"data"`
}

// key is the structured form of a KPI channel.
type key struct {
	KPI    string `json:"kpi"`
	Unit   string `json:"unit"`
	Window string `json:"window"`
}

// protoError is an error answered to the client as {"type":"error"}.
type protoError struct {
	code, msg string
}

func (e *protoError) Error() string { return e.code + ": " + e.msg }

func badRequest(format string, args ...any) *protoError {
	return &protoError{code: codeBadRequest, msg: fmt.Sprintf(format, args...)}
}

// fieldWants says what each field holds, for type errors.
var fieldWants = map[string]string{
	"type": "a string", "id": "a string", "token": "a string", "channel": "a string",
	"key": "an object", "key.kpi": "a string", "key.unit": "a string", "key.window": "a string",
	"since": "a non-negative integer", "method": "a string", "data": "a JSON value",
}

// parseClientMsg decodes one client message and checks it; the error names
// the field at fault. ID is set whenever the message got that far, so that
// errors can echo it.
func parseClientMsg(b []byte) (clientMsg, *protoError) {
	var m clientMsg
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return m, decodeError(err)
	}
	if rest := bytes.TrimSpace(b[dec.InputOffset():]); len(rest) > 0 {
		return m, badRequest("one JSON object per message: found more after byte %d", dec.InputOffset())
	}
	return m, m.check()
}

func decodeError(err error) *protoError {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return badRequest("not valid JSON: %s at byte %d", strings.TrimPrefix(syn.Error(), "json: "), syn.Offset)
	case errors.As(err, &typ):
		if typ.Field == "" {
			return badRequest("want a JSON object, got %s", typ.Value)
		}
		want := fieldWants[typ.Field]
		if want == "" {
			want = "a " + typ.Type.String()
		}
		return badRequest("%s: want %s, got %s", typ.Field, want, typ.Value)
	case errors.Is(err, io.EOF):
		return badRequest("empty message: want a JSON object")
	}
	msg := strings.TrimPrefix(err.Error(), "json: ")
	if f, ok := strings.CutPrefix(msg, "unknown field "); ok {
		return badRequest("unknown field %s", f)
	}
	return badRequest("not valid JSON: %s", msg)
}

// check enforces what each type needs and refuses fields it does not use.
func (m *clientMsg) check() *protoError {
	switch m.Type {
	case "":
		return badRequest("type is missing: one of auth, subscribe, unsubscribe, rpc, ping, pong")
	case msgAuth:
		if m.Token == "" {
			return &protoError{code: codeUnauthorized, msg: "token is missing"}
		}
		return m.only("token")
	case msgSubscribe:
		if err := m.only("channel", "key", "since"); err != nil {
			return err
		}
		return m.resolveChannel()
	case msgUnsubscribe:
		if err := m.only("channel", "key"); err != nil {
			return err
		}
		return m.resolveChannel()
	case msgRPC:
		if m.Method == "" {
			return badRequest("method is missing")
		}
		if len(m.Method) > 64 {
			return badRequest("method: longer than 64 bytes")
		}
		return m.only("method", "data")
	case msgPing, msgPong:
		return m.only()
	}
	return badRequest("unknown message type %q: one of auth, subscribe, unsubscribe, rpc, ping, pong", m.Type)
}

// only refuses the fields of other message types.
func (m *clientMsg) only(fields ...string) *protoError {
	has := func(f string) bool {
		for _, x := range fields {
			if x == f {
				return true
			}
		}
		return false
	}
	switch {
	case m.Token != "" && !has("token"):
		return badRequest("token: only in an auth message")
	case m.Channel != "" && !has("channel"):
		return badRequest("channel: not in a %s message", m.Type)
	case m.Key != nil && !has("key"):
		return badRequest("key: not in a %s message", m.Type)
	case m.Since != nil && !has("since"):
		return badRequest("since: only in a subscribe message")
	case m.Method != "" && !has("method"):
		return badRequest("method: only in an rpc message")
	case m.Data != nil && !has("data"):
		return badRequest("data: only in an rpc message")
	}
	return nil
}

// resolveChannel turns a key into its channel and checks the name.
func (m *clientMsg) resolveChannel() *protoError {
	if m.Key != nil {
		if m.Channel != "" {
			return badRequest("give channel or key, not both")
		}
		for _, f := range []struct{ name, v string }{{"key.kpi", m.Key.KPI}, {"key.unit", m.Key.Unit}, {"key.window", m.Key.Window}} {
			if f.v == "" {
				return badRequest("%s is missing", f.name)
			}
			if strings.Contains(f.v, ":") {
				return badRequest("%s: must not contain ':'", f.name)
			}
		}
		m.Channel = KPIChannel(m.Key.KPI, m.Key.Unit, m.Key.Window)
	}
	if m.Channel == "" {
		return badRequest("channel (or key) is missing")
	}
	return checkChannel(m.Channel)
}

func checkChannel(ch string) *protoError {
	if len(ch) > maxChannelBytes {
		return badRequest("channel: longer than %d bytes", maxChannelBytes)
	}
	if !utf8.ValidString(ch) {
		return badRequest("channel: not valid UTF-8")
	}
	for _, r := range ch {
		if unicode.IsSpace(r) || unicode.IsControl(r) {
			return badRequest("channel: no spaces or control characters")
		}
	}
	return nil
}

// Server message kinds, for the queue and the metrics.
type kind uint8

const (
	kindWelcome kind = iota
	kindSubscribed
	kindUnsubscribed
	kindSnapshot
	kindUpdate
	kindError
	kindPing
	kindPong
	kindRPC
	numKinds
)

var kindNames = [numKinds]string{"welcome", "subscribed", "unsubscribed", "snapshot", "update", "error", "ping", "pong", "rpc"}

// The server's messages are written by hand: an update is encoded once per
// Publish whatever the number of subscribers, and the writers only copy it.

var pingFrame = []byte(`{"type":"ping"}`)

// coalescedTail replaces the final '}' of an update written after newer
// updates replaced older ones in the queue.
var coalescedTail = []byte(`,"coalesced":true}`)

func appendWelcome(dst []byte, subject string, c *Config) []byte {
	dst = append(dst, `{"type":"welcome","session":`...)
	dst = jsonx.AppendString(dst, subject)
	dst = append(dst, `,"heartbeat_s":`...)
	dst = jsonx.AppendFloat(dst, c.PingInterval.Seconds())
	dst = append(dst, `,"limits":{"subscriptions":`...)
	dst = strconv.AppendInt(dst, int64(c.MaxSubscriptions), 10)
	dst = append(dst, `,"computed":`...)
	dst = strconv.AppendInt(dst, int64(c.MaxComputed), 10)
	dst = append(dst, `,"message_bytes":`...)
	dst = strconv.AppendInt(dst, int64(c.MaxMessageBytes), 10)
	dst = append(dst, `,"messages_per_s":`...)
	dst = strconv.AppendInt(dst, int64(c.MessageRate), 10)
	dst = append(dst, `,"queue":`...)
	dst = strconv.AppendInt(dst, int64(c.QueueSize), 10)
	dst = append(dst, `,"queue_bytes":`...)
	dst = strconv.AppendInt(dst, int64(c.QueueBytes), 10)
	return append(dst, "}}"...)
}

func appendID(dst []byte, id string) []byte {
	if id == "" {
		return dst
	}
	dst = append(dst, `,"id":`...)
	return jsonx.AppendString(dst, id)
}

func appendSubscribed(dst []byte, id, channel string, recovered bool) []byte {
	dst = append(dst, `{"type":"subscribed"`...)
	dst = appendID(dst, id)
	dst = append(dst, `,"channel":`...)
	dst = jsonx.AppendString(dst, channel)
	dst = append(dst, `,"recovered":`...)
	dst = strconv.AppendBool(dst, recovered)
	return append(dst, '}')
}

func appendUnsubscribed(dst []byte, id, channel string) []byte {
	dst = append(dst, `{"type":"unsubscribed"`...)
	dst = appendID(dst, id)
	dst = append(dst, `,"channel":`...)
	dst = jsonx.AppendString(dst, channel)
	return append(dst, '}')
}

// appendValue writes a snapshot or an update. The data must be valid JSON
// (checked by the caller); none is written as null.
func appendValue(dst []byte, typ, channel string, seq uint64, data []byte) []byte {
	dst = append(dst, `{"type":"`...)
	dst = append(dst, typ...)
	dst = append(dst, `","channel":`...)
	dst = jsonx.AppendString(dst, channel)
	dst = append(dst, `,"seq":`...)
	dst = strconv.AppendUint(dst, seq, 10)
	dst = append(dst, `,"data":`...)
	if len(data) == 0 {
		dst = append(dst, "null"...)
	} else {
		dst = append(dst, data...)
	}
	return append(dst, '}')
}

func encodeUpdate(u *Update) []byte {
	return appendValue(make([]byte, 0, 48+len(u.Channel)+len(u.Data)), "update", u.Channel, u.Seq, u.Data)
}

func encodeSnapshot(channel string, u *Update) []byte {
	if u == nil {
		return appendValue(make([]byte, 0, 64+len(channel)), "snapshot", channel, 0, nil)
	}
	return appendValue(make([]byte, 0, 64+len(channel)+len(u.Data)), "snapshot", channel, u.Seq, u.Data)
}

func appendError(dst []byte, id, code, message string) []byte {
	dst = append(dst, `{"type":"error"`...)
	dst = appendID(dst, id)
	dst = append(dst, `,"code":"`...)
	dst = append(dst, code...)
	dst = append(dst, `","message":`...)
	dst = jsonx.AppendString(dst, message)
	return append(dst, '}')
}

// appendRPC answers an rpc message with its result (valid JSON, checked by
// the caller).
func appendRPC(dst []byte, id string, data []byte) []byte {
	dst = append(dst, `{"type":"rpc"`...)
	dst = appendID(dst, id)
	dst = append(dst, `,"data":`...)
	if len(data) == 0 {
		dst = append(dst, "null"...)
	} else {
		dst = append(dst, data...)
	}
	return append(dst, '}')
}

func appendPong(dst []byte, id string) []byte {
	dst = append(dst, `{"type":"pong"`...)
	dst = appendID(dst, id)
	return append(dst, '}')
}

// validData says whether an update's data can be written as it is.
func validData(d json.RawMessage) bool {
	return len(d) == 0 || json.Valid(d)
}
