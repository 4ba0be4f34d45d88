package stream

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/gorilla/websocket"
)

const ch79 = "kpi:dossier.received:79:today"

// last is the seq TestSubscribeRace publishes up to.
const last = 3000

func TestAuth(t *testing.T) {
	th := newTestHub(t, Config{})
	t.Run("token in URL", func(t *testing.T) {
		c := th.dial(t, "good")
		m := c.expect("welcome")
		if m.Session != "leader:760" || m.HeartbeatS != 25 {
			t.Fatalf("welcome: %s", m.raw)
		}
		want := map[string]int{"subscriptions": 500, "message_bytes": 4096, "messages_per_s": 20, "queue": 256}
		for k, v := range want {
			if m.Limits[k] != v {
				t.Fatalf("welcome limits: want %v, got %s", want, m.raw)
			}
		}
	})
	t.Run("token in first message", func(t *testing.T) {
		c := th.dial(t, "")
		c.send(`{"type":"auth","token":"wall"}`)
		if m := c.expect("welcome"); m.Session != "wall:1" {
			t.Fatalf("welcome: %s", m.raw)
		}
		c.subscribe("r1", ch79)
	})
	refused := []struct {
		name, token, first, want string
	}{
		{"bad token in URL", "stolen", "", "token is not valid"},
		{"bad token in message", "", `{"type":"auth","id":"a1","token":"stolen"}`, "token is not valid"},
		{"no token in message", "", `{"type":"auth","id":"a1"}`, "token is missing"},
		{"first message not auth", "", `{"type":"subscribe","id":"r1","channel":"x"}`, `the first message must be {"type":"auth"`},
		{"first message not JSON", "", `hello`, `the first message must be`},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			before := th.metric("ioc_ws_disconnects_total", "reason", "auth")
			c := th.dial(t, tc.token)
			if tc.first != "" {
				c.send(tc.first)
			}
			m := c.expect("error")
			if m.Code != "unauthorized" || !strings.Contains(m.Message, tc.want) {
				t.Fatalf("want unauthorized %q, got %s", tc.want, m.raw)
			}
			if strings.Contains(tc.first, `"id":"a1"`) && m.ID != "a1" {
				t.Fatalf("id not echoed: %s", m.raw)
			}
			c.expectClose(websocket.ClosePolicyViolation)
			if got := th.metric("ioc_ws_disconnects_total", "reason", "auth"); got != before+1 {
				t.Fatalf("auth disconnects: %v → %v", before, got)
			}
		})
	}
	t.Run("no auth message in time", func(t *testing.T) {
		th := newTestHub(t, Config{AuthTimeout: 100 * time.Millisecond})
		c := th.dial(t, "")
		if text := c.expectClose(websocket.ClosePolicyViolation); !strings.Contains(text, "no auth message") {
			t.Fatalf("close reason %q", text)
		}
	})
}

func TestSubscribeSnapshotThenLive(t *testing.T) {
	th := newTestHub(t, Config{})
	for i := 1; i <= 3; i++ {
		th.src.put(ch79, map[string]int{"value": i})
	}
	c := th.dialWelcome(t)
	if r := c.subscribe("r1", ch79); r.Recovered == nil || *r.Recovered {
		t.Fatalf("recovered must be false: %s", r.raw)
	}
	snap := c.expect("snapshot")
	if snap.Channel != ch79 || snap.Seq != 3 || string(snap.Data) != `{"value":3}` {
		t.Fatalf("snapshot: %s", snap.raw)
	}
	if got := c.barrier(); len(got) != 0 {
		t.Fatalf("nothing should come before an update is published: %v", got)
	}

	th.Publish(th.src.put(ch79, map[string]int{"value": 4}))
	if u := c.expect("update"); u.Seq != 4 || string(u.Data) != `{"value":4}` || u.Coalesced {
		t.Fatalf("update: %s", u.raw)
	}
	// Stale and foreign updates do not reach the client.
	th.Publish(Update{Channel: ch79, Seq: 2, Data: []byte(`{"value":2}`)})
	th.Publish(Update{Channel: ch79, Seq: 4, Data: []byte(`{"value":4}`)})
	th.Publish(th.src.put("kpi:dossier.received:80:today", 1))
	if got := c.barrier(); len(got) != 0 {
		t.Fatalf("stale or foreign update sent: %v", got)
	}
	th.Publish(th.src.put(ch79, map[string]int{"value": 5}))
	if u := c.expect("update"); u.Seq != 5 {
		t.Fatalf("update: %s", u.raw)
	}

	t.Run("no value yet, by key", func(t *testing.T) {
		c.send(`{"type":"subscribe","id":"r2","key":{"kpi":"ticket.open","unit":"79","window":"month"}}`)
		if r := c.expect("subscribed"); r.Channel != "kpi:ticket.open:79:month" || r.ID != "r2" {
			t.Fatalf("subscribed: %s", r.raw)
		}
		if s := c.expect("snapshot"); s.Seq != 0 || string(s.Data) != "null" {
			t.Fatalf("snapshot of nothing: %s", s.raw)
		}
		th.Publish(th.src.put("kpi:ticket.open:79:month", 7))
		if u := c.expect("update"); u.Channel != "kpi:ticket.open:79:month" || u.Seq != 1 || string(u.Data) != "7" {
			t.Fatalf("update: %s", u.raw)
		}
	})
	if n := th.metric("ioc_ws_subscriptions"); n != 2 {
		t.Fatalf("subscriptions gauge %v", n)
	}
}

