package ingest

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// table describes how one family's records become rows of its raw table.
type table struct {
	name    string
	columns []string
	// decode reads a record into the family's row (its values of every
	// column; data is the text of r.Data) and returns the unit it names
	// (for the commit notice).
	decode func(r *Record, data string) (row any, unit string, err error)
	// values are the columns of rows (each decoded by decode), in order,
	// each a typed slice as clickhouse-go appends it to a column.
	values func(rows []pending) []any
}

func insertSQL(db string, t *table) string {
	return "INSERT INTO " + db + "." + t.name + " (" + strings.Join(t.columns, ", ") + ")"
}

// rowBase is what every family's row holds: the record and its data text.
type rowBase struct {
	rec  *Record
	data string
}

func (b *rowBase) base() *rowBase { return b }

// rowOf constrains *R, a family's row type, to embed rowBase.
type rowOf[R any] interface {
	*R
	base() *rowBase
}

// column is one column of a family's table: its name and how its value is
// read from the family's row R.
type column[R any] struct {
	name      string
	newValues func(n int) columnValues[R]
}

// columnValues collects one column's values of the rows of an insert.
type columnValues[R any] interface {
	add(r *R)
	values() any // a typed slice, as clickhouse-go appends it to the column
}

type valuesOf[R, T any] struct {
	get func(*R) T
	v   []T
}

func (c *valuesOf[R, T]) add(r *R)    { c.v = append(c.v, c.get(r)) }
func (c *valuesOf[R, T]) values() any { return c.v }

// col is a column whose value in row r is get(r).
func col[R, T any](name string, get func(r *R) T) column[R] {
	return column[R]{name, func(n int) columnValues[R] { return &valuesOf[R, T]{get: get, v: make([]T, 0, n)} }}
}

// commonColumns lead every family's table; dataColumn ends it.
func commonColumns[R any, P rowOf[R]]() []column[R] {
	return []column[R]{
		col("source", func(r *R) string { return P(r).base().rec.Source }),
		col("id", func(r *R) string { return P(r).base().rec.ID }),
		col("type", func(r *R) string { return P(r).base().rec.Transition }),
		col("subject", func(r *R) string { return P(r).base().rec.Subject }),
		col("time", func(r *R) time.Time { return P(r).base().rec.Time.Truncate(time.Second) }),
		// the microseconds of the time, which order the events of one
		// entity within a second (schema 16)
		col("time_us", func(r *R) uint32 { return uint32(P(r).base().rec.Time.Nanosecond() / 1000) }),
		col("accepted_at", func(r *R) time.Time { return P(r).base().rec.AcceptedAt.Truncate(time.Second) }),
	}
}

func dataColumn[R any, P rowOf[R]]() column[R] {
	return col("data", func(r *R) string { return P(r).base().data })
}

// familyTable builds the table name, whose rows are R: decode reads a
// record into its row (rec and data already set); columns lists the
// table's columns in order, each with its source in the row.
func familyTable[R any, P rowOf[R]](name string, decode func(row *R) (unit string, err error), columns ...[]column[R]) *table {
	var cols []column[R]
	for _, c := range columns {
		cols = append(cols, c...)
	}
	t := &table{name: name}
	for _, c := range cols {
		t.columns = append(t.columns, c.name)
	}
	t.decode = func(r *Record, data string) (any, string, error) {
		row := new(R)
		P(row).base().rec, P(row).base().data = r, data
		unit, err := decode(row)
		if err != nil {
			return nil, "", err
		}
		return row, unit, nil
	}
	t.values = func(ps []pending) []any {
		out := make([]any, len(cols))
		for i, c := range cols {
			vals := c.newValues(len(ps))
			for _, p := range ps {
				vals.add(p.row.(*R))
			}
			out[i] = vals.values()
		}
		return out
	}
	return t
}

// decodeData reads a record's data into the family's data struct: with
// the fast reader when it can, else with encoding/json (whose errors are
// the ones reported).
func decodeData[D any, P interface {
	*D
	decodeJSON(d *jdec) bool
}](family string, row *rowBase, dst P) error {
	d := jdec{s: row.data}
	if d.next() == '{' && dst.decodeJSON(&d) && d.end() {
		return nil
	}
	var zero D
	*dst = zero
	if err := json.Unmarshal(row.rec.Data, dst); err != nil {
		return fmt.Errorf("decode %s data: %w", family, err)
	}
	return nil
}

var zeroTime = time.Unix(0, 0).UTC()

