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
}

// Validate names the field that is wrong.
func (c IntakeConfig) Validate() error {
	if c.MaxEvents < 0 || c.MaxBodyBytes < 0 || c.PublishTimeout < 0 {
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
	js  jetstream.JetStream
	v   *Validator
	m   *Metrics
	cfg IntakeConfig
	log *slog.Logger
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
	return &Intake{js: js, v: v, m: m, cfg: cfg, log: log}, nil
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

// publish stores records in JetStream, one message per event, so that
// JetStream recognises each repeated source/id within its window and the
// answer counts duplicates exactly.
func (in *Intake) publish(ctx context.Context, recs []*Record, idx []int, res Result) (Result, error) {
	if len(recs) == 0 {
		return res, nil
	}
	ctx, cancel := context.WithTimeout(ctx, in.cfg.PublishTimeout)
	defer cancel()
	futures := make([]jetstream.PubAckFuture, len(recs))
	for i, rec := range recs {
		msg := &nats.Msg{Subject: rec.StreamSubject(), Data: rec.AppendJSON(make([]byte, 0, rec.jsonSizeHint())),
			Header: nats.Header{jetstream.MsgIDHeader: []string{rec.Key()}}}
		f, err := in.js.PublishMsgAsync(msg)
		if err != nil {
			// Not stored: this and the rest are reported retryable below.
			for j := i; j < len(recs); j++ {
				res.Rejected = append(res.Rejected, Rejection{Index: idx[j], ID: recs[j].ID,
					Error: "not stored: " + err.Error() + "; send it again", Retryable: true})
			}
			futures = futures[:i]
			break
		}
		futures[i] = f
	}
	var firstErr error
	for i, f := range futures {
		rec := recs[i]
		select {
		case ack := <-f.Ok():
			if ack.Duplicate {
				res.Duplicates++
				in.m.Duplicates.WithLabelValues(rec.Family, rec.Source).Inc()
			} else {
				res.Accepted++
				in.m.Accepted.WithLabelValues(rec.Family, rec.Source).Inc()
			}
		case err := <-f.Err():
			if firstErr == nil {
				firstErr = err
			}
			res.Rejected = append(res.Rejected, Rejection{Index: idx[i], ID: rec.ID,
				Error: "not stored: " + err.Error() + "; send it again", Retryable: true})
		case <-ctx.Done():
			if firstErr == nil {
				firstErr = ctx.Err()
			}
			res.Rejected = append(res.Rejected, Rejection{Index: idx[i], ID: rec.ID,
				Error: "not stored within the publish timeout; send it again", Retryable: true})
		}
	}
	if firstErr != nil {
		in.log.Warn("jetstream publish failed", "err", firstErr)
	}
	if res.Accepted == 0 && res.Duplicates == 0 && firstErr != nil {
		return res, fmt.Errorf("jetstream unavailable: %w", firstErr)
	}
	return res, nil
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

// publishChunks stores records in JetStream a chunk per message (the
// records of one family, newline-separated): far fewer messages to store
// and acknowledge, for bulk backfills. JetStream then recognises only a
// whole chunk sent again (its id is a hash of the events' keys); any other
// repeat is made harmless by ClickHouse, as every later repeat is.
func (in *Intake) publishChunks(ctx context.Context, recs []*Record, idx []int, res Result) (Result, error) {
	if len(recs) == 0 {
		return res, nil
	}
	ctx, cancel := context.WithTimeout(ctx, in.cfg.PublishTimeout)
	defer cancel()
	type chunk struct {
		recs []*Record
		idx  []int
	}
	byFamily := map[string]*chunk{}
	var order []string
	for i, r := range recs {
		c := byFamily[r.Family]
		if c == nil {
			c = &chunk{}
			byFamily[r.Family] = c
			order = append(order, r.Family)
		}
		c.recs = append(c.recs, r)
		c.idx = append(c.idx, idx[i])
	}
	var firstErr error
	for _, fam := range order {
		c := byFamily[fam]
		h := sha256.New()
		var body []byte
		for _, r := range c.recs {
			h.Write([]byte(r.Key()))
			h.Write([]byte{0})
			body = r.AppendJSON(body)
			body = append(body, '\n')
		}
		msg := &nats.Msg{Subject: streamSubjectPrefix + fam + ".chunk", Data: body, Header: nats.Header{}}
		msg.Header.Set(jetstream.MsgIDHeader, "chunk/"+hex.EncodeToString(h.Sum(nil)))
		ack, err := in.js.PublishMsg(ctx, msg)
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			for j, r := range c.recs {
				res.Rejected = append(res.Rejected, Rejection{Index: c.idx[j], ID: r.ID,
					Error: "not stored: " + err.Error() + "; send it again", Retryable: true})
			}
			continue
		}
		for _, r := range c.recs {
			if ack.Duplicate {
				res.Duplicates++
				in.m.Duplicates.WithLabelValues(r.Family, r.Source).Inc()
			} else {
				res.Accepted++
				in.m.Accepted.WithLabelValues(r.Family, r.Source).Inc()
			}
		}
	}
	if res.Accepted == 0 && res.Duplicates == 0 && firstErr != nil {
		return res, fmt.Errorf("jetstream unavailable: %w", firstErr)
	}
	return res, nil
}
