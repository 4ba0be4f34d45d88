package ingest

import (
	"fmt"
	"testing"
	"time"
)

func TestRecentKeysWindowAndBound(t *testing.T) {
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	k := newRecentKeys(time.Minute, 1000)
	k.nowFunc = func() time.Time { return now }
	k.rotated = now
	a := k.key(&Record{Source: "s", ID: "1"})
	b := k.key(&Record{Source: "s1", ID: ""})
	if a == b || a == k.key(&Record{Source: "s", ID: "2"}) {
		t.Fatal("distinct keys collide")
	}
	if k.seen(a) {
		t.Fatal("seen before added")
	}
	k.add([][2]uint64{a})
	if !k.seen(a) || k.seen(b) {
		t.Fatal("add/seen")
	}
	now = now.Add(90 * time.Second) // one rotation: still recognised
	if !k.seen(a) {
		t.Fatal("forgotten after one window")
	}
	now = now.Add(90 * time.Second) // two rotations: forgotten
	if k.seen(a) {
		t.Fatal("remembered after two windows")
	}
	// The bound rotates early instead of growing.
	for i := range 5000 {
		k.add([][2]uint64{k.key(&Record{Source: "s", ID: fmt.Sprint(i)})})
	}
	if len(k.cur) > 1000 || len(k.prev) > 1000 {
		t.Fatalf("generations of %d and %d keys, bound 1000", len(k.cur), len(k.prev))
	}
}
