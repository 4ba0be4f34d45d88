package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vn-ioc/ioc/internal/testenv"
	"github.com/vn-ioc/ioc/query/drill"
	"github.com/vn-ioc/ioc/query/kpi"
	"github.com/vn-ioc/ioc/stream"
)

// fakeLists is a listFeed over lists held in memory.
type fakeLists struct {
	mu        sync.Mutex
	rows      map[string][]drill.Dossier // by channel
	computed  map[string]int
	published []stream.Update
	now       time.Time
}

func newFakeFeed() (*listFeed, *fakeLists) {
	fk := &fakeLists{rows: map[string][]drill.Dossier{}, computed: map[string]int{}, now: time.Date(2026, 3, 4, 10, 0, 0, 0, time.UTC)}
	compute := func(list, unit string, at time.Time) (*drill.Result, error) {
		fk.mu.Lock()
		defer fk.mu.Unlock()
		ch := drill.Channel(list, unit)
		fk.computed[ch]++
		rows := append([]drill.Dossier{}, fk.rows[ch]...)
		if unit == "broken" {
			return nil, errors.New("clickhouse down")
		}
		return &drill.Result{List: list, Unit: unit, At: at, Total: uint64(len(rows)), Rows: rows}, nil
	}
	f := &listFeed{
		parse: func(ch string) (feedChannel, error) {
			list, unit, ok := drill.ParseChannel(ch)
			if !ok || !drill.Known(list) {
				return feedChannel{}, fmt.Errorf("channel %q is not a list channel", ch)
			}
			return feedChannel{topics: []string{drill.Family(list)}, compute: func(_ context.Context, at time.Time) (feedValue, error) {
				res, err := compute(list, unit, at)
				if err != nil {
					return feedValue{}, err
				}
				return listValue(res), nil
			}}, nil
		},
		publish: func(u stream.Update) { fk.mu.Lock(); fk.published = append(fk.published, u); fk.mu.Unlock() },
		now:     func() time.Time { fk.mu.Lock(); defer fk.mu.Unlock(); return fk.now },
		log:     slog.New(slog.DiscardHandler),
		m:       newListMetrics(nil),
		chans:   map[string]*listChan{},
		dirty:   map[string]bool{},
		wake:    make(chan struct{}, 1),
	}
	return f, fk
}

func (fk *fakeLists) set(ch string, ids ...string) {
	fk.mu.Lock()
	defer fk.mu.Unlock()
	var rows []drill.Dossier
	for _, id := range ids {
		rows = append(rows, drill.Dossier{DossierID: id})
	}
	fk.rows[ch] = rows
}

func (fk *fakeLists) advance(d time.Duration) { fk.mu.Lock(); fk.now = fk.now.Add(d); fk.mu.Unlock() }

// Seqs move only when the rows do; a new value reaches the other
// subscribers; resuming never recovers.
func TestListFeedSeqs(t *testing.T) {
	f, fk := newFakeFeed()
	ctx := context.Background()
	const ch = "list:dossier.overdue:26740"
	fk.set(ch, "A")
	u1, ok, err := f.Latest(ctx, ch)
	if err != nil || !ok || u1.Seq == 0 || u1.Channel != ch || len(fk.published) != 1 {
		t.Fatalf("first: %+v %v %v, %d published", u1, ok, err, len(fk.published))
	}
	fk.advance(time.Second)
	u2, _, _ := f.Latest(ctx, ch)
	if u2.Seq != u1.Seq || len(fk.published) != 1 || string(u2.Data) == string(u1.Data) {
		t.Fatalf("unchanged rows: seq %d → %d, %d published", u1.Seq, u2.Seq, len(fk.published))
	}
	fk.set(ch, "A", "B")
	fk.advance(time.Second)
	u3, _, _ := f.Latest(ctx, ch)
	if u3.Seq <= u2.Seq || len(fk.published) != 2 || fk.published[1].Seq != u3.Seq {
		t.Fatalf("changed rows: seq %d → %d, %d published", u2.Seq, u3.Seq, len(fk.published))
	}
	// A computation older than the value kept changes nothing — also one
	// begun earlier in the same second (the values' instants are cut to
	// the second).
	old, _ := f.chans[ch].compute(ctx, fk.now.Add(-time.Minute))
	old.digest = [32]byte{}
	if u, changed, _ := f.store(f.chans[ch], old, fk.now.Add(-time.Minute)); changed || u.Seq != u3.Seq {
		t.Fatalf("older result stored as seq %d", u.Seq)
	}
	sameSecond, _ := f.chans[ch].compute(ctx, fk.now)
	sameSecond.digest = [32]byte{}
	if u, changed, _ := f.store(f.chans[ch], sameSecond, fk.now.Add(-time.Millisecond)); changed || u.Seq != u3.Seq {
		t.Fatalf("a result begun earlier in the same second stored as seq %d", u.Seq)
	}
	// Seqs come from one counter of the node: another channel's go on from it.
	u4, _, _ := f.Latest(ctx, "list:feedback.overdue:79")
	if u4.Seq <= u3.Seq {
		t.Fatalf("seq %d after %d", u4.Seq, u3.Seq)
	}
	if ups, complete, err := f.Since(ctx, ch, u3.Seq); ups != nil || complete || err != nil {
		t.Fatalf("since: %v %v %v", ups, complete, err)
	}
	for _, bad := range []string{"list:dossier.late:79", "list:dossier.overdue", "kpi:x:79:today"} {
		if _, _, err := f.Latest(ctx, bad); err == nil {
			t.Errorf("Latest(%q) worked", bad)
		}
	}
	if _, _, err := f.Latest(ctx, "list:dossier.overdue:broken"); err == nil {
		t.Error("a failed computation gave a value")
	}
}

