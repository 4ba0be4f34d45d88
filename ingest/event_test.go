package ingest

import (
	"encoding/json"
	"strings"
	"testing"
)

type unitSet map[string]bool

func (u unitSet) Has(kind, code string) bool { return kind != "unit" || u[code] }

func testValidator(t testing.TB) *Validator {
	t.Helper()
	c, err := LoadContract()
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewPseudonymizer([]byte("0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	return NewValidator(c, unitSet{"26740": true}, p)
}

const goodDossier = `{"specversion":"1.0","id":"1","source":"s","type":"vn.ioc.dossier.received","subject":"D1",
"time":"2024-03-01T09:00:00+07:00","data":{"procedure_code":"TP-001","channel":"online","unit":"26740",
"due_at":"2024-03-08T17:00:00+07:00","applicant":{"kind":"citizen","id":"079123456789","name":"Lê Văn C"}}}`

func TestContractCoversEveryTypeOfTheBrief(t *testing.T) {
	c, err := LoadContract()
	if err != nil {
		t.Fatal(err)
	}
	want := "camera.detection camera.status dossier.apology_issued dossier.assigned dossier.digitized dossier.due_changed " +
		"dossier.paid dossier.received dossier.resolved dossier.returned dossier.supplement_received dossier.supplement_requested " +
		"dossier.synced dossier.withdrawn feedback.assigned feedback.closed feedback.rated feedback.received feedback.resolved " +
		"indicator.reported survey.submitted"
	got := strings.ReplaceAll(strings.Join(c.Types(), " "), "vn.ioc.", "")
	if got != want {
		t.Fatalf("types:\n got %s\nwant %s", got, want)
	}
	for _, typ := range c.Types() {
		fam, _, _ := SplitType(typ)
		if tables[fam] == nil {
			t.Errorf("%s has no table", typ)
		}
	}
}

func TestPrepareGoodEventPseudonymizes(t *testing.T) {
	v := testValidator(t)
	rec, err := v.Prepare([]byte(goodDossier), "s")
	if err != nil {
		t.Fatal(err)
	}
	if rec.Family != "dossier" || rec.Transition != "received" || rec.Time.Hour() != 2 || rec.Key() != "s/1" {
		t.Fatalf("record %+v", rec)
	}
	if strings.Contains(string(rec.Data), "079123456789") || strings.Contains(string(rec.Data), "Lê Văn C") {
		t.Fatalf("clear personal data kept: %s", rec.Data)
	}
	if !strings.Contains(string(rec.Data), PseudonymPrefix) {
		t.Fatalf("no pseudonym: %s", rec.Data)
	}
}

func TestPrepareRejectsNamingTheField(t *testing.T) {
	v := testValidator(t)
	edit := func(f func(m map[string]any)) string {
		var m map[string]any
		if err := json.Unmarshal([]byte(goodDossier), &m); err != nil {
			t.Fatal(err)
		}
		f(m)
		b, _ := json.Marshal(m)
		return string(b)
	}
	data := func(m map[string]any) map[string]any { return m["data"].(map[string]any) }
	cases := []struct {
		name, event, field, bound string
	}{
		{"not an object", `[1,2]`, "event", ""},
		{"null", `null`, "event", ""},
		{"wrong specversion", edit(func(m map[string]any) { m["specversion"] = "0.3" }), "specversion", ""},
		{"missing id", edit(func(m map[string]any) { delete(m, "id") }), "id", ""},
		{"id of wrong type", edit(func(m map[string]any) { m["id"] = 7 }), "id", ""},
		{"other source than the token's", goodDossier, "source", "other"},
		{"unknown type", edit(func(m map[string]any) { m["type"] = "vn.ioc.dossier.teleported" }), "type", ""},
		{"malformed type", edit(func(m map[string]any) { m["type"] = "dossier.received" }), "type", ""},
		{"missing subject", edit(func(m map[string]any) { m["subject"] = "" }), "subject", ""},
		{"time without offset", edit(func(m map[string]any) { m["time"] = "2024-03-01T09:00:00" }), "time", ""},
		{"time far in the future", edit(func(m map[string]any) { m["time"] = "2999-01-01T00:00:00Z" }), "time", ""},
		{"time with a one-digit hour", edit(func(m map[string]any) { m["time"] = "2024-03-01T9:00:00+07:00" }), "time", ""},
		{"time with a comma before its fraction", edit(func(m map[string]any) { m["time"] = "2024-03-01T09:00:00,5+07:00" }), "time", ""},
		{"time with a space for T", edit(func(m map[string]any) { m["time"] = "2024-03-01 09:00:00+07:00" }), "time", ""},
		{"date-time with a one-digit hour", edit(func(m map[string]any) { data(m)["due_at"] = "2024-03-08T8:00:00Z" }), "data.due_at", ""},
		{"missing data", edit(func(m map[string]any) { delete(m, "data") }), "data", ""},
		{"missing required field", edit(func(m map[string]any) { delete(data(m), "procedure_code") }), "data.procedure_code", ""},
		{"enum", edit(func(m map[string]any) { data(m)["channel"] = "fax" }), "data.channel", ""},
		{"unknown unit", edit(func(m map[string]any) { data(m)["unit"] = "00000" }), "data.unit", ""},
		{"bad nested enum", edit(func(m map[string]any) { data(m)["applicant"].(map[string]any)["kind"] = "alien" }), "data.applicant.kind", ""},
		{"bad date-time", edit(func(m map[string]any) { data(m)["due_at"] = "tomorrow" }), "data.due_at", ""},
		{"wrong type", edit(func(m map[string]any) { data(m)["fee_paid_online"] = "yes" }), "data.fee_paid_online", ""},
		{"unknown data field (could carry personal data)", edit(func(m map[string]any) { data(m)["extra_phone"] = "0903123456" }), "data.extra_phone", ""},
		{"unknown nested field", edit(func(m map[string]any) { data(m)["applicant"].(map[string]any)["phone"] = "0903" }), "data.applicant.phone", ""},
		{"date-time beyond ClickHouse's range", edit(func(m map[string]any) { data(m)["due_at"] = "2200-01-01T00:00:00Z" }), "data.due_at", ""},
		{"date-time before 2000", edit(func(m map[string]any) { data(m)["due_at"] = "1960-01-01T00:00:00Z" }), "data.due_at", ""},
		{"data content type", edit(func(m map[string]any) { m["datacontenttype"] = "text/xml" }), "datacontenttype", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := v.Prepare([]byte(c.event), c.bound)
			fe, ok := err.(*fieldError)
			if !ok || fe.Field != c.field {
				t.Fatalf("error %v, want one naming %q", err, c.field)
			}
		})
	}
}

func TestNumbersAndPatterns(t *testing.T) {
	v := testValidator(t)
	mk := func(typ, data string) []byte {
		return []byte(`{"specversion":"1.0","id":"1","source":"s","type":"vn.ioc.` + typ + `","subject":"x","time":"2024-03-01T09:00:00Z","data":` + data + `}`)
	}
	cases := []struct {
		name, typ, data, field string
	}{
		{"rating above 5", "feedback.rated", `{"rating":6}`, "data.rating"},
		{"rating not integer", "feedback.rated", `{"rating":4.5}`, "data.rating"},
		{"level above 4", "camera.detection", `{"kind":"congestion","level":5}`, "data.level"},
		{"negative count", "camera.detection", `{"kind":"vehicle_count","counts":{"car":-1}}`, "data.counts.car"},
		{"bad period", "indicator.reported", `{"unit":"26740","period":"2024-13","value":1}`, "data.period"},
		{"good period", "indicator.reported", `{"unit":"26740","period":"2024-Q2","value":1}`, ""},
		{"good detection", "camera.detection", `{"kind":"flooding","level":2,"confidence":0.9}`, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := v.Prepare(mk(c.typ, c.data), "")
			if c.field == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			fe, ok := err.(*fieldError)
			if !ok || fe.Field != c.field {
				t.Fatalf("error %v, want one naming %q", err, c.field)
			}
		})
	}
}

