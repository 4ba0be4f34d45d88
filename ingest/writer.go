package ingest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/sync/errgroup"

	"github.com/vn-ioc/ioc/query"
)

// WriterConfig bounds the writer's batches and retries.
type WriterConfig struct {
	// MaxBatch rows per insert. Default 20,000.
	MaxBatch int
	// FlushInterval: a batch is inserted at most this long after its first
	// event was read; at once when the stream holds no more events of its
	// family and the family's previous insert ended this long or more
	// before that event. Default 250ms.
	FlushInterval time.Duration
	// RetryMin and RetryMax bound the backoff between failed inserts.
	// Defaults 100ms and 10s.
	RetryMin, RetryMax time.Duration
	// PoisonAttempts: a single event whose insert ClickHouse refuses this
	// many times goes to dead letters. Default 3.
	PoisonAttempts int
}

func (c *WriterConfig) setDefaults() {
	if c.MaxBatch == 0 {
		c.MaxBatch = 20_000
	}
	if c.FlushInterval == 0 {
		c.FlushInterval = 250 * time.Millisecond
	}
	if c.RetryMin == 0 {
		c.RetryMin = 100 * time.Millisecond
	}
	if c.RetryMax == 0 {
		c.RetryMax = 10 * time.Second
	}
	if c.PoisonAttempts == 0 {
		c.PoisonAttempts = 3
	}
}

// Validate names the field that is wrong.
func (c WriterConfig) Validate() error {
	switch {
	case c.MaxBatch < 0 || c.MaxBatch > 1_000_000:
		return fmt.Errorf("writer max batch %d: want 1 to 1,000,000", c.MaxBatch)
	case c.FlushInterval < 0:
		return errors.New("writer flush interval must be positive")
	case c.RetryMin < 0 || c.RetryMax < c.RetryMin:
		return errors.New("writer retry bounds: want 0 < min ≤ max")
	}
	return nil
}

// Writer drains the events stream into ClickHouse, one loop per family.
type Writer struct {
	cfg    WriterConfig
	db     *query.DB
	nc     *nats.Conn
	stream jetstream.Stream
	m      *Metrics
	log    *slog.Logger

	watermark atomic.Int64 // unix nanos of the latest committed acceptance time

	// OnCommit, when set before Run, is called after each committed batch
	// with the acceptance times of its events (benchmarks measure
	// acceptance → visible latency with it). It must not block.
	OnCommit func(family string, accepted []time.Time, committed time.Time)
}

// NewWriter builds a writer over an existing stream (see EnsureStream).
func NewWriter(cfg WriterConfig, db *query.DB, nc *nats.Conn, stream jetstream.Stream, m *Metrics, log *slog.Logger) (*Writer, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	return &Writer{cfg: cfg, db: db, nc: nc, stream: stream, m: m, log: log}, nil
}

// Watermark is the acceptance time of the newest event committed.
func (w *Writer) Watermark() time.Time { return time.Unix(0, w.watermark.Load()) }

// Run writes until ctx ends, then finishes the batch in hand.
func (w *Writer) Run(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	for _, f := range Families {
		g.Go(func() error { return w.runFamily(ctx, f) })
	}
	g.Go(func() error { return w.watchPending(ctx) })
	return g.Wait()
}

