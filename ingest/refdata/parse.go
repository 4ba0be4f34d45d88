package refdata

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"slices"
	"strings"
	"unicode/utf8"
)

// Bounds on what Parse reads.
const (
	// MaxParseBytes is the largest input Parse reads (32 MiB).
	MaxParseBytes = 32 << 20
	// MaxParseRows is the most rows Parse accepts.
	MaxParseRows = 200_000
)

// Parse reads one kind of reference data (one of Kinds) in CSV or JSON and
// returns a Set with only that kind filled, for replacing that kind of a
// current set (see Set.With).
//
// contentType is a media type (text/csv, application/json, with or without
// parameters) or simply "csv" or "json". CSV has a header row of the
// kind's JSON field names, in any order; list fields (a unit's successors)
// are separated by ";". JSON is an array of objects with those fields. In
// both, the row's key (code, id or date) is required, other fields may be
// left out or blank (zero), dates are YYYY-MM-DD (or RFC 3339), booleans
// true/false, and a "note" field is ignored. Unknown fields are errors.
//
// Parse checks each value, not the set as a whole: use Validate on the set
// that results. Errors are a *ValidationError naming the line (CSV) or the
// index (JSON) and the field.
func Parse(kind string, contentType string, r io.Reader) (*Set, error) {
	format, err := formatOf(contentType)
	if err != nil {
		return nil, err
	}
	lr := &limitedReader{r: r, n: MaxParseBytes}
	s := &Set{}
	var lines []int // of a CSV's rows
	switch kind {
	case "units":
		s.Units, err = parseKind(kind, format, lr, unitColumns(), &lines)
	case "procedures":
		s.Procedures, err = parseKind(kind, format, lr, procedureColumns(), &lines)
	case "officers":
		s.Officers, err = parseKind(kind, format, lr, officerColumns(), &lines)
	case "cameras":
		s.Cameras, err = parseKind(kind, format, lr, cameraColumns(), &lines)
	case "calendar":
		s.Calendar, err = parseKind(kind, format, lr, dayColumns(), &lines)
	default:
		return nil, fmt.Errorf("unknown kind of reference data %q (want one of %s)", kind, strings.Join(Kinds, ", "))
	}
	if err != nil {
		return nil, err
	}
	if lines != nil {
		s.lines = map[string][]int{kind: lines}
	}
	return s, nil
}

func formatOf(contentType string) (string, error) {
	switch ct := strings.ToLower(strings.TrimSpace(contentType)); ct {
	case "csv", "json":
		return ct, nil
	}
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return "", fmt.Errorf("content type %q: %v", contentType, err)
	}
	switch mt {
	case "text/csv", "application/csv":
		return "csv", nil
	case "application/json", "text/json":
		return "json", nil
	}
	return "", fmt.Errorf("content type %q: want text/csv or application/json", contentType)
}

var errTooLarge = fmt.Errorf("input is larger than %d MiB", MaxParseBytes>>20)

type limitedReader struct {
	r io.Reader
	n int64
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.n <= 0 {
		// Input may end exactly at the bound: only more data is an error.
		var one [1]byte
		n, err := l.r.Read(one[:])
		if n > 0 {
			return 0, errTooLarge
		}
		if err != nil && err != io.EOF {
			return 0, err // a reader's own failure is never an end of input
		}
		return 0, io.EOF
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.r.Read(p)
	l.n -= int64(n)
	return n, err
}

// parseKind reads the whole input (at most MaxParseBytes), which must be
// UTF-8 — Vietnamese names in another encoding (Windows-1258, the default
// of an Excel export on Vietnamese Windows) would be stored mangled — and
// parses it without its byte order mark, if any.
func parseKind[T any](kind, format string, r io.Reader, cols []column[T], lines *[]int) ([]T, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", kind, err)
	}
	b = bytes.TrimPrefix(b, []byte("\ufeff"))
	if !utf8.Valid(b) {
		at := 0
		for rest := b; len(rest) > 0; {
			rn, size := utf8.DecodeRune(rest)
			if rn == utf8.RuneError && size == 1 {
				break
			}
			at += size
			rest = rest[size:]
		}
		line := 1 + bytes.Count(b[:at], []byte("\n"))
		return nil, fmt.Errorf("%s: line %d: byte %d is not UTF-8; save the file as UTF-8", kind, line, at)
	}
	if format == "csv" {
		return parseCSV(kind, bytes.NewReader(b), cols, lines)
	}
	return parseJSON(kind, bytes.NewReader(b), cols)
}

