package refdata

import (
	"bytes"
	"embed"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strings"
	"time"
)

// The bundled data of Ho Chi Minh City; origins and licences in
// hcmc/NOTICE.md.
//
//go:embed hcmc/*.csv hcmc/*.json
var hcmcFS embed.FS

// LegacyPrefix starts the code of every unit from before 1 July 2025
// (districts and wards): the statistics office reused old ward codes for new
// wards (Phường Tân Định was 26734 and is now 26737; 26737 was Phường Đa
// Kao), so the bare GSO code would name two different units. Legacy district
// codes do not collide but take the prefix too, so that one rule holds.
const LegacyPrefix = "L-"

// LegacyCode is the unit code of a pre-2025 district or ward with GSO code gso.
func LegacyCode(gso string) string { return LegacyPrefix + gso }

// MergerDate is when Vietnam removed the district level and Ho Chi Minh City
// took its 168 wards, communes and special zone.
var MergerDate = time.Date(2025, 7, 1, 0, 0, 0, 0, time.UTC)

// Years of the vacanza holiday file that HCMC keeps.
const (
	calendarFirstYear = 2015
	calendarLastYear  = 2035
)

// HCMC builds the bundled reference set of Ho Chi Minh City:
//
//   - the city (code CityCode), root of the tree, with the population and
//     area of its 2025 wards;
//   - its departments (departments.csv), level 1;
//   - the 168 wards, communes and special zone since 1 July 2025 (GSO
//     codes), level 1, valid from MergerDate;
//   - the 22 districts and 273 wards before (codes LegacyPrefix + GSO code),
//     valid to MergerDate, each with the 2025 wards it went into as
//     Successors (a district: those of its wards); the three old wards with
//     no coordinates in the source take those of their first successor;
//   - the procedures of procedures.csv;
//   - officers from GenerateOfficers;
//   - the 721 public traffic cameras, each in the 2025 ward whose centre is
//     nearest;
//   - the calendar: vacanza's holidays for 2015–2035 (with the make-up
//     Saturdays its "substituted" days name), overridden date by date by
//     calendar_swaps.csv.
//
// Each call returns a new Set that the caller may modify.
func HCMC() (*Set, error) {
	s := &Set{}
	city := Unit{Code: CityCode, Name: "Thành phố Hồ Chí Minh", Kind: KindCity, Level: 0, Lat: 10.7765, Lon: 106.7009}
	s.Units = append(s.Units, city)

	deps, err := bundled("units", "departments.csv")
	if err != nil {
		return nil, err
	}
	s.Units = append(s.Units, deps.Units...)

	wards, err := hcmcWards()
	if err != nil {
		return nil, err
	}
	for _, w := range wards {
		s.Units[0].Population += w.Population
		s.Units[0].AreaKm2 += w.AreaKm2
	}
	s.Units[0].AreaKm2 = math.Round(s.Units[0].AreaKm2*1000) / 1000
	s.Units = append(s.Units, wards...)

	legacy, err := hcmcLegacy(wards)
	if err != nil {
		return nil, err
	}
	s.Units = append(s.Units, legacy...)

	procs, err := bundled("procedures", "procedures.csv")
	if err != nil {
		return nil, err
	}
	s.Procedures = procs.Procedures
	s.Officers = GenerateOfficers(s.Units)

	if s.Cameras, err = hcmcCameras(wards); err != nil {
		return nil, err
	}
	if s.Calendar, err = hcmcCalendar(); err != nil {
		return nil, err
	}
	return s, nil
}

// bundled parses one of our own files with Parse.
func bundled(kind, file string) (*Set, error) {
	b, err := hcmcFS.ReadFile("hcmc/" + file)
	if err != nil {
		return nil, err
	}
	s, err := Parse(kind, "csv", bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("hcmc/%s: %w", file, err)
	}
	return s, nil
}

// table reads a bundled CSV into rows keyed by header name.
type table struct {
	file string
	col  map[string]int
	rows [][]string
}

func readTable(file string, need ...string) (*table, error) {
	b, err := hcmcFS.ReadFile("hcmc/" + file)
	if err != nil {
		return nil, err
	}
	recs, err := csv.NewReader(bytes.NewReader(b)).ReadAll()
	if err != nil {
		return nil, fmt.Errorf("hcmc/%s: %w", file, err)
	}
	if len(recs) == 0 {
		return nil, fmt.Errorf("hcmc/%s: empty", file)
	}
	t := &table{file: file, col: map[string]int{}, rows: recs[1:]}
	for i, h := range recs[0] {
		t.col[strings.TrimPrefix(strings.TrimSpace(h), "\ufeff")] = i
	}
	for _, n := range need {
		if _, ok := t.col[n]; !ok {
			return nil, fmt.Errorf("hcmc/%s: no column %q", file, n)
		}
	}
	return t, nil
}

func (t *table) get(row []string, name string) string { return strings.TrimSpace(row[t.col[name]]) }

