package alert

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/vn-ioc/ioc/stream"
)

// ChannelPrefix starts the name of an alert feed channel: "alerts:<unit>",
// the open alerts of the unit's subtree.
const ChannelPrefix = "alerts:"

// FeedLimit bounds the alerts a feed message lists (the most severe, then
// the newest); Total counts them all.
const FeedLimit = 200

// FeedValue is the data of an alert feed message: the open alerts of a
// unit subtree as of At.
type FeedValue struct {
	Unit string `json:"unit"`
	// Total open alerts of the subtree, and how many of each severity.
	Total      int            `json:"total"`
	BySeverity map[string]int `json:"by_severity"`
	// Alerts: at most FeedLimit, critical first, then newest raised.
	Alerts    []*Alert `json:"alerts"`
	Truncated bool     `json:"truncated,omitempty"`
	// Hold, while one suspends the rules (Hold): nothing is raised or
	// cleared until it ends; acknowledgements still apply.
	Hold *Hold     `json:"hold,omitempty"`
	At   time.Time `json:"at"`
}

// Feed keeps, on every node, the open alerts (from the store's live set)
// and the alert feed channels its clients subscribed to, and publishes a
// channel's new value when an alert of its subtree changes. Sequences come
// from one counter of the node, so a client that resumes gets a fresh
// snapshot (recovered: false), as with the drill-down lists. Safe for
// concurrent use.
type Feed struct {
	store *Store
	// Path lists a unit's ancestors from the root down to the unit.
	path func(unit string) []string
	// Publish delivers a channel's new value to the node's hub.
	Publish func(stream.Update)
	// Subscribed says whether a channel still has subscribers on the
	// node; a channel without is forgotten.
	Subscribed func(channel string) bool
	Log        *slog.Logger
	now        func() time.Time

	mu    sync.Mutex
	ready chan struct{}
	open  map[string]*Alert
	hold  *Hold
	// holdEnd republishes the channels when the hold's end passes.
	holdEnd *time.Timer
	seq     uint64
	chans   map[string]*feedChan
}

type feedChan struct {
	seq    uint64
	data   json.RawMessage
	digest [32]byte // of the value but for its instant
}

var _ stream.Source = (*Feed)(nil)

// NewFeed reads nothing yet: Run fills it.
func NewFeed(store *Store, path func(string) []string) *Feed {
	return &Feed{store: store, path: path, now: time.Now, ready: make(chan struct{}),
		open: map[string]*Alert{}, chans: map[string]*feedChan{}}
}

