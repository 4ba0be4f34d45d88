package worktime

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/vn-ioc/ioc/ingest/refdata"
)

var ict = time.FixedZone("ICT", 7*3600)

// at is a local time in Ho Chi Minh City.
func at(y int, m time.Month, d, h, mi int) time.Time {
	return time.Date(y, m, d, h, mi, 0, 0, ict)
}

func date(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 0, 0, 0, 0, time.UTC) }

// testDays: Tết 2026 (Mon 16 – Fri 20 Feb off), the National Day swap of
// 2026 (Mon 31 Aug off, Sat 22 Aug worked; 1 and 2 Sep off), and a holiday on
// a Sunday (which changes nothing).
func testDays() []refdata.Day {
	var days []refdata.Day
	for d := 16; d <= 20; d++ {
		days = append(days, refdata.Day{Date: date(2026, 2, d), Kind: refdata.DayHoliday, Name: "Tết Bính Ngọ"})
	}
	return append(days,
		refdata.Day{Date: date(2026, 4, 26), Kind: refdata.DayHoliday, Name: "Giỗ Tổ Hùng Vương (Sunday)"},
		refdata.Day{Date: date(2026, 8, 22), Kind: refdata.DayWorkday, Name: "Làm bù cho ngày 31/8"},
		refdata.Day{Date: date(2026, 8, 31), Kind: refdata.DayHoliday, Name: "Nghỉ bù (hoán đổi với 22/8)"},
		refdata.Day{Date: date(2026, 9, 1), Kind: refdata.DayHoliday, Name: "Quốc khánh"},
		refdata.Day{Date: date(2026, 9, 2), Kind: refdata.DayHoliday, Name: "Quốc khánh"},
	)
}

func newCal(t testing.TB) *Calendar {
	t.Helper()
	c, err := New(testDays(), Config{})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestIsWorkingDay(t *testing.T) {
	c := newCal(t)
	tests := []struct {
		name string
		t    time.Time
		want bool
	}{
		{"monday", at(2026, 3, 2, 9, 0), true},
		{"friday", at(2026, 3, 6, 9, 0), true},
		{"saturday", at(2026, 3, 7, 9, 0), false},
		{"sunday", at(2026, 3, 8, 9, 0), false},
		{"tet monday", at(2026, 2, 16, 9, 0), false},
		{"tet friday", at(2026, 2, 20, 9, 0), false},
		{"after tet", at(2026, 2, 23, 9, 0), true},
		{"swapped monday off", at(2026, 8, 31, 9, 0), false},
		{"make-up saturday worked", at(2026, 8, 22, 9, 0), true},
		{"ordinary saturday", at(2026, 8, 29, 9, 0), false},
		{"national day", at(2026, 9, 2, 9, 0), false},
		{"utc date of a local monday", time.Date(2026, 3, 1, 18, 0, 0, 0, time.UTC), true}, // 01:00 Mon 2 Mar local
		{"midnight utc of a date", date(2026, 2, 16), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := c.IsWorkingDay(tt.t); got != tt.want {
				t.Errorf("IsWorkingDay(%v) = %v, want %v", tt.t, got, tt.want)
			}
		})
	}
}

