package stream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// A connection has a reader goroutine, which authenticates, reads and
// answers the client's messages and subscribes, and at most one writer
// goroutine, the only one that writes messages. They meet at the queue,
// guarded by mu, to which Publish also hands updates. The writer runs only
// while there is something to write: it is started when the queue stops
// being empty and ends when it is empty again, so an idle connection holds
// one goroutine stack, not two.

// subState is where a subscription stands.
type subState uint8

const (
	// subSyncing: registered in the hub, the snapshot or missed updates
	// are being read from the Source; live updates are buffered.
	subSyncing subState = iota
	// subLive: live updates go to the queue, coalesced per channel.
	subLive
	// subDead: unsubscribed or closed; whatever is queued for it is skipped.
	subDead
)

// sub is one channel subscription of one connection.
//
// Thousands of connections hold tens of these each: the fields are laid
// out to fit the 80-byte size class.
type sub struct {
	c       *conn
	channel string

	// Guarded by c.mu.
	last      uint64      // seq of the last update queued (snapshot, missed or live)
	pending   []byte      // the live update waiting in the queue, if any
	buf       *[]buffered // live updates received while syncing (rare: allocated then)
	idx       int32       // in the hub's subList; guarded by the shard's lock
	state     subState
	coalesced bool // pending replaced an update never written
}

type buffered struct {
	seq       uint64
	frame     []byte
	coalesced bool
}

// item is one message in a connection's queue: a frame, or (sub != nil)
// whatever update of that subscription is pending when the writer gets to
// it — so a newer update takes the older one's place in the line.
type item struct {
	frame     []byte
	sub       *sub
	kind      kind
	coalesced bool
}

type conn struct {
	h  *Hub
	ws *websocket.Conn

	// Owned by the reader goroutine.
	sess    Session
	expires time.Time // of the session's token; zero: never
	revoker Revoker   // the session, when its grant can end early
	subs    map[string]*sub
	tokens  float64      // message budget
	refill  time.Time    // when tokens were last topped up
	strikes int          // messages refused since the budget was last full
	rpcs    atomic.Int32 // rpc calls running

	readerDone chan struct{}
	writerDone chan struct{} // closed by the writer that closed the connection

	mu      sync.Mutex
	q       []item // q[head:] waits to be written
	head    int
	frames  int  // items of q[head:] that are frames (sub == nil): what QueueSize bounds
	fbytes  int  // their bytes: what QueueBytes bounds
	writing bool // a writer goroutine runs
	authed  bool
	pingDue bool
	closing bool
	drain   bool // write what is queued before the close message
	code    int
	reason  string
	why     string // metric reason
}

func newConn(h *Hub, ws *websocket.Conn) *conn {
	c := &conn{
		h:          h,
		ws:         ws,
		readerDone: make(chan struct{}),
		writerDone: make(chan struct{}),
	}
	if ws != nil {
		// Gorilla's own limit closes with 1009 but no reason; the reader
		// checks MaxMessageBytes itself to say why, and this only stops
		// frames announcing a length far past it before any byte is read.
		ws.SetReadLimit(int64(max(16*h.cfg.MaxMessageBytes, 64<<10)))
	}
	return c
}

// serve runs the reader; it returns once the writer closed the
// connection.
func (c *conn) serve(urlToken string) {
	if c.authenticate(urlToken) {
		c.readLoop()
	} else {
		c.linger()
	}
	close(c.readerDone)
	<-c.writerDone
	c.cleanup()
}

