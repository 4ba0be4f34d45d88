package ingest

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

// legacyRow is the writer's former row-by-row decoding (encoding/json into
// the data structs, one []any per row): the reference the column builders
// and the fast readers must match.
func legacyRow(family string, line []byte) ([]any, string, error) {
	r := &Record{}
	if err := json.Unmarshal(line, r); err != nil {
		return nil, "", fmt.Errorf("undecodable record: %w", err)
	}
	common := []any{r.Source, r.ID, r.Transition, r.Subject, r.Time.Truncate(time.Second), uint32(r.Time.Nanosecond() / 1000), r.AcceptedAt.Truncate(time.Second)}
	switch family {
	case FamilyDossier:
		var d dossierData
		if err := json.Unmarshal(r.Data, &d); err != nil {
			return nil, "", fmt.Errorf("decode dossier data: %w", err)
		}
		due, err := ts(d.DueAt)
		if err != nil {
			return nil, "", fmt.Errorf("data.due_at: %w", err)
		}
		return append(common, d.Unit, d.ProcedureCode, d.ProcedureName, d.Field, d.ServiceLevel, d.Channel, due,
			d.Applicant.Kind, d.Applicant.ID, d.Applicant.Name, b2u(d.FeePaidOnline), d.Officer, d.Step,
			d.Reason, d.Outcome, b2u(d.EResult), d.Portal, d.Components, d.Reused, d.Amount, d.Method, string(r.Data)), d.Unit, nil
	case FamilyFeedback:
		var d feedbackData
		if err := json.Unmarshal(r.Data, &d); err != nil {
			return nil, "", fmt.Errorf("decode feedback data: %w", err)
		}
		due, err := ts(d.DueAt)
		if err != nil {
			return nil, "", fmt.Errorf("data.due_at: %w", err)
		}
		return append(common, d.Unit, d.Channel, d.Category, due, d.Location.Lat, d.Location.Lon, d.Location.Address,
			d.Citizen.ID, d.Citizen.Name, d.Citizen.Phone, d.Officer, d.Outcome, d.Rating, string(r.Data)), d.Unit, nil
	case FamilyCamera:
		var d cameraData
		if err := json.Unmarshal(r.Data, &d); err != nil {
			return nil, "", fmt.Errorf("decode camera data: %w", err)
		}
		online := uint8(0)
		if d.Online != nil && *d.Online {
			online = 1
		}
		level := int8(-1)
		if d.Level != nil {
			level = *d.Level
		}
		c := d.Counts
		return append(common, online, d.Kind, c.Car, c.Motorcycle, c.Bus, c.Truck, c.Bicycle, c.Person,
			level, d.Confidence, d.WindowS, string(r.Data)), "", nil
	case FamilySurvey:
		var d surveyData
		if err := json.Unmarshal(r.Data, &d); err != nil {
			return nil, "", fmt.Errorf("decode survey data: %w", err)
		}
		c := d.Criteria
		return append(common, d.Unit, d.Rating, SurveyScore[d.Rating], d.Channel, d.Officer, d.Dossier,
			c.Attitude, c.Timeliness, c.Guidance, d.Comment, string(r.Data)), d.Unit, nil
	case FamilyIndicator:
		var d indicatorData
		if err := json.Unmarshal(r.Data, &d); err != nil {
			return nil, "", fmt.Errorf("decode indicator data: %w", err)
		}
		return append(common, d.Unit, d.Period, d.Value, d.Measure, d.Source, string(r.Data)), d.Unit, nil
	}
	return nil, "", fmt.Errorf("family %s", family)
}

// newRow decodes a line as the writer does and reads its row back from
// the column values.
func newRow(family string, line []byte) ([]any, string, error) {
	rec, data, err := decodeRecord(line)
	if err != nil {
		return nil, "", fmt.Errorf("undecodable record: %w", err)
	}
	t := tables[family]
	row, unit, err := t.decode(rec, data)
	if err != nil {
		return nil, "", err
	}
	var out []any
	for _, col := range t.values([]pending{{rec: rec, row: row}}) {
		out = append(out, reflect.ValueOf(col).Index(0).Interface())
	}
	return out, unit, nil
}

func checkRowsMatch(t *testing.T, family string, line []byte) {
	t.Helper()
	want, wantUnit, wantErr := legacyRow(family, line)
	got, gotUnit, gotErr := newRow(family, line)
	if fmt.Sprint(gotErr) != fmt.Sprint(wantErr) {
		t.Fatalf("%s %s: error %v, want %v", family, line, gotErr, wantErr)
	}
	if wantErr != nil {
		return
	}
	if gotUnit != wantUnit || len(got) != len(want) || len(got) != len(tables[family].columns) {
		t.Fatalf("%s %s: unit %q, %d values; want %q, %d", family, line, gotUnit, len(got), wantUnit, len(want))
	}
	for i := range want {
		if !reflect.DeepEqual(got[i], want[i]) {
			t.Fatalf("%s %s: column %s = %#v, want %#v", family, line, tables[family].columns[i], got[i], want[i])
		}
	}
}

