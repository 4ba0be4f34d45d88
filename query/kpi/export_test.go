package kpi

import (
	"context"
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