// authenticate gets the token (URL or first message) and the session, and
// sends the welcome; on failure the connection is closing.
func (c *conn) authenticate(urlToken string) bool {
	h := c.h
	token, id := urlToken, ""
	if token == "" {
		_ = c.ws.SetReadDeadline(time.Now().Add(h.cfg.AuthTimeout))
		msg, release, err := c.readMessage()
		if errors.Is(err, errBinary) {
			release()
			h.m.received["invalid"].Inc()
			c.refuse("", `the first message must be {"type":"auth","token":"…"} (JSON text) when the URL has no ?token=`)
			return false
		}
		if err != nil {
			if isTimeout(err) {
				c.closeWith(websocket.ClosePolicyViolation, fmt.Sprintf("no auth message within %s", h.cfg.AuthTimeout), reasonAuth, false)
			} else {
				c.readFailed(err)
			}
			return false
		}
		var m clientMsg
		var perr *protoError
		onOwnStack(func() { m, perr = parseClientMsg(msg) })
		release()
		if perr != nil {
			h.m.received["invalid"].Inc()
		} else {
			h.m.receivedType(m.Type).Inc()
		}
		switch {
		case perr == nil && m.Type == msgAuth:
			token, id = m.Token, m.ID
		case perr != nil && perr.code == codeUnauthorized:
			c.refuse(m.ID, perr.msg)
			return false
		default:
			c.refuse(m.ID, `the first message must be {"type":"auth","token":"…"} when the URL has no ?token=`)
			return false
		}
	}
	var sess Session
	var err error
	onOwnStack(func() {
		ctx, cancel := context.WithTimeout(h.ctx, h.cfg.AuthTimeout)
		sess, err = h.authn.Authenticate(ctx, token)
		cancel()
	})
	if h.ctx.Err() != nil {
		return false // closing: the hub said why
	}
	if err == nil && sess == nil {
		err = errors.New("token refused")
	}
	if err != nil {
		c.refuse(id, err.Error())
		return false
	}
	c.sess = sess
	c.tokens, c.refill = float64(2*h.cfg.MessageRate), time.Now()
	welcome := appendWelcome(make([]byte, 0, 160), sess.Subject(), &h.cfg)
	c.mu.Lock()
	c.authed = true
	if e, ok := sess.(Expirer); ok {
		c.expires = e.Expires()
	}
	c.revoker, _ = sess.(Revoker)
	c.pushLocked(item{frame: welcome, kind: kindWelcome})
	c.mu.Unlock()
	c.ws.SetPongHandler(func(string) error {
		return c.ws.SetReadDeadline(time.Now().Add(2 * h.cfg.PingInterval))
	})
	// A client's ping frames take from the message budget like its
	// messages; one over it is not answered.
	c.ws.SetPingHandler(func(data string) error {
		h.m.received["ping_frame"].Inc()
		if !c.allow() {
			return nil
		}
		err := c.ws.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(h.cfg.WriteTimeout))
		if errors.Is(err, websocket.ErrCloseSent) || isTimeout(err) {
			return nil
		}
		return err
	})
	_ = c.ws.SetReadDeadline(time.Now().Add(2 * h.cfg.PingInterval))
	return true
}

// refuse answers "unauthorized" and closes with 1008 once it is written.
func (c *conn) refuse(id, msg string) {
	c.sendError(id, codeUnauthorized, msg)
	c.closeWith(websocket.ClosePolicyViolation, "unauthorized", reasonAuth, true)
}

// readLoop reads and answers the client's messages until the connection
// fails or closes.
func (c *conn) readLoop() {
	for {
		msg, release, err := c.readMessage()
		binary := errors.Is(err, errBinary)
		if err != nil && !binary {
			c.readFailed(err)
			return
		}
		_ = c.ws.SetReadDeadline(time.Now().Add(2 * c.h.cfg.PingInterval))
		onOwnStack(func() { c.handle(msg, binary) })
		release()
		c.mu.Lock()
		closing := c.closing
		c.mu.Unlock()
		if closing {
			c.linger()
			return
		}
	}
}

// errTooBig reports a message over MaxMessageBytes.
var errTooBig = errors.New("message too big")

// errBinary reports a binary message.
var errBinary = errors.New("binary message")