func TestSubscribeSince(t *testing.T) {
	th := newTestHub(t, Config{QueueSize: 16})
	ch := func(i int) string { return fmt.Sprintf("kpi:since:%d:today", i) }
	for i := range 6 {
		for range 10 {
			th.src.put(ch(i), i)
		}
	}
	th.src.forget(ch(2), 6)
	for range 20 {
		th.src.put(ch(5), 5) // 30 in all
	}
	c := th.dialWelcome(t)
	cases := []struct {
		name      string
		channel   string
		since     uint64
		recovered bool
		updates   []uint64 // recovered: the updates sent
	}{
		{"nothing missed", ch(0), 10, true, nil},
		{"missed three", ch(1), 7, true, []uint64{8, 9, 10}},
		{"missed seven", ch(3), 3, true, []uint64{4, 5, 6, 7, 8, 9, 10}},
		{"history forgotten", ch(2), 3, false, nil},
		{"seq from the future", ch(4), 12, false, nil},
		{"more than half a queue missed", ch(5), 10, false, nil},
		{"no value yet", "kpi:since:none:today", 0, true, nil},
		{"no value yet but a seq", "kpi:since:none2:today", 4, false, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := c.subscribe(tc.name, tc.channel, tc.since)
			if *r.Recovered != tc.recovered {
				t.Fatalf("recovered: %s", r.raw)
			}
			got := c.barrier()
			if !tc.recovered {
				latest, ok, _ := th.src.Latest(context.Background(), tc.channel)
				if len(got) != 1 || got[0].Type != "snapshot" || !ok && got[0].Seq != 0 || ok && got[0].Seq != latest.Seq {
					t.Fatalf("want a snapshot of seq %d, got %v", latest.Seq, got)
				}
				return
			}
			var seqs []uint64
			for _, m := range got {
				if m.Type != "update" || m.Coalesced {
					t.Fatalf("want updates, got %s", m.raw)
				}
				seqs = append(seqs, m.Seq)
			}
			if fmt.Sprint(seqs) != fmt.Sprint(tc.updates) {
				t.Fatalf("want updates %v, got %v", tc.updates, seqs)
			}
		})
	}
	// After recovery, live updates continue from the last one sent.
	th.Publish(Update{Channel: ch(1), Seq: 10, Data: []byte("1")})
	th.Publish(th.src.put(ch(1), 1))
	if u := c.expect("update"); u.Channel != ch(1) || u.Seq != 11 {
		t.Fatalf("live after recovery: %s", u.raw)
	}
}

// TestSubscribeWindow publishes inside the window between the
// subscription's registration and the end of the Source read, both before
// and after the read: the client gets each update once, in order.
func TestSubscribeWindow(t *testing.T) {
	th := newTestHub(t, Config{})
	for range 4 {
		th.src.put(ch79, "v")
	}
	publish := func(n int) {
		for range n {
			th.Publish(th.src.put(ch79, "v"))
		}
	}
	c := th.dialWelcome(t)
	seqs := func() (out []string) {
		for _, m := range c.barrier() {
			out = append(out, fmt.Sprintf("%s %d %v", m.Type, m.Seq, m.Coalesced))
		}
		return out
	}
	check := func(want ...string) {
		t.Helper()
		if got := seqs(); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("got  %q\nwant %q", got, want)
		}
	}

	// Published after the read: the snapshot is older, the buffered
	// updates follow it.
	th.src.setAfter(func(string) { th.src.setAfter(nil); publish(3) })
	c.subscribe("a", ch79)
	check("snapshot 4 false", "update 5 false", "update 6 false", "update 7 false")

	// Published before the read: the snapshot has them already, the
	// buffered copies are dropped.
	th.src.setYield(func() { th.src.setYield(nil); publish(2) })
	c.subscribe("b", ch79)
	check("snapshot 9 false")
	publish(1)
	check("update 10 false")

	// The same with since: missed updates, then the buffered ones.
	th.src.setAfter(func(string) { th.src.setAfter(nil); publish(2) })
	c.subscribe("c", ch79, 8)
	check("update 9 false", "update 10 false", "update 11 false", "update 12 false")
	th.src.setYield(func() { th.src.setYield(nil); publish(2) })
	c.subscribe("d", ch79, 11)
	check("update 12 false", "update 13 false", "update 14 false")
	if n := th.metric("ioc_ws_updates_dropped_total", "reason", "stale"); n != 4 {
		t.Fatalf("stale drops %v, want 4 (2 buffered copies, twice)", n)
	}
}