// ts parses an optional RFC 3339 time; missing means the zero DateTime.
func ts(s string) (time.Time, error) {
	if s == "" {
		return zeroTime, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return zeroTime, err
	}
	return t.UTC().Truncate(time.Second), nil
}

func b2u(b bool) uint8 {
	if b {
		return 1
	}
	return 0
}

type party struct {
	Kind  string `json:"kind"`
	ID    string `json:"id"`
	Name  string `json:"name"`
	Phone string `json:"phone"`
}

var partyNames = []string{"kind", "id", "name", "phone"}

func (p *party) decodeJSON(d *jdec) bool {
	return d.fields(partyNames, func(key string) (bool, bool) {
		switch key {
		case "kind":
			return true, d.strField(&p.Kind)
		case "id":
			return true, d.strField(&p.ID)
		case "name":
			return true, d.strField(&p.Name)
		case "phone":
			return true, d.strField(&p.Phone)
		}
		return false, true
	})
}

type dossierData struct {
	ProcedureCode string  `json:"procedure_code"`
	ProcedureName string  `json:"procedure_name"`
	Field         string  `json:"field"`
	ServiceLevel  string  `json:"service_level"`
	Channel       string  `json:"channel"`
	Unit          string  `json:"unit"`
	DueAt         string  `json:"due_at"`
	Applicant     party   `json:"applicant"`
	FeePaidOnline bool    `json:"fee_paid_online"`
	Officer       string  `json:"officer"`
	Step          string  `json:"step"`
	Reason        string  `json:"reason"`
	Outcome       string  `json:"outcome"`
	EResult       bool    `json:"e_result"`
	Portal        string  `json:"portal"`
	Components    uint32  `json:"components"`
	Reused        uint32  `json:"reused"`
	Amount        float64 `json:"amount"`
	Method        string  `json:"method"`
}

var dossierNames = []string{"procedure_code", "procedure_name", "field", "service_level", "channel", "unit", "due_at",
	"applicant", "fee_paid_online", "officer", "step", "reason", "outcome", "e_result", "portal", "components", "reused",
	"amount", "method"}

func (x *dossierData) decodeJSON(d *jdec) bool {
	return d.fields(dossierNames, func(key string) (bool, bool) {
		switch key {
		case "procedure_code":
			return true, d.strField(&x.ProcedureCode)
		case "procedure_name":
			return true, d.strField(&x.ProcedureName)
		case "field":
			return true, d.strField(&x.Field)
		case "service_level":
			return true, d.strField(&x.ServiceLevel)
		case "channel":
			return true, d.strField(&x.Channel)
		case "unit":
			return true, d.strField(&x.Unit)
		case "due_at":
			return true, d.strField(&x.DueAt)
		case "applicant":
			return true, x.Applicant.decodeJSON(d)
		case "fee_paid_online":
			return true, d.boolField(&x.FeePaidOnline)
		case "officer":
			return true, d.strField(&x.Officer)
		case "step":
			return true, d.strField(&x.Step)
		case "reason":
			return true, d.strField(&x.Reason)
		case "outcome":
			return true, d.strField(&x.Outcome)
		case "e_result":
			return true, d.boolField(&x.EResult)
		case "portal":
			return true, d.strField(&x.Portal)
		case "components":
			return true, d.uint32Field(&x.Components)
		case "reused":
			return true, d.uint32Field(&x.Reused)
		case "amount":
			return true, d.float64Field(&x.Amount)
		case "method":
			return true, d.strField(&x.Method)
		}
		return false, true
	})
}

type dossierRow struct {
	rowBase
	d   dossierData
	due time.Time
}