// readMessage reads one message into a pooled buffer; release gives the
// buffer back. A binary message is read (for its size) and reported as
// errBinary, with release set.
func (c *conn) readMessage() (msg []byte, release func(), err error) {
	typ, r, err := c.ws.NextReader()
	if err != nil {
		return nil, nil, err
	}
	bp := c.h.readPool.Get().(*[]byte)
	release = func() { c.h.readPool.Put(bp) }
	n, err := io.ReadFull(r, *bp)
	switch {
	case err == nil: // filled MaxMessageBytes+1: too big
		release()
		return nil, nil, errTooBig
	case err == io.EOF || err == io.ErrUnexpectedEOF:
	default:
		release()
		return nil, nil, err
	}
	if typ != websocket.TextMessage {
		return nil, release, errBinary
	}
	return (*bp)[:n], release, nil
}

// readFailed closes the connection after a read error, saying why.
func (c *conn) readFailed(err error) {
	var ce *websocket.CloseError
	switch {
	case errors.Is(err, errTooBig):
		c.closeWith(websocket.CloseMessageTooBig, fmt.Sprintf("message larger than %d bytes", c.h.cfg.MaxMessageBytes), reasonSize, false)
		c.linger()
	case errors.Is(err, websocket.ErrReadLimit):
		c.closeWith(websocket.CloseMessageTooBig, "", reasonSize, false) // gorilla sent the close
		// Gorilla reads no more: drain the socket itself, for the same
		// reason as linger.
		_ = c.ws.NetConn().SetReadDeadline(time.Now().Add(c.h.closeGrace))
		_, _ = io.Copy(io.Discard, c.ws.NetConn())
	case errors.As(err, &ce):
		c.closeWith(websocket.CloseNormalClosure, "", reasonClient, false) // gorilla answered the close
	case isTimeout(err):
		c.closeWith(websocket.ClosePolicyViolation, fmt.Sprintf("nothing received for %s", 2*c.h.cfg.PingInterval), reasonHeartbeat, false)
	default:
		c.closeWith(websocket.CloseAbnormalClosure, "", reasonClient, false)
	}
}

// linger reads (and drops) what the client still sends, for a moment, so
// that it gets the close message before the TCP connection goes: closing a
// socket with unread data resets it, which may destroy the close message
// in flight.
func (c *conn) linger() {
	_ = c.ws.SetReadDeadline(time.Now().Add(c.h.closeGrace))
	for {
		if _, _, err := c.ws.NextReader(); err != nil {
			return
		}
	}
}

