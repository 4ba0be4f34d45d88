package app

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vn-ioc/ioc/ingest"
	"github.com/vn-ioc/ioc/query/alert"
	"github.com/vn-ioc/ioc/query/drill"
	"github.com/vn-ioc/ioc/query/kpi"
	"github.com/vn-ioc/ioc/stream"
)

// How a node keeps its list channels (list:<list>:<unit>) fresh: the feed
// keeps the channels clients subscribed to on this node and recomputes them
// as long as the hub has subscribers for them (without a hub to ask, until
// none subscribed for listIdle).
const (
	// listRefresh: every live channel is recomputed this often, for what
	// time alone changes (a deadline passing).
	listRefresh = 30 * time.Second
	// listDebounce gathers the commit notices of a burst into one round.
	listDebounce = 250 * time.Millisecond
	// listIdle: without a hub to ask, a channel no client subscribed to on
	// this node for this long is no longer recomputed.
	listIdle = time.Hour
	// listMaxChannels bounds the channels a node recomputes; past it, a
	// subscribe to one more is refused ("limit") unless a channel kept has
	// no subscriber left.
	listMaxChannels = 512
	// listParallel bounds the lists computed at once by a round.
	listParallel = 4
)

// listFeed is the stream.Source of the channels a node computes itself —
// drill-down lists (list:<list>:<unit>), KPI trends
// (series:<kpi>:<unit>:<window>:<step>), rankings of child units
// (ranking:<kpi>:<unit>:<window>) and maps (map:<unit>) — and the refresher
// that publishes a channel's new value to the hub when it changes.
// Sequences come from one counter of the node: they go up per channel, and
// mean nothing on another node, which is why a resuming client always gets
// a fresh snapshot. A listFeed is safe for concurrent use.
type listFeed struct {
	// parse says how to compute a channel.
	parse   func(channel string) (feedChannel, error)
	publish func(stream.Update)
	// subscribed says whether a channel still has subscribers on this
	// node; nil falls back to listIdle.
	subscribed func(string) bool
	now        func() time.Time
	log        *slog.Logger
	m          listMetrics

	seq atomic.Uint64
	// commits: when this node last heard of a commit of each family.
	commits sync.Map // family → time.Time
	mu      sync.Mutex
	chans   map[string]*listChan
	dirty   map[string]bool // topics changed since the last round
	wake    chan struct{}
}

var _ stream.Source = (*listFeed)(nil)

// feedChannel is how the node computes one channel.
type feedChannel struct {
	// topics whose changes change it: event families (their commit
	// notices), or kpiTopic(kpi) (a value of the KPI published).
	topics  []string
	compute func(ctx context.Context, at time.Time) (feedValue, error)
	// every, when set, is the least time between two computations that
	// changes of its topics cause: a change within it is taken up when it
	// has passed (a city map changes with every camera commit, and each of
	// its values is hundreds of kilobytes).
	every time.Duration
}

// rollupsTopic is the topic of the KPI engine's writes of a family's
// rollups.
func rollupsTopic(family string) string { return "rollups:" + family }

// kpiTopic is the topic of the published values of a KPI.
func kpiTopic(kpiID string) string { return "kpi:" + kpiID }

// feedValue is a channel's value computed at an instant.
type feedValue struct {
	at     time.Time
	digest [32]byte // of what a client sees change (not the instant)
	encode func(seq uint64) ([]byte, error)
}

// listChan is the latest value of one channel on this node.
type listChan struct {
	feedChannel
	channel string
	seen    time.Time // last subscribe
	last    time.Time // last computation started by a refresh
	pending bool      // a change of its topics waits for every to pass
	seq     uint64    // 0: never computed
	digest  [32]byte
	at      time.Time
	started time.Time // when the computation of the value kept began
	data    json.RawMessage
}

type listMetrics struct {
	channels prometheus.Gauge
	computed *prometheus.CounterVec
	dropped  *prometheus.CounterVec
}

func newListMetrics(reg prometheus.Registerer) listMetrics {
	m := listMetrics{
		channels: prometheus.NewGauge(prometheus.GaugeOpts{Name: "ioc_list_channels",
			Help: "List, series, ranking and map channels this node keeps fresh for its websocket clients."}),
		computed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ioc_list_computations_total",
			Help: "Lists, series, rankings and maps computed for the websocket, by outcome (changed, unchanged, error)."}, []string{"outcome"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ioc_list_channels_dropped_total",
			Help: "List, series, ranking and map channels no longer refreshed (idle: no subscriber left) or never taken (refused: the node's limit reached with every channel followed), by reason."}, []string{"reason"}),
	}
	if reg != nil {
		reg.MustRegister(m.channels, m.computed, m.dropped)
	}
	return m
}

// newListFeed makes the feed of the node's list channels.
func (a *App) newListFeed() (*listFeed, error) {
	return &listFeed{
		parse:      a.parseFeedChannel,
		publish:    func(u stream.Update) { a.hub.Publish(u) },
		subscribed: func(ch string) bool { return a.hub.Subscribed(ch) },
		now:        time.Now,
		log:        a.log,
		m:          newListMetrics(a.reg),
		chans:      map[string]*listChan{},
		dirty:      map[string]bool{},
		wake:       make(chan struct{}, 1),
	}, nil
}

