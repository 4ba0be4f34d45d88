// Package lease elects one node of a cluster to do a job (compute the KPIs,
// evaluate the alert rules): the holder of a key in a NATS KV bucket whose
// entries expire after a TTL. The holder renews the key with a
// compare-and-set on its revision; the other nodes try to create it, which
// succeeds once it lapsed. After a partition two nodes may both hold the
// job for at most one TTL, so what they write must tolerate that (the KPI
// store's sequences, the alert versions do).
package lease

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Config of a lease.
type Config struct {
	// Bucket of the lease (memory storage, history 1). Required.
	Bucket string
	// Description of the bucket, for operators listing buckets.
	Description string
	// Node names this node in the lease. Default the host name and pid.
	Node string
	// TTL after which the lease lapses when its holder stops renewing it.
	// Default 10s.
	TTL time.Duration
	// Replicas of the bucket on a NATS cluster. Default 1.
	Replicas int
}

// Lease is one node's handle on a job's lease. Not safe for concurrent use.
type Lease struct {
	kv  jetstream.KeyValue
	cfg Config
	rev uint64
}

const key = "holder"

// New creates the lease bucket when missing.
func New(ctx context.Context, js jetstream.JetStream, cfg Config) (*Lease, error) {
	if cfg.Bucket == "" {
		return nil, errors.New("lease: bucket is missing")
	}
	if cfg.Node == "" {
		cfg.Node = NodeName()
	}
	if cfg.TTL == 0 {
		cfg.TTL = 10 * time.Second
	}
	if cfg.Replicas == 0 {
		cfg.Replicas = 1
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: cfg.Bucket, Description: cfg.Description, TTL: cfg.TTL, History: 1,
		Storage: jetstream.MemoryStorage, Replicas: cfg.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("lease bucket %s: %w", cfg.Bucket, err)
	}
	return &Lease{kv: kv, cfg: cfg}, nil
}

// Node is the name this node holds the lease under.
func (l *Lease) Node() string { return l.cfg.Node }

// Acquire waits up to TTL/3 for the lease; it reports whether it has it.
func (l *Lease) Acquire(ctx context.Context) bool {
	rev, err := l.kv.Create(ctx, key, []byte(l.cfg.Node))
	if err == nil {
		l.rev = rev
		return true
	}
	select {
	case <-ctx.Done():
	case <-time.After(l.cfg.TTL / 3):
	}
	return false
}

// Hold runs job while the lease holds: it renews the lease every TTL/3 on
// a goroutine of its own (a long computation never lets it lapse), and
// cancels job's context when a renewal fails. It returns job's error, or
// the renewal's when that is what stopped it; and releases the lease when
// ctx ended, so that another node takes over at once.
func (l *Lease) Hold(ctx context.Context, job func(context.Context) error) error {
	jctx, lost := context.WithCancelCause(ctx)
	stop := make(chan struct{})
	renewed := make(chan struct{})
	go func() {
		defer close(renewed)
		t := time.NewTicker(l.cfg.TTL / 3)
		defer t.Stop()
		for {
			select {
			case <-jctx.Done():
				return
			case <-stop:
				return
			case <-t.C:
				// A renewal is not cut short when ctx ends: one the server
				// applied but whose answer was dropped would leave l.rev
				// behind the key, and the release would miss it.
				uctx, cancel := context.WithTimeout(context.WithoutCancel(jctx), l.cfg.TTL/3)
				rev, err := l.kv.Update(uctx, key, []byte(l.cfg.Node), l.rev)
				cancel()
				if err != nil {
					if jctx.Err() == nil { // not the job ending: the lease is lost
						lost(fmt.Errorf("renew lease %s: %w", l.cfg.Bucket, err))
					}
					return
				}
				l.rev = rev
			}
		}
	}()
	err := job(jctx)
	close(stop)
	<-renewed
	cause := context.Cause(jctx)
	lost(nil)
	if ctx.Err() != nil {
		l.release()
		return nil
	}
	if cause != nil && !errors.Is(cause, context.Canceled) {
		return cause
	}
	return err
}

// release deletes the key if this node still holds it. The delete is
// conditional on the revision this node last wrote; if that is not the
// key's (a renewal whose answer was lost), the key is read and deleted at
// its own revision when it still names this node.
func (l *Lease) release() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if l.kv.Delete(ctx, key, jetstream.LastRevision(l.rev)) == nil {
		return
	}
	e, err := l.kv.Get(ctx, key)
	if err != nil || string(e.Value()) != l.cfg.Node {
		return
	}
	_ = l.kv.Delete(ctx, key, jetstream.LastRevision(e.Revision()))
}

// NodeName is the default name of this node: host name and process id.
func NodeName() string {
	h, _ := os.Hostname()
	return h + "-" + strconv.Itoa(os.Getpid())
}