// TestSubscribeRace subscribes while the channel is being published as fast
// as possible: every client must see a snapshot (or the missed updates)
// followed by strictly increasing seqs up to the last one, with every jump
// marked coalesced — nothing sent twice, nothing skipped silently.
func TestSubscribeRace(t *testing.T) {
	th := newTestHub(t, Config{MessageRate: 1000})
	th.src.setYield(func() {
		for range 20 {
			runtime.Gosched()
		}
	})
	for range 5 {
		th.src.put(ch79, 0)
	}
	const clients = 24
	cs := make([]*client, clients)
	for i := range cs {
		cs[i] = th.dialWelcome(t)
	}
	start := make(chan struct{})
	var pub sync.WaitGroup
	pub.Add(1)
	go func() {
		defer pub.Done()
		<-start
		for i := 6; i <= last; i++ {
			th.Publish(th.src.put(ch79, i))
			if i%64 == 0 {
				runtime.Gosched()
			}
		}
	}()
	close(start)
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for i, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- checkTail(c, i)
		}()
	}
	wg.Wait()
	pub.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	t.Logf("coalesced %v, stale dropped %v", th.metric("ioc_ws_updates_coalesced_total"), th.metric("ioc_ws_updates_dropped_total", "reason", "stale"))
}

// checkTail subscribes (every other client with since) and reads the
// channel up to the last seq; it runs outside the test goroutine, so it
// returns errors rather than failing.
func checkTail(c *client, i int) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("client %d: %v", i, r)
		}
	}()
	req := map[string]any{"type": "subscribe", "id": "r", "channel": ch79}
	var since uint64
	if i%2 == 1 {
		since = uint64(2 + i%4)
		req["since"] = since
	}
	if err := c.ws.WriteJSON(req); err != nil {
		return err
	}
	// prev is the seq the client has: since, or the snapshot's. Each
	// update must follow it, or say it was coalesced.
	prev := since
	recovered, first := false, true
	for {
		_ = c.ws.SetReadDeadline(time.Now().Add(20 * time.Second))
		var m serverMsg
		if err := c.ws.ReadJSON(&m); err != nil {
			return fmt.Errorf("client %d after seq %d: %w", i, prev, err)
		}
		switch {
		case first && m.Type == "subscribed":
			recovered = *m.Recovered
			if recovered && since == 0 {
				return fmt.Errorf("client %d: recovered without since", i)
			}
			continue
		case first && m.Type == "snapshot" && !recovered:
		case m.Type == "update":
			if m.Seq <= prev {
				return fmt.Errorf("client %d: seq %d after %d", i, m.Seq, prev)
			}
			if m.Seq != prev+1 && !m.Coalesced {
				return fmt.Errorf("client %d: seq %d after %d without coalesced", i, m.Seq, prev)
			}
		default:
			return fmt.Errorf("client %d: unexpected %+v after seq %d", i, m, prev)
		}
		first = false
		prev = m.Seq
		if prev == last {
			return nil
		}
	}
}

func TestForbiddenAndNotFound(t *testing.T) {
	th := newTestHub(t, Config{})
	c := th.dialWelcome(t)
	c.send(`{"type":"subscribe","id":"r1","channel":"kpi:dossier.received:26734:today"}`)
	if m := c.expect("error"); m.ID != "r1" || m.Code != "forbidden" || m.Message != "unit 26734 is outside your unit 760's subtree" {
		t.Fatalf("forbidden: %s", m.raw)
	}
	c.send(`{"type":"subscribe","id":"r2","key":{"kpi":"nope","unit":"79","window":"today"}}`)
	if m := c.expect("error"); m.ID != "r2" || m.Code != "not_found" || !strings.HasPrefix(m.Message, "unknown kpi nope") {
		t.Fatalf("not found: %s", m.raw)
	}
	c.send(`{"type":"subscribe","id":"r4","channel":"kpi:dossier.received:79:fortnight"}`)
	if m := c.expect("error"); m.ID != "r4" || m.Code != "bad_request" || !strings.HasPrefix(m.Message, "window fortnight") {
		t.Fatalf("bad channel: %s", m.raw)
	}
	c.subscribe("r3", ch79) // still open
	if n := th.metric("ioc_ws_subscriptions"); n != 1 {
		t.Fatalf("subscriptions gauge %v", n)
	}
}

func TestBadRequestsKeepTheConnection(t *testing.T) {
	th := newTestHub(t, Config{})
	c := th.dialWelcome(t)
	for _, tc := range []struct{ msg, id, want string }{
		{`{"type":"subscribe","id":"r1"}`, "r1", "channel (or key) is missing"},
		{`{"type":"subscribe","id":"r2","channel":"c","since":-1}`, "r2", "since: want a non-negative integer"},
		{`{"type":"subscribe","id":"r3","channel":"c","sinse":1}`, "r3", `unknown field "sinse"`},
		{`{"type":"subcribe","id":"r4"}`, "r4", `unknown message type "subcribe"`},
		{`{"type":"auth","id":"r5","token":"good"}`, "r5", "already authenticated"},
		{`{"type":"unsubscribe","id":"r6","channel":"c"}`, "r6", "not subscribed to c"},
	} {
		c.send(tc.msg)
		m := c.expect("error")
		if m.ID != tc.id || !strings.Contains(m.Message, tc.want) {
			t.Errorf("%s: want id %q and %q, got %s", tc.msg, tc.id, tc.want, m.raw)
		}
	}
	if err := c.ws.WriteMessage(websocket.BinaryMessage, []byte{1, 2}); err != nil {
		t.Fatal(err)
	}
	if m := c.expect("error"); m.Code != "bad_request" || !strings.Contains(m.Message, "binary") {
		t.Fatalf("binary: %s", m.raw)
	}
	c.subscribe("ok", ch79)
}

