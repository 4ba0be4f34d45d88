package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

const (
	streamSubjectPrefix = "ioc.events."
	// CommitSubjectPrefix + family carries the writer's commit notices.
	CommitSubjectPrefix = "ioc.commits."
	// IngestSubject is the NATS request subject of the intake.
	IngestSubject = "ioc.ingest.events"
)

// StreamConfig shapes the JetStream topology.
type StreamConfig struct {
	// Name of the events stream. Default "IOC_EVENTS".
	Name string
	// Replicas of the stream on a NATS cluster. Default 1.
	Replicas int
	// DuplicateWindow within which JetStream drops a repeated source/id.
	// Later repeats are made harmless by ClickHouse. Default 2m.
	DuplicateWindow time.Duration
	// MaxBytes bounds the stream; when full, new events are refused (the
	// sender sees an error and retries) rather than old ones dropped.
	// Default 8 GiB.
	MaxBytes int64
	// MaxAge of an event not yet written. Default 0: no limit — an event
	// leaves the stream only once written, however long ClickHouse is down
	// (MaxBytes then stops intake instead of dropping anything).
	MaxAge time.Duration
	// AckWait before JetStream redelivers an unacknowledged event. The
	// writer signals progress while it retries. Default 60s.
	AckWait time.Duration
}

func (c *StreamConfig) setDefaults() {
	if c.Name == "" {
		c.Name = "IOC_EVENTS"
	}
	if c.Replicas == 0 {
		c.Replicas = 1
	}
	if c.DuplicateWindow == 0 {
		c.DuplicateWindow = 2 * time.Minute
	}
	if c.MaxBytes == 0 {
		c.MaxBytes = 8 << 30
	}
	if c.AckWait == 0 {
		c.AckWait = 60 * time.Second
	}
}

// Validate names the field that is wrong.
func (c StreamConfig) Validate() error {
	switch {
	case c.Replicas < 0 || c.Replicas > 5:
		return fmt.Errorf("stream replicas %d: want 1 to 5", c.Replicas)
	case c.DuplicateWindow < 0:
		return errors.New("stream duplicate window must be positive")
	case c.AckWait < 0:
		return errors.New("stream ack wait must be positive")
	}
	return nil
}

// EnsureStream creates or updates the events stream and one durable pull
// consumer per family for the writer.
func EnsureStream(ctx context.Context, js jetstream.JetStream, cfg StreamConfig) (jetstream.Stream, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	sc := jetstream.StreamConfig{
		Name:        cfg.Name,
		Description: "ioc: accepted city events waiting to be written to ClickHouse",
		Subjects:    []string{streamSubjectPrefix + ">"},
		// Work queue: an event leaves the stream once the writer acked it,
		// i.e. once ClickHouse holds it.
		Retention:  jetstream.WorkQueuePolicy,
		Storage:    jetstream.FileStorage,
		Replicas:   cfg.Replicas,
		Duplicates: cfg.DuplicateWindow,
		MaxBytes:   cfg.MaxBytes,
		MaxAge:     cfg.MaxAge,
		Discard:    jetstream.DiscardNew,
	}
	st, err := js.CreateOrUpdateStream(ctx, sc)
	if err != nil {
		return nil, fmt.Errorf("create stream %s: %w", cfg.Name, err)
	}
	for _, f := range Families {
		_, err := st.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
			Durable:       writerConsumer(f),
			Description:   "ioc writer for " + f + " events",
			FilterSubject: streamSubjectPrefix + f + ".>",
			AckPolicy:     jetstream.AckExplicitPolicy,
			AckWait:       cfg.AckWait,
			MaxDeliver:    -1,
			MaxAckPending: 200_000,
			MaxWaiting:    512,
		})
		if err != nil {
			return nil, fmt.Errorf("create consumer for %s: %w", f, err)
		}
	}
	return st, nil
}

func writerConsumer(family string) string { return "writer-" + family }

// Pending counts, by family, the messages the stream holds: accepted and
// not yet written (the stream is a work queue: a message leaves it once
// the writer acked it). A message is a chunk of events of one family,
// from any intake path. Every family is in the map. The counts
// come from the stream's own state, exact once a publish was
// acknowledged (a consumer's pending count is updated asynchronously
// and can lag a message just stored).
func Pending(ctx context.Context, st jetstream.Stream) (map[string]uint64, error) {
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(streamSubjectPrefix+">"))
	if err != nil {
		return nil, err
	}
	out := make(map[string]uint64, len(Families))
	for _, f := range Families {
		out[f] = 0
	}
	for subj, n := range info.State.Subjects {
		f, _, _ := strings.Cut(strings.TrimPrefix(subj, streamSubjectPrefix), ".")
		if _, ok := out[f]; ok {
			out[f] += n
		}
	}
	return out, nil
}

// MaxNoticeSubjects bounds the subjects a commit notice lists.
const MaxNoticeSubjects = 10_000

// CommitNotice is published after each batch the writer committed.
type CommitNotice struct {
	Family string `json:"family"`
	Count  int    `json:"count"`
	// Units named by the batch's events (unit fields), sorted.
	Units []string `json:"units,omitempty"`
	// Subjects are the entities the batch touched (dossier, ticket, camera,
	// survey ids), at most MaxNoticeSubjects of them; SubjectsTruncated
	// says the batch touched more.
	Subjects          []string `json:"subjects,omitempty"`
	SubjectsTruncated bool     `json:"subjects_truncated,omitempty"`
	// MinTime and MaxTime of the events' own times.
	MinTime time.Time `json:"min_time"`
	MaxTime time.Time `json:"max_time"`
	// Watermark is the newest acceptance time among the batch's events. It
	// is not a guarantee about other batches or nodes.
	Watermark time.Time `json:"watermark"`
	// StreamSeq is the highest stream sequence of the batch.
	StreamSeq uint64 `json:"stream_seq"`
}

// Connect dials NATS with the reconnect behaviour a long-running node
// wants. Asynchronous errors — above all a slow consumer, whose messages
// the client drops (JetStream redelivers them only after the ack wait) —
// are logged.
func Connect(url, name string, log *slog.Logger) (*nats.Conn, error) {
	return nats.Connect(url,
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(500*time.Millisecond),
		nats.ReconnectBufSize(64<<20),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			subject := ""
			if sub != nil {
				subject = sub.Subject
			}
			log.Error("nats: asynchronous error", "connection", name, "subject", subject, "err", err)
		}),
	)
}
