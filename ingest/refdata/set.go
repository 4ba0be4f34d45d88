package refdata

import (
	"fmt"
	"slices"
)

// KnownKind reports whether kind is one of Kinds.
func KnownKind(kind string) bool { return slices.Contains(Kinds, kind) }

// With returns a copy of s whose kind (one of Kinds) is that of part, the
// other kinds shared with s: how a parsed replacement becomes the next set,
// to Validate before saving.
func (s *Set) With(kind string, part *Set) (*Set, error) {
	next := *s
	next.lines = part.lines
	switch kind {
	case "units":
		next.Units = part.Units
	case "procedures":
		next.Procedures = part.Procedures
	case "officers":
		next.Officers = part.Officers
	case "cameras":
		next.Cameras = part.Cameras
	case "calendar":
		next.Calendar = part.Calendar
	default:
		return nil, fmt.Errorf("unknown kind of reference data %q", kind)
	}
	return &next, nil
}

// Rows returns the slice of one kind (one of Kinds) of the set; nil for an
// unknown kind.
func (s *Set) Rows(kind string) any {
	switch kind {
	case "units":
		return nonNil(s.Units)
	case "procedures":
		return nonNil(s.Procedures)
	case "officers":
		return nonNil(s.Officers)
	case "cameras":
		return nonNil(s.Cameras)
	case "calendar":
		return nonNil(s.Calendar)
	}
	return nil
}

// nonNil is s, or an empty slice for none: JSON [] rather than null.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// Count is the number of rows of one kind.
func (s *Set) Count(kind string) int {
	switch kind {
	case "units":
		return len(s.Units)
	case "procedures":
		return len(s.Procedures)
	case "officers":
		return len(s.Officers)
	case "cameras":
		return len(s.Cameras)
	case "calendar":
		return len(s.Calendar)
	}
	return 0
}