// float reads a number column; blank is NaN (unknown).
func (t *table) float(i int, row []string, name string) (float64, error) {
	v := t.get(row, name)
	if v == "" {
		return math.NaN(), nil
	}
	f, err := parseFloat(v)
	if err != nil {
		return 0, fmt.Errorf("hcmc/%s line %d: %s %v", t.file, i+2, name, err)
	}
	return f, nil
}

func hcmcWards() ([]Unit, error) {
	t, err := readTable("hcmc_wards_2025_168.csv", "ward_code", "ward_name", "ward_type", "lat", "lon", "area_km2", "population")
	if err != nil {
		return nil, err
	}
	kinds := map[string]string{"Phường": KindWard, "Xã": KindCommune, "Đặc khu": KindSpecialZone}
	var out []Unit
	for i, r := range t.rows {
		u := Unit{Code: t.get(r, "ward_code"), Parent: CityCode, Name: t.get(r, "ward_name"), Level: 1, ValidFrom: MergerDate}
		var ok bool
		if u.Kind, ok = kinds[t.get(r, "ward_type")]; !ok {
			return nil, fmt.Errorf("hcmc/%s line %d: ward_type %q is not Phường, Xã or Đặc khu", t.file, i+2, t.get(r, "ward_type"))
		}
		if u.Lat, err = t.float(i, r, "lat"); err != nil {
			return nil, err
		}
		if u.Lon, err = t.float(i, r, "lon"); err != nil {
			return nil, err
		}
		if u.AreaKm2, err = t.float(i, r, "area_km2"); err != nil {
			return nil, err
		}
		if u.Population, err = parseUint32(t.get(r, "population")); err != nil {
			return nil, fmt.Errorf("hcmc/%s line %d: population %v", t.file, i+2, err)
		}
		if math.IsNaN(u.Lat) || math.IsNaN(u.Lon) || math.IsNaN(u.AreaKm2) {
			return nil, fmt.Errorf("hcmc/%s line %d: ward %s has no lat, lon or area", t.file, i+2, u.Code)
		}
		out = append(out, u)
	}
	return out, nil
}

func hcmcLegacy(wards []Unit) ([]Unit, error) {
	centre := map[string]Unit{}
	for _, w := range wards {
		centre[w.Code] = w
	}
	dt, err := readTable("hcmc_legacy_districts_22.csv", "district_code", "district_name", "lat", "lon")
	if err != nil {
		return nil, err
	}
	wt, err := readTable("hcmc_legacy_wards.csv", "ward_code", "ward_name", "district_code", "lat", "lon", "new_ward_codes_2025")
	if err != nil {
		return nil, err
	}
	var districts, lwards []Unit
	at := map[string]int{} // district code → index in districts
	for i, r := range dt.rows {
		d := Unit{Code: LegacyCode(dt.get(r, "district_code")), Parent: CityCode, Name: dt.get(r, "district_name"),
			Level: 1, Kind: KindLegacyDistrict, ValidTo: MergerDate}
		if d.Lat, err = dt.float(i, r, "lat"); err != nil {
			return nil, err
		}
		if d.Lon, err = dt.float(i, r, "lon"); err != nil {
			return nil, err
		}
		at[d.Code] = len(districts)
		districts = append(districts, d)
	}
	for i, r := range wt.rows {
		w := Unit{Code: LegacyCode(wt.get(r, "ward_code")), Parent: LegacyCode(wt.get(r, "district_code")),
			Name: wt.get(r, "ward_name"), Level: 2, Kind: KindLegacyWard, ValidTo: MergerDate,
			Successors: splitList(wt.get(r, "new_ward_codes_2025"))}
		if w.Lat, err = wt.float(i, r, "lat"); err != nil {
			return nil, err
		}
		if w.Lon, err = wt.float(i, r, "lon"); err != nil {
			return nil, err
		}
		if math.IsNaN(w.Lat) || math.IsNaN(w.Lon) {
			if len(w.Successors) == 0 {
				return nil, fmt.Errorf("hcmc/%s line %d: ward %s has neither coordinates nor successors", wt.file, i+2, w.Code)
			}
			c := centre[w.Successors[0]]
			w.Lat, w.Lon = c.Lat, c.Lon
		}
		if j, ok := at[w.Parent]; ok {
			districts[j].Successors = append(districts[j].Successors, w.Successors...)
		}
		lwards = append(lwards, w)
	}
	for i := range districts {
		slices.Sort(districts[i].Successors)
		districts[i].Successors = slices.Compact(districts[i].Successors)
	}
	return append(districts, lwards...), nil
}

// catalogCamera is a camera of the city's traffic camera catalog.
type catalogCamera struct {
	ID   string  `json:"id"`
	Name string  `json:"name"`
	Code string  `json:"code"`
	Lat  float64 `json:"latitude"`
	Lon  float64 `json:"longitude"`
	PTZ  *string `json:"ptz"`
	Type *string `json:"cam_type"`
}

