package alert

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"time"
)

// States of an alert: raised → acknowledged → cleared, or raised →
// cleared when the condition ends before anyone acknowledged it.
const (
	StateRaised       = "raised"
	StateAcknowledged = "acknowledged"
	StateCleared      = "cleared"
)

// Alert is one occurrence of a rule's condition for one subject, from the
// moment it was raised until it cleared. A new occurrence after it cleared
// is a new alert with a new id.
type Alert struct {
	ID       string `json:"id"`
	Rule     string `json:"rule"`
	Kind     string `json:"kind"`
	Severity string `json:"severity"`
	// Unit is the unit the subject belongs to: the KPI key's unit for a
	// threshold rule, the dossier's, ticket's or camera's unit otherwise.
	// Scopes see the alerts of the units of their subtree.
	Unit string `json:"unit"`
	// SubjectKind is unit, dossier, ticket or camera; Subject its code or id.
	SubjectKind string `json:"subject_kind"`
	Subject     string `json:"subject"`
	State       string `json:"state"`
	// Title of the rule, Detail what raised it ("on-time rate 93.1 % <
	// 95 % over month", "due 2026-11-23 10:00").
	Title   string `json:"title"`
	TitleVI string `json:"title_vi"`
	Detail  string `json:"detail"`
	// Value that raised the alert (the KPI value, the working hours left,
	// the minutes silent, the level) and the rule's threshold.
	Value     float64 `json:"value"`
	Threshold float64 `json:"threshold"`

	RaisedAt  time.Time `json:"raised_at"`
	AckedAt   time.Time `json:"acked_at,omitzero"`
	AckedBy   string    `json:"acked_by,omitempty"`
	AckNote   string    `json:"ack_note,omitempty"`
	ClearedAt time.Time `json:"cleared_at,omitzero"`
	// Version orders the states of one alert (milliseconds since 1970 of
	// its last change, strictly increasing): the table of alerts keeps the
	// highest.
	Version uint64 `json:"version"`
}

// Open reports whether the alert is raised or acknowledged.
func (a *Alert) Open() bool { return a.State != StateCleared }

// alertID names an occurrence: the rule, the subject and the instant it was
// raised, hashed (16 hex digits).
func alertID(rule, subject string, raised time.Time) string {
	h := sha256.Sum256([]byte(rule + "\x00" + subject + "\x00" + strconv.FormatInt(raised.UnixNano(), 10)))
	return hex.EncodeToString(h[:8])
}

// bump moves the version past the previous one.
func (a *Alert) bump(at time.Time) {
	v := uint64(at.UnixMilli())
	if v <= a.Version {
		v = a.Version + 1
	}
	a.Version = v
}

// key of a condition: one open alert at most per rule and subject.
type condKey struct{ rule, subject string }