var dossierTable = familyTable("dossier_events", func(r *dossierRow) (string, error) {
	if err := decodeData(FamilyDossier, &r.rowBase, &r.d); err != nil {
		return "", err
	}
	due, err := ts(r.d.DueAt)
	if err != nil {
		return "", fmt.Errorf("data.due_at: %w", err)
	}
	r.due = due
	return r.d.Unit, nil
}, commonColumns[dossierRow](), []column[dossierRow]{
	col("unit", func(r *dossierRow) string { return r.d.Unit }),
	col("procedure_code", func(r *dossierRow) string { return r.d.ProcedureCode }),
	col("procedure_name", func(r *dossierRow) string { return r.d.ProcedureName }),
	col("field", func(r *dossierRow) string { return r.d.Field }),
	col("service_level", func(r *dossierRow) string { return r.d.ServiceLevel }),
	col("channel", func(r *dossierRow) string { return r.d.Channel }),
	col("due_at", func(r *dossierRow) time.Time { return r.due }),
	col("applicant_kind", func(r *dossierRow) string { return r.d.Applicant.Kind }),
	col("applicant_ref", func(r *dossierRow) string { return r.d.Applicant.ID }),
	col("applicant_name_ref", func(r *dossierRow) string { return r.d.Applicant.Name }),
	col("fee_paid_online", func(r *dossierRow) uint8 { return b2u(r.d.FeePaidOnline) }),
	col("officer", func(r *dossierRow) string { return r.d.Officer }),
	col("step", func(r *dossierRow) string { return r.d.Step }),
	col("reason", func(r *dossierRow) string { return r.d.Reason }),
	col("outcome", func(r *dossierRow) string { return r.d.Outcome }),
	col("e_result", func(r *dossierRow) uint8 { return b2u(r.d.EResult) }),
	col("portal", func(r *dossierRow) string { return r.d.Portal }),
	col("components", func(r *dossierRow) uint32 { return r.d.Components }),
	col("reused", func(r *dossierRow) uint32 { return r.d.Reused }),
	col("amount", func(r *dossierRow) float64 { return r.d.Amount }),
	col("method", func(r *dossierRow) string { return r.d.Method }),
	dataColumn[dossierRow](),
})

type feedbackData struct {
	Channel  string   `json:"channel"`
	Category string   `json:"category"`
	Unit     string   `json:"unit"`
	DueAt    string   `json:"due_at"`
	Location location `json:"location"`
	Citizen  party    `json:"citizen"`
	Officer  string   `json:"officer"`
	Outcome  string   `json:"outcome"`
	Rating   uint8    `json:"rating"`
}

type location struct {
	Lat     float64 `json:"lat"`
	Lon     float64 `json:"lon"`
	Address string  `json:"address"`
}

var feedbackNames = []string{"channel", "category", "unit", "due_at", "location", "citizen", "officer", "outcome", "rating"}

func (x *feedbackData) decodeJSON(d *jdec) bool {
	return d.fields(feedbackNames, func(key string) (bool, bool) {
		switch key {
		case "channel":
			return true, d.strField(&x.Channel)
		case "category":
			return true, d.strField(&x.Category)
		case "unit":
			return true, d.strField(&x.Unit)
		case "due_at":
			return true, d.strField(&x.DueAt)
		case "location":
			return true, x.Location.decodeJSON(d)
		case "citizen":
			return true, x.Citizen.decodeJSON(d)
		case "officer":
			return true, d.strField(&x.Officer)
		case "outcome":
			return true, d.strField(&x.Outcome)
		case "rating":
			return true, d.uint8Field(&x.Rating)
		}
		return false, true
	})
}

var locationNames = []string{"lat", "lon", "address"}

func (x *location) decodeJSON(d *jdec) bool {
	return d.fields(locationNames, func(key string) (bool, bool) {
		switch key {
		case "lat":
			return true, d.float64Field(&x.Lat)
		case "lon":
			return true, d.float64Field(&x.Lon)
		case "address":
			return true, d.strField(&x.Address)
		}
		return false, true
	})
}

type feedbackRow struct {
	rowBase
	d   feedbackData
	due time.Time
}

var feedbackTable = familyTable("feedback_events", func(r *feedbackRow) (string, error) {
	if err := decodeData(FamilyFeedback, &r.rowBase, &r.d); err != nil {
		return "", err
	}
	due, err := ts(r.d.DueAt)
	if err != nil {
		return "", fmt.Errorf("data.due_at: %w", err)
	}
	r.due = due
	return r.d.Unit, nil
}, commonColumns[feedbackRow](), []column[feedbackRow]{
	col("unit", func(r *feedbackRow) string { return r.d.Unit }),
	col("channel", func(r *feedbackRow) string { return r.d.Channel }),
	col("category", func(r *feedbackRow) string { return r.d.Category }),
	col("due_at", func(r *feedbackRow) time.Time { return r.due }),
	col("lat", func(r *feedbackRow) float64 { return r.d.Location.Lat }),
	col("lon", func(r *feedbackRow) float64 { return r.d.Location.Lon }),
	col("address", func(r *feedbackRow) string { return r.d.Location.Address }),
	col("citizen_ref", func(r *feedbackRow) string { return r.d.Citizen.ID }),
	col("citizen_name_ref", func(r *feedbackRow) string { return r.d.Citizen.Name }),
	col("citizen_phone_ref", func(r *feedbackRow) string { return r.d.Citizen.Phone }),
	col("officer", func(r *feedbackRow) string { return r.d.Officer }),
	col("outcome", func(r *feedbackRow) string { return r.d.Outcome }),
	col("rating", func(r *feedbackRow) uint8 { return r.d.Rating }),
	dataColumn[feedbackRow](),
})

