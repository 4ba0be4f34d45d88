package sim

import "time"

// actor is anything that acts at simulated times: an entity with a
// lifecycle (a dossier, a ticket) or a recurring process (arrivals, a
// camera's heartbeat). act is called when its time comes; it may emit one
// event, and says when it next acts.
type actor interface {
	act(e *engine, now time.Time) (ev Event, emit bool, next time.Time, more bool)
}

// item is one scheduled act; ord breaks ties in insertion order, so the
// stream is the same on every run.
type item struct {
	at  int64 // unix nanoseconds
	ord uint64
	a   actor
	ent bool // an entity (counts against the pending bound), not a process
}

// queue is a binary min-heap of future acts, ordered by (at, ord).
type queue []item

func (q queue) less(i, j int) bool {
	if q[i].at != q[j].at {
		return q[i].at < q[j].at
	}
	return q[i].ord < q[j].ord
}

func (q *queue) push(it item) {
	*q = append(*q, it)
	h := *q
	i := len(h) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !h.less(i, p) {
			break
		}
		h[i], h[p] = h[p], h[i]
		i = p
	}
}

func (q *queue) pop() item {
	h := *q
	top := h[0]
	n := len(h) - 1
	h[0] = h[n]
	h[n] = item{}
	h = h[:n]
	i := 0
	for {
		l := 2*i + 1
		if l >= n {
			break
		}
		m := l
		if r := l + 1; r < n && h.less(r, l) {
			m = r
		}
		if !h.less(m, i) {
			break
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
	*q = h
	return top
}
