package refdata

import (
	"slices"
	"sync/atomic"
)

// Index answers lookups on a Set: which codes exist, a unit's subtree and
// its path from the root. It is safe for concurrent use; Replace swaps in a
// new set atomically, so a reader sees either the old set or the new one,
// never a mix. The Index keeps the Set it is given: do not modify a Set
// after handing it over.
type Index struct {
	cur atomic.Pointer[indexState]
	gen atomic.Uint64
}

type indexState struct {
	set        *Set
	units      map[string]int      // code → index in set.Units
	children   map[string][]string // code → children's codes, sorted
	procedures map[string]int
	officers   map[string]int
	cameras    map[string]int
}

// NewIndex indexes s (nil is an empty set).
func NewIndex(s *Set) *Index {
	x := &Index{}
	x.Replace(s)
	return x
}

// Replace makes s the indexed set.
func (x *Index) Replace(s *Set) {
	if s == nil {
		s = &Set{}
	}
	st := &indexState{
		set:        s,
		units:      make(map[string]int, len(s.Units)),
		children:   map[string][]string{},
		procedures: make(map[string]int, len(s.Procedures)),
		officers:   make(map[string]int, len(s.Officers)),
		cameras:    make(map[string]int, len(s.Cameras)),
	}
	for i, u := range s.Units {
		if _, dup := st.units[u.Code]; !dup {
			st.units[u.Code] = i
			if u.Parent != "" {
				st.children[u.Parent] = append(st.children[u.Parent], u.Code)
			}
		}
	}
	for _, c := range st.children {
		slices.Sort(c)
	}
	for i, p := range s.Procedures {
		st.procedures[p.Code] = i
	}
	for i, o := range s.Officers {
		st.officers[o.ID] = i
	}
	for i, c := range s.Cameras {
		st.cameras[c.ID] = i
	}
	x.cur.Store(st)
	x.gen.Add(1)
}

// Generation counts the sets indexed: it changes with every Replace, so
// that what was derived from the set (a token's scope) can tell it is
// out of date.
func (x *Index) Generation() uint64 { return x.gen.Load() }

// Set is the indexed set; do not modify it.
func (x *Index) Set() *Set { return x.cur.Load().set }

// Has reports whether a row with that code (or id) exists. kind is
// "unit", "procedure", "officer" or "camera" (or their plurals, as in
// Kinds); any other kind has nothing.
func (x *Index) Has(kind, code string) bool {
	st := x.cur.Load()
	var ok bool
	switch kind {
	case "unit", "units":
		_, ok = st.units[code]
	case "procedure", "procedures":
		_, ok = st.procedures[code]
	case "officer", "officers":
		_, ok = st.officers[code]
	case "camera", "cameras":
		_, ok = st.cameras[code]
	}
	return ok
}

// Unit returns the unit with that code.
func (x *Index) Unit(code string) (Unit, bool) {
	st := x.cur.Load()
	i, ok := st.units[code]
	if !ok {
		return Unit{}, false
	}
	return st.set.Units[i], true
}

// Subtree lists the unit and all its descendants, depth first with
// siblings in code order; nil for an unknown code. The slice is the
// caller's.
func (x *Index) Subtree(code string) []string {
	st := x.cur.Load()
	if _, ok := st.units[code]; !ok {
		return nil
	}
	out := []string{}
	seen := map[string]bool{}
	stack := []string{code}
	for len(stack) > 0 {
		c := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if seen[c] { // only in a set with cycles
			continue
		}
		seen[c] = true
		out = append(out, c)
		kids := st.children[c]
		for i := len(kids) - 1; i >= 0; i-- {
			stack = append(stack, kids[i])
		}
	}
	return out
}

// Children lists the direct children of the unit, in code order (legacy
// units included: callers that want the current tree check ValidTo). The
// slice is the caller's.
func (x *Index) Children(code string) []string {
	return slices.Clone(x.cur.Load().children[code])
}

// Path lists the unit's ancestors from the root down to the unit itself
// (["79", "L-760", "L-26734"]); nil for an unknown code. In a set that
// fails Validate it stops at a missing parent or a cycle. The slice is the
// caller's.
func (x *Index) Path(code string) []string {
	st := x.cur.Load()
	return st.path(code)
}

func (st *indexState) path(code string) []string {
	i, ok := st.units[code]
	if !ok {
		return nil
	}
	var up []string
	seen := map[string]bool{}
	for ok && !seen[code] {
		seen[code] = true
		up = append(up, code)
		code = st.set.Units[i].Parent
		i, ok = st.units[code]
	}
	slices.Reverse(up)
	return up
}