// Run follows the live set until ctx ends. When the watch breaks (NATS
// reconnecting), it starts over from the whole set and forgets the alerts
// cleared meanwhile.
func (f *Feed) Run(ctx context.Context) error {
	go f.followHold(ctx)
	var once sync.Once
	for ctx.Err() == nil {
		f.mu.Lock()
		stale := make(map[string]bool, len(f.open))
		for id := range f.open {
			stale[id] = true
		}
		f.mu.Unlock()
		seen := func(a *Alert) {
			f.mu.Lock()
			delete(stale, a.ID)
			f.mu.Unlock()
			f.apply(a)
		}
		err := f.store.Watch(ctx, seen, func() {
			f.mu.Lock()
			for id := range stale {
				delete(f.open, id)
			}
			clear(stale)
			f.republish()
			f.mu.Unlock()
			once.Do(func() { close(f.ready) })
		})
		if ctx.Err() != nil {
			return nil
		}
		if f.Log != nil {
			f.Log.Warn("alert feed: watch of the open alerts stopped; starting over", "err", err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
	return nil
}

// followHold follows the hold on the rules until ctx ends, starting over
// when the watch breaks.
func (f *Feed) followHold(ctx context.Context) {
	for ctx.Err() == nil {
		err := f.store.WatchHold(ctx, f.setHold)
		if ctx.Err() != nil {
			break
		}
		if f.Log != nil {
			f.Log.Warn("alert feed: watch of the hold on the rules stopped; starting over", "err", err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
	f.mu.Lock()
	if f.holdEnd != nil {
		f.holdEnd.Stop()
	}
	f.mu.Unlock()
}

// setHold takes the hold as it now is and republishes every channel.
func (f *Feed) setHold(h *Hold) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.hold = h
	f.armHoldEnd()
	f.republish()
}

// armHoldEnd sets the timer that republishes the channels when the hold
// ends; the timer checks the wall clock and sets itself again if the hold
// is still in force (timers follow the monotonic clock, which stops while
// a machine is suspended). f.mu is held.
func (f *Feed) armHoldEnd() {
	if f.holdEnd != nil {
		f.holdEnd.Stop()
		f.holdEnd = nil
	}
	h := f.hold
	if now := f.now(); h.InForce(now) {
		f.holdEnd = time.AfterFunc(h.Until.Sub(now)+time.Millisecond, func() {
			f.mu.Lock()
			defer f.mu.Unlock()
			if f.hold == h {
				f.armHoldEnd()
				f.republish()
			}
		})
	}
}

// republish recomputes every channel; f.mu is held.
func (f *Feed) republish() {
	for ch := range f.chans {
		f.publishLocked(ch)
	}
}

// apply takes one change of the live set and republishes the channels of
// the alert's subtree.
func (f *Feed) apply(a *Alert) {
	f.mu.Lock()
	defer f.mu.Unlock()
	old := f.open[a.ID]
	if a.Open() {
		if old != nil && old.Version >= a.Version {
			return
		}
		f.open[a.ID] = a
	} else {
		if old == nil {
			return
		}
		delete(f.open, a.ID)
		a = old
	}
	select {
	case <-f.ready:
	default:
		return // still loading: the snapshots are computed once ready
	}
	for _, u := range f.path(a.Unit) {
		f.publishLocked(ChannelPrefix + u)
	}
}

// publishLocked recomputes a channel the node keeps and publishes it when
// it changed; f.mu is held.
func (f *Feed) publishLocked(ch string) {
	c := f.chans[ch]
	if c == nil {
		return
	}
	if f.Subscribed != nil && !f.Subscribed(ch) {
		delete(f.chans, ch)
		return
	}
	data, digest := f.value(strings.TrimPrefix(ch, ChannelPrefix))
	if digest == c.digest {
		return
	}
	f.seq++
	c.seq, c.data, c.digest = f.seq, data, digest
	if f.Publish != nil {
		f.Publish(stream.Update{Channel: ch, Seq: c.seq, Data: c.data})
	}
}

// value lists the open alerts of a subtree, with the digest of all but its
// instant; f.mu is held.
func (f *Feed) value(unit string) (json.RawMessage, [32]byte) {
	v := FeedValue{Unit: unit, BySeverity: map[string]int{}, Alerts: []*Alert{}}
	for _, a := range f.open {
		if !slices.Contains(f.path(a.Unit), unit) {
			continue
		}
		v.Total++
		v.BySeverity[a.Severity]++
		v.Alerts = append(v.Alerts, a)
	}
	slices.SortFunc(v.Alerts, func(a, b *Alert) int {
		if c := cmp.Compare(slices.Index(Severities, b.Severity), slices.Index(Severities, a.Severity)); c != 0 {
			return c
		}
		if c := b.RaisedAt.Compare(a.RaisedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	if len(v.Alerts) > FeedLimit {
		v.Alerts, v.Truncated = v.Alerts[:FeedLimit], true
	}
	if f.hold.InForce(f.now()) {
		v.Hold = f.hold
	}
	b, _ := json.Marshal(v)
	digest := sha256.Sum256(b)
	v.At = f.now().UTC()
	b, _ = json.Marshal(v)
	return b, digest
}

// Latest is the channel's current value, computed when first asked.
func (f *Feed) Latest(ctx context.Context, channel string) (stream.Update, bool, error) {
	unit, ok := strings.CutPrefix(channel, ChannelPrefix)
	if !ok || unit == "" {
		return stream.Update{}, false, errors.New("channel " + channel + " is not alerts:<unit>")
	}
	select {
	case <-f.ready:
	case <-ctx.Done():
		return stream.Update{}, false, errors.New("the open alerts are not loaded yet")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.chans[channel]
	if c == nil {
		f.seq++
		c = &feedChan{seq: f.seq}
		c.data, c.digest = f.value(unit)
		f.chans[channel] = c
	}
	return stream.Update{Channel: channel, Seq: c.seq, Data: c.data}, true, nil
}

// Since recovers nothing: a resuming client gets a fresh snapshot. Seqs
// are the node's own count since it started, so a seq equal to the one a
// client brings says nothing about its value: the client may have seen it
// on another node, or before this one restarted.
func (f *Feed) Since(context.Context, string, uint64) ([]stream.Update, bool, error) {
	return nil, false, nil
}