// A round recomputes the channels of the families named, drops those no
// one subscribed to for listIdle, and publishes only what changed.
func TestListFeedRefresh(t *testing.T) {
	f, fk := newFakeFeed()
	ctx := context.Background()
	dch, fch := "list:dossier.overdue:26740", "list:feedback.overdue:26740"
	for _, ch := range []string{dch, fch} {
		if _, _, err := f.Latest(ctx, ch); err != nil {
			t.Fatal(err)
		}
	}
	fk.set(dch, "A")
	f.refresh(ctx, map[string]bool{"feedback": true})
	if fk.computed[dch] != 1 || fk.computed[fch] != 2 || len(fk.published) != 2 {
		t.Fatalf("feedback round: computed %v, %d published", fk.computed, len(fk.published))
	}
	f.refresh(ctx, map[string]bool{"dossier": true})
	if fk.computed[dch] != 2 || len(fk.published) != 3 || fk.published[2].Channel != dch {
		t.Fatalf("dossier round: computed %v, published %v", fk.computed, fk.published)
	}
	fk.advance(listIdle / 2)
	_, _, _ = f.Since(ctx, fch, 0) // a resubscribe keeps it
	fk.advance(listIdle/2 + time.Second)
	f.refresh(ctx, nil)
	if _, ok := f.chans[dch]; ok || f.chans[fch] == nil || fk.computed[dch] != 2 || fk.computed[fch] != 3 {
		t.Fatalf("idle round: channels %v, computed %v", f.chans, fk.computed)
	}
}

// A channel with every is computed at most that often after changes of
// its topics: a change within it waits, and is taken up once it passed.
func TestListFeedEvery(t *testing.T) {
	f, fk := newFakeFeed()
	parse := f.parse
	f.parse = func(ch string) (feedChannel, error) {
		fc, err := parse(ch)
		fc.every = 10 * time.Second
		return fc, err
	}
	ctx := context.Background()
	const ch = "list:feedback.overdue:26740"
	if _, _, err := f.Latest(ctx, ch); err != nil {
		t.Fatal(err)
	}
	due := func(c *listChan, now time.Time) bool { return c.pending && now.Sub(c.last) >= c.every }
	f.refresh(ctx, map[string]bool{"feedback": true})
	if fk.computed[ch] != 2 {
		t.Fatalf("first change: computed %d times, want 2 (subscribe and change)", fk.computed[ch])
	}
	fk.advance(3 * time.Second)
	f.refresh(ctx, map[string]bool{"feedback": true})
	f.refreshWhere(ctx, due)
	if fk.computed[ch] != 2 || !f.chans[ch].pending {
		t.Fatalf("change 3 s later: computed %d times, pending %v; want it to wait", fk.computed[ch], f.chans[ch].pending)
	}
	fk.advance(7 * time.Second)
	f.refreshWhere(ctx, due)
	if fk.computed[ch] != 3 || f.chans[ch].pending {
		t.Fatalf("10 s after the first: computed %d times, pending %v; want the waiting change taken up", fk.computed[ch], f.chans[ch].pending)
	}
	f.refreshWhere(ctx, due)
	f.refresh(ctx, nil) // the periodic round is not held back
	if fk.computed[ch] != 4 {
		t.Fatalf("computed %d times, want 4", fk.computed[ch])
	}
}

// With a hub to ask, a channel is recomputed while it has subscribers,
// however long, and dropped as soon as it has none.
func TestListFeedFollowsSubscribers(t *testing.T) {
	f, fk := newFakeFeed()
	ctx := context.Background()
	dch, fch := "list:dossier.overdue:26740", "list:feedback.overdue:26740"
	followed := map[string]bool{dch: true, fch: true}
	f.subscribed = func(ch string) bool { return followed[ch] }
	for _, ch := range []string{dch, fch} {
		if _, _, err := f.Latest(ctx, ch); err != nil {
			t.Fatal(err)
		}
	}
	fk.advance(3 * listIdle)
	f.refresh(ctx, nil)
	if len(f.chans) != 2 || fk.computed[dch] != 2 || fk.computed[fch] != 2 {
		t.Fatalf("followed for hours: channels %v, computed %v", f.chans, fk.computed)
	}
	followed[fch] = false
	fk.advance(time.Second)
	f.refresh(ctx, nil)
	if f.chans[fch] != nil || f.chans[dch] == nil || fk.computed[fch] != 2 {
		t.Fatalf("unfollowed: channels %v, computed %v", f.chans, fk.computed)
	}
}