func TestSplitBody(t *testing.T) {
	cases := []struct {
		name, ct, body string
		n              int
		offset         int64 // -1: no error
	}{
		{"single", ContentSingle, `{"a":1}`, 1, -1},
		{"batch", ContentBatch, ` [ {"a":1} , {"b":2} ] `, 2, -1},
		{"ndjson with blank lines", ContentNDJSON, "{\"a\":1}\n\n{\"b\":2}\r\n", 2, -1},
		{"batch syntax", ContentBatch, `[{"a":1},{"b":}]`, 0, 14},
		{"ndjson syntax on line 2", ContentNDJSON, "{\"a\":1}\n{\"b\" 2}\n", 0, 13},
		{"truncated batch", ContentBatch, `[{"a":1}`, 0, 8},
		{"truncated event", ContentBatch, `[{"a":1},{"b":`, 0, 14},
		{"trailing garbage", ContentBatch, `[{"a":1}] x`, 0, 10},
		{"not an array", ContentBatch, `{"a":1}`, 0, 0},
		{"truncated single event", ContentSingle, `{"a":1, "b":`, 0, 12},
		{"truncated last line", ContentNDJSON, "{\"a\":1}\n{\"b\":", 0, 13},
		{"truncated line before another", ContentNDJSON, "{\"a\":1}\n{\"b\":\n{\"c\":1}", 0, 13},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			raws, err := SplitBody(c.ct, []byte(c.body), 100)
			if c.offset < 0 {
				if err != nil || len(raws) != c.n {
					t.Fatalf("got %d, %v", len(raws), err)
				}
				return
			}
			se, ok := err.(*SyntaxError)
			if !ok || se.Offset != c.offset {
				t.Fatalf("error %v, want syntax error at %d", err, c.offset)
			}
			if strings.HasPrefix(c.name, "truncated") && c.name != "truncated batch" && !strings.Contains(se.Msg, "is cut short") {
				t.Errorf("message %q does not say where the value cut short began", se.Msg)
			}
		})
	}
	if _, err := SplitBody(ContentBatch, []byte(`[1,2,3]`), 2); err == nil {
		t.Fatal("limit not enforced")
	}
}

