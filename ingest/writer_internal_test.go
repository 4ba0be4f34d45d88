package ingest

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vn-ioc/ioc/internal/testenv"
)

type replyMsg struct {
	jetstream.Msg
	reply string
}

func (m replyMsg) Reply() string { return m.reply }

func TestAckInfoAsMetadata(t *testing.T) {
	type info struct {
		seq     uint64
		pending int64
	}
	for reply, want := range map[string]info{
		"$JS.ACK.IOC_EVENTS.writer-camera.1.4711.4700.1700000000000000000.12":       {4711, 12},
		"$JS.ACK.hub.ACCHASH.IOC_EVENTS.writer-camera.1.4712.4701.1700000000.0.rnd": {4712, 0},
		"$JS.ACK._.ACCHASH.S.C.2.99.98.1700000000.3":                                {99, 3},
		"$JS.ACK.S.C.1.x9.1.1.1":          {0, 1},
		"$JS.ACK.S.C.1.9.1.1.-":           {9, -1},
		"$JS.ACK.A.B.S.C.1.7.3.4.5.6.7.8": {7, 5},
	} {
		if seq, pending, ok := ackInfo(replyMsg{reply: reply}); !ok || (info{seq, pending}) != want {
			t.Errorf("%s: %d %d %v, want %v", reply, seq, pending, ok, want)
		}
	}
	for _, reply := range []string{"", "$JS.ACK.S.C.1.2.3.4", "$JS.ACK.A.B.S.C.1.2.3.4", "_INBOX.a.b.c.d.e.f.g.h"} {
		if _, _, ok := ackInfo(replyMsg{reply: reply}); ok {
			t.Errorf("%s: ok", reply)
		}
	}

	// And on messages of a real stream.
	_, nc := testenv.NATS(t)
	ctx := context.Background()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	st, err := EnsureStream(ctx, js, StreamConfig{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if _, err := js.PublishMsg(ctx, &nats.Msg{Subject: streamSubjectPrefix + "camera.status", Data: []byte(fmt.Sprint(i))}); err != nil {
			t.Fatal(err)
		}
	}
	cons, err := st.Consumer(ctx, writerConsumer(FamilyCamera))
	if err != nil {
		t.Fatal(err)
	}
	batch, err := cons.Fetch(5, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	n, last := 0, int64(-1)
	for msg := range batch.Messages() {
		md, err := msg.Metadata()
		if err != nil {
			t.Fatal(err)
		}
		seq, pending, ok := ackInfo(msg)
		if !ok || seq != md.Sequence.Stream || pending != int64(md.NumPending) {
			t.Errorf("%s: %d %d %v, want %d %d", msg.Reply(), seq, pending, ok, md.Sequence.Stream, md.NumPending)
		}
		last = pending
		n++
	}
	if n != 5 || last != 0 {
		t.Fatalf("%d messages, the last with %d pending after it", n, last)
	}
}

func TestReadAllLimitedAsReadAll(t *testing.T) {
	body := strings.Repeat("0123456789", 100)
	for _, limit := range []int64{1, 10, 999, 1000, 1001, 5000} {
		for _, size := range []int64{-1, 0, 1, 10, 500, 999, 1000, 1001, 4999, 5000} {
			for _, one := range []bool{false, true} {
				var r io.Reader = strings.NewReader(body)
				if one {
					r = iotest.OneByteReader(r)
				}
				got, err := readAllLimited(r, limit, size)
				want, werr := io.ReadAll(io.LimitReader(strings.NewReader(body), limit))
				if string(got) != string(want) || err != werr {
					t.Fatalf("limit %d size %d: %d bytes %v, want %d %v", limit, size, len(got), err, len(want), werr)
				}
			}
		}
	}
	if _, err := readAllLimited(iotest.ErrReader(io.ErrUnexpectedEOF), 100, 10); err != io.ErrUnexpectedEOF {
		t.Fatal(err)
	}
}

func TestPseudonymIsKeyedHMAC(t *testing.T) {
	key := []byte("0123456789abcdef")
	p, err := NewPseudonymizer(key)
	if err != nil {
		t.Fatal(err)
	}
	for _, clear := range []string{"", "079123456789", "Lê Văn C", strings.Repeat("x", 1000)} {
		h := hmac.New(sha256.New, key)
		h.Write([]byte(clear))
		want := PseudonymPrefix + base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(h.Sum(nil)[:16])
		for range 2 { // a pooled state gives the same again
			if got := p.Pseudonym(clear); got != want {
				t.Fatalf("%q: %s, want %s", clear, got, want)
			}
		}
	}
}

// TestInsertErrorKinds: only a refusal of a value sends rows towards dead
// letters; an outage of any kind (replica down, grant changed, column
// being migrated, "too many parts") is retried; a batch over the
// partitions one insert takes is split.
func TestInsertErrorKinds(t *testing.T) {
	ex := func(code int32, msg string) error {
		return fmt.Errorf("send: %w", &clickhouse.Exception{Code: code, Message: msg})
	}
	for _, c := range []struct {
		err         error
		data, split bool
	}{
		{ex(395, "Value passed to 'throwIf' function is non zero"), true, false},
		{ex(6, "Cannot parse text"), true, false},
		{ex(321, "Value out of range"), true, false},
		{&valueError{errors.New("column time: bad value")}, true, false},
		{ex(279, "All connection tries failed"), false, false},
		{ex(285, "Number of alive replicas (0) is less than requested quorum"), false, false},
		{ex(497, "Not enough privileges"), false, false},
		{ex(516, "Authentication failed"), false, false},
		{ex(16, "There is no column with name x"), false, false},
		{ex(252, "Too many parts (300). Merges are processing significantly slower than inserts"), false, false},
		{ex(252, "Too many partitions for single INSERT block (more than 100)"), false, true},
		{errors.New("read: connection reset by peer"), false, false},
		{fmt.Errorf("append: %w", errors.New("insert into x has 3 columns, want 4")), false, false},
	} {
		if got := isDataError(c.err); got != c.data {
			t.Errorf("isDataError(%v) = %v", c.err, got)
		}
		if got := isTooManyPartitions(c.err); got != c.split {
			t.Errorf("isTooManyPartitions(%v) = %v", c.err, got)
		}
	}
}
