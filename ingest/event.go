package ingest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/vn-ioc/ioc/internal/jsonx"
)

// Families of events, the second part of a type vn.ioc.<family>.<transition>.
const (
	FamilyDossier   = "dossier"
	FamilyFeedback  = "feedback"
	FamilyCamera    = "camera"
	FamilySurvey    = "survey"
	FamilyIndicator = "indicator"
)

// Families lists every family in a stable order.
var Families = []string{FamilyDossier, FamilyFeedback, FamilyCamera, FamilySurvey, FamilyIndicator}

const typePrefix = "vn.ioc."

// SplitType splits "vn.ioc.dossier.received" into ("dossier", "received").
func SplitType(typ string) (family, transition string, err error) {
	rest, ok := strings.CutPrefix(typ, typePrefix)
	if !ok {
		return "", "", fmt.Errorf("type %q must start with %q", typ, typePrefix)
	}
	family, transition, ok = strings.Cut(rest, ".")
	if !ok || family == "" || transition == "" || strings.Contains(transition, ".") {
		return "", "", fmt.Errorf("type %q must be vn.ioc.<family>.<transition>", typ)
	}
	return family, transition, nil
}

// CloudEvent is an event as a source sends it: CloudEvents 1.0, structured JSON mode.
type CloudEvent struct {
	SpecVersion     string          `json:"specversion"`
	ID              string          `json:"id"`
	Source          string          `json:"source"`
	Type            string          `json:"type"`
	Subject         string          `json:"subject"`
	Time            string          `json:"time"`
	DataContentType string          `json:"datacontenttype,omitempty"`
	DataSchema      string          `json:"dataschema,omitempty"`
	Data            json.RawMessage `json:"data"`
}

// Record is an accepted event as it travels through JetStream to the writer:
// validated, with personal data already replaced by pseudonyms.
type Record struct {
	Source     string          `json:"source"`
	ID         string          `json:"id"`
	Family     string          `json:"family"`
	Transition string          `json:"transition"`
	Subject    string          `json:"subject"`
	Time       time.Time       `json:"time"`
	AcceptedAt time.Time       `json:"accepted_at"`
	Data       json.RawMessage `json:"data"`
}

// AppendJSON appends the record as JSON, as encoding/json would write it.
func (r *Record) AppendJSON(b []byte) []byte {
	b = append(b, `{"source":`...)
	b = jsonx.AppendString(b, r.Source)
	b = append(b, `,"id":`...)
	b = jsonx.AppendString(b, r.ID)
	b = append(b, `,"family":`...)
	b = jsonx.AppendString(b, r.Family)
	b = append(b, `,"transition":`...)
	b = jsonx.AppendString(b, r.Transition)
	b = append(b, `,"subject":`...)
	b = jsonx.AppendString(b, r.Subject)
	b = append(b, `,"time":"`...)
	b = r.Time.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","accepted_at":"`...)
	b = r.AcceptedAt.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","data":`...)
	if len(r.Data) == 0 {
		b = append(b, "null"...)
	} else {
		b = append(b, r.Data...)
	}
	return append(b, '}')
}

// jsonSizeHint is about the length of AppendJSON's output (exactly, unless
// strings need escapes).
func (r *Record) jsonSizeHint() int {
	// The keys and punctuation, two RFC 3339 times with nanoseconds.
	return 100 + 2*len(time.RFC3339Nano) + len(r.Source) + len(r.ID) + len(r.Family) + len(r.Transition) +
		len(r.Subject) + len(r.Data)
}

// Key is the idempotency key of the record: source and id.
func (r *Record) Key() string { return r.Source + "/" + r.ID }

// Subject of the record in the events stream.
func (r *Record) StreamSubject() string {
	return streamSubjectPrefix + r.Family + "." + r.Transition
}

// Limits of one event's envelope.
const (
	maxIDLen      = 256
	maxSourceLen  = 256
	maxSubjectLen = 256
	maxDataBytes  = 64 << 10
)

// Validator turns raw CloudEvents into Records, or says exactly what is wrong.
type Validator struct {
	contract *Contract
	refs     RefChecker
	pseudo   *Pseudonymizer
	pseudoFn func(string) string // pseudo.Pseudonym, made once
	now      func() time.Time
}

