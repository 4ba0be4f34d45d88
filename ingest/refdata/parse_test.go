package refdata

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseGood(t *testing.T) {
	date := func(s string) time.Time { d, _ := time.Parse(time.DateOnly, s); return d }
	tests := []struct {
		name, kind, ct, in string
		want               *Set
	}{
		{"units csv", "units", "text/csv; charset=utf-8",
			"\ufeffcode,parent,name,level,kind,lat,lon,valid_to,successors,note\n" +
				"L-26761,L-760,Phường Cầu Kho,2,legacy_ward,10.757783,106.688821,2025-07-01,26758,merged\n" +
				"L-26737,L-760,Phường Đa Kao,2,legacy_ward,,,2025-07-01, 26740 ; 26737 ,\n",
			&Set{Units: []Unit{
				{Code: "L-26761", Parent: "L-760", Name: "Phường Cầu Kho", Level: 2, Kind: KindLegacyWard, Lat: 10.757783, Lon: 106.688821,
					ValidTo: MergerDate, Successors: []string{"26758"}},
				{Code: "L-26737", Parent: "L-760", Name: "Phường Đa Kao", Level: 2, Kind: KindLegacyWard, ValidTo: MergerDate,
					Successors: []string{"26740", "26737"}},
			}}},
		{"units json", "units", "application/json",
			`[{"code":"26740","parent":"79","name":"Phường Sài Gòn","level":1,"kind":"ward","lat":10.78,"lon":106.7,` +
				`"population":47000,"valid_from":"2025-07-01T00:00:00Z","successors":null,"note":"x"},` +
				`{"code":"L-760","parent":"79","level":1,"kind":"legacy_district","successors":["26740","26758"]}]`,
			&Set{Units: []Unit{
				{Code: "26740", Parent: "79", Name: "Phường Sài Gòn", Level: 1, Kind: KindWard, Lat: 10.78, Lon: 106.7, Population: 47000, ValidFrom: MergerDate},
				{Code: "L-760", Parent: "79", Level: 1, Kind: KindLegacyDistrict, Successors: []string{"26740", "26758"}},
			}}},
		{"procedures csv, columns in any order", "procedures", "csv",
			"service_level,code,name,deadline_hours,fee\n" +
				"offline,TP-011,\"Chứng thực chữ ký, văn bản\",8,true\n",
			&Set{Procedures: []Procedure{{Code: "TP-011", Name: "Chứng thực chữ ký, văn bản", DeadlineHours: 8, ServiceLevel: ServiceOffline, Fee: true}}}},
		{"procedures json", "procedures", "json",
			`[{"code":"CA-003","name":"Xác nhận thông tin về cư trú","deadline_days":0.5,"service_level":"full_online","fee":false,"unit_kind":"ward"}]`,
			&Set{Procedures: []Procedure{{Code: "CA-003", Name: "Xác nhận thông tin về cư trú", DeadlineDays: 0.5, ServiceLevel: ServiceFullOnline, UnitKind: KindWard}}}},
		{"officers csv", "officers", "text/csv", "id,unit,name,title\nCB-26740-01,26740,Nguyễn Văn An,Chủ tịch UBND\n",
			&Set{Officers: []Officer{{ID: "CB-26740-01", Unit: "26740", Name: "Nguyễn Văn An", Title: "Chủ tịch UBND"}}}},
		{"cameras json", "cameras", "application/json", `[{"id":"CAM-TTH406","code":"TTH 406","lat":10.79,"lon":106.69,"unit":"26737","type":"tth","ptz":true}]`,
			&Set{Cameras: []Camera{{ID: "CAM-TTH406", Code: "TTH 406", Lat: 10.79, Lon: 106.69, Unit: "26737", Type: "tth", PTZ: true}}}},
		{"calendar csv", "calendar", "text/csv", "date,kind,name\n2026-08-22,workday,Làm bù\n2026-08-31,holiday,Nghỉ bù\n",
			&Set{Calendar: []Day{{Date: date("2026-08-22"), Kind: DayWorkday, Name: "Làm bù"}, {Date: date("2026-08-31"), Kind: DayHoliday, Name: "Nghỉ bù"}}}},
		{"calendar csv, byte order mark before a quoted header", "calendar", "text/csv", "\ufeff\"date\",\"kind\",\"name\"\r\n2026-08-31,holiday,Nghỉ bù\r\n",
			&Set{Calendar: []Day{{Date: date("2026-08-31"), Kind: DayHoliday, Name: "Nghỉ bù"}}}},
		{"json with a byte order mark", "officers", "json", "\ufeff[{\"id\":\"CB-1\",\"unit\":\"26740\"}]",
			&Set{Officers: []Officer{{ID: "CB-1", Unit: "26740"}}}},
		{"empty json array", "officers", "json", `[]`, &Set{}},
		{"header only", "officers", "csv", "id,unit\n", &Set{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.kind, tt.ct, strings.NewReader(tt.in))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			got.lines = nil // TestValidateNamesCSVLines
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Parse =\n%+v\nwant\n%+v", got, tt.want)
			}
		})
	}
}