// Latest computes the list of the channel now. When its rows changed since
// the channel's last value on this node, it gets the next seq, and is also
// published to the channel's other subscribers.
func (f *listFeed) Latest(ctx context.Context, channel string) (stream.Update, bool, error) {
	c, err := f.touch(channel)
	if err != nil {
		return stream.Update{}, false, err
	}
	u, err := f.recompute(ctx, c, f.now())
	if err != nil {
		return stream.Update{}, false, err
	}
	return u, true, nil
}

// Since never recovers: a list's history is not kept, so a resuming client
// gets recovered:false and a fresh snapshot.
func (f *listFeed) Since(_ context.Context, channel string, _ uint64) ([]stream.Update, bool, error) {
	if _, err := f.touch(channel); err != nil {
		return nil, false, err
	}
	return nil, false, nil
}

// touch records a subscribe to the channel.
func (f *listFeed) touch(channel string) (*listChan, error) {
	fc, err := f.parse(channel)
	if err != nil {
		return nil, err
	}
	now := f.now()
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.chans[channel]
	if c == nil {
		if len(f.chans) >= listMaxChannels {
			f.dropIdleLocked(now)
		}
		if len(f.chans) >= listMaxChannels {
			// Every channel kept has subscribers: taking one from them
			// would stop their updates without a word, so the new one is
			// refused, saying why.
			f.m.dropped.WithLabelValues("refused").Inc()
			f.log.Warn("computed channels at their limit: a subscribe refused", "limit", listMaxChannels, "channel", channel)
			return nil, &stream.SourceFullError{Reason: fmt.Sprintf(
				"this node computes at most %d list, series, ranking and map channels for its clients, and all are followed: %s refused; retry later or on another node",
				listMaxChannels, channel)}
		}
		c = &listChan{feedChannel: fc, channel: channel}
		f.chans[channel] = c
		f.m.channels.Set(float64(len(f.chans)))
	}
	c.seen = now
	return c, nil
}

// recompute computes the channel's value at the instant at, keeps it, and
// publishes it when it changed.
func (f *listFeed) recompute(ctx context.Context, c *listChan, at time.Time) (stream.Update, error) {
	res, err := c.compute(ctx, at)
	if err != nil {
		f.m.computed.WithLabelValues("error").Inc()
		return stream.Update{}, err
	}
	u, changed, err := f.store(c, res, at)
	if err != nil {
		f.m.computed.WithLabelValues("error").Inc()
		return stream.Update{}, err
	}
	if changed {
		f.m.computed.WithLabelValues("changed").Inc()
		f.publish(u)
	} else {
		f.m.computed.WithLabelValues("unchanged").Inc()
	}
	return u, nil
}

// listPayload is the data of a list channel's update: the REST result and
// the channel's seq.
type listPayload struct {
	*drill.Result
	Seq uint64 `json:"seq"`
}

// store keeps v as the channel's value: with the next seq when its digest
// changed, else under the current seq (what a client sees is the same;
// only the instant, and for lists the working time within the hour,
// moved). A value whose computation began before that of the one kept
// (computations finishing out of order) changes nothing: started is when
// it began, to the nanosecond — the value's own instant is cut to the
// second, and two computations of one second could pass each other.
func (f *listFeed) store(c *listChan, v feedValue, started time.Time) (stream.Update, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c.seq != 0 && started.Before(c.started) {
		return stream.Update{Channel: c.channel, Seq: c.seq, Data: c.data}, false, nil
	}
	changed := c.seq == 0 || v.digest != c.digest
	seq := c.seq
	if changed {
		seq = f.seq.Add(1)
	}
	b, err := v.encode(seq)
	if err != nil {
		return stream.Update{}, false, fmt.Errorf("encode %s: %w", c.channel, err)
	}
	c.seq, c.digest, c.at, c.started, c.data = seq, v.digest, v.at, started, b
	return stream.Update{Channel: c.channel, Seq: seq, Data: b}, changed, nil
}

// Run recomputes the live channels on every change of one of their topics
// (commit notices, published KPI values; debounced) and every listRefresh,
// until ctx ends.
func (f *listFeed) Run(ctx context.Context, nc *nats.Conn) error {
	sub, err := nc.Subscribe(ingest.CommitSubjectPrefix+">", f.onCommit)
	if err != nil {
		return fmt.Errorf("subscribe commit notices: %w", err)
	}
	defer sub.Unsubscribe()
	applied, err := nc.Subscribe(kpi.AppliedSubjectPrefix+">", func(m *nats.Msg) {
		f.changed(rollupsTopic(strings.TrimPrefix(m.Subject, kpi.AppliedSubjectPrefix)))
	})
	if err != nil {
		return fmt.Errorf("subscribe the KPI engine's rollup notices: %w", err)
	}
	defer applied.Unsubscribe()
	tick := time.NewTicker(listRefresh)
	defer tick.Stop()
	due := time.NewTicker(time.Second)
	defer due.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			f.refresh(ctx, nil)
		case <-due.C:
			f.refreshWhere(ctx, func(c *listChan, now time.Time) bool {
				return c.pending && now.Sub(c.last) >= c.every
			})
		case <-f.wake:
			select {
			case <-time.After(listDebounce):
			case <-ctx.Done():
				return nil
			}
			f.mu.Lock()
			topics := f.dirty
			f.dirty = map[string]bool{}
			f.mu.Unlock()
			f.refresh(ctx, topics)
		}
	}
}

