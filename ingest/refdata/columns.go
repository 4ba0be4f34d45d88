package refdata

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// A column is one field of a row type, named as in JSON, set from its text
// (a CSV cell, or a JSON value rendered as text). One table per kind serves
// CSV and JSON alike, so both accept the same values and fail the same way.
type column[T any] struct {
	name string
	list bool // several values, ";"-separated in CSV, an array in JSON
	set  func(*T, string) error
}

// noteColumn may appear in any input and is ignored: the bundled files keep
// their sources and remarks there.
const noteColumn = "note"

func unitColumns() []column[Unit] {
	return []column[Unit]{
		{name: "code", set: func(u *Unit, v string) error { u.Code = v; return nil }},
		{name: "parent", set: func(u *Unit, v string) error { u.Parent = v; return nil }},
		{name: "name", set: func(u *Unit, v string) error { u.Name = v; return nil }},
		{name: "level", set: func(u *Unit, v string) (err error) { u.Level, err = parseUint8(v); return }},
		{name: "kind", set: func(u *Unit, v string) error { u.Kind = v; return nil }},
		{name: "lat", set: func(u *Unit, v string) (err error) { u.Lat, err = parseFloat(v); return }},
		{name: "lon", set: func(u *Unit, v string) (err error) { u.Lon, err = parseFloat(v); return }},
		{name: "population", set: func(u *Unit, v string) (err error) { u.Population, err = parseUint32(v); return }},
		{name: "area_km2", set: func(u *Unit, v string) (err error) { u.AreaKm2, err = parseFloat(v); return }},
		{name: "valid_from", set: func(u *Unit, v string) (err error) { u.ValidFrom, err = parseDate(v); return }},
		{name: "valid_to", set: func(u *Unit, v string) (err error) { u.ValidTo, err = parseDate(v); return }},
		{name: "successors", list: true, set: func(u *Unit, v string) error { u.Successors = splitList(v); return nil }},
	}
}

func procedureColumns() []column[Procedure] {
	return []column[Procedure]{
		{name: "code", set: func(p *Procedure, v string) error { p.Code = v; return nil }},
		{name: "name", set: func(p *Procedure, v string) error { p.Name = v; return nil }},
		{name: "field", set: func(p *Procedure, v string) error { p.Field = v; return nil }},
		{name: "unit_kind", set: func(p *Procedure, v string) error { p.UnitKind = v; return nil }},
		{name: "deadline_days", set: func(p *Procedure, v string) (err error) { p.DeadlineDays, err = parseFloat(v); return }},
		{name: "deadline_hours", set: func(p *Procedure, v string) (err error) { p.DeadlineHours, err = parseFloat(v); return }},
		{name: "service_level", set: func(p *Procedure, v string) error { p.ServiceLevel = v; return nil }},
		{name: "fee", set: func(p *Procedure, v string) (err error) { p.Fee, err = parseBool(v); return }},
	}
}

func officerColumns() []column[Officer] {
	return []column[Officer]{
		{name: "id", set: func(o *Officer, v string) error { o.ID = v; return nil }},
		{name: "unit", set: func(o *Officer, v string) error { o.Unit = v; return nil }},
		{name: "name", set: func(o *Officer, v string) error { o.Name = v; return nil }},
		{name: "title", set: func(o *Officer, v string) error { o.Title = v; return nil }},
	}
}

func cameraColumns() []column[Camera] {
	return []column[Camera]{
		{name: "id", set: func(c *Camera, v string) error { c.ID = v; return nil }},
		{name: "code", set: func(c *Camera, v string) error { c.Code = v; return nil }},
		{name: "name", set: func(c *Camera, v string) error { c.Name = v; return nil }},
		{name: "lat", set: func(c *Camera, v string) (err error) { c.Lat, err = parseFloat(v); return }},
		{name: "lon", set: func(c *Camera, v string) (err error) { c.Lon, err = parseFloat(v); return }},
		{name: "unit", set: func(c *Camera, v string) error { c.Unit = v; return nil }},
		{name: "type", set: func(c *Camera, v string) error { c.Type = v; return nil }},
		{name: "ptz", set: func(c *Camera, v string) (err error) { c.PTZ, err = parseBool(v); return }},
	}
}

func dayColumns() []column[Day] {
	return []column[Day]{
		{name: "date", set: func(d *Day, v string) (err error) { d.Date, err = parseDate(v); return }},
		{name: "kind", set: func(d *Day, v string) error { d.Kind = v; return nil }},
		{name: "name", set: func(d *Day, v string) error { d.Name = v; return nil }},
	}
}

// A blank number is zero: optional columns may be left empty.
func parseFloat(v string) (float64, error) {
	if v == "" {
		return 0, nil
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, fmt.Errorf("%q is not a number", v)
	}
	return f, nil
}

func parseUint8(v string) (uint8, error) {
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseUint(v, 10, 8)
	if err != nil {
		return 0, fmt.Errorf("%q is not a whole number from 0 to 255", v)
	}
	return uint8(n), nil
}

func parseUint32(v string) (uint32, error) {
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseUint(v, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("%q is not a whole number from 0 to %d", v, uint32(math.MaxUint32))
	}
	return uint32(n), nil
}

func parseBool(v string) (bool, error) {
	switch strings.ToLower(v) {
	case "", "false", "0", "no":
		return false, nil
	case "true", "1", "yes":
		return true, nil
	}
	return false, fmt.Errorf("%q is not true or false", v)
}

// parseDate accepts 2006-01-02 or an RFC 3339 time (as encoding/json writes
// a time.Time) and returns midnight UTC of the date as written; blank is
// the zero time.
func parseDate(v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.DateOnly, v); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return dateOf(t), nil
	}
	return time.Time{}, fmt.Errorf("%q is not a date (YYYY-MM-DD)", v)
}

// dateOf is midnight UTC of t's date in t's own location.
func dateOf(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	y, m, d := t.Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

func splitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ";") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}