func TestParseBad(t *testing.T) {
	tests := []struct {
		name, kind, ct, in string
		want               []string
	}{
		{"unknown kind", "wards", "csv", "code\n1\n", []string{`unknown kind of reference data "wards"`}},
		{"unknown content type", "units", "application/xml", "", []string{`content type "application/xml": want text/csv or application/json`}},
		{"empty csv", "units", "csv", "", []string{"empty CSV"}},
		{"no key column", "units", "csv", "name,parent\nX,79\n", []string{`units line 1: the header has no "code" column`}},
		{"unknown column", "units", "csv", "code,colour\n1,red\n", []string{`units line 1: colour is not a field of units`}},
		{"duplicate column", "units", "csv", "code,name,name\n1,a,b\n", []string{`units line 1: name appears twice in the header`}},
		{"bad number", "units", "csv", "code,lat\n26740,10.7\n26758,north\n", []string{`units line 3 (code "26758"): lat "north" is not a number`}},
		{"bad level", "units", "csv", "code,level\n26740,300\n", []string{`units line 2 (code "26740"): level "300" is not a whole number from 0 to 255`}},
		{"bad date", "units", "csv", "code,valid_from\n26740,1/7/2025\n", []string{`units line 2 (code "26740"): valid_from "1/7/2025" is not a date`}},
		{"bad bool", "procedures", "csv", "code,fee\nTP-001,maybe\n", []string{`procedures line 2 (code "TP-001"): fee "maybe" is not true or false`}},
		{"empty key", "officers", "csv", "id,unit\n,26740\n", []string{`officers line 2: id is empty`}},
		{"wrong field count", "officers", "csv", "id,unit\nCB-1,26740,extra\nCB-2\n", []string{`officers line 2: wrong number of fields`, `officers line 3: wrong number of fields`}},
		{"several csv problems", "cameras", "csv", "id,lat,lon,ptz\nCAM-1,x,106,true\nCAM-2,10,y,perhaps\n", []string{
			`cameras line 2 (id "CAM-1"): lat "x" is not a number`,
			`cameras line 3 (id "CAM-2"): lon "y" is not a number`,
			`cameras line 3 (id "CAM-2"): ptz "perhaps" is not true or false`,
		}},
		{"not an array", "units", "json", `{"code":"1"}`, []string{"want a JSON array of objects"}},
		{"invalid json", "units", "json", `[{"code":"1",}]`, []string{`units[0]: invalid JSON`}},
		{"truncated json", "units", "json", `[{"code":"1"}`, []string{`unexpected end of JSON input`}},
		{"element not an object", "units", "json", `[{"code":"1"}, 42]`, []string{`units[1]: want an object`}},
		{"json missing key", "cameras", "json", `[{"name":"x"}]`, []string{`cameras[0]: id is missing`}},
		{"json unknown field", "units", "json", `[{"code":"1","colour":"red"}]`, []string{`units[0] (code "1"): colour is not a field of units`}},
		{"json wrong type", "units", "json", `[{"code":"1","lat":"north"}]`, []string{`units[0] (code "1"): lat "north" is not a number`}},
		{"json array for a scalar", "units", "json", `[{"code":"1","name":["a","b"]}]`, []string{`units[0] (code "1"): name is an array, want a single value`}},
		{"json object value", "units", "json", `[{"code":"1","successors":[{"a":1}]}]`, []string{`units[0] (code "1"): successors is an object or array`}},
		{"not utf-8", "units", "csv", "code,name\n26740,Ph\xf0\xf0ng\n", []string{`units: line 2: byte 18 is not UTF-8; save the file as UTF-8`}},
		{"not utf-8 in json", "units", "json", "[{\"code\":\"1\",\n\"name\":\"\xc3\"}]", []string{`units: line 2: byte 22 is not UTF-8`}},
		{"json after the array", "units", "json", `[{"code":"1"}] [{"code":"2"}]`, []string{`more JSON after the array`}},
		{"header column without a name", "calendar", "csv", "date,kind,name,\n2026-08-31,holiday,x,\n", []string{`calendar line 1: column 4 of the header has no name`}},
		{"json bad date", "calendar", "json", `[{"date":"31/08/2026","kind":"holiday"}]`, []string{`calendar[0] (date "31/08/2026"): date "31/08/2026" is not a date`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.kind, tt.ct, strings.NewReader(tt.in))
			if err == nil {
				t.Fatalf("Parse accepted bad input, got %+v", got)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error\n%s\ndoes not contain %q", err, w)
				}
			}
		})
	}
}