func TestSubscriptionLimit(t *testing.T) {
	th := newTestHub(t, Config{MaxSubscriptions: 3})
	c := th.dialWelcome(t)
	for i := range 3 {
		c.subscribe(fmt.Sprint("r", i), fmt.Sprintf("kpi:k:%d:today", i))
		c.expect("snapshot")
	}
	c.send(`{"type":"subscribe","id":"r3","channel":"kpi:k:3:today"}`)
	if m := c.expect("error"); m.ID != "r3" || m.Code != "limit" || m.Message != "subscription limit 3 reached" {
		t.Fatalf("limit: %s", m.raw)
	}
	c.subscribe("again", "kpi:k:1:today") // a channel already subscribed starts over
	c.expect("snapshot")
	c.send(`{"type":"unsubscribe","id":"u","channel":"kpi:k:0:today"}`)
	c.expect("unsubscribed")
	c.subscribe("r3", "kpi:k:3:today")
	if n := th.metric("ioc_ws_subscriptions"); n != 3 {
		t.Fatalf("subscriptions gauge %v", n)
	}
}

// A connection may follow at most MaxComputed computed channels (lists,
// series …), whatever room its subscription limit leaves; other channels
// are not counted.
func TestComputedLimitPerConnection(t *testing.T) {
	th := newTestHub(t, Config{MaxComputed: 2, Computed: func(ch string) bool { return strings.HasPrefix(ch, "list:") }})
	c := th.dialWelcome(t)
	for i := range 2 {
		c.subscribe(fmt.Sprint("l", i), fmt.Sprintf("list:overdue:%d", i))
		c.expect("snapshot")
	}
	c.send(`{"type":"subscribe","id":"l2","channel":"list:overdue:2"}`)
	if m := c.expect("error"); m.ID != "l2" || m.Code != "limit" || !strings.Contains(m.Message, "2 list, series, ranking and map channels per connection") {
		t.Fatalf("limit: %s", m.raw)
	}
	c.subscribe("k", ch79) // not computed: still allowed
	c.expect("snapshot")
	c.subscribe("again", "list:overdue:1") // already subscribed: starts over
	c.expect("snapshot")
	c.send(`{"type":"unsubscribe","id":"u","channel":"list:overdue:0"}`)
	c.expect("unsubscribed")
	c.subscribe("l2", "list:overdue:2")
	c.expect("snapshot")
	// Another connection has an allowance of its own.
	d := th.dialWelcome(t)
	d.subscribe("l0", "list:overdue:0")
	d.expect("snapshot")
}

func TestUnsubscribe(t *testing.T) {
	th := newTestHub(t, Config{})
	c := th.dialWelcome(t)
	c.subscribe("r1", ch79)
	c.expect("snapshot")
	th.Publish(th.src.put(ch79, 1))
	c.expect("update")
	c.send(`{"type":"unsubscribe","id":"u1","key":{"kpi":"dossier.received","unit":"79","window":"today"}}`)
	if m := c.expect("unsubscribed"); m.ID != "u1" || m.Channel != ch79 {
		t.Fatalf("unsubscribed: %s", m.raw)
	}
	th.Publish(th.src.put(ch79, 2))
	if got := c.barrier(); len(got) != 0 {
		t.Fatalf("update after unsubscribe: %v", got)
	}
	if n := th.metric("ioc_ws_subscriptions"); n != 0 {
		t.Fatalf("subscriptions gauge %v", n)
	}
}

func TestSubscribed(t *testing.T) {
	th := newTestHub(t, Config{})
	if th.Subscribed(ch79) {
		t.Fatal("subscribed before any client")
	}
	c := th.dialWelcome(t)
	c.subscribe("r1", ch79)
	c.expect("snapshot")
	if !th.Subscribed(ch79) || th.Subscribed(ch79+"x") {
		t.Fatal("Subscribed does not follow the subscription")
	}
	c.send(`{"type":"unsubscribe","id":"u1","channel":"` + ch79 + `"}`)
	c.expect("unsubscribed")
	if th.Subscribed(ch79) {
		t.Fatal("still subscribed after unsubscribe")
	}
}

func TestOversizedMessage(t *testing.T) {
	th := newTestHub(t, Config{})
	for _, n := range []int{4097, 200 << 10} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			c := th.dialWelcome(t)
			big := `{"type":"ping","id":"` + strings.Repeat("x", n) + `"}`
			_ = c.ws.WriteMessage(websocket.TextMessage, []byte(big)) // may fail: the server stops reading
			text := c.expectClose(websocket.CloseMessageTooBig)
			if n < 64<<10 && text != "message larger than 4096 bytes" {
				t.Fatalf("close reason %q", text)
			}
		})
	}
	if got := th.metric("ioc_ws_disconnects_total", "reason", "size"); got != 2 {
		t.Fatalf("size disconnects %v", got)
	}
	// A message of exactly the limit passes.
	c := th.dialWelcome(t)
	pad := 4096 - len(`{"type":"ping","id":""}`)
	c.send(`{"type":"ping","id":"` + strings.Repeat("y", pad) + `"}`)
	c.expect("pong")
}

