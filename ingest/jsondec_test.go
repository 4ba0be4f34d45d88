package ingest

import (
	"encoding/json"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/vn-ioc/ioc/internal/jsonx"
)

var jsonSamples = []string{
	`{}`, `[]`, ` {"a" : [1, 2.5e3, -0.1, true, false, null, "x"]} `, `"\u00e9\ud83d\ude00\ud800x\/\b"`,
	`{"a":1,"a":2}`, `[1,]`, `{"a":1,}`, `01`, `1.`, `-`, `1e`, `1e+`, `"\x"`, `"\'"`, "\"\x01\"", "\"\xff\xfe\"",
	`tru`, `nul`, `{"a"}`, `{"a":}`, `[1 2]`, `{"a":1 "b":2}`, `1 2`, `"abc`, `"\u12"`, `"\uD834\uDD1E"`,
	"\"caf\xc3\xa9\"", "\"\xed\xa0\x80\"", `{"k":{"l":[{"m":{}}]}}`, strings.Repeat("[", 100) + strings.Repeat("]", 100),
	strings.Repeat("[", 10001) + strings.Repeat("]", 10001), `1e400`, `-1e400`, `{"a":1e999}`, `123456789012345678901234567890`,
	goodDossier, `{"ID":"1","id":"2"}`, `[{"a":1},{"b":}]`,
}

func FuzzJSONDecoder(f *testing.F) {
	for _, s := range jsonSamples {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		checkJSONDecoder(t, s)
	})
}

func TestJSONDecoderMatchesEncodingJSON(t *testing.T) {
	for _, s := range jsonSamples {
		checkJSONDecoder(t, s)
	}
}

func checkJSONDecoder(t *testing.T, s string) {
	t.Helper()
	if got, want := validJSON(s), json.Valid([]byte(s)); got != want {
		t.Fatalf("validJSON(%q) = %v, json.Valid %v", s, got, want)
	}
	if got, want := validJSON([]byte(s)), json.Valid([]byte(s)); got != want {
		t.Fatalf("validJSON([]byte %q) = %v, json.Valid %v", s, got, want)
	}
	d := jdec{s: s}
	v, ok := d.value()
	ok = ok && d.end()
	var want any
	err := json.Unmarshal([]byte(s), &want)
	if ok {
		if err != nil {
			t.Fatalf("%q: fast decoder accepted, encoding/json: %v", s, err)
		}
		if !reflect.DeepEqual(v, want) {
			t.Fatalf("%q: fast decoder %#v, encoding/json %#v", s, v, want)
		}
	}
	// The fast decoder refuses valid input only when it is too deep.
	if !ok && err == nil && jsonDepth(s) < maxFastDepth {
		t.Fatalf("%q: fast decoder refused valid JSON", s)
	}
}

// jsonDepth is the deepest nesting of valid JSON.
func jsonDepth(s string) int {
	dec := json.NewDecoder(strings.NewReader(s))
	depth, deepest := 0, 0
	for {
		tok, err := dec.Token()
		if err != nil {
			return deepest
		}
		switch tok {
		case json.Delim('['), json.Delim('{'):
			depth++
			deepest = max(deepest, depth)
		case json.Delim(']'), json.Delim('}'):
			depth--
		}
	}
}

func FuzzSplitArrayFast(f *testing.F) {
	for _, s := range []string{` [ {"a":1} , {"b":2} ] `, `[]`, `[1,2,3]`, `[{"a":1},{"b":}]`, `[{"a":1}`, `[{"a":1}] x`,
		`{"a":1}`, `[[[]]]`, "[" + goodDossier + "," + goodDossier + "]"} {
		f.Add(s, 3)
	}
	f.Fuzz(func(t *testing.T, body string, max int) {
		if max < 0 {
			return
		}
		fast, ok := splitArrayFast([]byte(body), max)
		slow, err := splitArraySlow([]byte(body), max)
		if !ok {
			return
		}
		if err != nil || len(fast) != len(slow) {
			t.Fatalf("%q: fast %d events, slow %d: %v", body, len(fast), len(slow), err)
		}
		for i := range fast {
			if string(fast[i]) != string(slow[i]) {
				t.Fatalf("%q: event %d: fast %q, slow %q", body, i, fast[i], slow[i])
			}
		}
	})
}

