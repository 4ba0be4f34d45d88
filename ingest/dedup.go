package ingest

import (
	"hash/maphash"
	"sync"
	"time"
)

// recentKeys remembers the idempotency keys (source/id) this node stored
// recently, so that a repeat is answered as a duplicate and not stored
// again. It is a fast path, not the guarantee: a repeat it does not
// recognise (sent through another node, after a restart, or after the
// window) is stored again and collapses in ClickHouse, where every table a
// reader counts from is idempotent.
//
// Keys are kept as two independent 64-bit hashes (a false match needs a
// 128-bit collision) in two generations: a key is recognised for at least
// one window and at most two.
type recentKeys struct {
	mu      sync.Mutex
	seeds   [2]maphash.Seed
	cur     map[[2]uint64]struct{}
	prev    map[[2]uint64]struct{}
	rotated time.Time
	window  time.Duration
	maxKeys int
	nowFunc func() time.Time
}

func newRecentKeys(window time.Duration, maxKeys int) *recentKeys {
	return &recentKeys{
		seeds:   [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()},
		cur:     map[[2]uint64]struct{}{},
		prev:    map[[2]uint64]struct{}{},
		rotated: time.Now(),
		window:  window,
		maxKeys: maxKeys,
		nowFunc: time.Now,
	}
}

func (k *recentKeys) key(r *Record) [2]uint64 {
	var out [2]uint64
	for i, seed := range k.seeds {
		var h maphash.Hash
		h.SetSeed(seed)
		h.WriteString(r.Source)
		h.WriteByte(0)
		h.WriteString(r.ID)
		out[i] = h.Sum64()
	}
	return out
}

// rotate starts a new generation when the window passed or the current one
// is full (the oldest keys are then forgotten early: harmless, see above).
func (k *recentKeys) rotate() {
	now := k.nowFunc()
	if now.Sub(k.rotated) < k.window && len(k.cur) < k.maxKeys {
		return
	}
	k.prev, k.cur = k.cur, make(map[[2]uint64]struct{}, len(k.cur))
	k.rotated = now
}

// seen reports whether the key was stored recently.
func (k *recentKeys) seen(key [2]uint64) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.rotate()
	if _, ok := k.cur[key]; ok {
		return true
	}
	_, ok := k.prev[key]
	return ok
}

// add remembers stored keys.
func (k *recentKeys) add(keys [][2]uint64) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.rotate()
	for _, key := range keys {
		k.cur[key] = struct{}{}
	}
}