// NewValidator builds a validator. refs may be nil (no reference checks).
func NewValidator(c *Contract, refs RefChecker, p *Pseudonymizer) *Validator {
	v := &Validator{contract: c, refs: refs, pseudo: p, now: time.Now}
	if p != nil {
		v.pseudoFn = p.Pseudonym
	}
	return v
}

// Prepare decodes, validates and pseudonymizes one event. boundSource, when
// not empty, is the only source the caller may send for.
func (v *Validator) Prepare(raw []byte, boundSource string) (*Record, error) {
	if t := bytes.TrimLeft(raw, " \t\r\n"); len(t) == 0 || t[0] != '{' {
		return nil, &fieldError{"event", "must be a JSON object"}
	}
	if path, at, bad := textProblem(raw); bad {
		return nil, &fieldError{path, "is not valid UTF-8 (byte " + strconv.Itoa(at) + " of the event; a lone surrogate escape counts as invalid): send text as UTF-8"}
	}
	var ce CloudEvent
	p, ok := decodeEnvelope(raw, &ce)
	if !ok {
		// Not something the fast reader understands: encoding/json says
		// what it is (or decodes it, if it is merely unusual).
		ce = CloudEvent{}
		if err := json.Unmarshal(raw, &ce); err != nil {
			return nil, envelopeError(err)
		}
		p = eventParts{SpecVersion: ce.SpecVersion, ID: ce.ID, Source: ce.Source, Type: ce.Type,
			Subject: ce.Subject, Time: ce.Time, RawData: ce.Data}
	}
	if ce.DataContentType != "" && !strings.HasPrefix(ce.DataContentType, "application/json") {
		return nil, &fieldError{"datacontenttype", fmt.Sprintf("%q is not supported (application/json)", ce.DataContentType)}
	}
	return v.prepareParts(&p, boundSource, "", v.now())
}

// envelopeNames are the JSON names of CloudEvent's fields.
var envelopeNames = []string{"specversion", "id", "source", "type", "subject", "time", "datacontenttype", "dataschema", "data"}

// decodeEnvelope is json.Unmarshal(raw, ce) on the fast reader, with the
// data decoded too (as prepareParts would decode it); not ok when the fast
// reader cannot answer for it.
func decodeEnvelope(raw []byte, ce *CloudEvent) (p eventParts, ok bool) {
	d := jdec{s: string(raw)}
	if d.next() != '{' {
		return eventParts{}, false
	}
	ok = d.fields(envelopeNames, func(key string) (known, ok bool) {
		switch key {
		case "specversion":
			return true, d.strField(&ce.SpecVersion)
		case "id":
			return true, d.strField(&ce.ID)
		case "source":
			return true, d.strField(&ce.Source)
		case "type":
			return true, d.strField(&ce.Type)
		case "subject":
			return true, d.strField(&ce.Subject)
		case "time":
			return true, d.strField(&ce.Time)
		case "datacontenttype":
			return true, d.strField(&ce.DataContentType)
		case "dataschema":
			return true, d.strField(&ce.DataSchema)
		case "data":
			d.space()
			start := d.i
			p.decoded, p.hasDecoded = nil, false
			if len(d.s)-start <= maxDataBytes {
				if p.decoded, ok = d.value(); !ok {
					return true, false
				}
				p.hasDecoded = true
			} else {
				// Possibly too large data is decoded only once its size
				// is known to be within bounds (prepareParts refuses it
				// otherwise).
				if _, _, ok = d.skip(); !ok {
					return true, false
				}
				if d.i-start <= maxDataBytes {
					sub := jdec{s: d.s[start:d.i]}
					if p.decoded, ok = sub.value(); !ok {
						return true, false
					}
					p.hasDecoded = true
				}
			}
			ce.Data = raw[start:d.i:d.i]
			return true, true
		}
		return false, true
	})
	if !ok || !d.end() {
		return eventParts{}, false
	}
	p.SpecVersion, p.ID, p.Source, p.Type, p.Subject, p.Time = ce.SpecVersion, ce.ID, ce.Source, ce.Type, ce.Subject, ce.Time
	p.RawData = ce.Data
	return p, true
}