func TestDecodeEnvelopeLargeData(t *testing.T) {
	v := testValidator(t)
	big := strings.Replace(goodDossier, `"procedure_code":"TP-001"`, `"procedure_code":"`+strings.Repeat("x", maxDataBytes)+`"`, 1)
	for _, event := range []string{big, strings.Replace(big, `"data":{`, `"x":1, "data":{`, 1)} {
		var ce CloudEvent
		p, ok := decodeEnvelope([]byte(event), &ce)
		if !ok || p.hasDecoded || len(p.RawData) <= maxDataBytes {
			t.Fatalf("ok %v, decoded %v, %d bytes of data", ok, p.hasDecoded, len(p.RawData))
		}
		if _, err := v.Prepare([]byte(event), ""); err == nil || err.Error() != "data: is larger than 65536 bytes" {
			t.Fatalf("error %v", err)
		}
	}
	// Data within bounds followed by much else is decoded.
	event := strings.TrimSuffix(goodDossier, "}") + `,"pad":"` + strings.Repeat("x", maxDataBytes) + `"}`
	var ce CloudEvent
	if p, ok := decodeEnvelope([]byte(event), &ce); !ok || !p.hasDecoded {
		t.Fatalf("ok %v, decoded %v", ok, p.hasDecoded)
	}
	if _, err := v.Prepare([]byte(event), "s"); err != nil {
		t.Fatal(err)
	}
}

func FuzzDecodeEnvelope(f *testing.F) {
	for _, s := range []string{goodDossier, `{"ID":"x"}`, `null`, `{"data":null}`, `{"id":7}`, `{"id":null,"id":"a"}`,
		`{"data":{"a":1e400}}`, `{"specversion":"1.0","data":[1,{"b":"\u00e9"}],"x":{}}`, ` {"time":"t"} `, `{"data":1}x`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var fast CloudEvent
		p, ok := decodeEnvelope([]byte(s), &fast)
		if !ok {
			return
		}
		var slow CloudEvent
		if err := json.Unmarshal([]byte(s), &slow); err != nil {
			t.Fatalf("%q: fast accepted, encoding/json: %v", s, err)
		}
		if !reflect.DeepEqual(fast, slow) && !(len(fast.Data) == 0 && len(slow.Data) == 0) {
			t.Fatalf("%q: fast %#v, encoding/json %#v", s, fast, slow)
		}
		if p.ID != slow.ID || p.Source != slow.Source || p.Type != slow.Type || p.Subject != slow.Subject ||
			p.Time != slow.Time || p.SpecVersion != slow.SpecVersion || string(p.RawData) != string(slow.Data) {
			t.Fatalf("%q: parts %+v", s, p)
		}
		if p.hasDecoded != (len(slow.Data) > 0 && len(slow.Data) <= maxDataBytes) {
			t.Fatalf("%q: data decoded %v", s, p.hasDecoded)
		}
		if p.hasDecoded {
			var data any
			if err := json.Unmarshal(slow.Data, &data); err != nil {
				t.Fatalf("%q: fast decoded data encoding/json refuses: %v", s, err)
			}
			if !reflect.DeepEqual(p.decoded, data) {
				t.Fatalf("%q: data %#v, encoding/json %#v", s, p.decoded, data)
			}
		}
	})
}

func FuzzAppendJSONFloat(f *testing.F) {
	for _, x := range []float64{0, math.Copysign(0, -1), 1, -1, 1e15 - 1, 1e15, 1e21, 123.456, 1e-7, 9007199254740993, 5e-324} {
		f.Add(x)
	}
	f.Fuzz(func(t *testing.T, x float64) {
		want, err := json.Marshal(x)
		if err != nil {
			return
		}
		if got := jsonx.AppendFloat(nil, x); string(got) != string(want) {
			t.Fatalf("%v: %s, encoding/json %s", x, got, want)
		}
	})
}
