package stream

import (
	"context"
	"errors"
	"hash/maphash"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
)

// numShards splits the channel → subscribers index so that subscribing
// and unsubscribing on thousands of connections do not queue behind one
// lock while Publish fans out.
const numShards = 64

type shard struct {
	mu       sync.RWMutex
	channels map[string]*subList
}

// subList holds the subscribers of one channel; each sub knows its index,
// so removal is a swap with the last.
type subList struct {
	channel string // its key: the subscribers' channel strings are this one
	subs    []*sub
}

// Hub accepts websocket clients, keeps their subscriptions and hands every
// published update to the subscribers of its channel.
type Hub struct {
	cfg      Config
	src      Source
	authn    Authenticator
	m        *metrics
	log      *slog.Logger
	upgrader websocket.Upgrader
	// writePool holds the write buffers: a connection takes one only while
	// it writes a message, so idle connections hold none.
	writePool sync.Pool
	// readPool holds buffers of MaxMessageBytes+1 for inbound messages,
	// taken only while one is read.
	readPool   sync.Pool
	closeGrace time.Duration

	seed   maphash.Seed
	shards [numShards]shard

	ctx    context.Context // canceled by Close: stops the heartbeat and pending Source calls
	cancel context.CancelFunc

	mu     sync.Mutex
	conns  map[*conn]struct{}
	closed bool
	wg     sync.WaitGroup // one per connection, done when both its goroutines ended

	heartbeatDone chan struct{}

	// writeHook, when set (by tests), runs before every message a writer
	// sends.
	writeHook atomic.Pointer[func()]
}

// New makes a hub. reg may be nil (no metrics registered); log nil means
// slog.Default(). The hub sends heartbeats from its own goroutine until
// Close.
func New(cfg Config, src Source, authn Authenticator, reg prometheus.Registerer, log *slog.Logger) (*Hub, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	if src == nil || authn == nil {
		return nil, errors.New("stream: a Source and an Authenticator are required")
	}
	if log == nil {
		log = slog.Default()
	}
	h := &Hub{
		cfg:           cfg,
		src:           src,
		authn:         authn,
		m:             newMetrics(reg),
		log:           log,
		closeGrace:    min(cfg.WriteTimeout, time.Second),
		seed:          maphash.MakeSeed(),
		conns:         map[*conn]struct{}{},
		heartbeatDone: make(chan struct{}),
	}
	size := cfg.MaxMessageBytes + 1
	h.readPool.New = func() any { b := make([]byte, size); return &b }
	h.upgrader = websocket.Upgrader{
		HandshakeTimeout: cfg.AuthTimeout,
		// Client messages are small (a subscribe is ~100 bytes) and a
		// longer one is read in several fills: 256 bytes of buffer held
		// for the life of each connection rather than 1 KiB.
		ReadBufferSize:  256,
		WriteBufferSize: 4096,
		WriteBufferPool: &h.writePool,
		CheckOrigin:     h.checkOrigin,
	}
	for i := range h.shards {
		h.shards[i].channels = map[string]*subList{}
	}
	h.ctx, h.cancel = context.WithCancel(context.Background())
	go h.heartbeat()
	return h, nil
}

var _ http.Handler = (*Hub)(nil)

// ServeHTTP upgrades the request to a websocket and returns; goroutines of
// the connection's own serve the client until it leaves or the hub closes
// (Close waits for them). The token is ?token= or else the first message,
// {"type":"auth","token":"…"}.
func (h *Hub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	closed := h.closed
	h.mu.Unlock()
	if closed {
		http.Error(w, "the server is shutting down", http.StatusServiceUnavailable)
		return
	}
	ws, err := h.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader answered the request
	}
	c := newConn(h, ws)
	if !h.add(c) {
		_ = ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseGoingAway, "server shutting down"), time.Now().Add(h.closeGrace))
		ws.Close()
		return
	}
	// The reader gets a goroutine of its own and the handler returns: the
	// HTTP server's goroutine would otherwise keep its buffers, request and
	// response (about 10 KiB) alive for the whole connection.
	token := r.URL.Query().Get("token")
	go func() {
		defer h.remove(c)
		c.serve(token)
	}()
}

func (h *Hub) add(c *conn) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return false
	}
	h.conns[c] = struct{}{}
	h.wg.Add(1)
	h.m.connections.Inc()
	return true
}

func (h *Hub) remove(c *conn) {
	h.mu.Lock()
	delete(h.conns, c)
	h.mu.Unlock()
	h.m.connections.Dec()
	h.wg.Done()
}

func (h *Hub) checkOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if len(h.cfg.AllowedOrigins) == 0 || origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil {
		return false
	}
	for _, o := range h.cfg.AllowedOrigins {
		if o == "*" {
			return true
		}
		a, _ := url.Parse(o) // checked by Validate
		if strings.EqualFold(a.Scheme, u.Scheme) && strings.EqualFold(a.Host, u.Host) {
			return true
		}
	}
	return false
}