func checkText(field, s string, max int) error {
	if s == "" {
		return &fieldError{field, "is required"}
	}
	if len(s) > max {
		return &fieldError{field, fmt.Sprintf("must be at most %d bytes", max)}
	}
	if !utf8.ValidString(s) {
		return &fieldError{field, "is not valid UTF-8"}
	}
	if strings.ContainsAny(s, "\x00\r\n") {
		return &fieldError{field, "must not contain control characters"}
	}
	return nil
}

// envelopeError names the envelope field a JSON type error is about.
func envelopeError(err error) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		f := te.Field
		if f == "" {
			return &fieldError{"event", "must be a JSON object"}
		}
		return &fieldError{f, "must be a " + te.Type.String()}
	}
	return &fieldError{"event", "is not valid JSON: " + err.Error()}
}

// SyntaxError is a body that cannot be split into events at all; Offset is
// the 0-based index of the first byte that makes it invalid.
type SyntaxError struct {
	Offset int64
	Msg    string
}

func (e *SyntaxError) Error() string { return fmt.Sprintf("byte %d: %s", e.Offset, e.Msg) }

// Body formats.
const (
	ContentSingle = "application/cloudevents+json"
	ContentBatch  = "application/cloudevents-batch+json"
	ContentNDJSON = "application/x-ndjson"
)

// SplitBody splits a request body into raw events according to its media
// type. A body that cannot be split yields a *SyntaxError with the byte
// offset; events that parse as JSON but are not valid events are returned and
// rejected one by one later.
func SplitBody(contentType string, body []byte, maxEvents int) ([]json.RawMessage, error) {
	mt := strings.TrimSpace(strings.ToLower(strings.SplitN(contentType, ";", 2)[0]))
	switch mt {
	case ContentBatch:
		return splitArray(body, maxEvents)
	case ContentNDJSON, "application/cloudevents+ndjson", "application/jsonl":
		return splitLines(body, maxEvents)
	case ContentSingle, "application/json", "":
		trimmed := bytes.TrimSpace(body)
		if len(trimmed) > 0 && trimmed[0] == '[' {
			return splitArray(body, maxEvents)
		}
		if !validJSON(trimmed) {
			return nil, syntaxAt(body, 0)
		}
		return []json.RawMessage{trimmed}, nil
	}
	return nil, &UnsupportedMediaError{mt}
}

// UnsupportedMediaError is a body of a media type intake does not read.
type UnsupportedMediaError struct{ Type string }

func (e *UnsupportedMediaError) Error() string {
	return fmt.Sprintf("content type %q is not one of %s, %s, %s", e.Type, ContentSingle, ContentBatch, ContentNDJSON)
}

// TooManyEventsError is a body with more events than allowed.
type TooManyEventsError struct{ Max int }

func (e *TooManyEventsError) Error() string {
	return fmt.Sprintf("more than %d events in one request", e.Max)
}

func splitArray(body []byte, maxEvents int) ([]json.RawMessage, error) {
	if out, ok := splitArrayFast(body, maxEvents); ok {
		return out, nil
	}
	return splitArraySlow(body, maxEvents)
}

// splitArrayFast splits a well-formed batch of at most maxEvents events
// into subslices of body; it reports not ok for anything else, for
// splitArraySlow to say exactly what is wrong.
func splitArrayFast(body []byte, maxEvents int) ([]json.RawMessage, bool) {
	i := skipSpace(body, 0)
	if i >= len(body) || body[i] != '[' {
		return nil, false
	}
	i = skipSpace(body, i+1)
	var out []json.RawMessage
	if i < len(body) && body[i] == ']' {
		return out, skipSpace(body, i+1) == len(body)
	}
	// Events of a batch are some hundred bytes each.
	out = make([]json.RawMessage, 0, min(maxEvents, len(body)/256+1))
	for {
		end, ok := scanValue(body, i, 1)
		if !ok || len(out) == maxEvents {
			return nil, false
		}
		out = append(out, body[i:end:end])
		i = skipSpace(body, end)
		if i >= len(body) {
			return nil, false
		}
		if body[i] == ']' {
			return out, skipSpace(body, i+1) == len(body)
		}
		if body[i] != ',' {
			return nil, false
		}
		i = skipSpace(body, i+1)
	}
}

