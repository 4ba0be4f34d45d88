package ingest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// IntakeConfig bounds what one request may carry.
type IntakeConfig struct {
	// MaxEvents per request. Default 10,000.
	MaxEvents int
	// MaxBodyBytes per request. Default 16 MiB.
	MaxBodyBytes int64
	// PublishTimeout for JetStream to store a request's events. Default 10s.
	PublishTimeout time.Duration
	// DedupWindow: a repeat of an event this node stored within it is
	// answered as a duplicate (the JetStream duplicate window plays the same
	// role for whole chunks). Default 2m.
	DedupWindow time.Duration
	// DedupMaxKeys bounds the keys remembered per window (about 40 bytes
	// each). Default 8,000,000.
	DedupMaxKeys int
}

func (c *IntakeConfig) setDefaults() {
	if c.MaxEvents == 0 {
		c.MaxEvents = 10_000
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = 16 << 20
	}
	if c.PublishTimeout == 0 {
		c.PublishTimeout = 10 * time.Second
	}
	if c.DedupWindow == 0 {
		c.DedupWindow = 2 * time.Minute
	}
	if c.DedupMaxKeys == 0 {
		c.DedupMaxKeys = 8_000_000
	}
}

// Validate names the field that is wrong.
func (c IntakeConfig) Validate() error {
	if c.MaxEvents < 0 || c.MaxBodyBytes < 0 || c.PublishTimeout < 0 || c.DedupWindow < 0 || c.DedupMaxKeys < 0 {
		return errors.New("intake limits must be positive")
	}
	return nil
}

// Rejection says why one event of a request was not accepted.
type Rejection struct {
	Index int    `json:"index"`
	ID    string `json:"id,omitempty"`
	Type  string `json:"type,omitempty"`
	Field string `json:"field,omitempty"`
	Error string `json:"error"`
	// Retryable: the event was valid but could not be stored now; send it again.
	Retryable bool `json:"retryable,omitempty"`
}

// Result of one intake request.
type Result struct {
	Accepted   int         `json:"accepted"`
	Duplicates int         `json:"duplicates"`
	Rejected   []Rejection `json:"rejected"`
}

// Intake validates events and stores the valid ones in JetStream.
type Intake struct {
	recent *recentKeys
	js     jetstream.JetStream
	v      *Validator
	m      *Metrics
	cfg    IntakeConfig
	log    *slog.Logger
}

// NewIntake builds an intake over a JetStream context whose stream exists.
func NewIntake(cfg IntakeConfig, js jetstream.JetStream, v *Validator, m *Metrics, log *slog.Logger) (*Intake, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	return &Intake{js: js, v: v, m: m, cfg: cfg, log: log, recent: newRecentKeys(cfg.DedupWindow, cfg.DedupMaxKeys)}, nil
}

// Config returns the effective limits.
func (in *Intake) Config() IntakeConfig { return in.cfg }

// Submit validates each raw event, publishes the valid ones and waits until
// JetStream stored them. Invalid events are reported one by one; they never
// stop the valid ones. boundSource, when set, is the only allowed source.
func (in *Intake) Submit(ctx context.Context, raws []json.RawMessage, boundSource string) (Result, error) {
	res := Result{Rejected: []Rejection{}}
	recs := make([]*Record, 0, len(raws))
	idx := make([]int, 0, len(raws))
	for i, raw := range raws {
		rec, err := in.v.Prepare(raw, boundSource)
		if err != nil {
			res.Rejected = append(res.Rejected, rejection(i, raw, err))
			in.m.Rejected.WithLabelValues(familyOf(raw), sourceOf(raw, boundSource)).Inc()
			continue
		}
		recs = append(recs, rec)
		idx = append(idx, i)
	}
	return in.publish(ctx, recs, idx, res)
}

// publish stores records in JetStream, several events per message (the
// events of one family, newline-separated, at most maxChunkBytes): one
// stored message and one acknowledgement per chunk rather than per event,
// which is what lets one node carry a city's whole load. Repeats this node
// stored recently are answered as duplicates and not stored again; a chunk
// sent again whole (a retried request, on any node) is recognised by
// JetStream from its id, a hash of its events' keys. Any other repeat is
// stored again and collapses in ClickHouse.
func (in *Intake) publish(ctx context.Context, recs []*Record, idx []int, res Result) (Result, error) {
	if len(recs) == 0 {
		return res, nil
	}
	keys := make([][2]uint64, 0, len(recs))
	fresh, freshIdx := recs[:0:0], idx[:0:0]
	inRequest := make(map[[2]uint64]bool, len(recs))
	for i, r := range recs {
		k := in.recent.key(r)
		if inRequest[k] || in.recent.seen(k) {
			res.Duplicates++
			in.m.Duplicates.WithLabelValues(r.Family, r.Source).Inc()
			continue
		}
		inRequest[k] = true
		fresh = append(fresh, r)
		freshIdx = append(freshIdx, idx[i])
		keys = append(keys, k)
	}
	return in.publishChunks(ctx, fresh, freshIdx, keys, res)
}

func rejection(i int, raw json.RawMessage, err error) Rejection {
	r := Rejection{Index: i, Error: err.Error()}
	var fe *fieldError
	if errors.As(err, &fe) {
		r.Field = fe.Field
	}
	var head struct {
		ID   any `json:"id"`
		Type any `json:"type"`
	}
	if json.Unmarshal(raw, &head) == nil {
		if s, ok := head.ID.(string); ok && len(s) <= maxIDLen {
			r.ID = s
		}
		if s, ok := head.Type.(string); ok && len(s) <= 128 {
			r.Type = s
		}
	}
	return r
}

