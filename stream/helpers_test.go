package stream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vn-ioc/ioc/internal/testenv"
)

// memSource keeps every update of every channel in memory; forget drops
// the oldest ones, as the real store does once its history is full.
type memSource struct {
	mu      sync.Mutex
	chans   map[string][]Update // in seq order; may start after seq 1
	lastSeq map[string]uint64
	fail    error  // returned by every call when set
	yield   func() // called inside every read, to widen race windows
	// after, when set, runs once a read has its answer and before it
	// returns it: what it publishes lands while a subscriber syncs.
	after func(channel string)
}

func newMemSource() *memSource {
	return &memSource{chans: map[string][]Update{}, lastSeq: map[string]uint64{}}
}

// put stores the next update of a channel and returns it, for Publish.
func (s *memSource) put(channel string, data any) Update {
	b, err := json.Marshal(data)
	if err != nil {
		panic(err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lastSeq[channel]++
	u := Update{Channel: channel, Seq: s.lastSeq[channel], Data: b}
	s.chans[channel] = append(s.chans[channel], u)
	return u
}

// forget drops the updates of a channel with seq ≤ upTo (the latest stays).
func (s *memSource) forget(channel string, upTo uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ups := s.chans[channel]
	for len(ups) > 1 && ups[0].Seq <= upTo {
		ups = ups[1:]
	}
	s.chans[channel] = ups
}

func (s *memSource) setYield(f func()) {
	s.mu.Lock()
	s.yield = f
	s.mu.Unlock()
}

func (s *memSource) setAfter(f func(channel string)) {
	s.mu.Lock()
	s.after = f
	s.mu.Unlock()
}

func (s *memSource) afterRead(channel string) {
	s.mu.Lock()
	f := s.after
	s.mu.Unlock()
	if f != nil {
		f(channel)
	}
}

func (s *memSource) pause() {
	s.mu.Lock()
	f := s.yield
	s.mu.Unlock()
	if f != nil {
		f()
	}
}

func (s *memSource) Latest(ctx context.Context, channel string) (Update, bool, error) {
	s.pause()
	defer s.afterRead(channel)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return Update{}, false, s.fail
	}
	ups := s.chans[channel]
	if len(ups) == 0 {
		return Update{}, false, nil
	}
	return ups[len(ups)-1], true, nil
}

func (s *memSource) Since(ctx context.Context, channel string, seq uint64) ([]Update, bool, error) {
	s.pause()
	defer s.afterRead(channel)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return nil, false, s.fail
	}
	ups := s.chans[channel]
	if len(ups) == 0 {
		return nil, true, nil
	}
	if ups[0].Seq > seq+1 {
		return nil, false, nil // forgotten
	}
	var out []Update
	for _, u := range ups {
		if u.Seq > seq {
			out = append(out, u)
		}
	}
	return out, true, nil
}

var _ Source = (*memSource)(nil)

// testAuth knows two tokens: "good" (leader:760, whose subtree excludes
// unit 26734) and "wall".
type testAuth struct{}

func (testAuth) Authenticate(ctx context.Context, token string) (Session, error) {
	switch token {
	case "good":
		return testSession("leader:760"), nil
	case "wall":
		return testSession("wall:1"), nil
	case "expiring":
		return expiringSession{testSession("leader:760"), time.Now().Add(150 * time.Millisecond)}, nil
	}
	return nil, errors.New("token is not valid (expired or signed with another key)")
}

type testSession string

// expiringSession's token expires at exp.
type expiringSession struct {
	testSession
	exp time.Time
}

func (s expiringSession) Expires() time.Time { return s.exp }

func (s testSession) Subject() string { return string(s) }

func (s testSession) Allow(channel string) error {
	parts := strings.Split(channel, ":")
	if len(parts) == 4 && parts[0] == "kpi" {
		if parts[1] == "nope" {
			return fmt.Errorf("unknown kpi %s: %w", parts[1], ErrUnknownChannel)
		}
		if parts[2] == "26734" {
			return fmt.Errorf("unit 26734 is outside your unit 760's subtree")
		}
		if parts[3] == "fortnight" {
			return fmt.Errorf("window fortnight: %w", ErrBadChannel)
		}
	}
	return nil
}

var _ Authenticator = testAuth{}

type testHub struct {
	*Hub
	t   testing.TB
	src *memSource
	srv *httptest.Server
	reg *prometheus.Registry
}

