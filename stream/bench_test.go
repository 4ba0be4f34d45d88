package stream

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime"
	rtmetrics "runtime/metrics"
	"strings"
	"testing"
	"time"
)

// BenchmarkPublish fans one update out to 1,000 subscribers.
//
//   - handoff: in-process connections without sockets; one op is a Publish
//     and every writer taking its update from the queue (all but the
//     socket write).
//   - coalesce: the same, but no writer keeps up: every update replaces the
//     one still queued (a wall of slow clients).
//   - websocket: 1,000 real clients over loopback, in the same process
//     (their reads share the two cores with the hub).
func BenchmarkPublish(b *testing.B) {
	const subscribers = 1000
	data := []byte(`{"value":1234.5,"unit":"79","window":"today","at":"2025-08-04T09:15:00+07:00"}`)
	inProcess := func(b *testing.B, take bool) {
		h, err := New(Config{}, newMemSource(), testAuth{}, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			b.Fatal(err)
		}
		defer h.Close()
		conns := make([]*conn, subscribers)
		for i := range conns {
			c := newConn(h, nil)
			c.writing = true // the benchmark plays the writer
			s := &sub{c: c, channel: ch79, state: subLive}
			c.subs = map[string]*sub{ch79: s}
			h.register(s)
			conns[i] = c
		}
		b.ReportAllocs()
		b.SetBytes(int64(subscribers * len(data)))
		b.ResetTimer()
		for i := range b.N {
			h.Publish(Update{Channel: ch79, Seq: uint64(i + 1), Data: data})
			if take {
				for _, c := range conns {
					if _, _, ok, _ := c.next(); !ok {
						b.Fatal("nothing queued")
					}
				}
			}
		}
		b.StopTimer()
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*subscribers), "ns/delivery")
	}
	b.Run("handoff", func(b *testing.B) { inProcess(b, true) })
	b.Run("coalesce", func(b *testing.B) { inProcess(b, false) })

	// websocket: one op publishes an update and waits until all 1,000
	// clients have read it. websocket-burst publishes as fast as it can and
	// waits for the last update only: most are coalesced.
	websocket := func(b *testing.B, burst bool) {
		th := newTestHub(b, Config{})
		got := make(chan uint64, subscribers)
		for range subscribers {
			c := th.dialWelcome(b)
			c.subscribe("r", ch79)
			c.expect("snapshot")
			go func() {
				for {
					_, msg, err := c.ws.ReadMessage()
					if err != nil {
						return // closed at the end
					}
					got <- seqOf(msg)
				}
			}()
		}
		sent0 := th.metric("ioc_ws_messages_sent_total", "type", "update")
		b.ReportAllocs()
		b.ResetTimer()
		for i := range b.N {
			seq := uint64(i + 1)
			th.Publish(Update{Channel: ch79, Seq: seq, Data: data})
			if burst && i+1 < b.N {
				continue
			}
			for n := 0; n < subscribers; {
				if <-got == seq {
					n++
				}
			}
		}
		b.StopTimer()
		sent := th.metric("ioc_ws_messages_sent_total", "type", "update") - sent0
		b.ReportMetric(sent/b.Elapsed().Seconds(), "msgs/s")
		if burst {
			b.ReportMetric(1-sent/float64(b.N*subscribers), "coalesced-ratio")
		}
	}
	b.Run("websocket", func(b *testing.B) { websocket(b, false) })
	b.Run("websocket-burst", func(b *testing.B) { websocket(b, true) })
}

// BenchmarkIdleConnMemory reports the memory one idle, authenticated
// connection holds (heap in use plus goroutine stacks, after GC) over
// 2,000 connections, without subscriptions and with 20. The clients are
// raw sockets without goroutines; their share (a socket, about 0.3 KiB)
// is included.
func BenchmarkIdleConnMemory(b *testing.B) {
	const n = 2000
	for _, subs := range []int{0, 20} {
		b.Run(fmt.Sprintf("subs=%d", subs), func(b *testing.B) {
			th := newTestHub(b, Config{})
			addr := strings.TrimPrefix(th.srv.URL, "http://")
			for range b.N {
				runtime.GC()
				runtime.GC()
				var m0, m1 runtime.MemStats
				runtime.ReadMemStats(&m0)
				g0 := runtime.NumGoroutine()
				conns := make([]net.Conn, n)
				for i := range conns {
					conns[i] = rawClient(b, addr, subs)
				}
				waitFor(b, "every connection", time.Minute, func() bool {
					return th.metric("ioc_ws_connections") == n && th.metric("ioc_ws_subscriptions") == float64(n*subs)
				})
				for range 5 { // each GC may halve an idle goroutine's stack
					runtime.GC()
				}
				runtime.ReadMemStats(&m1)
				g1 := runtime.NumGoroutine()
				heap := float64(int64(m1.HeapInuse)-int64(m0.HeapInuse)) / n
				stack := float64(int64(m1.StackInuse)-int64(m0.StackInuse)) / n
				b.ReportMetric(heap+stack, "B/conn")
				b.ReportMetric(heap, "heap-B/conn")
				b.ReportMetric(stack, "stack-B/conn")
				b.ReportMetric(float64(g1-g0)/n, "goroutines/conn")
				sample := []rtmetrics.Sample{{Name: "/gc/stack/starting-size:bytes"}}
				rtmetrics.Read(sample)
				b.ReportMetric(float64(sample[0].Value.Uint64()), "stack-start-B")
				for _, c := range conns {
					c.Close()
				}
				waitFor(b, "connections to end", time.Minute, func() bool { return th.metric("ioc_ws_connections") == 0 })
			}
		})
	}
}

// rawClient opens a websocket by hand (no goroutine, no buffers kept),
// reads the welcome, subscribes to subs channels and reads the answers.
func rawClient(b *testing.B, addr string, subs int) net.Conn {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	_, err = io.WriteString(c, "GET /ws?token=good HTTP/1.1\r\nHost: "+addr+"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
	if err != nil {
		b.Fatal(err)
	}
	r := bufio.NewReaderSize(c, 512)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			b.Fatal(err)
		}
		if line == "\r\n" {
			break
		}
	}
	frames := 1 // welcome
	for i := range subs {
		msg := fmt.Sprintf(`{"type":"subscribe","channel":"kpi:idle:%d:today"}`, i)
		// A client frame: FIN+text, masked with a zero key (so the payload
		// stays as it is).
		frame := append([]byte{0x81, 0x80 | byte(len(msg)), 0, 0, 0, 0}, msg...)
		if _, err := c.Write(frame); err != nil {
			b.Fatal(err)
		}
		frames += 2 // subscribed, snapshot
	}
	for range frames {
		var hdr [2]byte
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			b.Fatal(err)
		}
		size := int(hdr[1] & 0x7f)
		switch size {
		case 126:
			var ext [2]byte
			if _, err := io.ReadFull(r, ext[:]); err != nil {
				b.Fatal(err)
			}
			size = int(binary.BigEndian.Uint16(ext[:]))
		case 127:
			b.Fatal("unexpected large frame")
		}
		if _, err := r.Discard(size); err != nil {
			b.Fatal(err)
		}
	}
	return c
}

// seqOf reads "seq" from an update cheaply: the clients share the CPU with
// the hub being measured.
func seqOf(msg []byte) uint64 {
	i := bytes.Index(msg, []byte(`"seq":`))
	if i < 0 {
		return 0
	}
	var n uint64
	for _, b := range msg[i+len(`"seq":`):] {
		if b < '0' || b > '9' {
			break
		}
		n = n*10 + uint64(b-'0')
	}
	return n
}