func splitArraySlow(body []byte, maxEvents int) ([]json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	tok, err := dec.Token()
	if err != nil {
		return nil, syntaxFrom(body, err, dec.InputOffset())
	}
	if d, ok := tok.(json.Delim); !ok || d != '[' {
		return nil, &SyntaxError{0, "a batch must be a JSON array of events"}
	}
	var out []json.RawMessage
	for dec.More() {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, syntaxFrom(body, err, dec.InputOffset())
		}
		if len(out) == maxEvents {
			return nil, &TooManyEventsError{maxEvents}
		}
		out = append(out, raw)
	}
	if _, err := dec.Token(); err != nil {
		return nil, syntaxFrom(body, err, dec.InputOffset())
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, &SyntaxError{dec.InputOffset(), "unexpected data after the batch"}
	}
	return out, nil
}

func splitLines(body []byte, maxEvents int) ([]json.RawMessage, error) {
	var out []json.RawMessage
	off := 0
	for off < len(body) {
		end := bytes.IndexByte(body[off:], '\n')
		var line []byte
		next := len(body)
		if end >= 0 {
			line = body[off : off+end]
			next = off + end + 1
		} else {
			line = body[off:]
		}
		line = bytes.TrimSpace(line)
		if len(line) > 0 {
			if !validJSON(line) {
				return nil, syntaxAt(body[off:next], int64(off))
			}
			if len(out) == maxEvents {
				return nil, &TooManyEventsError{maxEvents}
			}
			out = append(out, json.RawMessage(line))
		}
		off = next
	}
	return out, nil
}

func syntaxAt(b []byte, base int64) error {
	var v any
	err := json.Unmarshal(b, &v)
	var se *json.SyntaxError
	if errors.As(err, &se) && se.Offset >= int64(len(b)) {
		// Cut short: the offset is where the text ends, and the message
		// says where the value it cuts began, as for a batch.
		start := len(b) - len(bytes.TrimLeft(b, " \t\r\n"))
		end := len(bytes.TrimRight(b, " \t\r\n"))
		return &SyntaxError{base + int64(end), fmt.Sprintf("unexpected end of JSON: the value from byte %d is cut short", base+int64(start))}
	}
	if errors.As(err, &se) {
		// encoding/json counts the bytes read, the bad one included.
		return &SyntaxError{base + max(se.Offset-1, 0), se.Error()}
	}
	return &SyntaxError{base, "invalid JSON"}
}

func syntaxFrom(body []byte, err error, off int64) error {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return syntaxAt(body, 0)
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		// The offset is where the body ends; off, where the value it cuts
		// short began.
		msg := "unexpected end of body"
		if off < int64(len(body)) && len(bytes.TrimSpace(body[off:])) > 0 {
			msg += fmt.Sprintf(": the value from byte %d is cut short", off)
		}
		return &SyntaxError{int64(len(body)), msg}
	}
	return &SyntaxError{off, err.Error()}
}

// eventParts is one event already split into its envelope and its data, for
// an intake path that does not receive CloudEvents JSON (the Arrow backfill).
type eventParts struct {
	SpecVersion, ID, Source, Type, Subject string
	// Time is the RFC 3339 text of the time; when HasAt, At is the time
	// itself (an Arrow timestamp) and Time is not read.
	Time  string
	At    time.Time
	HasAt bool
	// Data is the data already decoded (JSON types: string, float64, bool,
	// map[string]any; no nil values); when nil, RawData is its JSON text.
	Data    map[string]any
	RawData []byte
	// DataBound, when > 0, is an upper bound of the JSON length of Data
	// (the exact length is computed only beyond maxDataBytes); shape, when
	// set, lists the keys Data may hold, for a faster encoding.
	DataBound int
	shape     *jsonShape
	// decoded, when hasDecoded, is RawData already decoded.
	decoded    any
	hasDecoded bool
	// dataTooLarge: a part of the data alone is longer than data may be;
	// Data and RawData were not built.
	dataTooLarge bool
}