func newTestHub(t testing.TB, cfg Config) *testHub {
	t.Helper()
	src := newMemSource()
	reg := prometheus.NewRegistry()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	h, err := New(cfg, src, testAuth{}, reg, log)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/ws", h)
	srv := httptest.NewServer(mux)
	t.Cleanup(func() {
		h.Close()
		srv.Close()
	})
	return &testHub{Hub: h, t: t, src: src, srv: srv, reg: reg}
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func (th *testHub) url(token string) string {
	u := "ws" + strings.TrimPrefix(th.srv.URL, "http") + "/ws"
	if token != "" {
		u += "?token=" + token
	}
	return u
}

// metric reads a counter or gauge (summed over the series whose labels
// include the name=value pairs given).
func (th *testHub) metric(name string, labels ...string) float64 {
	return testenv.Metric(th.t, th.reg, name, labels...)
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %s still waiting for: %s", timeout, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// serverMsg is any message of the server.
type serverMsg struct {
	Type       string          `json:"type"`
	ID         string          `json:"id"`
	Channel    string          `json:"channel"`
	Seq        uint64          `json:"seq"`
	Data       json.RawMessage `json:"data"`
	Recovered  *bool           `json:"recovered"`
	Coalesced  bool            `json:"coalesced"`
	Code       string          `json:"code"`
	Message    string          `json:"message"`
	Session    string          `json:"session"`
	HeartbeatS float64         `json:"heartbeat_s"`
	Limits     map[string]int  `json:"limits"`
	raw        string
}

type client struct {
	t         testing.TB
	ws        *websocket.Conn
	keepPings bool
	pings     int // application pings skipped
}

func (th *testHub) dial(t testing.TB, token string) *client {
	t.Helper()
	return th.dialWith(t, token, websocket.DefaultDialer, nil)
}

func (th *testHub) dialWith(t testing.TB, token string, d *websocket.Dialer, hdr http.Header) *client {
	t.Helper()
	ws, resp, err := d.Dial(th.url(token), hdr)
	if err != nil {
		if resp != nil {
			t.Fatalf("dial: %v (HTTP %d)", err, resp.StatusCode)
		}
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { ws.Close() })
	return &client{t: t, ws: ws}
}

// dialWelcome dials with the token in the URL and reads the welcome.
func (th *testHub) dialWelcome(t testing.TB) *client {
	t.Helper()
	c := th.dial(t, "good")
	if m := c.next(); m.Type != "welcome" {
		t.Fatalf("want welcome, got %s", m.raw)
	}
	return c
}

func (c *client) send(v any) {
	c.t.Helper()
	var err error
	if s, ok := v.(string); ok {
		err = c.ws.WriteMessage(websocket.TextMessage, []byte(s))
	} else {
		err = c.ws.WriteJSON(v)
	}
	if err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

// next reads one message (skipping application pings unless keepPings).
func (c *client) next() serverMsg {
	c.t.Helper()
	for {
		_ = c.ws.SetReadDeadline(time.Now().Add(20 * time.Second))
		_, b, err := c.ws.ReadMessage()
		if err != nil {
			c.t.Fatalf("read: %v", err)
		}
		var m serverMsg
		if err := json.Unmarshal(b, &m); err != nil {
			c.t.Fatalf("server sent %q: %v", b, err)
		}
		m.raw = string(b)
		if m.Type == "ping" && !c.keepPings {
			c.pings++
			continue
		}
		return m
	}
}

func (c *client) expect(typ string) serverMsg {
	c.t.Helper()
	m := c.next()
	if m.Type != typ {
		c.t.Fatalf("want %s, got %s", typ, m.raw)
	}
	return m
}

// barrier sends a ping and returns what arrived before its pong: by the
// queue's order, everything the server meant to send before it.
func (c *client) barrier() []serverMsg {
	c.t.Helper()
	c.send(map[string]string{"type": "ping", "id": "barrier"})
	var before []serverMsg
	for {
		m := c.next()
		if m.Type == "pong" && m.ID == "barrier" {
			return before
		}
		before = append(before, m)
	}
}

// expectClose reads until the connection ends and returns the close
// message, skipping anything before it.
func (c *client) expectClose(code int) string {
	c.t.Helper()
	for {
		_ = c.ws.SetReadDeadline(time.Now().Add(20 * time.Second))
		_, _, err := c.ws.ReadMessage()
		if err == nil {
			continue
		}
		var ce *websocket.CloseError
		if !errors.As(err, &ce) {
			c.t.Fatalf("want close %d, got %v", code, err)
		}
		if ce.Code != code {
			c.t.Fatalf("want close %d, got %d %q", code, ce.Code, ce.Text)
		}
		return ce.Text
	}
}

func (c *client) subscribe(id, channel string, since ...uint64) serverMsg {
	c.t.Helper()
	m := map[string]any{"type": "subscribe", "id": id, "channel": channel}
	if len(since) > 0 {
		m["since"] = since[0]
	}
	c.send(m)
	r := c.expect("subscribed")
	if r.ID != id || r.Channel != channel {
		c.t.Fatalf("subscribe %s %s: got %s", id, channel, r.raw)
	}
	return r
}

// RPC: "echo" answers its data, "slow" waits until the call's deadline,
// "refuse" is a conflict, "broken" fails without a code; any other method
// is unknown.
func (s testSession) RPC(ctx context.Context, method string, data json.RawMessage) (json.RawMessage, error) {
	switch method {
	case "echo":
		return data, nil
	case "slow":
		<-ctx.Done()
		return nil, errors.New("too slow")
	case "refuse":
		return nil, &RPCError{Code: "conflict", Msg: "already done"}
	case "broken":
		return json.RawMessage(`{`), nil
	}
	return nil, &RPCError{Code: "not_found", Msg: "no method " + method}
}

var _ RPCHandler = testSession("")