func TestRateLimit(t *testing.T) {
	t.Run("over the rate: error, still open", func(t *testing.T) {
		th := newTestHub(t, Config{MessageRate: 5})
		c := th.dialWelcome(t)
		c.subscribe("r1", ch79)
		c.expect("snapshot")
		for i := range 20 {
			c.send(fmt.Sprintf(`{"type":"ping","id":"p%d"}`, i))
		}
		limited := 0
		for range 20 {
			m := c.next()
			switch {
			case m.Type == "error" && m.Code == "rate_limited":
				limited++
			case m.Type != "pong":
				t.Fatalf("unexpected %s", m.raw)
			}
		}
		if limited < 5 || limited > 11 {
			t.Fatalf("%d of 20 rate limited; want about 11 (burst 10, 1 used)", limited)
		}
		th.Publish(th.src.put(ch79, 1))
		c.expect("update")
	})
	t.Run("again and again: closed", func(t *testing.T) {
		th := newTestHub(t, Config{MessageRate: 2})
		c := th.dialWelcome(t)
		for i := range 40 {
			if err := c.ws.WriteMessage(websocket.TextMessage, []byte(fmt.Sprintf(`{"type":"ping","id":"p%d"}`, i))); err != nil {
				break // closed already
			}
		}
		if text := c.expectClose(websocket.ClosePolicyViolation); !strings.Contains(text, "rate") {
			t.Fatalf("close reason %q", text)
		}
		if got := th.metric("ioc_ws_disconnects_total", "reason", "rate"); got != 1 {
			t.Fatalf("rate disconnects %v", got)
		}
		// Closed at the 12th refused message: 3 × the burst of 4.
		if got := th.metric("ioc_ws_errors_total", "code", "rate_limited"); got != 12 {
			t.Fatalf("%v messages refused before the close, want 12", got)
		}
	})
	t.Run("ping frames", func(t *testing.T) {
		th := newTestHub(t, Config{MessageRate: 5})
		c := th.dialWelcome(t)
		pongs := make(chan struct{}, 100)
		c.ws.SetPongHandler(func(string) error { pongs <- struct{}{}; return nil })
		for range 30 {
			if err := c.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(time.Second)); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(400 * time.Millisecond) // budget for the barrier's ping
		c.barrier()                        // reads, and so runs the pong handler, past the pongs
		if n := len(pongs); n < 9 || n > 12 {
			t.Fatalf("%d pongs to 30 ping frames; want about 10 (the burst)", n)
		}
	})
}

// slowDialer makes a client whose socket takes little in before the
// server's writes block.
var slowDialer = &websocket.Dialer{
	NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err == nil {
			_ = c.(*net.TCPConn).SetReadBuffer(4096)
		}
		return c, err
	},
}

// TestSlowClient: a client that never reads is disconnected, while a fast
// client on the same channels gets every update, each one before the next
// is published.
func TestSlowClient(t *testing.T) {
	t.Run("queue full", func(t *testing.T) {
		th := newTestHub(t, Config{QueueSize: 16, WriteTimeout: time.Second, MessageRate: 1000})
		const channels = 40
		chans := make([]string, channels)
		for i := range chans {
			chans[i] = fmt.Sprintf("kpi:slow:%d:today", i)
		}
		fast := th.dialWelcome(t)
		slow := th.dialWith(t, "good", slowDialer, nil)
		slow.expect("welcome")
		for i, ch := range chans {
			for _, c := range []*client{fast, slow} {
				c.subscribe(fmt.Sprint(i), ch)
				c.expect("snapshot")
			}
		}
		// From here on the slow client reads nothing.
		payload := strings.Repeat("x", 16<<10)
		published := 0
		for i := 0; th.metric("ioc_ws_disconnects_total", "reason", "slow") == 0 || i%channels != 0; i++ {
			if i > 20000 {
				t.Fatal("slow client still connected after 20,000 updates")
			}
			u := th.src.put(chans[i%channels], payload)
			th.Publish(u)
			published++
			m := fast.expect("update")
			if m.Channel != u.Channel || m.Seq != u.Seq || m.Coalesced {
				t.Fatalf("fast client: want %s seq %d, got %.80s", u.Channel, u.Seq, m.raw)
			}
		}
		t.Logf("slow client disconnected after %d updates; the fast one got all of them", published)
		waitFor(t, "the slow connection to end", 10*time.Second, func() bool { return th.metric("ioc_ws_connections") == 1 })
		// The fast client still gets updates.
		th.Publish(th.src.put(chans[0], 1))
		fast.expect("update")
	})
	t.Run("write timeout", func(t *testing.T) {
		th := newTestHub(t, Config{WriteTimeout: 200 * time.Millisecond})
		slow := th.dialWith(t, "good", slowDialer, nil)
		slow.send(map[string]string{"type": "subscribe", "channel": ch79})
		waitFor(t, "the subscription", 10*time.Second, func() bool { return th.metric("ioc_ws_subscriptions") == 1 })
		payload := strings.Repeat("x", 16<<10)
		waitFor(t, "a slow disconnect", 20*time.Second, func() bool {
			th.Publish(th.src.put(ch79, payload))
			return th.metric("ioc_ws_disconnects_total", "reason", "slow") == 1
		})
		waitFor(t, "the slow connection to end", 10*time.Second, func() bool { return th.metric("ioc_ws_connections") == 0 })
	})
}