func TestAddWorkingDays(t *testing.T) {
	c := newCal(t)
	tests := []struct {
		name string
		from time.Time
		n    float64
		want time.Time
	}{
		{"same day before cutoff", at(2026, 3, 2, 9, 0), 1, at(2026, 3, 2, 17, 0)},
		{"same day at cutoff", at(2026, 3, 2, 15, 0), 1, at(2026, 3, 2, 17, 0)},
		{"after cutoff counts from next day", at(2026, 3, 2, 15, 1), 1, at(2026, 3, 3, 17, 0)},
		{"before opening", at(2026, 3, 2, 6, 0), 1, at(2026, 3, 2, 17, 0)},
		{"evening", at(2026, 3, 2, 20, 0), 3, at(2026, 3, 5, 17, 0)},
		{"three days", at(2026, 3, 2, 10, 0), 3, at(2026, 3, 4, 17, 0)},
		{"over a weekend", at(2026, 3, 5, 10, 0), 3, at(2026, 3, 9, 17, 0)},
		{"friday after cutoff", at(2026, 3, 6, 16, 0), 1, at(2026, 3, 9, 17, 0)},
		{"received saturday", at(2026, 3, 7, 9, 0), 1, at(2026, 3, 9, 17, 0)},
		{"received sunday", at(2026, 3, 8, 9, 0), 2, at(2026, 3, 10, 17, 0)},
		{"fifteen days", at(2026, 3, 2, 9, 0), 15, at(2026, 3, 20, 17, 0)},
		{"before tet", at(2026, 2, 12, 10, 0), 3, at(2026, 2, 23, 17, 0)}, // Thu, Fri, (Tết week), Mon
		{"received during tet", at(2026, 2, 17, 10, 0), 1, at(2026, 2, 23, 17, 0)},
		{"friday before tet after cutoff", at(2026, 2, 13, 15, 30), 1, at(2026, 2, 23, 17, 0)},
		{"ten days across tet", at(2026, 2, 9, 8, 0), 10, at(2026, 2, 27, 17, 0)},
		{"make-up saturday counts", at(2026, 8, 21, 10, 0), 2, at(2026, 8, 22, 17, 0)},
		{"received on make-up saturday", at(2026, 8, 22, 9, 0), 1, at(2026, 8, 22, 17, 0)},
		{"across the 2026 swap", at(2026, 8, 28, 9, 0), 2, at(2026, 9, 3, 17, 0)}, // Fri 28, (31, 1, 2 off), Thu 3
		{"half day morning", at(2026, 3, 2, 7, 30), 0.5, at(2026, 3, 2, 11, 30)},
		{"half day over lunch", at(2026, 3, 2, 9, 0), 0.5, at(2026, 3, 2, 14, 30)},
		{"half day capped at end of day", at(2026, 3, 2, 14, 0), 0.5, at(2026, 3, 2, 17, 0)},
		{"half day after cutoff", at(2026, 3, 2, 16, 0), 0.5, at(2026, 3, 3, 11, 30)},
		{"one and a half days", at(2026, 3, 2, 9, 0), 1.5, at(2026, 3, 3, 11, 30)},
		{"two and a quarter days", at(2026, 3, 2, 9, 0), 2.25, at(2026, 3, 4, 9, 30)},
		{"one and a half days over a weekend", at(2026, 3, 6, 9, 0), 1.5, at(2026, 3, 9, 11, 30)},
		{"zero", at(2026, 3, 2, 9, 0), 0, at(2026, 3, 2, 9, 0)},
		{"negative", at(2026, 3, 2, 9, 0), -2, at(2026, 3, 2, 9, 0)},
		{"NaN", at(2026, 3, 2, 9, 0), math.NaN(), at(2026, 3, 2, 9, 0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := c.AddWorkingDays(tt.from, tt.n); !got.Equal(tt.want) {
				t.Errorf("AddWorkingDays(%v, %v) = %v, want %v", tt.from, tt.n, got.In(ict), tt.want)
			}
		})
	}
}