func FuzzSplitAndPrepare(f *testing.F) {
	f.Add(ContentBatch, []byte("["+goodDossier+"]"))
	f.Add(ContentNDJSON, []byte(strings.ReplaceAll(goodDossier, "\n", " ")+"\n{}"))
	f.Add(ContentSingle, []byte(goodDossier))
	f.Add(ContentBatch, []byte(`[{"specversion":"1.0","data":{"rating":1e400}}]`))
	v := testValidator(f)
	f.Fuzz(func(t *testing.T, ct string, body []byte) {
		raws, err := SplitBody(ct, body, 1000)
		if err != nil {
			if se, ok := err.(*SyntaxError); ok && (se.Offset < 0 || se.Offset > int64(len(body))) {
				t.Fatalf("offset %d outside the body of %d bytes", se.Offset, len(body))
			}
			return
		}
		for _, raw := range raws {
			rec, err := v.Prepare(raw, "")
			if err == nil && (rec.ID == "" || rec.Source == "" || !json.Valid(rec.Data)) {
				t.Fatalf("accepted an incomplete record %+v", rec)
			}
		}
	})
}

// Text that is not UTF-8, or that escapes half a surrogate pair, is refused
// naming the field: a JSON reader would turn it into U+FFFD, so two ids (or
// two citizens' names) differing only there would become one. Valid pairs
// and escaped backslashes pass.
func TestPrepareRefusesTextNotUTF8(t *testing.T) {
	v := testValidator(t)
	set := func(path []string, value string) string {
		var m map[string]any
		if err := json.Unmarshal([]byte(goodDossier), &m); err != nil {
			t.Fatal(err)
		}
		o := m
		for _, k := range path[:len(path)-1] {
			o = o[k].(map[string]any)
		}
		o[path[len(path)-1]] = "MARK"
		b, _ := json.Marshal(m)
		return strings.Replace(string(b), `"MARK"`, value, 1)
	}
	for _, c := range []struct {
		name  string
		path  []string
		value string
		field string // "" when accepted
	}{
		{"id with a Latin-1 byte", []string{"id"}, "\"a\xff\"", "id"},
		{"subject in TCVN3", []string{"subject"}, "\"HS-\xd0\"", "subject"},
		{"applicant name in VNI", []string{"data", "applicant", "name"}, "\"Nguy\xe3n\"", "data.applicant.name"},
		{"lone high surrogate", []string{"data", "applicant", "name"}, `"A\ud800B"`, "data.applicant.name"},
		{"lone low surrogate", []string{"id"}, `"\udc00"`, "id"},
		{"a pair", []string{"data", "applicant", "name"}, `"A\ud83d\ude00"`, ""},
		{"an escaped backslash before ud800", []string{"data", "applicant", "name"}, `"A\\ud800"`, ""},
		{"Vietnamese in UTF-8", []string{"data", "applicant", "name"}, `"Nguyễn Thị Ánh"`, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := v.Prepare([]byte(set(c.path, c.value)), "")
			if c.field == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			fe, ok := err.(*fieldError)
			if !ok || fe.Field != c.field || !strings.Contains(fe.Msg, "not valid UTF-8") {
				t.Fatalf("error %v, want %q: not valid UTF-8", err, c.field)
			}
		})
	}
}

func TestParseRFC3339(t *testing.T) {
	for s, ok := range map[string]bool{
		"2026-01-20T08:30:00Z": true, "2026-01-20T08:30:00.5+07:00": true, "2026-01-20T08:30:00.123456789-05:30": true,
		"2026-01-20T8:30:00Z": false, "2026-01-20T08:30:00,5Z": false, "2026-01-20t08:30:00Z": false,
		"2026-01-20T08:30:00": false, "2026-01-20T08:30:00.Z": false, "2026-01-20T08:30:00.1234567890Z": false,
		"2026-13-20T08:30:00Z": false, "2026-01-20T08:30:00+0700": false, "2026-01-20T08:30:00+07:00 ": false,
	} {
		if _, err := parseRFC3339(s); (err == nil) != ok {
			t.Errorf("parseRFC3339(%q): %v, want ok %v", s, err, ok)
		}
	}
}

// A number JSON can write but not hold (1e400) is named as such, not as
// invalid JSON.
func TestPrepareNumberOutOfRange(t *testing.T) {
	v := testValidator(t)
	ev := `{"specversion":"1.0","id":"i1","source":"s","type":"vn.ioc.indicator.reported","subject":"dti.total","time":"2024-03-01T09:00:00+07:00",` +
		`"data":{"unit":"79","period":"2024","value":1e400,"measure":"index","source":"x"}}`
	_, err := v.Prepare([]byte(ev), "")
	if err == nil || !strings.Contains(err.Error(), "1e400, out of the range of a number") {
		t.Fatalf("error %v", err)
	}
}