func TestCoalesced(t *testing.T) {
	th := newTestHub(t, Config{})
	var gate sync.Mutex
	hook := func() { gate.Lock(); gate.Unlock() }
	th.writeHook.Store(&hook)
	c := th.dialWelcome(t)
	c.subscribe("r1", ch79)
	c.expect("snapshot")
	gate.Lock()
	for range 5 {
		th.Publish(th.src.put(ch79, "v"))
	}
	gate.Unlock()
	// The writer holds at most one update while blocked (whichever was
	// queued when it took it); all the others collapse into the newest:
	// e.g. [1, 5 coalesced], [4 coalesced, 5] or [5 coalesced].
	var prev uint64
	var got []string
	for prev != 5 {
		u := c.expect("update")
		got = append(got, fmt.Sprint(u.Seq, " ", u.Coalesced))
		if u.Seq <= prev || (u.Seq != prev+1) != u.Coalesced {
			t.Fatalf("seq %d after %d, coalesced %v", u.Seq, prev, u.Coalesced)
		}
		prev = u.Seq
	}
	if len(got) > 2 {
		t.Fatalf("updates not coalesced while the writer was blocked: %v", got)
	}
	if n := th.metric("ioc_ws_updates_coalesced_total"); n < 3 {
		t.Fatalf("coalesced metric %v", n)
	}
}

func TestHeartbeat(t *testing.T) {
	th := newTestHub(t, Config{PingInterval: 500 * time.Millisecond})
	t.Run("pings", func(t *testing.T) {
		c := th.dialWelcome(t)
		c.keepPings = true
		var wsPings sync.Map
		c.ws.SetPingHandler(func(data string) error {
			wsPings.Store(time.Now(), true)
			return c.ws.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Second))
		})
		for range 4 { // the connection outlives 2 × PingInterval while the client answers
			c.expect("ping")
		}
		n := 0
		wsPings.Range(func(any, any) bool { n++; return true })
		if n < 3 {
			t.Fatalf("%d websocket pings", n)
		}
		c.subscribe("r1", ch79)
	})
	t.Run("silent client is closed", func(t *testing.T) {
		c := th.dial(t, "good")
		_ = c // never reads: the pings go unanswered
		waitFor(t, "a heartbeat disconnect", 10*time.Second, func() bool {
			return th.metric("ioc_ws_disconnects_total", "reason", "heartbeat") == 1
		})
	})
}

func TestCloseGoingAway(t *testing.T) {
	th := newTestHub(t, Config{})
	a, b := th.dialWelcome(t), th.dialWelcome(t)
	a.subscribe("r1", ch79)
	closed := make(chan struct{})
	go func() { th.Close(); close(closed) }()
	for _, c := range []*client{a, b} {
		if text := c.expectClose(websocket.CloseGoingAway); text != "server shutting down" {
			t.Fatalf("close reason %q", text)
		}
	}
	<-closed
	if n := th.metric("ioc_ws_connections"); n != 0 {
		t.Fatalf("connections gauge %v", n)
	}
	if n := th.metric("ioc_ws_subscriptions"); n != 0 {
		t.Fatalf("subscriptions gauge %v", n)
	}
	if n := th.metric("ioc_ws_disconnects_total", "reason", "shutdown"); n != 2 {
		t.Fatalf("shutdown disconnects %v", n)
	}
	_, resp, err := websocket.DefaultDialer.Dial(th.url("good"), nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("dial after Close: %v %v", err, resp)
	}
	th.Publish(Update{Channel: ch79, Seq: 9}) // harmless
}

