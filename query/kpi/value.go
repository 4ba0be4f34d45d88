package kpi

import (
	"strings"
	"time"
)

// Key names one published value.
type Key struct {
	KPI    string `json:"kpi"`
	Unit   string `json:"unit"`
	Window string `json:"window"`
}

// Channel is the key's websocket channel: kpi:<kpi>:<unit>:<window>.
func (k Key) Channel() string { return "kpi:" + k.KPI + ":" + k.Unit + ":" + k.Window }

// Bucket key of the value in the KV bucket: <kpi>.<unit>.<window>.
func (k Key) bucketKey() string { return k.KPI + "." + k.Unit + "." + k.Window }

// ParseChannel reads a kpi:<kpi>:<unit>:<window> channel.
func ParseChannel(ch string) (Key, bool) {
	parts := strings.Split(ch, ":")
	if len(parts) != 4 || parts[0] != "kpi" || parts[1] == "" || parts[2] == "" || parts[3] == "" {
		return Key{}, false
	}
	return Key{KPI: parts[1], Unit: parts[2], Window: parts[3]}, true
}

// parseBucketKey reads <kpi>.<unit>.<window>; the KPI id holds a dot, the
// unit and the window none.
func parseBucketKey(s string) (Key, bool) {
	w := strings.LastIndexByte(s, '.')
	if w < 0 {
		return Key{}, false
	}
	u := strings.LastIndexByte(s[:w], '.')
	if u < 0 {
		return Key{}, false
	}
	return Key{KPI: s[:u], Unit: s[u+1 : w], Window: s[w+1:]}, true
}

// Value is a KPI over a unit subtree and a window.
type Value struct {
	Key
	Numerator int64 `json:"numerator"`
	// Denominator of a ratio or mean; for a count or a per_minute KPI, the
	// number of rows counted.
	Denominator int64    `json:"denominator"`
	Value       *float64 `json:"value"` // null when the denominator is 0
	// From, To of the window (absent for instant KPIs); At is the instant
	// the value was taken.
	From time.Time `json:"from,omitzero"`
	To   time.Time `json:"to,omitzero"`
	At   time.Time `json:"at"`
	// AsOf is the data watermark the value reflects: the newest acceptance
	// time of the events committed before it was computed.
	AsOf    time.Time `json:"as_of,omitzero"`
	Version int       `json:"version"`
	// Seq counts the changes of this key, from 1; 0 for a key never
	// published (nothing counted yet).
	Seq uint64 `json:"seq"`
	// rev is the KV revision that stores the value (0: none known), which
	// the next write of the key expects to find.
	rev uint64
}

// newValue computes the value from its sums, as valueExpr does in SQL.
func newValue(k *KPI, unit string, s Span, num, den int64) Value {
	v := Value{Key: Key{KPI: k.ID, Unit: unit, Window: s.Window}, Numerator: num, Denominator: den,
		From: s.From, To: s.To, At: s.At, Version: k.Version}
	var x float64
	switch k.Kind {
	case KindCount:
		x = float64(num)
		if k.Scale != 1 {
			x *= k.Scale
		}
	case KindPerMinute:
		x = float64(num) / s.Minutes()
	default:
		if den == 0 {
			return v
		}
		x = float64(num) / float64(den)
		if k.Scale != 1 {
			x *= k.Scale
		}
	}
	v.Value = &x
	return v
}

// sameAs reports whether two values of a key say the same thing: an update
// is published only when they do not.
func (v Value) sameAs(o Value) bool {
	if v.Numerator != o.Numerator || v.Denominator != o.Denominator || v.Version != o.Version || (v.Value == nil) != (o.Value == nil) {
		return false
	}
	return v.Value == nil || *v.Value == *o.Value
}