func (f *listFeed) onCommit(m *nats.Msg) {
	var n ingest.CommitNotice
	if err := json.Unmarshal(m.Data, &n); err != nil || n.Family == "" {
		return
	}
	f.commits.Store(n.Family, f.now())
	f.changed(n.Family)
}

// lastCommit is when this node last heard of a commit of the family (zero:
// not since it started).
func (f *listFeed) lastCommit(family string) time.Time {
	t, _ := f.commits.Load(family)
	at, _ := t.(time.Time)
	return at
}

// Published is told every KPI value published (the store's watch): the
// rankings of the KPI read them.
func (f *listFeed) Published(u stream.Update) {
	if k, ok := kpi.ParseChannel(u.Channel); ok {
		f.changed(kpiTopic(k.KPI))
	}
}

// changed marks a topic changed and wakes Run; without live channels
// there is nothing to recompute (a channel subscribed later is computed
// then).
func (f *listFeed) changed(topic string) {
	f.mu.Lock()
	if len(f.chans) == 0 {
		f.mu.Unlock()
		return
	}
	f.dirty[topic] = true
	f.mu.Unlock()
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// refresh drops the idle channels and recomputes those of the topics (nil:
// all), listParallel at a time; a channel computed less than its every
// ago waits (pending) for Run to take it up.
func (f *listFeed) refresh(ctx context.Context, topics map[string]bool) {
	f.refreshWhere(ctx, func(c *listChan, now time.Time) bool {
		if topics == nil {
			return true
		}
		if !slices.ContainsFunc(c.topics, func(t string) bool { return topics[t] }) {
			return false
		}
		if c.every > 0 && now.Sub(c.last) < c.every {
			c.pending = true
			return false
		}
		return true
	})
}

// dropIdleLocked forgets the channels no client follows any more (f.mu
// held).
func (f *listFeed) dropIdleLocked(now time.Time) {
	for ch, c := range f.chans {
		gone := now.Sub(c.seen) > listIdle
		if f.subscribed != nil {
			// Just subscribed: the hub may register it a moment after
			// Latest is asked.
			gone = now.Sub(c.seen) > listDebounce && !f.subscribed(ch)
		}
		if gone {
			delete(f.chans, ch)
			f.m.dropped.WithLabelValues("idle").Inc()
		}
	}
	f.m.channels.Set(float64(len(f.chans)))
}

// refreshWhere drops the idle channels and recomputes those pick chooses.
func (f *listFeed) refreshWhere(ctx context.Context, pick func(c *listChan, now time.Time) bool) {
	now := f.now()
	f.mu.Lock()
	f.dropIdleLocked(now)
	var todo []*listChan
	for _, c := range f.chans {
		if pick(c, now) {
			c.last, c.pending = now, false
			todo = append(todo, c)
		}
	}
	f.m.channels.Set(float64(len(f.chans)))
	f.mu.Unlock()

	sem := make(chan struct{}, listParallel)
	var wg sync.WaitGroup
	for _, c := range todo {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			cctx, cancel := context.WithTimeout(ctx, listTimeout)
			defer cancel()
			if _, err := f.recompute(cctx, c, now); err != nil && ctx.Err() == nil {
				f.log.Warn("list refresh", "channel", c.channel, "err", err)
			}
		}()
	}
	wg.Wait()
}

// sourceMux routes a channel to the Source that holds it: list, series,
// ranking and map channels to the node's list feed, alert channels to its
// alert feed, every other channel to the KPI store.
type sourceMux struct {
	kpi, list, alerts stream.Source
	// composite says whether a kpi: channel is of a composite (computed
	// by the list feed, not published by the engine); nil: none is.
	composite func(channel string) bool
}

var _ stream.Source = sourceMux{}

func (m sourceMux) pick(channel string) stream.Source {
	for _, p := range []string{drill.ChannelPrefix, seriesPrefix, rankingPrefix, mapPrefix} {
		if strings.HasPrefix(channel, p) {
			return m.list
		}
	}
	if strings.HasPrefix(channel, alert.ChannelPrefix) {
		return m.alerts
	}
	if m.composite != nil && m.composite(channel) {
		return m.list
	}
	return m.kpi
}

// computed says whether the list feed computes the channel (one of the
// listMaxChannels of the node).
func (m sourceMux) computed(channel string) bool { return m.pick(channel) == m.list }

func (m sourceMux) Latest(ctx context.Context, channel string) (stream.Update, bool, error) {
	return m.pick(channel).Latest(ctx, channel)
}

func (m sourceMux) Since(ctx context.Context, channel string, seq uint64) ([]stream.Update, bool, error) {
	return m.pick(channel).Since(ctx, channel, seq)
}