// onOwnStack runs f on a goroutine of its own and waits for it. Handling a
// message (JSON decoding, the Source, the Authenticator) needs a deep
// stack; run by the reader, that stack would stay with the connection for
// good, since Go shrinks a stack only to four times what is in use and the
// reader, blocked in a read, uses about 2.5 KiB: 8 KiB per idle connection
// instead of 4.
func onOwnStack(f func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	<-done
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// handle answers one message.
func (c *conn) handle(msg []byte, binary bool) {
	h := c.h
	var m clientMsg
	var perr *protoError
	if binary {
		perr = badRequest("binary messages are not supported: send JSON text")
	} else {
		m, perr = parseClientMsg(msg)
	}
	if perr != nil {
		h.m.received["invalid"].Inc()
	} else {
		h.m.receivedType(m.Type).Inc()
	}
	if !c.allow() {
		c.sendError(m.ID, codeRateLimited, fmt.Sprintf("more than %d messages per second: message dropped", h.cfg.MessageRate))
		if c.strikes >= 3*2*h.cfg.MessageRate {
			c.closeWith(websocket.ClosePolicyViolation, "message rate limit exceeded again and again", reasonRate, false)
		}
		return
	}
	if perr != nil {
		c.sendError(m.ID, perr.code, perr.msg)
		return
	}
	if (!c.expires.IsZero() || c.revoker != nil) && c.expired(time.Now()) {
		return
	}
	switch m.Type {
	case msgAuth:
		c.sendError(m.ID, codeBadRequest, "already authenticated")
	case msgSubscribe:
		c.subscribe(&m)
	case msgUnsubscribe:
		c.unsubscribe(&m)
	case msgRPC:
		c.rpc(&m)
	case msgPing:
		c.push(item{frame: appendPong(nil, m.ID), kind: kindPong})
	case msgPong:
		// An answer to our ping: the read deadline moved already.
	}
}

// rpc runs a call on its own goroutine and queues its answer.
func (c *conn) rpc(m *clientMsg) {
	h, ok := c.sess.(RPCHandler)
	if !ok {
		c.sendError(m.ID, codeNotFound, "method "+m.Method+" is not offered")
		return
	}
	if c.rpcs.Add(1) > MaxRPCs {
		c.rpcs.Add(-1)
		c.sendError(m.ID, codeLimit, fmt.Sprintf("more than %d rpc calls at once: wait for their answers", MaxRPCs))
		return
	}
	id, method, data := m.ID, m.Method, m.Data
	go func() {
		defer c.rpcs.Add(-1)
		ctx, cancel := context.WithTimeout(c.h.ctx, c.h.cfg.SourceTimeout)
		defer cancel()
		out, err := h.RPC(ctx, method, data)
		var re *RPCError
		switch {
		case errors.As(err, &re):
			c.sendError(id, re.Code, re.Msg)
		case err != nil:
			c.sendError(id, codeUnavailable, err.Error())
		case !validData(out):
			c.sendError(id, codeUnavailable, "method "+method+" answered invalid JSON")
		default:
			c.push(item{frame: appendRPC(nil, id, out), kind: kindRPC})
		}
	}()
}

// allow takes one message from the budget: MessageRate per second, up to
// a burst of twice that. Refused messages count as strikes until the
// client pauses long enough for the budget to fill up again.
func (c *conn) allow() bool {
	rate := float64(c.h.cfg.MessageRate)
	burst := 2 * rate
	now := time.Now()
	c.tokens = min(burst, c.tokens+now.Sub(c.refill).Seconds()*rate)
	c.refill = now
	if c.tokens == burst {
		c.strikes = 0
	}
	if c.tokens >= 1 {
		c.tokens--
		return true
	}
	c.strikes++
	return false
}

func (c *conn) sendError(id, code, msg string) {
	c.h.m.errors.WithLabelValues(code).Inc()
	c.push(item{frame: appendError(nil, id, code, msg), kind: kindError})
}

// computed counts the connection's subscriptions to Computed channels.
func (c *conn) computed() int {
	n := 0
	for ch := range c.subs {
		if c.h.cfg.Computed(ch) {
			n++
		}
	}
	return n
}

// subscribe registers the subscription first, then reads the snapshot or
// the missed updates, and only then queues them followed by what Publish
// delivered meanwhile with a higher seq: no update between the two is lost
// and none is sent twice.
func (c *conn) subscribe(m *clientMsg) {
	h := c.h
	ch := m.Channel
	if err := c.sess.Allow(ch); err != nil {
		code := codeForbidden
		switch {
		case errors.Is(err, ErrUnknownChannel):
			code = codeNotFound
		case errors.Is(err, ErrBadChannel):
			code = codeBadRequest
		}
		c.sendError(m.ID, code, err.Error())
		return
	}
	old := c.subs[ch]
	if old == nil && len(c.subs) >= h.cfg.MaxSubscriptions {
		c.sendError(m.ID, codeLimit, fmt.Sprintf("subscription limit %d reached", h.cfg.MaxSubscriptions))
		return
	}
	if old == nil && h.cfg.Computed != nil && h.cfg.Computed(ch) && c.computed() >= h.cfg.MaxComputed {
		c.sendError(m.ID, codeLimit, fmt.Sprintf("limit of %d list, series, ranking and map channels per connection reached: unsubscribe one first", h.cfg.MaxComputed))
		return
	}
	// Subscribing again starts over; the subscription in place stays
	// until the new one has its values, so a failed attempt leaves it as
	// it was.
	s := &sub{c: c, channel: ch}
	h.register(s) // s.channel is now the hub's copy of ch

	ctx, cancel := context.WithTimeout(h.ctx, h.cfg.SourceTimeout)
	out, last, err := c.catchUp(ctx, s, m)
	cancel()
	if err != nil {
		c.drop(s)
		code, msg := codeUnavailable, fmt.Sprintf("the values of %s are unavailable right now; retry later", ch)
		var full *SourceFullError
		switch {
		case errors.As(err, &full):
			code, msg = codeLimit, full.Reason
		case h.ctx.Err() == nil:
			h.log.Warn("websocket hub: source failed", "channel", ch, "err", err)
		}
		if old != nil {
			msg += " (the subscription in place goes on)"
		}
		c.sendError(m.ID, code, msg)
		return
	}
	if old != nil {
		c.drop(old)
	}
	if c.subs == nil {
		c.subs = map[string]*sub{}
	}
	c.subs[s.channel] = s

	c.mu.Lock()
	defer c.mu.Unlock()
	if s.state == subDead {
		return
	}
	for _, it := range out {
		c.pushLocked(it)
	}
	// What Publish delivered meanwhile follows, each value on its own
	// while the queue is less than half full; past that the rest waits as
	// the channel's pending value, newest wins, as live values do.
	var early []buffered
	if s.buf != nil {
		early = *s.buf
	}
	s.buf = nil
	s.state = subLive
	for _, b := range early {
		switch {
		case b.seq <= last:
			h.m.dropped[dropStale].Inc()
			continue
		case s.pending == nil && c.frames < h.cfg.QueueSize/2 && c.fbytes+len(b.frame) <= h.cfg.QueueBytes/2:
			c.pushLocked(item{frame: b.frame, kind: kindUpdate, coalesced: b.coalesced})
		default:
			if s.pending != nil {
				h.m.coalesced.Inc()
			}
			s.coalesced = s.pending != nil || b.coalesced
			s.pending = b.frame
		}
		last = b.seq
	}
	s.last = last
	if s.pending != nil {
		c.pushLocked(item{sub: s, kind: kindUpdate})
	}
}

// catchUp reads what a new subscriber gets first: the "subscribed" reply,
// then the missed updates when since is given and they are all still known
// (and few enough to queue), else a snapshot. last is the seq of the last
// update in it.
func (c *conn) catchUp(ctx context.Context, s *sub, m *clientMsg) (out []item, last uint64, err error) {
	src := c.h.src
	if m.Since != nil {
		since := *m.Since
		ups, complete, err := src.Since(ctx, s.channel, since)
		if err != nil {
			return nil, 0, fmt.Errorf("since %d: %w", since, err)
		}
		if complete && c.recoverable(ups, since, c.queuedFrames()) {
			if len(ups) > 0 {
				out = append(make([]item, 0, 1+len(ups)), item{frame: appendSubscribed(nil, m.ID, s.channel, true), kind: kindSubscribed})
				for _, u := range ups { // a copy: the Source may share its slice
					u.Channel = s.channel
					out = append(out, item{frame: encodeUpdate(&u), kind: kindUpdate})
				}
				return out, ups[len(ups)-1].Seq, nil
			}
			// Nothing missed — if since is the latest seq. A seq past it
			// (the values were reset) gets a snapshot.
			u, ok, err := src.Latest(ctx, s.channel)
			if err != nil {
				return nil, 0, fmt.Errorf("latest: %w", err)
			}
			if (ok && u.Seq == since) || (!ok && since == 0) {
				return []item{{frame: appendSubscribed(nil, m.ID, s.channel, true), kind: kindSubscribed}}, since, nil
			}
			return snapshot(m.ID, s.channel, u, ok)
		}
	}
	u, ok, err := src.Latest(ctx, s.channel)
	if err != nil {
		return nil, 0, fmt.Errorf("latest: %w", err)
	}
	return snapshot(m.ID, s.channel, u, ok)
}

func snapshot(id, channel string, u Update, ok bool) ([]item, uint64, error) {
	var up *Update
	if ok {
		if !validData(u.Data) {
			return nil, 0, fmt.Errorf("latest seq %d: data is not JSON", u.Seq)
		}
		up = &u
	}
	return []item{
		{frame: appendSubscribed(nil, id, channel, false), kind: kindSubscribed},
		{frame: encodeSnapshot(channel, up), kind: kindSnapshot},
	}, u.Seq, nil
}

// recoverable says whether the missed updates can be sent as they are:
// contiguous from since+1, valid, and with the frames queued already
// (queued), at most half a queue: a client resuming many channels gets
// snapshots for those past that, rather than a queue it cannot drain.
func (c *conn) recoverable(ups []Update, since uint64, queued int) bool {
	if queued+len(ups) > c.h.cfg.QueueSize/2 {
		return false
	}
	for i := range ups {
		if ups[i].Seq != since+1+uint64(i) || !validData(ups[i].Data) {
			return false
		}
	}
	return true
}

func (c *conn) unsubscribe(m *clientMsg) {
	s := c.subs[m.Channel]
	if s == nil {
		c.sendError(m.ID, codeNotFound, fmt.Sprintf("not subscribed to %s", m.Channel))
		return
	}
	c.drop(s)
	c.push(item{frame: appendUnsubscribed(nil, m.ID, m.Channel), kind: kindUnsubscribed})
}

// drop ends a subscription: out of the hub, then whatever is queued for it
// is skipped.
func (c *conn) drop(s *sub) {
	c.h.unregister(s)
	if c.subs[s.channel] == s {
		delete(c.subs, s.channel)
	}
	c.mu.Lock()
	s.state, s.pending, s.buf = subDead, nil, nil
	c.mu.Unlock()
}

// deliver hands a subscriber one published update; called by Publish, it
// never blocks but on c.mu.
func (c *conn) deliver(s *sub, seq uint64, frame []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		return
	}
	switch s.state {
	case subSyncing:
		if s.buf == nil {
			s.buf = new([]buffered)
		}
		buf := *s.buf
		n := len(buf)
		switch {
		case n > 0 && seq <= buf[n-1].seq:
			c.h.m.dropped[dropStale].Inc()
		case n >= c.h.cfg.QueueSize:
			// The Source is slow and the channel busy: keep the buffer
			// bounded, latest value wins.
			buf[n-1] = buffered{seq: seq, frame: frame, coalesced: true}
			c.h.m.coalesced.Inc()
		default:
			*s.buf = append(buf, buffered{seq: seq, frame: frame})
		}
	case subLive:
		if seq <= s.last {
			c.h.m.dropped[dropStale].Inc()
			return
		}
		s.last = seq
		if s.pending != nil {
			s.pending, s.coalesced = frame, true
			c.h.m.coalesced.Inc()
			return
		}
		s.pending = frame
		c.pushLocked(item{sub: s, kind: kindUpdate})
	}
}