// parseCSV also appends each row's line to lines.
func parseCSV[T any](kind string, r io.Reader, cols []column[T], lines *[]int) ([]T, error) {
	cr := csv.NewReader(r)
	cr.ReuseRecord = true
	header, err := cr.Read()
	if err == io.EOF {
		return nil, fmt.Errorf("%s: empty CSV, want a header row", kind)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", kind, err)
	}
	var ps problems
	// at[i] is the column of CSV field i, or -1 for an ignored note.
	at := make([]int, len(header))
	seen := map[string]bool{}
	for i, h := range header {
		h = strings.TrimSpace(h)
		at[i] = slices.IndexFunc(cols, func(c column[T]) bool { return c.name == h })
		switch {
		case h == "":
			ps.add(Problem{Kind: kind, Index: -1, Line: 1, Msg: fmt.Sprintf("column %d of the header has no name", i+1)})
		case seen[h]:
			ps.add(Problem{Kind: kind, Index: -1, Line: 1, Field: h, Msg: "appears twice in the header"})
		case h == noteColumn:
		case at[i] < 0:
			ps.add(Problem{Kind: kind, Index: -1, Line: 1, Field: h, Msg: fmt.Sprintf("is not a field of %s (want %s)", kind, names(cols))})
		}
		seen[h] = true
	}
	if !seen[cols[0].name] {
		ps.add(Problem{Kind: kind, Index: -1, Line: 1, Msg: fmt.Sprintf("the header has no %q column", cols[0].name)})
	}
	if err := ps.result(); err != nil {
		return nil, err
	}
	keyAt := slices.Index(at, 0)
	var out []T
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			if errors.Is(err, errTooLarge) {
				return nil, fmt.Errorf("%s: %w", kind, err)
			}
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				ps.add(Problem{Kind: kind, Index: -1, Line: pe.Line, Msg: pe.Err.Error()})
				if errors.Is(pe.Err, csv.ErrFieldCount) {
					continue
				}
			} else {
				ps.add(Problem{Kind: kind, Index: -1, Msg: err.Error()})
			}
			break
		}
		if len(out) >= MaxParseRows {
			return nil, fmt.Errorf("%s: more than %d rows", kind, MaxParseRows)
		}
		line, _ := cr.FieldPos(0)
		var row T
		key := strings.TrimSpace(rec[keyAt])
		for i, v := range rec {
			if at[i] < 0 {
				continue
			}
			c := cols[at[i]]
			if err := c.set(&row, strings.TrimSpace(v)); err != nil {
				ps.add(Problem{Kind: kind, Index: len(out), Line: line, Key: key, Field: c.name, Msg: err.Error()})
			}
		}
		if key == "" {
			ps.add(Problem{Kind: kind, Index: len(out), Line: line, Field: cols[0].name, Msg: "is empty"})
		}
		out = append(out, row)
		*lines = append(*lines, line)
	}
	if err := ps.result(); err != nil {
		return nil, err
	}
	return out, nil
}

func parseJSON[T any](kind string, r io.Reader, cols []column[T]) ([]T, error) {
	dec := json.NewDecoder(r)
	tok, err := dec.Token()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", kind, jsonErr(err))
	}
	if d, ok := tok.(json.Delim); !ok || d != '[' {
		return nil, fmt.Errorf("%s: want a JSON array of objects", kind)
	}
	var ps problems
	var out []T
	for i := 0; dec.More(); i++ {
		if i >= MaxParseRows {
			return nil, fmt.Errorf("%s: more than %d rows", kind, MaxParseRows)
		}
		var obj map[string]json.RawMessage
		if err := dec.Decode(&obj); err != nil {
			var te *json.UnmarshalTypeError
			if errors.As(err, &te) {
				ps.add(Problem{Kind: kind, Index: i, Msg: "want an object"})
				continue
			}
			ps.add(Problem{Kind: kind, Index: i, Msg: jsonErr(err).Error()})
			return nil, ps.result()
		}
		var row T
		var key string
		if raw, ok := obj[cols[0].name]; ok {
			key, _ = jsonText(raw)
		}
		if key == "" {
			ps.add(Problem{Kind: kind, Index: i, Field: cols[0].name, Msg: "is missing"})
		}
		for _, name := range sortedKeys(obj) {
			if name == noteColumn {
				continue
			}
			j := slices.IndexFunc(cols, func(c column[T]) bool { return c.name == name })
			if j < 0 {
				ps.add(Problem{Kind: kind, Index: i, Key: key, Field: name, Msg: fmt.Sprintf("is not a field of %s (want %s)", kind, names(cols))})
				continue
			}
			c := cols[j]
			v, err := jsonValue(obj[name], c.list)
			if err == nil {
				err = c.set(&row, strings.TrimSpace(v))
			}
			if err != nil {
				ps.add(Problem{Kind: kind, Index: i, Key: key, Field: name, Msg: err.Error()})
			}
		}
		out = append(out, row)
	}
	if _, err := dec.Token(); err != nil {
		ps.add(Problem{Kind: kind, Index: len(out), Msg: jsonErr(err).Error()})
	} else if _, err := dec.Token(); err != io.EOF {
		ps.add(Problem{Kind: kind, Index: -1, Msg: "more JSON after the array: send one array of objects"})
	}
	if err := ps.result(); err != nil {
		return nil, err
	}
	return out, nil
}

func jsonErr(err error) error {
	if errors.Is(err, errTooLarge) {
		return err
	}
	if err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF) {
		return errors.New("unexpected end of JSON input")
	}
	return fmt.Errorf("invalid JSON: %w", err)
}

// jsonValue renders a JSON value as the text a CSV cell would hold.
func jsonValue(raw json.RawMessage, list bool) (string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) > 0 && raw[0] == '[' {
		if !list {
			return "", errors.New("is an array, want a single value")
		}
		var elems []json.RawMessage
		if err := json.Unmarshal(raw, &elems); err != nil {
			return "", err
		}
		parts := make([]string, 0, len(elems))
		for _, e := range elems {
			s, err := jsonText(e)
			if err != nil {
				return "", err
			}
			if strings.Contains(s, ";") {
				return "", fmt.Errorf("element %q contains \";\"", s)
			}
			parts = append(parts, s)
		}
		return strings.Join(parts, ";"), nil
	}
	return jsonText(raw)
}

// jsonText renders a JSON scalar: a string's text, a number or boolean as
// written, null as blank.
func jsonText(raw json.RawMessage) (string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return "", nil
	}
	switch raw[0] {
	case '"':
		var s string
		err := json.Unmarshal(raw, &s)
		return s, err
	case '{', '[':
		return "", errors.New("is an object or array, want a single value")
	case 'n':
		return "", nil
	}
	return string(raw), nil
}

func names[T any](cols []column[T]) string {
	s := make([]string, len(cols))
	for i, c := range cols {
		s[i] = c.name
	}
	return strings.Join(s, ", ")
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