// prepareParts applies to an event already split into parts the checks
// Prepare applies to CloudEvents JSON — same order, same messages, same
// Record — plus one: family, when not empty, is the only family accepted
// (field "type"). now is the clock of the range check and of AcceptedAt.
// Keep it in step with Prepare: TestArrowMatchesPrepare compares both.
func (v *Validator) prepareParts(p *eventParts, boundSource, family string, now time.Time) (*Record, error) {
	if p.SpecVersion != "1.0" {
		if p.SpecVersion == "" {
			return nil, &fieldError{"specversion", "is required (\"1.0\")"}
		}
		return nil, &fieldError{"specversion", fmt.Sprintf("%q is not supported (\"1.0\")", p.SpecVersion)}
	}
	if err := checkText("id", p.ID, maxIDLen); err != nil {
		return nil, err
	}
	if err := checkText("source", p.Source, maxSourceLen); err != nil {
		return nil, err
	}
	if boundSource != "" && p.Source != boundSource {
		return nil, &fieldError{"source", fmt.Sprintf("%q is not the source this token may send for (%q)", p.Source, boundSource)}
	}
	if err := checkText("subject", p.Subject, maxSubjectLen); err != nil {
		return nil, err
	}
	if p.Type == "" {
		return nil, &fieldError{"type", "is required"}
	}
	fam, transition, err := SplitType(p.Type)
	if err != nil {
		return nil, &fieldError{"type", err.Error()}
	}
	if family != "" && fam != family {
		return nil, &fieldError{"type", fmt.Sprintf("%q is not of family %q, the family of this request", p.Type, family)}
	}
	schema, ok := v.contract.types[p.Type]
	if !ok {
		return nil, &fieldError{"type", fmt.Sprintf("unknown event type %q", p.Type)}
	}
	t := p.At
	if !p.HasAt {
		if p.Time == "" {
			return nil, &fieldError{"time", "is required"}
		}
		if t, err = parseRFC3339(p.Time); err != nil {
			return nil, &fieldError{"time", fmt.Sprintf("%q is not an RFC 3339 time with offset", p.Time)}
		}
	}
	if t.Year() < 2000 || t.After(now.Add(24*time.Hour)) {
		text := p.Time
		if p.HasAt {
			text = t.Format(time.RFC3339Nano)
		}
		return nil, &fieldError{"time", fmt.Sprintf("%s is out of range (year 2000 to one day ahead)", text)}
	}
	var data any
	if p.dataTooLarge {
		return nil, &fieldError{"data", fmt.Sprintf("is larger than %d bytes", maxDataBytes)}
	}
	if p.Data != nil {
		if (p.DataBound <= 0 || p.DataBound > maxDataBytes) && jsonSize(p.Data) > maxDataBytes {
			return nil, &fieldError{"data", fmt.Sprintf("is larger than %d bytes", maxDataBytes)}
		}
		data = p.Data
	} else {
		if len(p.RawData) == 0 || bytes.Equal(p.RawData, []byte("null")) {
			return nil, &fieldError{"data", "is required"}
		}
		if len(p.RawData) > maxDataBytes {
			return nil, &fieldError{"data", fmt.Sprintf("is larger than %d bytes", maxDataBytes)}
		}
		if p.hasDecoded {
			data = p.decoded
		} else {
			var decoded any
			if err := json.Unmarshal(p.RawData, &decoded); err != nil {
				var ute *json.UnmarshalTypeError
				if errors.As(err, &ute) && strings.HasPrefix(ute.Value, "number ") {
					return nil, &fieldError{"data", fmt.Sprintf("holds %s, out of the range of a number (a finite float64)", ute.Value)}
				}
				return nil, &fieldError{"data", "is not valid JSON"}
			}
			data = decoded
		}
	}
	w := walker{refs: v.refs, pseudo: v.pseudoFn}
	if err := w.validate(schema, data, "", "data"); err != nil {
		return nil, err
	}
	clean, err := p.marshal(data)
	if err != nil {
		return nil, fmt.Errorf("encode data: %w", err)
	}
	return &Record{
		Source: p.Source, ID: p.ID, Family: fam, Transition: transition,
		Subject: p.Subject, Time: t.UTC(), AcceptedAt: now.UTC(), Data: clean,
	}, nil
}
