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
