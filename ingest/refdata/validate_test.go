package refdata

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"
)

// smallSet is a valid set with one of everything.
func smallSet() *Set {
	d := func(s string) time.Time { t, _ := time.Parse(time.DateOnly, s); return t }
	return &Set{
		Units: []Unit{
			{Code: "79", Name: "TP", Kind: KindCity, Lat: 10.77, Lon: 106.70},
			{Code: "SO-TP", Parent: "79", Name: "Sở Tư pháp", Level: 1, Kind: KindDepartment},
			{Code: "26740", Parent: "79", Name: "Phường Sài Gòn", Level: 1, Kind: KindWard, Lat: 10.78, Lon: 106.70, ValidFrom: MergerDate},
			{Code: "L-760", Parent: "79", Name: "Quận 1", Level: 1, Kind: KindLegacyDistrict, ValidTo: MergerDate, Successors: []string{"26740"}},
			{Code: "L-26740", Parent: "L-760", Name: "Phường Bến Nghé", Level: 2, Kind: KindLegacyWard, ValidTo: MergerDate, Successors: []string{"26740"}},
		},
		Procedures: []Procedure{
			{Code: "TP-001", Name: "Đăng ký khai sinh", Field: "Hộ tịch", UnitKind: KindWard, DeadlineDays: 1, ServiceLevel: ServiceFullOnline},
			{Code: "TP-010", Name: "Chứng thực bản sao", Field: "Chứng thực", UnitKind: KindWard, DeadlineHours: 8, ServiceLevel: ServiceOffline, Fee: true},
		},
		Officers: []Officer{{ID: "CB-26740-01", Unit: "26740", Name: "Nguyễn Văn An"}},
		Cameras:  []Camera{{ID: "CAM-TTH406", Code: "TTH 406", Lat: 10.79, Lon: 106.69, Unit: "26740", Type: "tth"}},
		Calendar: []Day{
			{Date: d("2026-08-31"), Kind: DayHoliday, Name: "Nghỉ bù"},
			{Date: d("2026-08-22"), Kind: DayWorkday, Name: "Làm bù"},
		},
	}
}