func TestAddWorkingHours(t *testing.T) {
	c := newCal(t)
	tests := []struct {
		name string
		from time.Time
		h    float64
		want time.Time
	}{
		{"within morning", at(2026, 3, 2, 8, 0), 2, at(2026, 3, 2, 10, 0)},
		{"to the end of the morning", at(2026, 3, 2, 8, 0), 3.5, at(2026, 3, 2, 11, 30)},
		{"over lunch", at(2026, 3, 2, 11, 0), 1, at(2026, 3, 2, 13, 30)},
		{"from lunch", at(2026, 3, 2, 12, 0), 1, at(2026, 3, 2, 14, 0)},
		{"before opening", at(2026, 3, 2, 6, 0), 0.5, at(2026, 3, 2, 8, 0)},
		{"to the end of the day", at(2026, 3, 2, 7, 30), 8, at(2026, 3, 2, 17, 0)},
		{"into next day", at(2026, 3, 2, 16, 0), 2, at(2026, 3, 3, 8, 30)},
		{"after hours", at(2026, 3, 2, 18, 0), 2, at(2026, 3, 3, 9, 30)},
		{"over a weekend", at(2026, 3, 6, 16, 0), 2, at(2026, 3, 9, 8, 30)},
		{"from saturday", at(2026, 3, 7, 10, 0), 4, at(2026, 3, 9, 11, 30)},
		{"two working hours (fast wednesday)", at(2026, 3, 4, 10, 0), 2, at(2026, 3, 4, 13, 30)},
		{"over tet", at(2026, 2, 13, 16, 0), 1.5, at(2026, 2, 23, 8, 0)},
		{"forty hours", at(2026, 3, 2, 7, 30), 40, at(2026, 3, 6, 17, 0)},
		{"fraction of a minute", at(2026, 3, 2, 8, 0), 1.0 / 120, at(2026, 3, 2, 8, 0).Add(30 * time.Second)},
		{"make-up saturday", at(2026, 8, 21, 16, 0), 2, at(2026, 8, 22, 8, 30)},
		{"zero", at(2026, 3, 7, 10, 0), 0, at(2026, 3, 7, 10, 0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := c.AddWorkingHours(tt.from, tt.h); !got.Equal(tt.want) {
				t.Errorf("AddWorkingHours(%v, %v) = %v, want %v", tt.from, tt.h, got.In(ict), tt.want)
			}
		})
	}
}

func TestWorkingHoursBetween(t *testing.T) {
	c := newCal(t)
	tests := []struct {
		name string
		a, b time.Time
		want float64
	}{
		{"same instant", at(2026, 3, 2, 9, 0), at(2026, 3, 2, 9, 0), 0},
		{"morning", at(2026, 3, 2, 8, 0), at(2026, 3, 2, 10, 0), 2},
		{"lunch break does not count", at(2026, 3, 2, 11, 0), at(2026, 3, 2, 13, 30), 1},
		{"inside lunch", at(2026, 3, 2, 11, 45), at(2026, 3, 2, 12, 45), 0},
		{"whole day", at(2026, 3, 2, 0, 0), at(2026, 3, 3, 0, 0), 8},
		{"overnight", at(2026, 3, 2, 16, 0), at(2026, 3, 3, 8, 30), 2},
		{"weekend does not count", at(2026, 3, 6, 16, 0), at(2026, 3, 9, 8, 30), 2},
		{"saturday to sunday", at(2026, 3, 7, 8, 0), at(2026, 3, 8, 16, 0), 0},
		{"week", at(2026, 3, 2, 7, 30), at(2026, 3, 9, 7, 30), 40},
		{"tet week", at(2026, 2, 16, 0, 0), at(2026, 2, 21, 0, 0), 0},
		{"across tet", at(2026, 2, 13, 16, 0), at(2026, 2, 23, 8, 0), 1.5},
		{"make-up saturday counts", at(2026, 8, 22, 0, 0), at(2026, 8, 23, 0, 0), 8},
		{"reversed", at(2026, 3, 2, 10, 0), at(2026, 3, 2, 8, 0), -2},
		{"a year", at(2026, 1, 1, 0, 0), at(2027, 1, 1, 0, 0), 8 * (261 - 8 + 1)}, // 261 weekdays, 8 weekdays off here, 1 Saturday worked
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := c.WorkingHoursBetween(tt.a, tt.b); math.Abs(got-tt.want) > 1e-9 {
				t.Errorf("WorkingHoursBetween(%v, %v) = %v, want %v", tt.a, tt.b, got, tt.want)
			}
			if got := c.WorkingDaysBetween(tt.a, tt.b); math.Abs(got-tt.want/8) > 1e-9 {
				t.Errorf("WorkingDaysBetween(%v, %v) = %v, want %v", tt.a, tt.b, got, tt.want/8)
			}
			if got, want := c.WorkingSecondsBetween(tt.a, tt.b), int64(max(0, tt.want)*3600); got != want {
				t.Errorf("WorkingSecondsBetween(%v, %v) = %v, want %v", tt.a, tt.b, got, want)
			}
		})
	}
}

