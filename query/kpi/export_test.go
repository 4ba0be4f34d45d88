package kpi

import (
	"context"
	"maps"
	"time"

	"github.com/vn-ioc/ioc/ingest"
)

// Work is what a family's loop holds for a recomputation.
type Work = work

// NewWork is the work of a commit notice.
func NewWork(n ingest.CommitNotice) *Work {
	w := &work{}
	w.add(n.Subjects, n.SubjectsTruncated, n.MinTime, n.MaxTime)
	return w
}

// ApplyWork applies work as a family's loop does, which keeps the work of
// a failed attempt for its retry.
func (e *Engine) ApplyWork(ctx context.Context, family string, w *Work, at time.Time) error {
	return e.apply(ctx, family, w, at)
}

// SetBeforeContribWrite sets a function called after a commit wrote its
// rollup changes and before it stores the contributions; an error it
// returns fails the commit there.
func (e *Engine) SetBeforeContribWrite(f func() error) { e.beforeContribWrite = f }

// ForgetWindowSums drops the window sums kept up to date since the last
// walk: the next computation walks every sum held, as the first one of an
// hour does.
func (e *Engine) ForgetWindowSums() {
	e.memMu.Lock()
	defer e.memMu.Unlock()
	if e.mem != nil {
		e.mem.forgetWalks()
	}
}

// Notice hands the engine a commit notice, as one heard on NATS.
func (e *Engine) Notice(n ingest.CommitNotice) { e.noteCommit(n) }

// Recompute runs a family's recomputation, as its loop does after a
// notice.
func (e *Engine) Recompute(ctx context.Context, family string) error { return e.recompute(ctx, family) }

// Instants computes the instant KPIs marked due, as the instant loop does
// when woken.
func (e *Engine) Instants(ctx context.Context) { e.instants(ctx) }

// InstantsDue: the families whose instant KPIs are marked due, with the
// watermark of the commits they are to reflect.
func (e *Engine) InstantsDue() map[string]time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	return maps.Clone(e.instantDue)
}

// SetLeading marks the engine as leading, as Run does once it holds the
// lease.
func (e *Engine) SetLeading(b bool) {
	e.mu.Lock()
	e.leadSince = time.Now()
	e.mu.Unlock()
	e.leading.Store(b)
}

// SetLast sets what the engine takes the store to hold, as a node that
// takes over reads it.
func (e *Engine) SetLast(m map[Key]Value) { e.last = newLastValues(m) }

// SetNow sets the engine's clock.
func (e *Engine) SetNow(now func() time.Time) { e.now = now }

// SetRollupSend sets a function that writes rollup rows to a table by
// calling send, before the engine's memory counts them; an error it
// returns fails the write: one never sent if it did not call send, else
// one whose answer was lost.
func (e *Engine) SetRollupSend(f func(table string, send func() error) error) { e.rollupSend = f }

// DropMemory forgets the rollup sums held: the next computation loads
// them.
func (e *Engine) DropMemory() { e.dropMemory() }

// MemoryLoadWaiting: a load of the rollup sums waits for the writes under
// way.
func (e *Engine) MemoryLoadWaiting() bool {
	e.memMu.Lock()
	defer e.memMu.Unlock()
	return e.memLoading > 0
}

// ForgetReferenceChecks lets the next RebuildOnReferenceChange look at the
// reference data at once.
func (e *Engine) ForgetReferenceChecks() {
	e.openMu.Lock()
	e.refChecked = nil
	e.openMu.Unlock()
}
