package alert

import (
	"context"
	"testing"
)

// TestFeedResumesWithASnapshot: a feed's seqs are the node's count since
// it started, so even the seq of the channel's current value recovers
// nothing (another node, or this one before a restart, gave it to other
// content).
func TestFeedResumesWithASnapshot(t *testing.T) {
	f := NewFeed(nil, func(u string) []string { return []string{u} })
	close(f.ready)
	ctx := context.Background()
	u, ok, err := f.Latest(ctx, ChannelPrefix+"79")
	if err != nil || !ok {
		t.Fatalf("latest: %v %v", ok, err)
	}
	for _, seq := range []uint64{0, u.Seq - 1, u.Seq, u.Seq + 1} {
		if ups, complete, err := f.Since(ctx, u.Channel, seq); ups != nil || complete || err != nil {
			t.Fatalf("since %d: %v %v %v, want nothing recovered", seq, ups, complete, err)
		}
	}
}