// Past listMaxChannels a channel no client follows any more makes room;
// when every one is followed, one more is refused with a SourceFullError
// (the hub's "limit"), and none of the followed ones stops.
func TestListFeedLimit(t *testing.T) {
	f, fk := newFakeFeed()
	followed := map[string]bool{}
	f.subscribed = func(ch string) bool { return followed[ch] }
	ch := func(i int) string { return fmt.Sprintf("list:dossier.overdue:%d", i) }
	for i := range listMaxChannels {
		followed[ch(i)] = true
		if _, err := f.touch(ch(i)); err != nil {
			t.Fatal(err)
		}
	}
	fk.advance(time.Second)
	_, err := f.touch(ch(listMaxChannels))
	var full *stream.SourceFullError
	if !errors.As(err, &full) || !strings.Contains(full.Reason, "at most 512") || len(f.chans) != listMaxChannels || f.chans[ch(0)] == nil {
		t.Fatalf("one more with all followed: %v; %d channels", err, len(f.chans))
	}
	followed[ch(7)] = false // its last client left
	if _, err := f.touch(ch(listMaxChannels)); err != nil {
		t.Fatal(err)
	}
	if len(f.chans) != listMaxChannels || f.chans[ch(7)] != nil || f.chans[ch(0)] == nil || f.chans[ch(listMaxChannels)] == nil {
		t.Fatalf("%d channels; 7 kept %v", len(f.chans), f.chans[ch(7)] != nil)
	}
}

func TestSourceMux(t *testing.T) {
	f, fk := newFakeFeed()
	m := sourceMux{kpi: kpiOnly{}, list: f}
	if _, _, err := m.Latest(context.Background(), "kpi:survey.count:79:today"); err != errKPI {
		t.Fatalf("kpi channel: %v", err)
	}
	if _, _, err := m.Since(context.Background(), "kpi:survey.count:79:today", 1); err != errKPI {
		t.Fatalf("kpi channel since: %v", err)
	}
	if u, ok, err := m.Latest(context.Background(), "list:dossier.overdue:79"); err != nil || !ok || u.Seq == 0 || len(fk.published) != 1 {
		t.Fatalf("list channel: %+v %v %v", u, ok, err)
	}
}

var errKPI = errors.New("kpi source")

type kpiOnly struct{}

func (kpiOnly) Latest(context.Context, string) (stream.Update, bool, error) {
	return stream.Update{}, false, errKPI
}
func (kpiOnly) Since(context.Context, string, uint64) ([]stream.Update, bool, error) {
	return nil, false, errKPI
}

// A channel that follows a family's rollups (a series) is computed again
// when the KPI engine says it wrote them, and not for another family's.
func TestListFeedFollowsRollupNotices(t *testing.T) {
	_, nc := testenv.NATS(t)
	f, _ := newFakeFeed()
	var computed atomic.Int32
	f.parse = func(ch string) (feedChannel, error) {
		return feedChannel{topics: []string{rollupsTopic("survey")}, compute: func(_ context.Context, at time.Time) (feedValue, error) {
			n := computed.Add(1)
			return jsonValue(at, [32]byte{byte(n)}, n, func(*int32, uint64) {}), nil
		}}, nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx, nc) }()
	t.Cleanup(func() { cancel(); <-done })
	if _, _, err := f.Latest(ctx, "series:survey.count:79:today:hour"); err != nil || computed.Load() != 1 {
		t.Fatalf("first computation: %d (%v)", computed.Load(), err)
	}
	// Run subscribes as it starts: notices until it listens are lost.
	testenv.Eventually(t, 10*time.Second, "a computation after the survey rollups' notice", func() (bool, error) {
		if err := nc.Publish(kpi.AppliedSubjectPrefix+"survey", nil); err != nil {
			return false, err
		}
		time.Sleep(2 * listDebounce)
		return computed.Load() >= 2, fmt.Errorf("computed %d times", computed.Load())
	})
	n := computed.Load()
	if err := nc.Publish(kpi.AppliedSubjectPrefix+"dossier", nil); err != nil {
		t.Fatal(err)
	}
	time.Sleep(4 * listDebounce)
	if computed.Load() != n {
		t.Fatalf("computed again (%d → %d) for the dossier rollups", n, computed.Load())
	}
}