// familyOf and sourceOf label rejection metrics with bounded cardinality:
// only a known family, and the token's bound source (never a free string).
func familyOf(raw json.RawMessage) string {
	var head struct {
		Type string `json:"type"`
	}
	_ = json.Unmarshal(raw, &head)
	if f, _, err := SplitType(head.Type); err == nil && contains(Families, f) {
		return f
	}
	return "unknown"
}

func sourceOf(_ json.RawMessage, bound string) string {
	if bound != "" {
		return bound
	}
	return "any"
}

// maxChunkBytes bounds one JetStream message: under NATS's default
// max_payload of 1 MiB, so an external NATS needs no special setting.
const maxChunkBytes = 900 << 10

type chunk struct {
	family string
	recs   []*Record
	idx    []int
	keys   [][2]uint64
	body   []byte
	future jetstream.PubAckFuture
}

// publishChunks publishes the records in chunks, all at once, and waits for
// JetStream to store them.
func (in *Intake) publishChunks(ctx context.Context, recs []*Record, idx []int, keys [][2]uint64, res Result) (Result, error) {
	if len(recs) == 0 {
		return res, nil
	}
	ctx, cancel := context.WithTimeout(ctx, in.cfg.PublishTimeout)
	defer cancel()
	open := map[string]*chunk{}
	var chunks []*chunk
	for i, r := range recs {
		c := open[r.Family]
		size := r.jsonSizeHint() + 1
		if c == nil || (len(c.body)+size > maxChunkBytes && len(c.recs) > 0) {
			c = &chunk{family: r.Family, body: make([]byte, 0, min(maxChunkBytes, size*(len(recs)-i)))}
			open[r.Family] = c
			chunks = append(chunks, c)
		}
		c.recs = append(c.recs, r)
		c.idx = append(c.idx, idx[i])
		c.keys = append(c.keys, keys[i])
		c.body = r.AppendJSON(c.body)
		c.body = append(c.body, '\n')
	}
	fail := func(c *chunk, err error) {
		for j, r := range c.recs {
			res.Rejected = append(res.Rejected, Rejection{Index: c.idx[j], ID: r.ID, Type: typePrefix + r.Family + "." + r.Transition,
				Error: "not stored: " + err.Error() + "; send it again", Retryable: true})
		}
	}
	var firstErr error
	for _, c := range chunks {
		h := sha256.New()
		for _, r := range c.recs {
			h.Write([]byte(r.Source))
			h.Write([]byte{0})
			h.Write([]byte(r.ID))
			h.Write([]byte{0})
		}
		msg := &nats.Msg{Subject: streamSubjectPrefix + c.family + ".chunk", Data: c.body,
			Header: nats.Header{jetstream.MsgIDHeader: []string{"chunk/" + hex.EncodeToString(h.Sum(nil))}}}
		f, err := PublishMsgAsync(ctx, in.js, msg)
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			fail(c, err)
			continue
		}
		c.future = f
	}
	for _, c := range chunks {
		if c.future == nil {
			continue
		}
		var ack *jetstream.PubAck
		var err error
		select {
		case ack = <-c.future.Ok():
		case err = <-c.future.Err():
		case <-ctx.Done():
			// An answer that came with the timeout still counts: a chunk
			// stored is never reported as not stored.
			select {
			case ack = <-c.future.Ok():
			case err = <-c.future.Err():
			default:
			}
		}
		switch {
		case ack != nil:
			for _, r := range c.recs {
				if ack.Duplicate {
					res.Duplicates++
					in.m.Duplicates.WithLabelValues(r.Family, r.Source).Inc()
				} else {
					res.Accepted++
					in.m.Accepted.WithLabelValues(r.Family, r.Source).Inc()
				}
			}
			in.recent.add(c.keys)
		case err != nil:
			if firstErr == nil {
				firstErr = err
			}
			fail(c, err)
		default:
			if firstErr == nil {
				firstErr = ctx.Err()
			}
			fail(c, errors.New("the publish timeout passed"))
		}
	}
	switch {
	case errors.Is(firstErr, context.Canceled):
		// The client left (or the node is stopping): it is answered
		// nothing, and sends again what it did not see accepted.
		in.log.Info("jetstream publish not awaited: the request was cancelled", "err", firstErr)
	case firstErr != nil:
		in.log.Warn("jetstream publish failed", "err", firstErr)
	}
	if res.Accepted == 0 && res.Duplicates == 0 && firstErr != nil {
		return res, fmt.Errorf("jetstream unavailable: %w", firstErr)
	}
	return res, nil
}

// PublishMsgAsync publishes without waiting for the acknowledgement. When
// the client holds its most outstanding publications (acknowledgements
// lagging behind a burst), it waits for room until ctx ends instead of
// failing.
func PublishMsgAsync(ctx context.Context, js jetstream.JetStream, msg *nats.Msg) (jetstream.PubAckFuture, error) {
	for {
		f, err := js.PublishMsgAsync(msg)
		if !errors.Is(err, jetstream.ErrTooManyStalledMsgs) || ctx.Err() != nil {
			return f, err
		}
		select {
		case <-js.PublishAsyncComplete():
		case <-time.After(100 * time.Millisecond):
		case <-ctx.Done():
		}
	}
}
