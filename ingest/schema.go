package ingest

import (
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"regexp"
	"sort"
	"strings"
	"time"
)

//go:embed schema/*.json
var schemaFS embed.FS

// schemaNode is the subset of JSON Schema (2020-12) the event contract uses:
// type, properties, required, enum, minimum/maximum, minLength/maxLength,
// pattern, format "date-time", plus two annotations of ours: "x-pii" (the
// value is personal data and is replaced by a keyed pseudonym at ingest) and
// "x-ref" (the value must name a known reference entity, e.g. "unit").
//
// The published files under ingest/schema are the contract; this interpreter
// is the only validator, so HTTP, NATS and Arrow intake enforce the same rules.
type schemaNode struct {
	Type       string                 `json:"type"`
	Properties map[string]*schemaNode `json:"properties"`
	Required   []string               `json:"required"`
	Enum       []string               `json:"enum"`
	Minimum    *float64               `json:"minimum"`
	Maximum    *float64               `json:"maximum"`
	MinLength  *int                   `json:"minLength"`
	MaxLength  *int                   `json:"maxLength"`
	Pattern    string                 `json:"pattern"`
	Format     string                 `json:"format"`
	// AdditionalProperties false: a field the schema does not name is
	// refused (it could carry personal data past pseudonymization).
	AdditionalProperties *bool  `json:"additionalProperties"`
	PII                  bool   `json:"x-pii"`
	Ref                  string `json:"x-ref"`

	re    *regexp.Regexp
	order []string // property names, sorted, for deterministic error order
}

// Contract holds the compiled schema of every event type.
type Contract struct {
	types map[string]*schemaNode // by full CloudEvents type
}

// LoadContract compiles the embedded event schemas.
func LoadContract() (*Contract, error) {
	entries, err := schemaFS.ReadDir("schema")
	if err != nil {
		return nil, err
	}
	c := &Contract{types: make(map[string]*schemaNode)}
	for _, e := range entries {
		b, err := schemaFS.ReadFile("schema/" + e.Name())
		if err != nil {
			return nil, err
		}
		var n schemaNode
		if err := json.Unmarshal(b, &n); err != nil {
			return nil, fmt.Errorf("schema %s: %w", e.Name(), err)
		}
		if err := n.compile(); err != nil {
			return nil, fmt.Errorf("schema %s: %w", e.Name(), err)
		}
		typ := strings.TrimSuffix(e.Name(), ".json")
		if _, _, err := SplitType(typ); err != nil {
			return nil, fmt.Errorf("schema %s: %w", e.Name(), err)
		}
		c.types[typ] = &n
	}
	return c, nil
}