type cameraData struct {
	Online     *bool        `json:"online"`
	Kind       string       `json:"kind"`
	Counts     cameraCounts `json:"counts"`
	Level      *int8        `json:"level"`
	Confidence float32      `json:"confidence"`
	WindowS    uint32       `json:"window_s"`
}

type cameraCounts struct {
	Car, Motorcycle, Bus, Truck, Bicycle, Person uint32
}

var cameraNames = []string{"online", "kind", "counts", "level", "confidence", "window_s"}

func (x *cameraData) decodeJSON(d *jdec) bool {
	return d.fields(cameraNames, func(key string) (bool, bool) {
		switch key {
		case "online":
			return true, d.boolPtrField(&x.Online)
		case "kind":
			return true, d.strField(&x.Kind)
		case "counts":
			return true, x.Counts.decodeJSON(d)
		case "level":
			return true, d.int8PtrField(&x.Level)
		case "confidence":
			return true, d.float32Field(&x.Confidence)
		case "window_s":
			return true, d.uint32Field(&x.WindowS)
		}
		return false, true
	})
}

// The counts' fields have no JSON names: encoding/json matches their Go
// names case-insensitively, so "car" sets Car.
var countNames = []string{"car", "motorcycle", "bus", "truck", "bicycle", "person"}

func (x *cameraCounts) decodeJSON(d *jdec) bool {
	return d.fields(countNames, func(key string) (bool, bool) {
		switch key {
		case "car":
			return true, d.uint32Field(&x.Car)
		case "motorcycle":
			return true, d.uint32Field(&x.Motorcycle)
		case "bus":
			return true, d.uint32Field(&x.Bus)
		case "truck":
			return true, d.uint32Field(&x.Truck)
		case "bicycle":
			return true, d.uint32Field(&x.Bicycle)
		case "person":
			return true, d.uint32Field(&x.Person)
		}
		return false, true
	})
}

type cameraRow struct {
	rowBase
	d cameraData
}

var cameraTable = familyTable("camera_events", func(r *cameraRow) (string, error) {
	return "", decodeData(FamilyCamera, &r.rowBase, &r.d)
}, commonColumns[cameraRow](), []column[cameraRow]{
	col("online", func(r *cameraRow) uint8 {
		if r.d.Online != nil && *r.d.Online {
			return 1
		}
		return 0
	}),
	col("kind", func(r *cameraRow) string { return r.d.Kind }),
	col("car", func(r *cameraRow) uint32 { return r.d.Counts.Car }),
	col("motorcycle", func(r *cameraRow) uint32 { return r.d.Counts.Motorcycle }),
	col("bus", func(r *cameraRow) uint32 { return r.d.Counts.Bus }),
	col("truck", func(r *cameraRow) uint32 { return r.d.Counts.Truck }),
	col("bicycle", func(r *cameraRow) uint32 { return r.d.Counts.Bicycle }),
	col("person", func(r *cameraRow) uint32 { return r.d.Counts.Person }),
	col("level", func(r *cameraRow) int8 {
		if r.d.Level == nil {
			return -1 // no level reported
		}
		return *r.d.Level
	}),
	col("confidence", func(r *cameraRow) float32 { return r.d.Confidence }),
	col("window_s", func(r *cameraRow) uint32 { return r.d.WindowS }),
	dataColumn[cameraRow](),
})

type surveyData struct {
	Unit     string         `json:"unit"`
	Rating   string         `json:"rating"`
	Channel  string         `json:"channel"`
	Officer  string         `json:"officer"`
	Dossier  string         `json:"dossier"`
	Criteria surveyCriteria `json:"criteria"`
	Comment  string         `json:"comment"`
}

type surveyCriteria struct {
	Attitude   uint8 `json:"attitude"`
	Timeliness uint8 `json:"timeliness"`
	Guidance   uint8 `json:"guidance"`
}

var surveyNames = []string{"unit", "rating", "channel", "officer", "dossier", "criteria", "comment"}