var rowSamples = []struct{ family, data string }{
	{FamilyCamera, `{"confidence":0.83,"counts":{"bicycle":0,"bus":0,"car":2,"motorcycle":8,"person":0,"truck":0},"kind":"vehicle_count","level":2,"window_s":5}`},
	{FamilyCamera, `{"online":true}`},
	{FamilyCamera, `{"online":null,"level":null}`},
	{FamilyCamera, `{"counts":{"Car":1,"CAR":2}}`},
	{FamilyCamera, `{"level":-129}`},
	{FamilyCamera, `{"confidence":1e40}`},
	{FamilyCamera, `{"window_s":1.5}`},
	{FamilyCamera, `{"kind":7}`},
	{FamilyCamera, `null`},
	{FamilyCamera, `[]`},
	{FamilyCamera, `{"extra":{"a":[1,2,{"b":null}]},"Kind":"x"}`},
	{FamilyDossier, `{"applicant":{"id":"p1:ZQVG","kind":"business","name":"p1:5NU3"},"channel":"online","due_at":"2026-11-25T17:00:00+07:00","fee_paid_online":true,"field":"Hộ tịch","procedure_code":"TP-005","procedure_name":"Đăng ký \u003c\u0026\u003e","service_level":"partial_online","unit":"26656"}`},
	{FamilyDossier, `{"amount":50000,"method":"online","components":3,"reused":1,"e_result":true}`},
	{FamilyDossier, `{"due_at":"tomorrow"}`},
	{FamilyDossier, `{"components":-1}`},
	{FamilyDossier, `{"applicant":null,"fee_paid_online":null}`},
	{FamilyDossier, "{\"procedure_name\":\"bad \xff utf8\"}"},
	{FamilyFeedback, `{"category":"urban_order","channel":"qr","citizen":{"id":"p1:D","name":"p1:Q","phone":"p1:M"},"due_at":"2026-12-04T17:00:00+07:00","location":{"address":"44 Lý Thường Kiệt","lat":10.782822,"lon":106.667532},"unit":"27163","rating":5}`},
	{FamilyFeedback, `{"rating":256}`},
	{FamilySurvey, `{"unit":"1","rating":"satisfied","criteria":{"attitude":5,"timeliness":4,"guidance":3},"comment":"ok"}`},
	{FamilySurvey, `{"criteria":{"attitude":"5"}}`},
	{FamilyIndicator, `{"unit":"79","period":"2024-Q2","value":12.5,"measure":"pct","source":"x"}`},
}

func recordLine(family, data string) []byte {
	return []byte(`{"source":"s","id":"i-1","family":"` + family + `","transition":"t","subject":"x",` +
		`"time":"2024-03-01T02:00:00.5Z","accepted_at":"2024-03-01T02:00:01.123456789Z","data":` + data + `}`)
}

func TestRowsMatchLegacyDecoding(t *testing.T) {
	for _, s := range rowSamples {
		checkRowsMatch(t, s.family, recordLine(s.family, s.data))
	}
	// Records as the intake writes them, of the simulated city.
	for _, fam := range []string{FamilyCamera, FamilyDossier, FamilyFeedback} {
		for i, line := range benchLines(t, fam) {
			if i%7 == 0 {
				checkRowsMatch(t, fam, line)
			}
		}
	}
	// Unusual records.
	for _, line := range []string{
		`{"source":"s","id":"1","time":null,"data":{}}`,
		`{"source":"s","ID":"1","data":{}}`,
		`{"source":"s","time":"yesterday","data":{}}`,
		`{"source":"s","time":7,"data":{}}`,
		`{"source":"s\u00e9","data":{"kind":"x"}} `,
		`{"source":"s"}`,
		`{not json`,
		`null`,
	} {
		checkRowsMatch(t, FamilyCamera, []byte(line))
	}
}

func FuzzRowsMatchLegacyDecoding(f *testing.F) {
	for _, s := range rowSamples {
		f.Add(s.family, s.data)
	}
	f.Fuzz(func(t *testing.T, family, data string) {
		if tables[family] == nil || strings.ContainsAny(data, "\n") {
			return
		}
		checkRowsMatch(t, family, recordLine(family, data))
	})
}

func FuzzRecordMatchesLegacyDecoding(f *testing.F) {
	for _, s := range rowSamples[:3] {
		f.Add(string(recordLine(s.family, s.data)))
	}
	f.Add(`{"source":"s","ID":"1","time":null,"accepted_at":"2024-03-01T02:00:01+07:00","data":{}}`)
	f.Fuzz(func(t *testing.T, line string) {
		checkRowsMatch(t, FamilyCamera, []byte(line))
	})
}

// TestAcceptedMinusZeroDecodes: -0 passes the contract's "≥ 0" of an
// integer field; the event must then also be readable by the writer, not
// answered 202 and dead-lettered. Each event goes through Prepare, as
// the intake stores it, then through its table's decoding.
func TestAcceptedMinusZeroDecodes(t *testing.T) {
	v := testValidator(t)
	for _, c := range []struct{ typ, data string }{
		{"dossier.digitized", `{"components":-0,"reused":-0.0}`},
		{"camera.detection", `{"kind":"vehicle_count","counts":{"car":-0,"bus":-0e0},"window_s":5,"level":0,"confidence":-0}`},
	} {
		ev := `{"specversion":"1.0","id":"z1","source":"s","type":"vn.ioc.` + c.typ + `","subject":"X1","time":"2024-03-01T09:00:00+07:00","data":` + c.data + `}`
		rec, err := v.Prepare([]byte(ev), "s")
		if err != nil {
			t.Fatalf("%s: %v", c.typ, err)
		}
		if strings.Contains(string(rec.Data), "-0") {
			t.Errorf("%s: stored %s", c.typ, rec.Data)
		}
		if _, _, err := newRow(rec.Family, rec.AppendJSON(nil)); err != nil {
			t.Errorf("%s: accepted, then the writer cannot read it: %v", c.typ, err)
		}
	}
	// A record stored with -0 before it was written 0 reads as 0.
	if _, _, err := newRow(FamilyDossier, recordLine(FamilyDossier, `{"components":-0}`)); err != nil {
		t.Errorf("stored -0: %v", err)
	}
}