func TestSourceUnavailable(t *testing.T) {
	th := newTestHub(t, Config{})
	c := th.dialWelcome(t)
	th.src.mu.Lock()
	th.src.fail = errors.New("nats: timeout")
	th.src.mu.Unlock()
	c.send(`{"type":"subscribe","id":"r1","channel":"` + ch79 + `"}`)
	m := c.expect("error")
	if m.Code != "unavailable" || m.ID != "r1" || strings.Contains(m.Message, "nats") {
		t.Fatalf("unavailable: %s", m.raw)
	}
	if n := th.metric("ioc_ws_subscriptions"); n != 0 {
		t.Fatalf("subscriptions gauge %v", n)
	}

	// Subscribing again to a channel while the source fails leaves the
	// subscription in place.
	setFail := func(err error) {
		th.src.mu.Lock()
		th.src.fail = err
		th.src.mu.Unlock()
	}
	setFail(nil)
	c.subscribe("r2", ch79)
	c.expect("snapshot")
	setFail(errors.New("nats: timeout"))
	c.send(`{"type":"subscribe","id":"r3","channel":"` + ch79 + `"}`)
	if m := c.expect("error"); m.Code != "unavailable" || !strings.Contains(m.Message, "the subscription in place goes on") {
		t.Fatalf("unavailable again: %s", m.raw)
	}
	setFail(nil)
	th.Publish(th.src.put(ch79, 2))
	if m := c.expect("update"); m.Channel != ch79 {
		t.Fatalf("update %s", m.raw)
	}
	if n := th.metric("ioc_ws_subscriptions"); n != 1 {
		t.Fatalf("subscriptions gauge %v", n)
	}

	// A source with no room for the channel: "limit", with its reason.
	setFail(fmt.Errorf("latest: %w", &SourceFullError{Reason: "at most 2 channels"}))
	c.send(`{"type":"subscribe","id":"r4","channel":"kpi:dossier.received:79:week"}`)
	if m := c.expect("error"); m.Code != "limit" || m.ID != "r4" || m.Message != "at most 2 channels" {
		t.Fatalf("source full: %s", m.raw)
	}
}

func TestOrigins(t *testing.T) {
	th := newTestHub(t, Config{AllowedOrigins: []string{"https://ioc.example.vn"}})
	for _, tc := range []struct {
		origin string
		ok     bool
	}{{"https://ioc.example.vn", true}, {"", true}, {"https://evil.example", false}, {"http://ioc.example.vn", false}} {
		hdr := http.Header{}
		if tc.origin != "" {
			hdr.Set("Origin", tc.origin)
		}
		ws, resp, err := websocket.DefaultDialer.Dial(th.url("good"), hdr)
		if tc.ok != (err == nil) {
			t.Errorf("origin %q: ok %v, got %v", tc.origin, tc.ok, err)
		}
		if err == nil {
			ws.Close()
		} else if resp != nil && resp.StatusCode != http.StatusForbidden {
			t.Errorf("origin %q: status %d", tc.origin, resp.StatusCode)
		}
	}
}

func TestInvalidPublishedData(t *testing.T) {
	th := newTestHub(t, Config{})
	c := th.dialWelcome(t)
	c.subscribe("r1", ch79)
	c.expect("snapshot")
	th.Publish(Update{Channel: ch79, Seq: 1, Data: []byte(`{"broken"`)})
	if got := c.barrier(); len(got) != 0 {
		t.Fatalf("invalid data sent: %v", got)
	}
	if n := th.metric("ioc_ws_updates_dropped_total", "reason", "invalid"); n != 1 {
		t.Fatalf("invalid metric %v", n)
	}
}

// A session whose token expires is closed at the next heartbeat after,
// saying why.
func TestTokenExpiry(t *testing.T) {
	th := newTestHub(t, Config{PingInterval: 500 * time.Millisecond})
	c := th.dial(t, "expiring")
	c.expect("welcome")
	if m := c.expect("error"); m.Code != "unauthorized" || !strings.Contains(m.Message, "token expired") {
		t.Fatalf("expiry error: %s", m.raw)
	}
	if text := c.expectClose(websocket.ClosePolicyViolation); text != "token expired" {
		t.Fatalf("close reason %q", text)
	}
	if n := th.metric("ioc_ws_disconnects_total", "reason", "auth"); n != 1 {
		t.Fatalf("auth disconnects %v", n)
	}
	// A message after the expiry is not answered, whatever the heartbeat.
	th2 := newTestHub(t, Config{PingInterval: time.Hour})
	e := th2.dial(t, "expiring")
	e.expect("welcome")
	time.Sleep(200 * time.Millisecond) // past the token's 150 ms
	e.send(`{"type":"subscribe","id":"late","channel":"` + ch79 + `"}`)
	if m := e.expect("error"); m.Code != "unauthorized" || m.ID != "" || !strings.Contains(m.Message, "token expired") {
		t.Fatalf("after expiry: %s", m.raw)
	}
	if text := e.expectClose(websocket.ClosePolicyViolation); text != "token expired" {
		t.Fatalf("close reason %q", text)
	}
	if n := th2.metric("ioc_ws_subscriptions"); n != 0 {
		t.Fatalf("subscribed after expiry: gauge %v", n)
	}
	// A token that does not expire stays.
	g := th.dialWelcome(t)
	g.subscribe("r1", ch79)
	g.expect("snapshot")
}

// Thousands of connections hold tens of subscriptions each: a field added
// to sub must not push it past the 80-byte size class.
func TestSubFitsItsSizeClass(t *testing.T) {
	if n := unsafe.Sizeof(sub{}); n > 80 {
		t.Fatalf("sub is %d bytes, more than 80", n)
	}
}