func TestParseTooLarge(t *testing.T) {
	row := "CB-1,26740," + strings.Repeat("a", 1000) + "\n"
	in := strings.NewReader("id,unit,name\n" + strings.Repeat(row, MaxParseBytes/len(row)+10))
	if _, err := Parse("officers", "csv", in); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("Parse of an input over %d bytes: %v", MaxParseBytes, err)
	}
}

// TestParseRoundTrip checks that the bundled set, written as JSON by
// encoding/json, parses back to the same set: what the API serves, it
// accepts.
func TestParseRoundTrip(t *testing.T) {
	s := mustHCMC(t)
	for _, kind := range Kinds {
		t.Run(kind, func(t *testing.T) {
			var v any
			switch kind {
			case "units":
				v = s.Units
			case "procedures":
				v = s.Procedures
			case "officers":
				v = s.Officers
			case "cameras":
				v = s.Cameras
			case "calendar":
				v = s.Calendar
			}
			b, err := json.Marshal(v)
			if err != nil {
				t.Fatal(err)
			}
			part, err := Parse(kind, "application/json", bytes.NewReader(b))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			got, err := (&Set{}).With(kind, part)
			if err != nil {
				t.Fatal(err)
			}
			want, _ := (&Set{}).With(kind, s)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("round trip of %s differs", kind)
			}
		})
	}
}

func TestSetWith(t *testing.T) {
	s := smallSet()
	part := &Set{Officers: []Officer{{ID: "CB-X", Unit: "nowhere"}}}
	next, err := s.With("officers", part)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Officers) != 1 || s.Officers[0].ID != "CB-26740-01" {
		t.Error("With modified the original set")
	}
	var ve *ValidationError
	if err := next.Validate(); !errors.As(err, &ve) || !strings.Contains(err.Error(), `unit "nowhere" does not exist`) {
		t.Errorf("Validate of the new set: %v", err)
	}
	if _, err := s.With("wards", part); err == nil {
		t.Error("With accepted an unknown kind")
	}
}

// The problems Validate finds in rows read from a CSV file are named by
// their line, as Parse's are.
func TestValidateNamesCSVLines(t *testing.T) {
	part, err := Parse("officers", "text/csv", strings.NewReader("id,unit,name\nCB-1,26740,A\n\nCB-1,26740,B\nCB-2,00000,C\n"))
	if err != nil {
		t.Fatal(err)
	}
	next, err := smallSet().With("officers", part)
	if err != nil {
		t.Fatal(err)
	}
	err = next.Validate()
	for _, want := range []string{`officers line 4 (id "CB-1"): id "CB-1" is not unique (also line 2)`, `officers line 5 (id "CB-2"): unit "00000" does not exist`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("got %v, want %q", err, want)
		}
	}
}
