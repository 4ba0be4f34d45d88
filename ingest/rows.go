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
	// row decodes a record into values in column order and returns the
	// units it names (for the commit notice).
	row func(r *Record) ([]any, string, error)
}

var commonColumns = []string{"source", "id", "type", "subject", "time", "accepted_at"}

func common(r *Record) []any {
	return []any{r.Source, r.ID, r.Transition, r.Subject, r.Time.Truncate(time.Second), r.AcceptedAt.Truncate(time.Second)}
}

func insertSQL(db string, t *table) string {
	return "INSERT INTO " + db + "." + t.name + " (" + strings.Join(t.columns, ", ") + ")"
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

var dossierTable = &table{
	name: "dossier_events",
	columns: append(append([]string{}, commonColumns...),
		"unit", "procedure_code", "procedure_name", "field", "service_level", "channel", "due_at",
		"applicant_kind", "applicant_ref", "applicant_name_ref", "fee_paid_online", "officer", "step",
		"reason", "outcome", "e_result", "portal", "components", "reused", "amount", "method", "data"),
	row: func(r *Record) ([]any, string, error) {
		var d dossierData
		if err := json.Unmarshal(r.Data, &d); err != nil {
			return nil, "", fmt.Errorf("decode dossier data: %w", err)
		}
		due, err := ts(d.DueAt)
		if err != nil {
			return nil, "", fmt.Errorf("data.due_at: %w", err)
		}
		return append(common(r), d.Unit, d.ProcedureCode, d.ProcedureName, d.Field, d.ServiceLevel, d.Channel, due,
			d.Applicant.Kind, d.Applicant.ID, d.Applicant.Name, b2u(d.FeePaidOnline), d.Officer, d.Step,
			d.Reason, d.Outcome, b2u(d.EResult), d.Portal, d.Components, d.Reused, d.Amount, d.Method, string(r.Data)), d.Unit, nil
	},
}

type feedbackData struct {
	Channel  string `json:"channel"`
	Category string `json:"category"`
	Unit     string `json:"unit"`
	DueAt    string `json:"due_at"`
	Location struct {
		Lat     float64 `json:"lat"`
		Lon     float64 `json:"lon"`
		Address string  `json:"address"`
	} `json:"location"`
	Citizen party  `json:"citizen"`
	Officer string `json:"officer"`
	Outcome string `json:"outcome"`
	Rating  uint8  `json:"rating"`
}

var feedbackTable = &table{
	name: "feedback_events",
	columns: append(append([]string{}, commonColumns...),
		"unit", "channel", "category", "due_at", "lat", "lon", "address", "citizen_ref", "citizen_name_ref",
		"citizen_phone_ref", "officer", "outcome", "rating", "data"),
	row: func(r *Record) ([]any, string, error) {
		var d feedbackData
		if err := json.Unmarshal(r.Data, &d); err != nil {
			return nil, "", fmt.Errorf("decode feedback data: %w", err)
		}
		due, err := ts(d.DueAt)
		if err != nil {
			return nil, "", fmt.Errorf("data.due_at: %w", err)
		}
		return append(common(r), d.Unit, d.Channel, d.Category, due, d.Location.Lat, d.Location.Lon, d.Location.Address,
			d.Citizen.ID, d.Citizen.Name, d.Citizen.Phone, d.Officer, d.Outcome, d.Rating, string(r.Data)), d.Unit, nil
	},
}

type cameraData struct {
	Online *bool  `json:"online"`
	Kind   string `json:"kind"`
	Counts struct {
		Car, Motorcycle, Bus, Truck, Bicycle, Person uint32
	} `json:"counts"`
	Level      *int8   `json:"level"`
	Confidence float32 `json:"confidence"`
	WindowS    uint32  `json:"window_s"`
}

var cameraTable = &table{
	name: "camera_events",
	columns: append(append([]string{}, commonColumns...),
		"online", "kind", "car", "motorcycle", "bus", "truck", "bicycle", "person", "level", "confidence", "window_s", "data"),
	row: func(r *Record) ([]any, string, error) {
		var d cameraData
		if err := json.Unmarshal(r.Data, &d); err != nil {
			return nil, "", fmt.Errorf("decode camera data: %w", err)
		}
		online := uint8(0)
		if d.Online != nil && *d.Online {
			online = 1
		}
		level := int8(-1) // no level reported
		if d.Level != nil {
			level = *d.Level
		}
		c := d.Counts
		return append(common(r), online, d.Kind, c.Car, c.Motorcycle, c.Bus, c.Truck, c.Bicycle, c.Person,
			level, d.Confidence, d.WindowS, string(r.Data)), "", nil
	},
}

type surveyData struct {
	Unit     string `json:"unit"`
	Rating   string `json:"rating"`
	Channel  string `json:"channel"`
	Officer  string `json:"officer"`
	Dossier  string `json:"dossier"`
	Criteria struct {
		Attitude   uint8 `json:"attitude"`
		Timeliness uint8 `json:"timeliness"`
		Guidance   uint8 `json:"guidance"`
	} `json:"criteria"`
	Comment string `json:"comment"`
}

// SurveyScore maps a rating to 5 (very satisfied) … 1 (very unsatisfied).
var SurveyScore = map[string]int8{"very_satisfied": 5, "satisfied": 4, "neutral": 3, "unsatisfied": 2, "very_unsatisfied": 1}

var surveyTable = &table{
	name: "survey_events",
	columns: append(append([]string{}, commonColumns...),
		"unit", "rating", "score", "channel", "officer", "dossier", "attitude", "timeliness", "guidance", "comment", "data"),
	row: func(r *Record) ([]any, string, error) {
		var d surveyData
		if err := json.Unmarshal(r.Data, &d); err != nil {
			return nil, "", fmt.Errorf("decode survey data: %w", err)
		}
		c := d.Criteria
		return append(common(r), d.Unit, d.Rating, SurveyScore[d.Rating], d.Channel, d.Officer, d.Dossier,
			c.Attitude, c.Timeliness, c.Guidance, d.Comment, string(r.Data)), d.Unit, nil
	},
}

type indicatorData struct {
	Unit    string  `json:"unit"`
	Period  string  `json:"period"`
	Value   float64 `json:"value"`
	Measure string  `json:"measure"`
	Source  string  `json:"source"`
}

var indicatorTable = &table{
	name: "indicator_events",
	columns: append(append([]string{}, commonColumns...),
		"unit", "period", "value", "measure", "indicator_source", "data"),
	row: func(r *Record) ([]any, string, error) {
		var d indicatorData
		if err := json.Unmarshal(r.Data, &d); err != nil {
			return nil, "", fmt.Errorf("decode indicator data: %w", err)
		}
		return append(common(r), d.Unit, d.Period, d.Value, d.Measure, d.Source, string(r.Data)), d.Unit, nil
	},
}

var tables = map[string]*table{
	FamilyDossier:   dossierTable,
	FamilyFeedback:  feedbackTable,
	FamilyCamera:    cameraTable,
	FamilySurvey:    surveyTable,
	FamilyIndicator: indicatorTable,
}