// TestBusyClientKeepsItsConnection: a client that reads as fast as it can
// is never closed as slow for what the server itself queued at once — one
// value on each of more channels than the queue holds (a window rolling
// over at midnight), or the missed values of many channels it resumes
// (a wall reconnecting) — while the writer is held up.
func TestBusyClientKeepsItsConnection(t *testing.T) {
	const channels, values = 300, 40
	chans := make([]string, channels)
	for i := range chans {
		chans[i] = fmt.Sprintf("kpi:busy:%d:today", i)
	}
	// hold runs f while the hub's writers wait, then lets them go.
	hold := func(th *testHub, f func()) {
		var gate sync.Mutex
		hook := func() { gate.Lock(); gate.Unlock() }
		gate.Lock()
		defer gate.Unlock()
		th.writeHook.Store(&hook)
		f()
	}
	t.Run("one value on every channel", func(t *testing.T) {
		th := newTestHub(t, Config{MessageRate: 1000})
		c := th.dialWelcome(t)
		for i, ch := range chans {
			c.subscribe(fmt.Sprint(i), ch)
			c.expect("snapshot")
		}
		hold(th, func() {
			for _, ch := range chans {
				th.Publish(th.src.put(ch, "v"))
			}
		})
		got := map[string]bool{}
		for _, m := range c.barrier() {
			if m.Type != "update" || m.Seq != 1 || m.Coalesced {
				t.Fatalf("got %s", m.raw)
			}
			got[m.Channel] = true
		}
		if len(got) != channels {
			t.Fatalf("%d of %d channels updated", len(got), channels)
		}
	})
	t.Run("resuming many channels", func(t *testing.T) {
		th := newTestHub(t, Config{MessageRate: 1000})
		const since = 2
		for _, ch := range chans[:40] {
			for range values {
				th.src.put(ch, "v")
			}
		}
		c := th.dialWelcome(t)
		hold(th, func() {
			for i, ch := range chans[:40] {
				c.send(map[string]any{"type": "subscribe", "id": fmt.Sprint(i), "channel": ch, "since": since})
			}
			waitFor(t, "40 subscriptions", 10*time.Second, func() bool { return th.metric("ioc_ws_subscriptions") == 40 })
		})
		// Each channel: recovered with exactly the values after since, or
		// a snapshot of the latest.
		prev := map[string]uint64{}
		recovered := 0
		for _, m := range c.barrier() {
			switch m.Type {
			case "subscribed":
				if *m.Recovered {
					prev[m.Channel] = since
					recovered++
				}
			case "snapshot":
				if _, ok := prev[m.Channel]; ok || m.Seq != values {
					t.Fatalf("snapshot %s", m.raw)
				}
				prev[m.Channel] = m.Seq
			case "update":
				if p, ok := prev[m.Channel]; !ok || m.Seq != p+1 || m.Coalesced {
					t.Fatalf("update %s after %d", m.raw, p)
				}
				prev[m.Channel] = m.Seq
			default:
				t.Fatalf("got %s", m.raw)
			}
		}
		for _, ch := range chans[:40] {
			if prev[ch] != values {
				t.Fatalf("%s: last seq %d, want %d", ch, prev[ch], values)
			}
		}
		// Three channels' 38 missed values fit in half the queue; the
		// others got snapshots.
		if recovered != 3 {
			t.Fatalf("%d channels recovered, want 3", recovered)
		}
	})
	t.Run("bytes past the queue close it", func(t *testing.T) {
		// A client resubscribing to a large channel without reading holds
		// a large snapshot per resubscribe: 16 of 64 KiB pass 256 KiB.
		th := newTestHub(t, Config{MessageRate: 1000, QueueSize: 64, QueueBytes: 256 << 10})
		th.src.put("kpi:big:79:today", strings.Repeat("x", 64<<10))
		c := th.dialWelcome(t)
		hold(th, func() {
			for i := range 12 {
				c.send(map[string]string{"type": "subscribe", "id": fmt.Sprint(i), "channel": "kpi:big:79:today"})
			}
			waitFor(t, "a slow disconnect", 10*time.Second, func() bool {
				return th.metric("ioc_ws_disconnects_total", "reason", "slow") == 1
			})
		})
		if reason := c.expectClose(websocket.CloseTryAgainLater); !strings.Contains(reason, "more than 262144 bytes queued") {
			t.Fatalf("close reason %q", reason)
		}
		// Small frames as many as before stay within the bound.
		th.src.put("kpi:small:79:today", 1)
		d := th.dialWelcome(t)
		hold(th, func() {
			for i := range 12 {
				d.send(map[string]string{"type": "subscribe", "id": fmt.Sprint(i), "channel": "kpi:small:79:today"})
			}
			time.Sleep(200 * time.Millisecond)
		})
		for range 12 {
			d.expect("subscribed")
			d.expect("snapshot")
		}
	})
	t.Run("replies past the queue close it", func(t *testing.T) {
		th := newTestHub(t, Config{MessageRate: 1000, QueueSize: 16})
		c := th.dialWelcome(t)
		hold(th, func() {
			// The writer holds the first pong; 16 more fill the queue.
			for i := range 18 {
				c.send(map[string]string{"type": "ping", "id": fmt.Sprint(i)})
			}
			waitFor(t, "a slow disconnect", 10*time.Second, func() bool {
				return th.metric("ioc_ws_disconnects_total", "reason", "slow") == 1
			})
		})
		if reason := c.expectClose(websocket.CloseTryAgainLater); !strings.Contains(reason, "more than 16 messages queued") {
			t.Fatalf("close reason %q", reason)
		}
	})
}