// Types lists the event types of the contract, sorted.
func (c *Contract) Types() []string {
	out := make([]string, 0, len(c.types))
	for t := range c.types {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

// Schema returns the published JSON Schema document of an event type.
func SchemaDocument(typ string) ([]byte, error) {
	return schemaFS.ReadFile("schema/" + typ + ".json")
}

func (n *schemaNode) compile() error {
	if n.Pattern != "" {
		re, err := regexp.Compile(n.Pattern)
		if err != nil {
			return err
		}
		n.re = re
	}
	for name, p := range n.Properties {
		if err := p.compile(); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		n.order = append(n.order, name)
	}
	sort.Strings(n.order)
	return nil
}

// fieldError names the offending field by its JSON path.
type fieldError struct {
	Field string
	Msg   string
}

func (e *fieldError) Error() string { return e.Field + ": " + e.Msg }

// RefChecker answers whether a reference value exists (e.g. a unit code).
type RefChecker interface {
	Has(kind, code string) bool
}

// walker validates a decoded value and rewrites personal data in place.
type walker struct {
	refs   RefChecker
	pseudo func(string) string
}

// validate checks v against n; the value's path is join(parent, name),
// built only for an error message (or as the parent of an object's fields).
func (w *walker) validate(n *schemaNode, v any, parent, name string) error {
	switch n.Type {
	case "object":
		path := join(parent, name)
		m, ok := v.(map[string]any)
		if !ok {
			return &fieldError{path, "must be an object"}
		}
		if hasUnknown(n, m) {
			for _, k := range sortedKeys(m) {
				if _, ok := n.Properties[k]; !ok {
					return &fieldError{join(path, k), "is not a field of this event type"}
				}
			}
		}
		for _, r := range n.Required {
			if x, ok := m[r]; !ok || x == nil {
				return &fieldError{join(path, r), "is required"}
			}
		}
		for _, field := range n.order {
			x, ok := m[field]
			if !ok || x == nil {
				continue
			}
			p := n.Properties[field]
			if err := w.validate(p, x, path, field); err != nil {
				return err
			}
			if p.PII && w.pseudo != nil {
				if s, ok := x.(string); ok && s != "" {
					m[field] = w.pseudo(s)
				}
			}
		}
		return nil
	case "string":
		s, ok := v.(string)
		if !ok {
			return &fieldError{join(parent, name), "must be a string"}
		}
		if n.MinLength != nil && len(s) < *n.MinLength {
			if *n.MinLength == 1 {
				return &fieldError{join(parent, name), "must not be empty"}
			}
			return &fieldError{join(parent, name), fmt.Sprintf("must be at least %d bytes", *n.MinLength)}
		}
		if n.MaxLength != nil && len(s) > *n.MaxLength {
			return &fieldError{join(parent, name), fmt.Sprintf("must be at most %d bytes (UTF-8)", *n.MaxLength)}
		}
		if len(n.Enum) > 0 && !contains(n.Enum, s) {
			return &fieldError{join(parent, name), fmt.Sprintf("%q is not one of %s", s, strings.Join(n.Enum, ", "))}
		}
		if n.re != nil && !n.re.MatchString(s) {
			return &fieldError{join(parent, name), fmt.Sprintf("%q does not match %s", s, n.Pattern)}
		}
		if n.Format == "date-time" {
			t, err := parseRFC3339(s)
			if err != nil {
				return &fieldError{join(parent, name), fmt.Sprintf("%q is not an RFC 3339 time with offset", s)}
			}
			// ClickHouse's DateTime holds 1970 to 2105; keep to sane years.
			if t.Year() < 2000 || t.Year() >= 2100 {
				return &fieldError{join(parent, name), fmt.Sprintf("%s is out of range (years 2000 to 2099)", s)}
			}
		}
		if n.Ref != "" && w.refs != nil && !w.refs.Has(n.Ref, s) {
			return &fieldError{join(parent, name), fmt.Sprintf("unknown %s %q", n.Ref, s)}
		}
		return nil
	case "number", "integer":
		f, ok := v.(float64)
		if !ok {
			return &fieldError{join(parent, name), "must be a number"}
		}
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return &fieldError{join(parent, name), "must be a finite number"}
		}
		if n.Type == "integer" && f != math.Trunc(f) {
			return &fieldError{join(parent, name), "must be an integer"}
		}
		if n.Minimum != nil && f < *n.Minimum {
			return &fieldError{join(parent, name), fmt.Sprintf("must be ≥ %v", *n.Minimum)}
		}
		if n.Maximum != nil && f > *n.Maximum {
			return &fieldError{join(parent, name), fmt.Sprintf("must be ≤ %v", *n.Maximum)}
		}
		return nil
	case "boolean":
		if _, ok := v.(bool); !ok {
			return &fieldError{join(parent, name), "must be true or false"}
		}
		return nil
	case "":
		return nil
	}
	return &fieldError{join(parent, name), "unsupported schema type " + n.Type}
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// hasUnknown reports whether m has a key the closed schema n does not name.
func hasUnknown(n *schemaNode, m map[string]any) bool {
	if n.AdditionalProperties == nil || *n.AdditionalProperties {
		return false
	}
	for k := range m {
		if _, ok := n.Properties[k]; !ok {
			return true
		}
	}
	return false
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// parseRFC3339 reads an RFC 3339 time with offset, strictly: time.Parse
// also takes a one-digit hour or a comma before the fraction, which are
// not RFC 3339 (and a value stored as sent in data would not be either).
func parseRFC3339(s string) (time.Time, error) {
	if !rfc3339Shape(s) {
		return time.Time{}, errNotRFC3339
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, errNotRFC3339
	}
	return t, nil
}

// errNotRFC3339: the callers name the field and quote the value.
var errNotRFC3339 = errors.New("not an RFC 3339 time with offset")

// rfc3339Shape: YYYY-MM-DDTHH:MM:SS, an optional fraction of 1 to 9
// digits after a dot, then Z or ±HH:MM.
func rfc3339Shape(s string) bool {
	digits := func(from, to int) bool {
		for i := from; i < to; i++ {
			if s[i] < '0' || s[i] > '9' {
				return false
			}
		}
		return true
	}
	if len(s) < 20 || !digits(0, 4) || s[4] != '-' || !digits(5, 7) || s[7] != '-' || !digits(8, 10) || s[10] != 'T' ||
		!digits(11, 13) || s[13] != ':' || !digits(14, 16) || s[16] != ':' || !digits(17, 19) {
		return false
	}
	i := 19
	if s[i] == '.' {
		j := i + 1
		for j < len(s) && s[j] >= '0' && s[j] <= '9' {
			j++
		}
		if j == i+1 || j-i-1 > 9 {
			return false
		}
		i = j
	}
	rest := s[i:]
	return rest == "Z" || len(rest) == 6 && (rest[0] == '+' || rest[0] == '-') && rest[3] == ':' && digits(i+1, i+3) && digits(i+4, i+6)
}