func (w *Writer) watchPending(ctx context.Context) error {
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		if pending, err := Pending(ctx, w.stream); err == nil {
			for f, n := range pending {
				w.m.Pending.WithLabelValues(f).Set(float64(n))
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// pending is one event in hand: its JetStream message (which may carry
// several events) and its decoded row.
type pending struct {
	msg   jetstream.Msg
	rec   *Record
	row   any // the family's row type (see table.decode)
	unit  string
	state int8
}

// States of a pending event after a commit attempt.
const (
	stateInHand    int8 = iota
	stateWritten        // in ClickHouse
	stateDead           // in dead_letters
	stateAbandoned      // shutting down: left for redelivery
)

// consumer looks the family's consumer up until it answers or ctx ends
// (nil then): a lookup failing once (a JetStream API timeout, a leader
// election) must not stop the family's writer, and with it the others.
func (w *Writer) consumer(ctx context.Context, family string) jetstream.Consumer {
	rt := w.backoff()
	for {
		cons, err := w.stream.Consumer(ctx, writerConsumer(family))
		if err == nil || ctx.Err() != nil {
			return cons
		}
		w.log.Warn("writer: looking up its consumer failed, retrying", "family", family, "consumer", writerConsumer(family), "err", err)
		if !rt.wait(ctx) {
			return nil
		}
	}
}

// retry waits between the attempts of a failed operation: from RetryMin,
// doubling up to RetryMax.
type retry struct {
	next, max time.Duration
}

func (w *Writer) backoff() *retry { return &retry{next: w.cfg.RetryMin, max: w.cfg.RetryMax} }

// wait sleeps the next interval; false when ctx ended first.
func (r *retry) wait(ctx context.Context) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(r.next):
	}
	r.next = min(r.next*2, r.max)
	return true
}

func (w *Writer) runFamily(ctx context.Context, family string) error {
	cons := w.consumer(ctx, family)
	if cons == nil {
		return nil
	}
	var err error
	iter := &fetcher{cons: cons}
	defer iter.stop()
	t := tables[family]
	batch := make([]pending, 0, w.cfg.MaxBatch)
	var scratch []pending // one message's events
	// first: when the batch's first message was read. drained: the last
	// message read was the last the stream held for this family (nothing
	// more to wait for). lastInsert: when the family's last insert ended.
	var first, lastInsert time.Time
	var drained bool
	flush := func(ctx context.Context) {
		w.commit(ctx, family, t, batch)
		batch = batch[:0]
		lastInsert = time.Now()
	}
	for {
		wait := time.Second
		if len(batch) > 0 {
			wait = time.Until(flushAt(first, lastInsert, drained, w.cfg.FlushInterval))
		}
		if ctx.Err() != nil {
			if len(batch) > 0 {
				// Finish what is in hand with a fresh context so a shutdown
				// does not leave it to redelivery (harmless, but slower).
				fctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
				flush(fctx)
				cancel()
			}
			return nil
		}
		var msg jetstream.Msg
		if wait > 0 {
			msg, err = iter.next(ctx, wait)
		} else {
			err = nats.ErrTimeout
		}
		switch {
		case err == nil:
			_, left, _ := ackInfo(msg)
			drained = left == 0
			var dead []deadEvent
			scratch, dead = decodeMsg(msg, t, scratch[:0])
			ps := scratch
			stored := true
			for _, d := range dead {
				stored = stored && w.deadLetter(ctx, family, []pending{d.p}, d.reason)
			}
			if !stored {
				continue // shutting down: the message is redelivered later
			}
			if len(ps) == 0 {
				_ = msg.Ack() // nothing of it is left to write
				continue
			}
			if len(batch) == 0 {
				first = time.Now()
			}
			// A message's events stay in one batch, so one commit acks it.
			batch = append(batch, ps...)
			if len(batch) >= w.cfg.MaxBatch {
				flush(ctx)
			}
		case errors.Is(err, nats.ErrTimeout) || errors.Is(err, context.DeadlineExceeded):
			if len(batch) > 0 && !time.Now().Before(flushAt(first, lastInsert, drained, w.cfg.FlushInterval)) {
				flush(ctx)
			}
		case ctx.Err() != nil:
			// Shutting down: the top of the loop commits what is in hand.
		default:
			// Connection trouble: the iterator reconnects by itself.
			w.log.Warn("writer fetch", "family", family, "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
}

// flushAt is when a batch is inserted, if it does not fill first: one
// interval after its first message was read; but at once when the family
// was quiet (its last insert ended an interval or more before the batch's
// first message) and the stream holds nothing more of it (drained). So an
// event of a quiet family is inserted without waiting, while a busy
// family, whose next events are there when an insert ends, still gathers
// them for an interval, and a backlog is read in batches of an interval's
// reading. drained comes from the pending count JetStream puts in each
// delivery, which the server updates asynchronously: it can say nothing is
// left a moment before it counts a message just stored. That costs at most
// one early, smaller insert, never an event.
func flushAt(first, lastInsert time.Time, drained bool, interval time.Duration) time.Time {
	if drained && !first.Before(lastInsert.Add(interval)) {
		return first
	}
	return first.Add(interval)
}

// fetcher hands out a consumer's messages one at a time from explicit pull
// requests (Fetch) of up to fetchBatch messages, each open for fetchExpiry.
// Messages are chunks of up to 900 KiB: 64 of them stay under the 64 MiB a
// NATS subscription buffers before it drops messages as a slow consumer.
// (nats.go v1.47's Messages iterator, used before, was seen to stop pulling
// with messages waiting in the stream, leaving a family's writer idle.)
type fetcher struct {
	cons  jetstream.Consumer
	batch jetstream.MessageBatch // the pull request being read, if any
}

const (
	fetchBatch  = 64
	fetchExpiry = 5 * time.Second
)

// next returns the next message, or nats.ErrTimeout after wait. A pull
// request outlives the call: what it delivers later is read by the next.
func (f *fetcher) next(ctx context.Context, wait time.Duration) (jetstream.Msg, error) {
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		if f.batch == nil {
			b, err := f.cons.Fetch(fetchBatch, jetstream.FetchMaxWait(fetchExpiry))
			if err != nil {
				return nil, err
			}
			f.batch = b
		}
		select {
		case m, ok := <-f.batch.Messages():
			if ok {
				return m, nil
			}
			err := f.batch.Error()
			f.batch = nil
			if err != nil && !errors.Is(err, nats.ErrTimeout) && !errors.Is(err, jetstream.ErrNoMessages) {
				return nil, err
			}
		case <-timer.C:
			return nil, nats.ErrTimeout
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// stop drops the pull request being read; its undelivered messages go to
// the next reader after the consumer's ack wait.
func (f *fetcher) stop() { f.batch = nil }

// commit inserts the batch, retrying until ClickHouse accepts it (splitting
// out events it refuses as data errors), then acks every message whose
// events are all written or dead-lettered.
func (w *Writer) commit(ctx context.Context, family string, t *table, batch []pending) {
	start := time.Now()
	for i := range batch {
		batch[i].state = stateInHand
	}
	w.insertAll(ctx, family, t, batch, &progress{all: batch, last: time.Now()})
	abandoned := map[jetstream.Msg]bool{}
	for _, p := range batch {
		if p.state == stateAbandoned {
			abandoned[p.msg] = true
		}
	}
	notice := CommitNotice{Family: family}
	units := map[string]bool{}
	subjects := map[string]bool{}
	var wm time.Time
	var last jetstream.Msg
	for _, p := range batch {
		if p.msg != last && !abandoned[p.msg] {
			_ = p.msg.Ack()
			last = p.msg
			if seq, _, ok := ackInfo(p.msg); ok && seq > notice.StreamSeq {
				notice.StreamSeq = seq
			}
		}
		if p.state != stateWritten {
			continue
		}
		notice.Count++
		if p.unit != "" {
			units[p.unit] = true
		}
		if s := p.rec.Subject; !subjects[s] {
			if len(subjects) < MaxNoticeSubjects {
				subjects[s] = true
				notice.Subjects = append(notice.Subjects, s)
			} else {
				notice.SubjectsTruncated = true
			}
		}
		if notice.MinTime.IsZero() || p.rec.Time.Before(notice.MinTime) {
			notice.MinTime = p.rec.Time
		}
		if p.rec.Time.After(notice.MaxTime) {
			notice.MaxTime = p.rec.Time
		}
		if p.rec.AcceptedAt.After(wm) {
			wm = p.rec.AcceptedAt
		}
	}
	if notice.Count == 0 {
		return
	}
	w.m.InsertTime.WithLabelValues(family).Observe(time.Since(start).Seconds())
	w.m.BatchSize.WithLabelValues(family).Observe(float64(notice.Count))
	now := time.Now()
	lag := w.m.Lag.WithLabelValues(family)
	var accepted []time.Time
	if w.OnCommit != nil {
		accepted = make([]time.Time, 0, notice.Count)
	}
	for _, p := range batch {
		if p.state == stateWritten {
			lag.Observe(now.Sub(p.rec.AcceptedAt).Seconds())
			if w.OnCommit != nil {
				accepted = append(accepted, p.rec.AcceptedAt)
			}
		}
	}
	if w.OnCommit != nil {
		w.OnCommit(family, accepted, now)
	}
	w.m.Written.WithLabelValues(family).Add(float64(notice.Count))
	for u := range units {
		notice.Units = append(notice.Units, u)
	}
	sort.Strings(notice.Units)
	notice.Watermark = wm
	if cur := w.watermark.Load(); wm.UnixNano() > cur {
		w.watermark.Store(wm.UnixNano())
	}
	if b, err := json.Marshal(notice); err == nil {
		_ = w.nc.Publish(CommitSubjectPrefix+family, b)
	}
}

// ackInfo reads from a message's ack subject what nats.go's Metadata
// reads there, without the rest: the stream sequence and the number of
// messages the consumer had still to deliver after this one (pending <
// 0: unreadable). The subject is
// $JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<tm>.<pending>, or
// since server 2.9 $JS.ACK.<domain>.<account hash>.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<tm>.<pending>[.<token>] (11 tokens or more).
func ackInfo(msg jetstream.Msg) (seq uint64, pending int64, ok bool) {
	reply := msg.Reply()
	if reply == "" {
		return 0, -1, false
	}
	var tokens [12]string
	n, start := 0, 0
	for i := 0; i <= len(reply); i++ {
		if i == len(reply) || reply[i] == '.' {
			if n < len(tokens) {
				tokens[n] = reply[start:i]
			}
			n++
			start = i + 1
		}
	}
	if n < 9 || n > 9 && n < 11 || tokens[0] != "$JS" || tokens[1] != "ACK" {
		return 0, -1, false
	}
	sseq, pend := tokens[7], tokens[10]
	if n == 9 {
		sseq, pend = tokens[5], tokens[8]
	}
	if v := parseNum(sseq); v >= 0 {
		seq = uint64(v) // else 0, as nats.go's ParseNum
	}
	return seq, parseNum(pend), true
}

// parseNum is a decimal number, or -1.
func parseNum(s string) int64 {
	if s == "" {
		return -1
	}
	var v int64
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return -1
		}
		v = v*10 + int64(c-'0')
	}
	return v
}

type deadEvent struct {
	p      pending
	reason string
}

// decodeMsg splits a message into its events (one record, or several
// separated by newlines) and decodes each into a row, appended to ps.
func decodeMsg(msg jetstream.Msg, t *table, ps []pending) (_ []pending, dead []deadEvent) {
	data := msg.Data()
	for len(data) > 0 {
		line := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		p := pending{msg: msg}
		rec, text, err := decodeRecord(line)
		if err != nil {
			dead = append(dead, deadEvent{p, "undecodable record: " + err.Error()})
			continue
		}
		p.rec = rec
		row, unit, err := t.decode(rec, text)
		if err != nil {
			dead = append(dead, deadEvent{p, err.Error()})
			continue
		}
		p.row, p.unit = row, unit
		ps = append(ps, p)
	}
	if len(ps) == 0 && len(dead) == 0 {
		dead = append(dead, deadEvent{pending{msg: msg}, "empty message"})
	}
	return ps, dead
}

// recordNames are the JSON names of Record's fields.
var recordNames = []string{"source", "id", "family", "transition", "subject", "time", "accepted_at", "data"}

// decodeRecord is json.Unmarshal of a stream message's line into a Record,
// with the fast reader when it can; data is the text of the record's data.
func decodeRecord(line []byte) (rec *Record, data string, err error) {
	rec = &Record{}
	d := jdec{s: string(line)}
	dataStart, dataEnd := -1, -1
	timeField := func(t *time.Time) bool {
		start, end, ok := d.skip()
		switch {
		case !ok:
			return false
		case d.s[start] == 'n': // null leaves it
			return d.s[start:end] == "null"
		case d.s[start] != '"':
			return false
		}
		return t.UnmarshalJSON(line[start:end]) == nil
	}
	ok := d.next() == '{' && d.fields(recordNames, func(key string) (bool, bool) {
		switch key {
		case "source":
			return true, d.strField(&rec.Source)
		case "id":
			return true, d.strField(&rec.ID)
		case "family":
			return true, d.strField(&rec.Family)
		case "transition":
			return true, d.strField(&rec.Transition)
		case "subject":
			return true, d.strField(&rec.Subject)
		case "time":
			return true, timeField(&rec.Time)
		case "accepted_at":
			return true, timeField(&rec.AcceptedAt)
		case "data":
			var ok bool
			dataStart, dataEnd, ok = d.skip()
			return true, ok
		}
		return false, true
	}) && d.end()
	if ok {
		if dataStart >= 0 {
			rec.Data = line[dataStart:dataEnd:dataEnd]
			data = d.s[dataStart:dataEnd]
		}
		return rec, data, nil
	}
	rec = &Record{}
	if err := json.Unmarshal(line, rec); err != nil {
		return nil, "", err
	}
	return rec, string(rec.Data), nil
}

// insertAll inserts rows until they are in ClickHouse. Any error but a
// refusal of the data is retried with capped backoff, for as long as it
// takes (the events stay unacknowledged in JetStream, kept alive with
// progress signals). When the server refuses the data itself, the batch is
// split to isolate the refused events, which go to dead letters once
// refused PoisonAttempts times; a batch spanning more partitions than the
// server takes in one insert is split too. It marks each event written,
// dead or abandoned.
func (w *Writer) insertAll(ctx context.Context, family string, t *table, batch []pending, pr *progress) {
	rt := w.backoff()
	mark := func(state int8) {
		for i := range batch {
			batch[i].state = state
		}
	}
	refusals := 0
	for attempt := 1; ; attempt++ {
		err := w.insert(ctx, t, batch)
		if err == nil {
			mark(stateWritten)
			return
		}
		if ctx.Err() != nil {
			mark(stateAbandoned) // shutting down: redelivered after restart
			return
		}
		w.m.InsertErrors.WithLabelValues(family).Inc()
		data := isDataError(err)
		if (data || isTooManyPartitions(err)) && len(batch) > 1 {
			mid := len(batch) / 2
			w.insertAll(ctx, family, t, batch[:mid], pr)
			w.insertAll(ctx, family, t, batch[mid:], pr)
			return
		}
		if data {
			if refusals++; refusals >= w.cfg.PoisonAttempts {
				if w.deadLetter(ctx, family, batch, "clickhouse refused the row: "+err.Error()) {
					mark(stateDead)
				} else {
					mark(stateAbandoned)
				}
				return
			}
		}
		w.log.Warn("insert failed, retrying", "family", family, "rows", len(batch), "attempt", attempt, "err", err)
		pr.signal()
		if !rt.wait(ctx) {
			mark(stateAbandoned)
			return
		}
	}
}

func (w *Writer) insert(ctx context.Context, t *table, batch []pending) error {
	return w.db.Insert(w.db.InsertContext(ctx), insertSQL(w.db.Database(), t), func(b driver.Batch) error {
		if err := appendColumns(b, t, batch); err != nil {
			return fmt.Errorf("append: %w", err)
		}
		return nil
	})
}

// progress keeps the messages of a commit's whole batch from redelivery
// while any part of it is retried.
type progress struct {
	all  []pending
	last time.Time
}

// signal tells JetStream the batch's messages are in hand, every 10 s.
func (pr *progress) signal() {
	if time.Since(pr.last) <= 10*time.Second {
		return
	}
	var last jetstream.Msg
	for _, p := range pr.all {
		if p.msg != last { // written or not, none is acked before the commit ends
			_ = p.msg.InProgress()
			last = p.msg
		}
	}
	pr.last = time.Now()
}

// valueError: the client library refused a column's values (the same
// values always are).
type valueError struct{ err error }

func (e *valueError) Error() string { return e.err.Error() }
func (e *valueError) Unwrap() error { return e.err }

// appendColumns adds the batch's rows to an insert column by column, each
// column from one typed slice (no []any of boxed values per row).
func appendColumns(b driver.Batch, t *table, batch []pending) error {
	got := b.Columns()
	if len(got) != len(t.columns) {
		return fmt.Errorf("insert into %s has %d columns, want %d", t.name, len(got), len(t.columns))
	}
	for i, c := range got {
		if c.Name() != t.columns[i] {
			return fmt.Errorf("insert into %s: column %d is %s, want %s", t.name, i, c.Name(), t.columns[i])
		}
	}
	for i, vals := range t.values(batch) {
		if err := b.Column(i).Append(vals); err != nil {
			return &valueError{fmt.Errorf("column %s: %w", t.columns[i], err)}
		}
	}
	return nil
}

// isDataError: the rows themselves were refused, by the client library or
// by the server for a value (as opposed to anything time can fix: the
// network, an overloaded or read-only server, a replica or shard down,
// a table or column being migrated, a grant or password being changed).
// Only the errors known to come from a value count: an error not listed
// is retried rather than sending a batch to dead letters for an outage.
func isDataError(err error) bool {
	if ve := (*valueError)(nil); errors.As(err, &ve) {
		return true
	}
	var ex *clickhouse.Exception
	if !errors.As(err, &ex) {
		return false
	}
	switch ex.Code {
	case 6, 26, 27, 38, 41, 72, // cannot parse text, quoted string, input assertion, date, datetime, number
		53, 69, 70, 117, 131, // type mismatch, argument out of bound, cannot convert type, incorrect data, string too large
		321, 349, 395: // value out of range of its type, NULL into a non-Nullable column, throwIf in a view
		return true
	}
	return false
}

// isTooManyPartitions: the batch's rows fall into more partitions (months)
// than the server takes in one insert (max_partitions_per_insert_block, 100
// by default on current ClickHouse): a backfill of many years, not sorted
// by time. Smaller batches go in. The same code without these words is
// "too many parts", an overloaded server, which time fixes.
func isTooManyPartitions(err error) bool {
	var ex *clickhouse.Exception
	return errors.As(err, &ex) && ex.Code == 252 && strings.Contains(ex.Message, "partitions for single INSERT block")
}

// deadLetter records events that can never be inserted; their messages
// are acked by the caller. It reports false when ctx ended first.
func (w *Writer) deadLetter(ctx context.Context, family string, ps []pending, reason string) bool {
	sql := "INSERT INTO " + w.db.Table("dead_letters") + " (time, family, stream_seq, source, id, type, reason, payload)"
	rt := w.backoff()
	for {
		err := w.db.Insert(w.db.InsertContext(ctx), sql, func(b driver.Batch) error {
			for _, p := range ps {
				var seq uint64
				if md, err := p.msg.Metadata(); err == nil {
					seq = md.Sequence.Stream
				}
				typ := strings.TrimPrefix(p.msg.Subject(), streamSubjectPrefix)
				source, id, payload := "", "", string(p.msg.Data())
				if p.rec != nil {
					source, id = p.rec.Source, p.rec.ID
					if b, err := json.Marshal(p.rec); err == nil {
						payload = string(b)
					}
				}
				if err := b.Append(time.Now().UTC().Truncate(time.Second), family, seq, source, id,
					typ, reason, payload); err != nil {
					return err
				}
			}
			return nil
		})
		if err == nil {
			break
		}
		w.log.Warn("dead letter insert failed, retrying", "family", family, "err", err)
		if !rt.wait(ctx) {
			return false // unacked: redelivered and judged again after restart
		}
	}
	w.m.DeadLetters.WithLabelValues(family).Add(float64(len(ps)))
	w.log.Warn("events moved to dead letters", "family", family, "count", len(ps), "reason", reason)
	return true
}
