package refdata

import (
	"fmt"
	"strconv"
	"strings"
)

// MaxProblems is how many problems a ValidationError lists; it still counts
// them all.
const MaxProblems = 20

// Problem is one thing wrong with one row of reference data.
type Problem struct {
	Kind  string // units, procedures, officers, cameras or calendar
	Index int    // the row's index in its kind (array index), -1 when not known
	Line  int    // the CSV line of the row, 0 when not read from CSV
	Key   string // the row's code, id or date, when known
	Field string // the field at fault (a JSON field name), "" for the whole row
	Msg   string
}

// String reads like `units[12] (code "26740"): parent "999" does not exist`
// or `procedures line 7 (code "TP-001"): deadline_days "x" is not a number`.
func (p Problem) String() string {
	var b strings.Builder
	b.WriteString(p.Kind)
	switch {
	case p.Line > 0:
		b.WriteString(" line ")
		b.WriteString(strconv.Itoa(p.Line))
	case p.Index >= 0:
		fmt.Fprintf(&b, "[%d]", p.Index)
	}
	if p.Key != "" {
		fmt.Fprintf(&b, " (%s %q)", keyName(p.Kind), p.Key)
	}
	b.WriteString(": ")
	if p.Field != "" {
		b.WriteString(p.Field)
		b.WriteByte(' ')
	}
	b.WriteString(p.Msg)
	return b.String()
}

// ValidationError is what is wrong with a set or an input: the first
// MaxProblems problems, and how many there are in all.
type ValidationError struct {
	Problems []Problem
	Total    int
}

// Error lists the problems, one a line.
func (e *ValidationError) Error() string {
	lines := make([]string, 0, len(e.Problems)+1)
	for _, p := range e.Problems {
		lines = append(lines, p.String())
	}
	if more := e.Total - len(e.Problems); more > 0 {
		lines = append(lines, fmt.Sprintf("… and %d more problems", more))
	}
	return strings.Join(lines, "\n")
}

// problems collects Problems up to MaxProblems; lines, when set, give the
// CSV line of a row (Set.lines).
type problems struct {
	err   ValidationError
	lines map[string][]int
}

func (ps *problems) add(p Problem) {
	ps.err.Total++
	if len(ps.err.Problems) < MaxProblems {
		ps.err.Problems = append(ps.err.Problems, p)
	}
}

// addf adds a problem about row i of kind.
func (ps *problems) addf(kind string, i int, key, field, format string, args ...any) {
	ps.add(Problem{Kind: kind, Index: i, Line: ps.line(kind, i), Key: key, Field: field, Msg: fmt.Sprintf(format, args...)})
}

// line is the CSV line of row i of kind, 0 when not known.
func (ps *problems) line(kind string, i int) int {
	if l := ps.lines[kind]; i >= 0 && i < len(l) {
		return l[i]
	}
	return 0
}

// row names row i of kind as the input did: its CSV line, or its index.
func (ps *problems) row(kind string, i int) string {
	if l := ps.line(kind, i); l > 0 {
		return fmt.Sprintf("line %d", l)
	}
	return fmt.Sprintf("%s[%d]", kind, i)
}

func (ps *problems) result() error {
	if ps.err.Total == 0 {
		return nil
	}
	e := ps.err
	return &e
}

// keyName is the name of the field that identifies a row of kind.
func keyName(kind string) string {
	switch kind {
	case "officers", "cameras":
		return "id"
	case "calendar":
		return "date"
	}
	return "code"
}
