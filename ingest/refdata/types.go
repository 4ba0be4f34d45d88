// Package refdata holds the city's reference data — org units (with the
// 2025 hierarchy and the old districts and wards mapped to the new wards),
// procedures with legal deadlines, officers, cameras and the business
// calendar — as bundled files for Ho Chi Minh City, parsers for replacement
// sets (CSV or JSON), validation with errors that name the row and field,
// and the store that writes them to ClickHouse.
package refdata

import "time"

// Unit kinds.
const (
	KindCity           = "city"
	KindDepartment     = "department"
	KindWard           = "ward"            // 2025 ward (phường)
	KindCommune        = "commune"         // 2025 commune (xã)
	KindSpecialZone    = "special_zone"    // 2025 special zone (đặc khu)
	KindLegacyDistrict = "legacy_district" // before 1 July 2025
	KindLegacyWard     = "legacy_ward"     // before 1 July 2025
)

// Unit is a node of the org tree.
type Unit struct {
	Code       string    `json:"code"`
	Parent     string    `json:"parent"`
	Name       string    `json:"name"`
	Level      uint8     `json:"level"` // 0 city, 1 department/ward/district, 2 legacy ward
	Kind       string    `json:"kind"`
	Lat        float64   `json:"lat"`
	Lon        float64   `json:"lon"`
	Population uint32    `json:"population,omitempty"`
	AreaKm2    float64   `json:"area_km2,omitempty"`
	ValidFrom  time.Time `json:"valid_from"`           // a date
	ValidTo    time.Time `json:"valid_to,omitzero"`    // a date; zero = still valid
	Successors []string  `json:"successors,omitempty"` // legacy units: the 2025 units they went into
}

// Procedure is an administrative procedure (TTHC) with its legal deadline.
type Procedure struct {
	Code          string  `json:"code"`
	Name          string  `json:"name"`
	Field         string  `json:"field"`
	UnitKind      string  `json:"unit_kind"` // who handles it: ward or department
	DeadlineDays  float64 `json:"deadline_days"`
	DeadlineHours float64 `json:"deadline_hours"` // when the deadline is in working hours
	ServiceLevel  string  `json:"service_level"`  // full_online | partial_online | offline
	Fee           bool    `json:"fee"`
}

// Officer is a civil servant (cán bộ công chức) of a unit.
type Officer struct {
	ID    string `json:"id"`
	Unit  string `json:"unit"`
	Name  string `json:"name"`
	Title string `json:"title,omitempty"`
}

// Camera is a public traffic camera.
type Camera struct {
	ID   string  `json:"id"`
	Code string  `json:"code"`
	Name string  `json:"name"`
	Lat  float64 `json:"lat"`
	Lon  float64 `json:"lon"`
	Unit string  `json:"unit"` // 2025 ward it stands in (nearest ward centre)
	Type string  `json:"type"`
	PTZ  bool    `json:"ptz"`
}

// Calendar day kinds.
const (
	DayHoliday = "holiday" // a weekday off (public holiday or swapped day off)
	DayWorkday = "workday" // a weekend day worked (make-up Saturday)
)

// Day is an exception to the Monday–Friday working week.
type Day struct {
	Date time.Time `json:"date"` // midnight UTC of the local date
	Kind string    `json:"kind"`
	Name string    `json:"name"`
}

// Set is a whole set of reference data.
type Set struct {
	Units      []Unit      `json:"units"`
	Procedures []Procedure `json:"procedures"`
	Officers   []Officer   `json:"officers"`
	Cameras    []Camera    `json:"cameras"`
	Calendar   []Day       `json:"calendar"`
	// lines are the CSV lines of the rows of the kinds Parse read from a
	// CSV file, for Validate to name them.
	lines map[string][]int
}

// Kinds of reference data, as named in the API and the CLI.
var Kinds = []string{"units", "procedures", "officers", "cameras", "calendar"}

// CityCode is the GSO code of Ho Chi Minh City, the root of the org tree.
const CityCode = "79"
