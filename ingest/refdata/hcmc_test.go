package refdata

import (
	"math"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

func mustHCMC(t testing.TB) *Set {
	t.Helper()
	s, err := HCMC()
	if err != nil {
		t.Fatalf("HCMC: %v", err)
	}
	return s
}

func count[T any](s []T, pred func(T) bool) int {
	n := 0
	for _, x := range s {
		if pred(x) {
			n++
		}
	}
	return n
}

func TestHCMC(t *testing.T) {
	s := mustHCMC(t)
	if err := s.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	units := map[string]Unit{}
	for _, u := range s.Units {
		units[u.Code] = u
	}
	byKind := func(kinds ...string) int {
		return count(s.Units, func(u Unit) bool { return slices.Contains(kinds, u.Kind) })
	}

	t.Run("city root", func(t *testing.T) {
		c, ok := units[CityCode]
		if !ok || c.Kind != KindCity || c.Parent != "" || c.Level != 0 {
			t.Fatalf("city = %+v", c)
		}
		if c.Population < 10_000_000 || c.AreaKm2 < 6000 {
			t.Errorf("city population %d, area %v: want the sums of the 2025 wards", c.Population, c.AreaKm2)
		}
	})
	t.Run("168 wards of 2025", func(t *testing.T) {
		if n := byKind(KindWard, KindCommune, KindSpecialZone); n != 168 {
			t.Errorf("%d wards, communes and special zones, want 168", n)
		}
		if n := byKind(KindSpecialZone); n != 1 {
			t.Errorf("%d special zones, want 1 (Côn Đảo)", n)
		}
		for _, u := range s.Units {
			if u.Kind == KindWard || u.Kind == KindCommune || u.Kind == KindSpecialZone {
				if u.Parent != CityCode || u.Level != 1 || !u.ValidFrom.Equal(MergerDate) || !u.ValidTo.IsZero() {
					t.Errorf("ward %+v: want parent 79, level 1, valid from 2025-07-01", u)
				}
			}
		}
	})
	t.Run("22 legacy districts", func(t *testing.T) {
		if n := byKind(KindLegacyDistrict); n != 22 {
			t.Errorf("%d legacy districts, want 22", n)
		}
		q1 := units[LegacyCode("760")]
		if q1.Name != "Quận 1" || !q1.ValidTo.Equal(MergerDate) || len(q1.Successors) == 0 {
			t.Errorf("Quận 1 = %+v", q1)
		}
	})
	t.Run("legacy wards as in the file", func(t *testing.T) {
		tab, err := readTable("hcmc_legacy_wards.csv")
		if err != nil {
			t.Fatal(err)
		}
		if n := byKind(KindLegacyWard); n != len(tab.rows) || n != 273 {
			t.Errorf("%d legacy wards, want %d rows of the file (273)", n, len(tab.rows))
		}
		for _, u := range s.Units {
			if u.Kind == KindLegacyWard && (u.Level != 2 || units[u.Parent].Kind != KindLegacyDistrict || len(u.Successors) == 0) {
				t.Errorf("legacy ward %+v: want level 2 under a legacy district, with successors", u)
			}
		}
	})
	t.Run("legacy codes are prefixed because GSO reused them", func(t *testing.T) {
		reused := 0
		for _, u := range s.Units {
			if u.Kind == KindLegacyWard {
				if !strings.HasPrefix(u.Code, LegacyPrefix) {
					t.Fatalf("legacy ward code %q has no prefix", u.Code)
				}
				if _, ok := units[strings.TrimPrefix(u.Code, LegacyPrefix)]; ok {
					reused++
				}
			}
		}
		if reused == 0 {
			t.Error("no legacy ward code is reused by a 2025 ward: the prefix may no longer be needed")
		}
		t.Logf("%d legacy ward codes are also 2025 ward codes", reused)
	})
	t.Run("Cầu Kho maps to a 2025 ward", func(t *testing.T) {
		var cauKho Unit
		for _, u := range s.Units {
			if u.Kind == KindLegacyWard && u.Name == "Phường Cầu Kho" {
				cauKho = u
			}
		}
		if cauKho.Code == "" {
			t.Fatal("no legacy ward Phường Cầu Kho")
		}
		if cauKho.Parent != LegacyCode("760") {
			t.Errorf("Cầu Kho parent %q, want Quận 1", cauKho.Parent)
		}
		for _, c := range cauKho.Successors {
			if k := units[c].Kind; k != KindWard {
				t.Errorf("Cầu Kho successor %q has kind %q, want a 2025 ward", c, k)
			}
		}
		if !slices.Equal(cauKho.Successors, []string{"26758"}) {
			t.Errorf("Cầu Kho successors %v, want [26758] (Phường Cầu Ông Lãnh)", cauKho.Successors)
		}
	})
	t.Run("721 cameras each in a 2025 ward", func(t *testing.T) {
		if len(s.Cameras) != 721 {
			t.Errorf("%d cameras, want 721", len(s.Cameras))
		}
		for _, c := range s.Cameras {
			if k := units[c.Unit].Kind; k != KindWard && k != KindCommune && k != KindSpecialZone {
				t.Errorf("camera %s in %q (kind %q), want a 2025 ward", c.ID, c.Unit, k)
			}
		}
		if c := s.Cameras[0]; c.ID != "CAM-TTH406" || c.Code != "TTH 406" || !c.PTZ || c.Type != "tth" {
			t.Errorf("first camera = %+v", c)
		}
	})
	t.Run("departments", func(t *testing.T) {
		if n := byKind(KindDepartment); n < 10 {
			t.Errorf("%d departments, want about a dozen", n)
		}
		if u := units["SO-TP"]; u.Name != "Sở Tư pháp" || u.Parent != CityCode || u.Level != 1 {
			t.Errorf("SO-TP = %+v", u)
		}
	})
	t.Run("officers", func(t *testing.T) {
		wards := byKind(KindWard, KindCommune, KindSpecialZone)
		deps := byKind(KindDepartment)
		if want := wards*OfficersPerWard + deps*OfficersPerDepartment; len(s.Officers) != want {
			t.Errorf("%d officers, want %d", len(s.Officers), want)
		}
		o := s.Officers[0]
		if o.ID != OfficerID(o.Unit, 1) || len(strings.Fields(o.Name)) != 3 {
			t.Errorf("first officer = %+v", o)
		}
	})
	t.Run("procedures", func(t *testing.T) {
		if len(s.Procedures) < 40 {
			t.Errorf("%d procedures, want about 40 or more", len(s.Procedures))
		}
		byCode := map[string]Procedure{}
		for _, p := range s.Procedures {
			byCode[p.Code] = p
		}
		if p := byCode["TP-001"]; p.Name != "Đăng ký khai sinh" || p.DeadlineDays != 1 || p.UnitKind != KindWard {
			t.Errorf("TP-001 = %+v", p)
		}
		if p := byCode["TP-010"]; p.DeadlineHours != 8 || p.DeadlineDays != 0 {
			t.Errorf("TP-010 = %+v, want a deadline in hours", p)
		}
	})
	t.Run("calendar", func(t *testing.T) {
		days := map[string]Day{}
		for _, d := range s.Calendar {
			days[d.Date.Format(time.DateOnly)] = d
		}
		for date, kind := range map[string]string{
			"2026-02-16": DayHoliday, "2026-02-20": DayHoliday, "2026-08-31": DayHoliday, "2026-08-22": DayWorkday,
			"2025-05-02": DayHoliday, "2025-04-26": DayWorkday, "2024-04-29": DayHoliday, "2024-05-04": DayWorkday,
			"2015-01-01": DayHoliday, "2035-09-02": DayHoliday,
		} {
			if d := days[date]; d.Kind != kind {
				t.Errorf("%s: %+v, want %s", date, d, kind)
			}
		}
		if d := days["2024-05-04"]; !strings.Contains(d.Name, "Làm bù") {
			t.Errorf("2024-05-04 named %q: calendar_swaps.csv should win over vacanza", d.Name)
		}
		if _, ok := days["2014-01-01"]; ok {
			t.Error("2014 holidays kept, want 2015–2035")
		}
		if !slices.IsSortedFunc(s.Calendar, func(a, b Day) int { return a.Date.Compare(b.Date) }) {
			t.Error("calendar not sorted by date")
		}
	})
	t.Run("deterministic", func(t *testing.T) {
		if again := mustHCMC(t); !reflect.DeepEqual(s, again) {
			t.Error("two calls of HCMC differ")
		}
	})
}

func TestHaversine(t *testing.T) {
	// One degree along a meridian is 2πR/360 = 111.195 km.
	if d := Haversine(10, 106, 11, 106); math.Abs(d-111.195) > 0.001 {
		t.Errorf("Haversine over 1° of latitude = %v km, want 111.195", d)
	}
	// Bến Thành market to Tân Sơn Nhất airport: about 6.7 km as the crow flies.
	if d := Haversine(10.7725, 106.6980, 10.8185, 106.6588); d < 6.5 || d > 6.8 {
		t.Errorf("Haversine = %v km, want about 6.7", d)
	}
}