// TestWorkingSecondsBetween: whole seconds of WorkingHoursBetween for
// random spans (0 when reversed), the fractions of a second of either end
// dropped.
func TestWorkingSecondsBetween(t *testing.T) {
	c := newCal(t)
	base := at(2025, 12, 1, 0, 0).Unix()
	r := rand.New(rand.NewPCG(7, 7))
	for range 2000 {
		a := time.Unix(base+r.Int64N(400*86400), 0)
		b := a.Add(time.Duration(r.Int64N(40*86400)-2*86400) * time.Second)
		want := int64(math.Round(max(0, c.WorkingHoursBetween(a, b)) * 3600))
		if got := c.WorkingSecondsBetween(a, b); got != want {
			t.Fatalf("WorkingSecondsBetween(%v, %v) = %d, want %d", a, b, got, want)
		}
		if got := c.WorkingSecondsBetween(a.Add(999*time.Millisecond), b.Add(999*time.Millisecond)); got != want {
			t.Fatalf("with fractions of a second: %d, want %d", got, want)
		}
	}
	if got := c.WorkingSecondsBetween(at(2026, 3, 2, 8, 0).Add(600*time.Millisecond), at(2026, 3, 2, 8, 0).Add(1400*time.Millisecond)); got != 1 {
		t.Errorf("08:00:00.6 → 08:00:01.4: %d s, want 1 (whole seconds, as DateTime values)", got)
	}
}

func TestConfig(t *testing.T) {
	t.Run("custom sessions", func(t *testing.T) {
		c, err := New(nil, Config{
			Sessions: []Session{{Start: 8 * time.Hour, End: 12 * time.Hour}, {Start: 13 * time.Hour, End: 17 * time.Hour}},
			Cutoff:   16 * time.Hour,
		})
		if err != nil {
			t.Fatal(err)
		}
		if got, want := c.AddWorkingHours(at(2026, 3, 2, 11, 0), 2), at(2026, 3, 2, 14, 0); !got.Equal(want) {
			t.Errorf("AddWorkingHours = %v, want %v", got, want)
		}
		if got, want := c.AddWorkingDays(at(2026, 3, 2, 15, 30), 1), at(2026, 3, 2, 17, 0); !got.Equal(want) {
			t.Errorf("AddWorkingDays with a 16:00 cutoff = %v, want %v", got, want)
		}
	})
	t.Run("cutoff past the last session", func(t *testing.T) {
		for _, cfg := range []Config{
			{Cutoff: 24 * time.Hour}, // no cutoff
			{Sessions: []Session{{Start: 7*time.Hour + 30*time.Minute, End: 11*time.Hour + 30*time.Minute}}}, // mornings only
		} {
			c, err := New(nil, cfg)
			if err != nil {
				t.Fatal(err)
			}
			from := at(2026, 3, 2, 18, 0)
			if len(cfg.Sessions) > 0 {
				from = at(2026, 3, 2, 14, 0)
			}
			for _, n := range []float64{1, 0.5} {
				if got := c.AddWorkingDays(from, n); !got.After(from) || got.Day() != 3 {
					t.Errorf("%+v: AddWorkingDays(%v, %v) = %v, want on the next day", cfg, from, n, got.In(ict))
				}
			}
		}
	})
	t.Run("utc location", func(t *testing.T) {
		c, err := New(nil, Config{Location: time.UTC})
		if err != nil {
			t.Fatal(err)
		}
		if got, want := c.AddWorkingDays(time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC), 1), time.Date(2026, 3, 2, 17, 0, 0, 0, time.UTC); !got.Equal(want) {
			t.Errorf("AddWorkingDays = %v, want %v", got, want)
		}
	})
	bad := []struct {
		name string
		cfg  Config
	}{
		{"empty session", Config{Sessions: []Session{{Start: 8 * time.Hour, End: 8 * time.Hour}}}},
		{"overlap", Config{Sessions: []Session{{Start: 8 * time.Hour, End: 12 * time.Hour}, {Start: 11 * time.Hour, End: 17 * time.Hour}}}},
		{"past midnight", Config{Sessions: []Session{{Start: 20 * time.Hour, End: 25 * time.Hour}}}},
		{"negative cutoff", Config{Cutoff: -time.Hour}},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := New(nil, tt.cfg); err == nil {
				t.Error("New accepted a bad config")
			}
		})
	}
}