// Publish hands an update to the subscribers of its channel. It never
// blocks on a client: each subscriber only gets the update put in its
// queue (replacing an older update of the channel still waiting there),
// and a client whose queue is full is disconnected. Publish may be called
// from several goroutines; a subscriber never gets an update whose seq is
// not above the last one it got, so updates published out of order are
// dropped, never sent backwards.
func (h *Hub) Publish(u Update) {
	h.m.published.Inc()
	sh := h.shard(u.Channel)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	l := sh.channels[u.Channel]
	if l == nil {
		return
	}
	if !validData(u.Data) {
		h.m.dropped[dropInvalid].Add(float64(len(l.subs)))
		h.log.Warn("websocket hub: update data is not JSON; not sent", "channel", u.Channel, "seq", u.Seq)
		return
	}
	frame := encodeUpdate(&u) // once, shared by every subscriber
	for _, s := range l.subs {
		s.c.deliver(s, u.Seq, frame)
	}
}

// Subscribed reports whether any client of this hub is subscribed to the
// channel: a producer that computes channels on demand (lists) stops
// computing those nobody follows any more.
func (h *Hub) Subscribed(channel string) bool {
	sh := h.shard(channel)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	return len(sh.channels[channel].subsOrNil()) > 0
}

func (l *subList) subsOrNil() []*sub {
	if l == nil {
		return nil
	}
	return l.subs
}

func (h *Hub) shard(channel string) *shard {
	return &h.shards[maphash.String(h.seed, channel)&(numShards-1)]
}

// register adds s to its channel's subscribers: from now on Publish hands
// it the channel's updates.
func (h *Hub) register(s *sub) {
	sh := h.shard(s.channel)
	sh.mu.Lock()
	l := sh.channels[s.channel]
	if l == nil {
		l = &subList{channel: s.channel}
		sh.channels[s.channel] = l
	}
	// Thousands of clients subscribe to the same channels: they share one
	// copy of its name rather than each keeping the one it sent.
	s.channel = l.channel
	s.idx = int32(len(l.subs))
	l.subs = append(l.subs, s)
	sh.mu.Unlock()
	h.m.subscriptions.Inc()
}

// unregister removes s from its channel's subscribers. Once it returns, no
// Publish is handing s an update any more.
func (h *Hub) unregister(s *sub) {
	sh := h.shard(s.channel)
	sh.mu.Lock()
	l := sh.channels[s.channel]
	last := len(l.subs) - 1
	moved := l.subs[last]
	l.subs[s.idx] = moved
	moved.idx = s.idx
	l.subs[last] = nil
	l.subs = l.subs[:last]
	switch {
	case last == 0:
		delete(sh.channels, s.channel)
	case cap(l.subs) > 64 && last < cap(l.subs)/4:
		l.subs = append([]*sub(nil), l.subs...)
	}
	sh.mu.Unlock()
	h.m.subscriptions.Dec()
}

// heartbeat asks every authenticated connection to send a ping each
// PingInterval: one ticker for the hub rather than one per connection.
func (h *Hub) heartbeat() {
	defer close(h.heartbeatDone)
	t := time.NewTicker(h.cfg.PingInterval)
	defer t.Stop()
	for {
		select {
		case <-h.ctx.Done():
			return
		case <-t.C:
		}
		now := time.Now()
		h.mu.Lock()
		for c := range h.conns {
			c.requestPing(now)
		}
		h.mu.Unlock()
	}
}

// Recheck checks every connection's grant now (Revoker), rather than at
// its next message or heartbeat: call it when what grants are made of
// changed (the unit tree). Connections whose grant ended are closed.
func (h *Hub) Recheck() {
	now := time.Now()
	h.mu.Lock()
	conns := make([]*conn, 0, len(h.conns))
	for c := range h.conns {
		conns = append(conns, c)
	}
	h.mu.Unlock()
	for _, c := range conns {
		c.mu.Lock()
		if c.authed && !c.closing && c.revoker != nil {
			c.expiredLocked(now)
		}
		c.mu.Unlock()
	}
}

// Run serves until ctx ends, then closes the hub.
func (h *Hub) Run(ctx context.Context) error {
	<-ctx.Done()
	return h.Close()
}

// Close closes every connection with 1001 (going away) and waits for their
// goroutines: at most WriteTimeout plus a second for a client that does
// not take its close message. Later connections are refused with 503.
func (h *Hub) Close() error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		h.wg.Wait()
		return nil
	}
	h.closed = true
	conns := make([]*conn, 0, len(h.conns))
	for c := range h.conns {
		conns = append(conns, c)
	}
	h.mu.Unlock()
	h.cancel()
	<-h.heartbeatDone
	for _, c := range conns {
		c.closeWith(websocket.CloseGoingAway, "server shutting down", reasonShutdown, false)
	}
	done := make(chan struct{})
	go func() { h.wg.Wait(); close(done) }()
	t := time.NewTimer(h.cfg.WriteTimeout + 2*h.closeGrace)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		// A writer still stuck: drop the TCP connections under it.
		for _, c := range conns {
			c.ws.Close()
		}
		<-done
	}
	return nil
}