// CameraTypeUnknown is the type of a catalogued camera whose record has none.
const CameraTypeUnknown = "unknown"

// hcmcCameras reads the catalog. A camera's id is "CAM-" and its code
// without spaces ("TTH 406" → CAM-TTH406). The catalog lists four cameras
// twice under one code, a few metres apart (the same camera): the first
// listed keeps the plain id, the repeat gets "-" and its catalog id
// (CAM-TTH29.4-233). Twenty catalogue entries failed to resolve when it was
// scraped and have no code, name or type: their id is "CAM-X" and the
// catalog id (CAM-X42), type CameraTypeUnknown.
func hcmcCameras(wards []Unit) ([]Camera, error) {
	b, err := hcmcFS.ReadFile("hcmc/hcmc_cameras_catalog_2025-11.json")
	if err != nil {
		return nil, err
	}
	var cat []catalogCamera
	if err := json.Unmarshal(b, &cat); err != nil {
		return nil, fmt.Errorf("hcmc camera catalog: %w", err)
	}
	seen := map[string]bool{}
	out := make([]Camera, 0, len(cat))
	for i, c := range cat {
		if c.ID == "" {
			return nil, fmt.Errorf("hcmc camera catalog [%d]: no id", i)
		}
		code := strings.Join(strings.Fields(c.Code), "")
		id := "CAM-" + code
		switch {
		case code == "":
			id = "CAM-X" + c.ID
		case seen[id]:
			id += "-" + c.ID
		}
		seen[id] = true
		cam := Camera{ID: id, Code: strings.TrimSpace(c.Code), Name: strings.TrimSpace(c.Name), Lat: c.Lat, Lon: c.Lon, Type: CameraTypeUnknown}
		if c.Type != nil && *c.Type != "" {
			cam.Type = *c.Type
		}
		cam.PTZ = c.PTZ != nil && strings.EqualFold(*c.PTZ, "true")
		cam.Unit = nearest(wards, cam.Lat, cam.Lon)
		out = append(out, cam)
	}
	return out, nil
}

// nearest is the code of the unit whose centre is nearest to lat, lon.
func nearest(units []Unit, lat, lon float64) string {
	best, bestD := "", math.Inf(1)
	for _, u := range units {
		if d := Haversine(lat, lon, u.Lat, u.Lon); d < bestD {
			best, bestD = u.Code, d
		}
	}
	return best
}

// Haversine is the great-circle distance in kilometres between two points.
func Haversine(lat1, lon1, lat2, lon2 float64) float64 {
	const r = 6371.0088 // mean Earth radius, km
	rad := math.Pi / 180
	dlat, dlon := (lat2-lat1)*rad, (lon2-lon1)*rad
	a := math.Sin(dlat/2)*math.Sin(dlat/2) + math.Cos(lat1*rad)*math.Cos(lat2*rad)*math.Sin(dlon/2)*math.Sin(dlon/2)
	return 2 * r * math.Asin(math.Min(1, math.Sqrt(a)))
}

var substituted = regexp.MustCompile(`substituted from (\d\d)/(\d\d)/(\d{4})`)

func hcmcCalendar() ([]Day, error) {
	b, err := hcmcFS.ReadFile("hcmc/vacanza_holidays_VN_COMMON_1950-2050.json")
	if err != nil {
		return nil, err
	}
	var hol map[string]string
	if err := json.Unmarshal(b, &hol); err != nil {
		return nil, fmt.Errorf("hcmc holidays: %w", err)
	}
	days := map[time.Time]Day{}
	for ds, name := range hol {
		d, err := time.Parse(time.DateOnly, ds)
		if err != nil {
			return nil, fmt.Errorf("hcmc holidays: %q: %w", ds, err)
		}
		if d.Year() < calendarFirstYear || d.Year() > calendarLastYear {
			continue
		}
		days[d] = Day{Date: d, Kind: DayHoliday, Name: name}
		// "Day off (substituted from 05/04/2024)": Saturday 4 May 2024 was worked.
		if m := substituted.FindStringSubmatch(name); m != nil {
			w, err := time.Parse(time.DateOnly, m[3]+"-"+m[1]+"-"+m[2])
			if err != nil {
				return nil, fmt.Errorf("hcmc holidays: %q: %w", name, err)
			}
			if _, taken := days[w]; !taken {
				days[w] = Day{Date: w, Kind: DayWorkday, Name: "Working day (substituted for " + ds + ")"}
			}
		}
	}
	swaps, err := bundled("calendar", "calendar_swaps.csv")
	if err != nil {
		return nil, err
	}
	for _, d := range swaps.Calendar {
		days[d.Date] = d
	}
	out := make([]Day, 0, len(days))
	for _, d := range days {
		out = append(out, d)
	}
	slices.SortFunc(out, func(a, b Day) int { return a.Date.Compare(b.Date) })
	return out, nil
}