func TestNewRejects(t *testing.T) {
	tests := []struct {
		name string
		days []refdata.Day
	}{
		{"unknown kind", []refdata.Day{{Date: date(2026, 1, 1), Kind: "party"}}},
		{"no date", []refdata.Day{{Kind: refdata.DayHoliday, Name: "?"}}},
		{"conflicting kinds", []refdata.Day{
			{Date: date(2026, 1, 1), Kind: refdata.DayHoliday},
			{Date: date(2026, 1, 1), Kind: refdata.DayWorkday},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := New(tt.days, Config{}); err == nil {
				t.Error("New accepted bad days")
			}
		})
	}
}

// TestBundledCalendar checks the calendar refdata ships for the city.
func TestBundledCalendar(t *testing.T) {
	set, err := refdata.HCMC()
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(set.Calendar, Config{})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		day  time.Time
		want bool
	}{
		{"tet 2026", at(2026, 2, 18, 9, 0), false},
		{"31 aug 2026", at(2026, 8, 31, 9, 0), false},
		{"sat 22 aug 2026", at(2026, 8, 22, 9, 0), true},
		{"2 may 2025", at(2025, 5, 2, 9, 0), false},
		{"sat 26 apr 2025", at(2025, 4, 26, 9, 0), true},
		{"29 apr 2024", at(2024, 4, 29, 9, 0), false},
		{"sat 4 may 2024", at(2024, 5, 4, 9, 0), true},
		{"3 sep 2024", at(2024, 9, 3, 9, 0), false},
		{"ordinary tuesday", at(2025, 3, 4, 9, 0), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := c.IsWorkingDay(tt.day); got != tt.want {
				t.Errorf("IsWorkingDay(%v) = %v, want %v", tt.day, got, tt.want)
			}
		})
	}
}

func TestDayNumber(t *testing.T) {
	for n := int64(-800000); n < 800000; n += 97 {
		y, m, d := civil(n)
		if got := dayNumber(y, m, d); got != n {
			t.Fatalf("dayNumber(civil(%d)) = %d", n, got)
		}
		if want := time.Date(y, m, d, 0, 0, 0, 0, time.UTC).Unix() / 86400; want != n {
			t.Fatalf("civil(%d) = %d-%d-%d, which is day %d", n, y, m, d, want)
		}
	}
}

func FuzzAddWorkingHoursRoundTrip(f *testing.F) {
	f.Add(int64(1772416800), 2.5)  // Mon 2 Mar 2026 09:00 ICT
	f.Add(int64(1771293600), 40.0) // Tue 17 Feb 2026 09:00 ICT, during Tết
	f.Add(int64(1788141600), 0.25) // Mon 31 Aug 2026 09:00 ICT, swapped off
	f.Add(int64(0), 1e5)
	c := newCal(f)
	f.Fuzz(func(t *testing.T, sec int64, h float64) {
		// Instants from 1900 to 2200, spans up to 100,000 hours.
		const lo, span = -2208988800, 300 * 365 * 86400
		from := time.Unix(lo+mod(sec-lo, span), 0)
		if math.IsNaN(h) || math.IsInf(h, 0) {
			h = 1
		}
		h = math.Mod(math.Abs(h), 1e5)
		to := c.AddWorkingHours(from, h)
		if to.Before(from) {
			t.Fatalf("AddWorkingHours(%v, %v) = %v, before from", from, h, to)
		}
		got := c.WorkingHoursBetween(from, to)
		if math.Abs(got-h) > 1e-9*math.Max(1, h) {
			t.Fatalf("WorkingHoursBetween(%v, AddWorkingHours(…, %v) = %v) = %v", from, h, to, got)
		}
		if h > 0 && !c.IsWorkingDay(to) {
			t.Fatalf("AddWorkingHours(%v, %v) = %v, not a working day", from, h, to)
		}
	})
}

func mod(a, b int64) int64 { return ((a % b) + b) % b }

func BenchmarkAddWorkingDays(b *testing.B) {
	c := newCal(b)
	from := at(2026, 2, 10, 14, 0)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		_ = c.AddWorkingDays(from, float64(1+i%30)+0.5)
	}
}