// queuedFrames is the number of frames waiting to be written.
func (c *conn) queuedFrames() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.frames
}

func (c *conn) push(it item) {
	c.mu.Lock()
	c.pushLocked(it)
	c.mu.Unlock()
}

// pushLocked queues a message, or closes the connection as slow when
// QueueSize frames wait already. A channel's pending value (it.sub set)
// does not count: there is at most one per subscription, and newer values
// replace it.
func (c *conn) pushLocked(it item) {
	if c.closing {
		if it.kind == kindUpdate {
			c.h.m.dropped[dropDisconnect].Inc()
		}
		return
	}
	if it.sub == nil {
		if c.frames >= c.h.cfg.QueueSize {
			c.closeLocked(websocket.CloseTryAgainLater, fmt.Sprintf("slow client: more than %d messages queued", c.h.cfg.QueueSize), reasonSlow, false)
			return
		}
		if c.frames > 0 && c.fbytes+len(it.frame) > c.h.cfg.QueueBytes {
			c.closeLocked(websocket.CloseTryAgainLater, fmt.Sprintf("slow client: more than %d bytes queued", c.h.cfg.QueueBytes), reasonSlow, false)
			return
		}
		c.frames++
		c.fbytes += len(it.frame)
	}
	if len(c.q) == cap(c.q) && c.head > 0 {
		// Slide the waiting items to the front rather than grow.
		n := copy(c.q, c.q[c.head:])
		clear(c.q[n:])
		c.q, c.head = c.q[:n], 0
	}
	c.q = append(c.q, it)
	c.kickLocked()
}