func (x *surveyData) decodeJSON(d *jdec) bool {
	return d.fields(surveyNames, func(key string) (bool, bool) {
		switch key {
		case "unit":
			return true, d.strField(&x.Unit)
		case "rating":
			return true, d.strField(&x.Rating)
		case "channel":
			return true, d.strField(&x.Channel)
		case "officer":
			return true, d.strField(&x.Officer)
		case "dossier":
			return true, d.strField(&x.Dossier)
		case "criteria":
			return true, x.Criteria.decodeJSON(d)
		case "comment":
			return true, d.strField(&x.Comment)
		}
		return false, true
	})
}

var criteriaNames = []string{"attitude", "timeliness", "guidance"}

func (x *surveyCriteria) decodeJSON(d *jdec) bool {
	return d.fields(criteriaNames, func(key string) (bool, bool) {
		switch key {
		case "attitude":
			return true, d.uint8Field(&x.Attitude)
		case "timeliness":
			return true, d.uint8Field(&x.Timeliness)
		case "guidance":
			return true, d.uint8Field(&x.Guidance)
		}
		return false, true
	})
}

// SurveyScore maps a rating to 5 (very satisfied) … 1 (very unsatisfied).
var SurveyScore = map[string]int8{"very_satisfied": 5, "satisfied": 4, "neutral": 3, "unsatisfied": 2, "very_unsatisfied": 1}

type surveyRow struct {
	rowBase
	d surveyData
}

var surveyTable = familyTable("survey_events", func(r *surveyRow) (string, error) {
	if err := decodeData(FamilySurvey, &r.rowBase, &r.d); err != nil {
		return "", err
	}
	return r.d.Unit, nil
}, commonColumns[surveyRow](), []column[surveyRow]{
	col("unit", func(r *surveyRow) string { return r.d.Unit }),
	col("rating", func(r *surveyRow) string { return r.d.Rating }),
	col("score", func(r *surveyRow) int8 { return SurveyScore[r.d.Rating] }),
	col("channel", func(r *surveyRow) string { return r.d.Channel }),
	col("officer", func(r *surveyRow) string { return r.d.Officer }),
	col("dossier", func(r *surveyRow) string { return r.d.Dossier }),
	col("attitude", func(r *surveyRow) uint8 { return r.d.Criteria.Attitude }),
	col("timeliness", func(r *surveyRow) uint8 { return r.d.Criteria.Timeliness }),
	col("guidance", func(r *surveyRow) uint8 { return r.d.Criteria.Guidance }),
	col("comment", func(r *surveyRow) string { return r.d.Comment }),
	dataColumn[surveyRow](),
})

type indicatorData struct {
	Unit    string  `json:"unit"`
	Period  string  `json:"period"`
	Value   float64 `json:"value"`
	Measure string  `json:"measure"`
	Source  string  `json:"source"`
}

var indicatorNames = []string{"unit", "period", "value", "measure", "source"}

func (x *indicatorData) decodeJSON(d *jdec) bool {
	return d.fields(indicatorNames, func(key string) (bool, bool) {
		switch key {
		case "unit":
			return true, d.strField(&x.Unit)
		case "period":
			return true, d.strField(&x.Period)
		case "value":
			return true, d.float64Field(&x.Value)
		case "measure":
			return true, d.strField(&x.Measure)
		case "source":
			return true, d.strField(&x.Source)
		}
		return false, true
	})
}

type indicatorRow struct {
	rowBase
	d indicatorData
}

var indicatorTable = familyTable("indicator_events", func(r *indicatorRow) (string, error) {
	if err := decodeData(FamilyIndicator, &r.rowBase, &r.d); err != nil {
		return "", err
	}
	return r.d.Unit, nil
}, commonColumns[indicatorRow](), []column[indicatorRow]{
	col("unit", func(r *indicatorRow) string { return r.d.Unit }),
	col("period", func(r *indicatorRow) string { return r.d.Period }),
	col("value", func(r *indicatorRow) float64 { return r.d.Value }),
	col("measure", func(r *indicatorRow) string { return r.d.Measure }),
	col("indicator_source", func(r *indicatorRow) string { return r.d.Source }),
	dataColumn[indicatorRow](),
})

var tables = map[string]*table{
	FamilyDossier:   dossierTable,
	FamilyFeedback:  feedbackTable,
	FamilyCamera:    cameraTable,
	FamilySurvey:    surveyTable,
	FamilyIndicator: indicatorTable,
}