func TestValidate(t *testing.T) {
	if err := smallSet().Validate(); err != nil {
		t.Fatalf("valid set: %v", err)
	}
	tests := []struct {
		name   string
		mutate func(s *Set)
		want   []string // each a line of the error
	}{
		{"missing parent", func(s *Set) { s.Units[2].Parent = "999" },
			[]string{`units[2] (code "26740"): parent "999" does not exist`}},
		{"duplicate code", func(s *Set) { s.Units[3].Code = "26740" },
			[]string{`units[3] (code "26740"): code "26740" is not unique (also units[2])`}},
		{"code with a dot", func(s *Set) { s.Units[1].Code = "SO.TP" },
			[]string{`units[1] (code "SO.TP"): code "SO.TP" may hold only letters, digits, '-' and '_'`}},
		{"empty code", func(s *Set) { s.Units[1].Code = "" },
			[]string{`units[1]: code is empty`}},
		{"unknown kind", func(s *Set) { s.Units[1].Kind = "ministry" },
			[]string{`units[1] (code "SO-TP"): kind "ministry" is not a known kind`}},
		{"lat out of range", func(s *Set) { s.Units[2].Lat = 91 },
			[]string{`units[2] (code "26740"): lat 91 is out of range`}},
		{"lon NaN", func(s *Set) { s.Cameras[0].Lon = math.NaN() },
			[]string{`cameras[0] (id "CAM-TTH406"): lon NaN is out of range`}},
		{"wrong level", func(s *Set) { s.Units[4].Level = 1 },
			[]string{`units[4] (code "L-26740"): level 1, want 2 (one more than parent "L-760")`}},
		{"root that is not a city", func(s *Set) { s.Units[1].Parent = "" },
			[]string{`units[1] (code "SO-TP"): parent is empty (only a city is a root)`}},
		{"cycle", func(s *Set) { s.Units[0].Parent = "L-26740"; s.Units[0].Level = 3 },
			[]string{`parent "L-26740" makes a cycle`}},
		{"unknown successor", func(s *Set) { s.Units[4].Successors = []string{"26740", "00000"} },
			[]string{`units[4] (code "L-26740"): successors "00000" does not exist`}},
		{"valid_to before valid_from", func(s *Set) { s.Units[2].ValidTo = MergerDate.AddDate(0, 0, -1) },
			[]string{`units[2] (code "26740"): valid_to 2025-06-30 is not after valid_from 2025-07-01`}},
		{"officer in unknown unit", func(s *Set) { s.Officers[0].Unit = "12345" },
			[]string{`officers[0] (id "CB-26740-01"): unit "12345" does not exist`}},
		{"camera without unit", func(s *Set) { s.Cameras[0].Unit = "" },
			[]string{`cameras[0] (id "CAM-TTH406"): unit is empty`}},
		{"duplicate officer", func(s *Set) { s.Officers = append(s.Officers, s.Officers[0]) },
			[]string{`officers[1] (id "CB-26740-01"): id "CB-26740-01" is not unique (also officers[0])`}},
		{"no deadline", func(s *Set) { s.Procedures[0].DeadlineDays = 0 },
			[]string{`procedures[0] (code "TP-001"): deadline_days is not positive, nor is deadline_hours`}},
		{"negative deadline", func(s *Set) { s.Procedures[1].DeadlineHours = -8 },
			[]string{`procedures[1] (code "TP-010"): deadline_hours -8 is negative`}},
		{"two deadlines", func(s *Set) { s.Procedures[0].DeadlineHours = 4 },
			[]string{`procedures[0] (code "TP-001"): deadline_hours 4 is set with deadline_days 1: give one of them`}},
		{"unknown service level", func(s *Set) { s.Procedures[0].ServiceLevel = "online" },
			[]string{`procedures[0] (code "TP-001"): service_level "online" is not full_online, partial_online or offline`}},
		{"unknown unit kind", func(s *Set) { s.Procedures[1].UnitKind = "district" },
			[]string{`procedures[1] (code "TP-010"): unit_kind "district" is not a known unit kind`}},
		{"calendar kind", func(s *Set) { s.Calendar[0].Kind = "party" },
			[]string{`calendar[0] (date "2026-08-31"): kind "party" is not "holiday" or "workday"`}},
		{"calendar duplicate", func(s *Set) { s.Calendar[1].Date = s.Calendar[0].Date },
			[]string{`calendar[1] (date "2026-08-31"): date "2026-08-31" is not unique (also calendar[0])`}},
		{"calendar without date", func(s *Set) { s.Calendar[1].Date = time.Time{} },
			[]string{`calendar[1]: date is empty`}},
		{"date past what is stored", func(s *Set) { s.Calendar[0].Date = time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC) },
			[]string{`calendar[0] (date "2200-01-01"): date 2200-01-01 is out of range (1970-01-02 to 2105-12-31)`}},
		{"date before what is stored", func(s *Set) { s.Units[2].ValidFrom = time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC) },
			[]string{`units[2] (code "26740"): valid_from 1900-01-01 is out of range`}},
		{"workday on a weekday", func(s *Set) { s.Calendar[1].Date = time.Date(2026, 8, 21, 0, 0, 0, 0, time.UTC) },
			[]string{`calendar[1] (date "2026-08-21"): kind workday on a Friday: only a Saturday or a Sunday`}},
		{"two roots", func(s *Set) { s.Units = append(s.Units, Unit{Code: "80", Name: "Another city", Kind: KindCity}) },
			[]string{`units[5] (code "80"): parent is empty, but "79" is the root already`}},
		{"several problems at once", func(s *Set) {
			s.Units[2].Parent = "999"
			s.Officers[0].Unit = "888"
			s.Procedures[0].ServiceLevel = ""
		}, []string{
			`units[2] (code "26740"): parent "999" does not exist`,
			`procedures[0] (code "TP-001"): service_level "" is not`,
			`officers[0] (id "CB-26740-01"): unit "888" does not exist`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := smallSet()
			tt.mutate(s)
			err := s.Validate()
			if err == nil {
				t.Fatal("Validate passed a broken set")
			}
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("error %T, want *ValidationError", err)
			}
			lines := strings.Split(err.Error(), "\n")
			for _, w := range tt.want {
				found := false
				for _, l := range lines {
					found = found || strings.Contains(l, w)
				}
				if !found {
					t.Errorf("error\n%s\nhas no line with %q", err, w)
				}
			}
		})
	}
}

func TestValidateCapsProblems(t *testing.T) {
	s := smallSet()
	for i := range 30 {
		s.Officers = append(s.Officers, Officer{ID: fmt.Sprintf("CB-X-%d", i), Unit: "nowhere"})
	}
	err := s.Validate()
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("error %v, want *ValidationError", err)
	}
	if len(ve.Problems) != MaxProblems || ve.Total != 30 {
		t.Errorf("%d problems listed of %d, want %d of 30", len(ve.Problems), ve.Total, MaxProblems)
	}
	if !strings.HasSuffix(err.Error(), "… and 10 more problems") {
		t.Errorf("error does not end with the count of the rest:\n%s", err)
	}
}