// kickLocked starts the writer unless it runs.
func (c *conn) kickLocked() {
	if !c.writing {
		c.writing = true
		go c.writeLoop()
	}
}

// requestPing asks the writer for a heartbeat; called by the hub's ticker.
func (c *conn) requestPing(now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.authed || c.closing || c.expiredLocked(now) {
		return
	}
	c.pingDue = true
	c.kickLocked()
}

// expired closes the connection, saying why, once its token has expired
// or its grant was revoked: checked on every heartbeat and before every
// message is answered.
func (c *conn) expired(now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.expiredLocked(now)
}

func (c *conn) expiredLocked(now time.Time) bool {
	msg, reason := "", ""
	switch {
	case !c.expires.IsZero() && now.After(c.expires):
		msg, reason = "the token expired at "+c.expires.UTC().Format(time.RFC3339)+"; connect again with a new one", "token expired"
	case c.revoker != nil:
		err := c.revoker.Revoked()
		if err == nil {
			return false
		}
		msg, reason = err.Error(), "access revoked"
	default:
		return false
	}
	if !c.closing {
		c.h.m.errors.WithLabelValues(codeUnauthorized).Inc()
		c.pushLocked(item{frame: appendError(nil, "", codeUnauthorized, msg), kind: kindError})
		c.closeLocked(websocket.ClosePolicyViolation, reason, reasonAuth, true)
	}
	return true
}

