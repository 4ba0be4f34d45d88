package kpi

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// lease makes one node the engine's leader: a key in a KV bucket whose
// entries expire after ttl. The leader renews it with a compare-and-set on
// its revision; the others try to create it, which succeeds once it
// lapsed. Two nodes may both compute for at most one ttl after a
// partition; the sequence numbers they publish then come from the same
// store, so a client sees at worst a value twice with different seqs, and
// never a gap.
type lease struct {
	kv   jetstream.KeyValue
	node string
	ttl  time.Duration
	rev  uint64
}

const leaseKey = "engine"

func newLease(ctx context.Context, js jetstream.JetStream, bucket, node string, ttl time.Duration, replicas int) (*lease, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: bucket, Description: "ioc: which node runs the KPI engine", TTL: ttl, History: 1,
		Storage: jetstream.MemoryStorage, Replicas: replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("kpi lease bucket %s: %w", bucket, err)
	}
	return &lease{kv: kv, node: node, ttl: ttl}, nil
}

// acquire waits up to ttl/3 for the lease; it reports whether it has it.
func (l *lease) acquire(ctx context.Context) bool {
	rev, err := l.kv.Create(ctx, leaseKey, []byte(l.node))
	if err == nil {
		l.rev = rev
		return true
	}
	select {
	case <-ctx.Done():
	case <-time.After(l.ttl / 3):
	}
	return false
}

func (l *lease) renew(ctx context.Context) error {
	rev, err := l.kv.Update(ctx, leaseKey, []byte(l.node), l.rev)
	if err != nil {
		return fmt.Errorf("renew kpi lease: %w", err)
	}
	l.rev = rev
	return nil
}

// release lets another node take over at once.
func (l *lease) release() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = l.kv.Delete(ctx, leaseKey, jetstream.LastRevision(l.rev))
}

func nodeName() string {
	h, _ := os.Hostname()
	return h + "-" + strconv.Itoa(os.Getpid())
}