// closeWith starts closing the connection with a close code and reason:
// drain lets the writer send what is queued first (an error saying why),
// else the queue is dropped. Only the first call counts.
func (c *conn) closeWith(code int, reason, why string, drain bool) {
	c.mu.Lock()
	c.closeLocked(code, reason, why, drain)
	c.mu.Unlock()
}

func (c *conn) closeLocked(code int, reason, why string, drain bool) {
	if c.closing {
		return
	}
	c.closing, c.code, c.reason, c.why, c.drain = true, code, reason, why, drain
	c.h.m.disconnects[why].Inc()
	if !drain {
		c.discardLocked()
	}
	c.kickLocked()
}

func (c *conn) discardLocked() {
	n := 0
	for _, it := range c.q[c.head:] {
		if it.kind == kindUpdate {
			n++
		}
	}
	if n > 0 {
		c.h.m.dropped[dropDisconnect].Add(float64(n))
	}
	c.q, c.head, c.frames, c.fbytes = nil, 0, 0, 0
}

// writeLoop writes the queue and the heartbeats until there is nothing
// left, or until the connection closes: then it sends the close message
// and drops the TCP connection.
func (c *conn) writeLoop() {
	for {
		it, ping, ok, closing := c.next()
		if closing {
			c.finish()
			close(c.writerDone)
			return
		}
		if ping {
			if err := c.writePing(); err != nil {
				c.writeFailed(err)
				continue
			}
		}
		if ok {
			if err := c.write(&it); err != nil {
				c.writeFailed(err)
			}
			continue
		}
		if !ping && c.idle() {
			return
		}
	}
}

// idle ends the writer if nothing came meanwhile.
func (c *conn) idle() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.head < len(c.q) || c.pingDue || c.closing {
		return false
	}
	c.writing = false
	return true
}

// next takes the next message to write; closing says the writer is done.
func (c *conn) next() (it item, ping, ok, closing bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing && !c.drain {
		return it, false, false, true
	}
	ping, c.pingDue = c.pingDue && !c.closing, false
	for c.head < len(c.q) {
		it = c.q[c.head]
		c.q[c.head] = item{}
		c.head++
		if s := it.sub; s != nil {
			if s.state != subLive || s.pending == nil {
				continue
			}
			it.frame, it.coalesced = s.pending, s.coalesced
			s.pending, s.coalesced = nil, false
		} else {
			c.frames--
			c.fbytes -= len(it.frame)
		}
		ok = true
		break
	}
	if c.head == len(c.q) {
		// Empty: give a grown queue back rather than keep it while idle.
		if cap(c.q) > 16 {
			c.q = nil
		} else {
			c.q = c.q[:0]
		}
		c.head = 0
	}
	return it, ping, ok, !ok && c.closing
}

func (c *conn) write(it *item) error {
	if hook := c.h.writeHook.Load(); hook != nil {
		(*hook)()
	}
	_ = c.ws.SetWriteDeadline(time.Now().Add(c.h.cfg.WriteTimeout))
	var err error
	if it.coalesced {
		var w io.WriteCloser
		if w, err = c.ws.NextWriter(websocket.TextMessage); err == nil {
			_, _ = w.Write(it.frame[:len(it.frame)-1])
			_, _ = w.Write(coalescedTail)
			err = w.Close()
		}
	} else {
		err = c.ws.WriteMessage(websocket.TextMessage, it.frame)
	}
	if err == nil {
		c.h.m.sent[it.kind].Inc()
	}
	return err
}

// writePing sends a websocket ping (browsers answer it themselves) and an
// application ping (which a page can see, to notice a dead connection).
func (c *conn) writePing() error {
	if err := c.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(c.h.cfg.WriteTimeout)); err != nil {
		return err
	}
	return c.write(&item{frame: pingFrame, kind: kindPing})
}

// writeFailed closes the connection after a write error; nothing more is
// written, even when the close was to send what was queued first.
func (c *conn) writeFailed(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.closing:
		c.drain = false
		c.discardLocked()
	case isTimeout(err):
		c.closeLocked(websocket.CloseTryAgainLater, fmt.Sprintf("slow client: a write took longer than %s", c.h.cfg.WriteTimeout), reasonSlow, false)
	default:
		c.closeLocked(websocket.CloseAbnormalClosure, "", reasonClient, false)
	}
}

// finish sends the close message, gives the client a moment to answer it,
// and drops the TCP connection, which also ends the reader.
func (c *conn) finish() {
	c.mu.Lock()
	code, reason := c.code, c.reason
	c.mu.Unlock()
	if code != websocket.CloseAbnormalClosure {
		err := c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason), time.Now().Add(c.h.closeGrace))
		if err == nil || errors.Is(err, websocket.ErrCloseSent) {
			t := time.NewTimer(c.h.closeGrace)
			select {
			case <-c.readerDone:
			case <-t.C:
			}
			t.Stop()
		}
	}
	c.ws.Close()
}

// cleanup removes the connection's subscriptions once both goroutines
// ended.
func (c *conn) cleanup() {
	for _, s := range c.subs {
		c.h.unregister(s)
	}
	c.mu.Lock()
	for _, s := range c.subs {
		s.state, s.pending, s.buf = subDead, nil, nil
	}
	c.q, c.head, c.frames, c.fbytes = nil, 0, 0, 0
	why, reason := c.why, c.reason
	c.mu.Unlock()
	c.subs = nil
	subject := ""
	if c.sess != nil {
		subject = c.sess.Subject()
	}
	c.h.log.Log(context.Background(), slogLevel(why), "websocket closed", "subject", subject, "remote", c.ws.RemoteAddr(), "reason", why, "detail", reason)
}

// slogLevel: disconnects that point at a misbehaving client or an
// overloaded node are worth a warning; the others are routine.
func slogLevel(why string) slog.Level {
	if why == reasonSlow || why == reasonRate {
		return slog.LevelWarn
	}
	return slog.LevelDebug
}
