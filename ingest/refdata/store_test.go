package refdata

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vn-ioc/ioc/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// sorted returns a copy of s with every kind in key order, as Load returns it.
func sorted(s *Set) *Set {
	c := &Set{
		Units:      slices.Clone(s.Units),
		Procedures: slices.Clone(s.Procedures),
		Officers:   slices.Clone(s.Officers),
		Cameras:    slices.Clone(s.Cameras),
		Calendar:   slices.Clone(s.Calendar),
	}
	slices.SortFunc(c.Units, func(a, b Unit) int { return cmp.Compare(a.Code, b.Code) })
	slices.SortFunc(c.Procedures, func(a, b Procedure) int { return cmp.Compare(a.Code, b.Code) })
	slices.SortFunc(c.Officers, func(a, b Officer) int { return cmp.Compare(a.ID, b.ID) })
	slices.SortFunc(c.Cameras, func(a, b Camera) int { return cmp.Compare(a.ID, b.ID) })
	slices.SortFunc(c.Calendar, func(a, b Day) int { return a.Date.Compare(b.Date) })
	return c
}

// diff names the first differing row of each kind.
func diff(t *testing.T, got, want *Set) {
	t.Helper()
	check := func(kind string, n, m int, row func(i int) (any, any)) {
		if n != m {
			t.Errorf("%s: %d rows, want %d", kind, n, m)
		}
		for i := range min(n, m) {
			if g, w := row(i); !reflect.DeepEqual(g, w) {
				t.Errorf("%s[%d] = %+v\nwant %+v", kind, i, g, w)
				return
			}
		}
	}
	check("units", len(got.Units), len(want.Units), func(i int) (any, any) { return got.Units[i], want.Units[i] })
	check("procedures", len(got.Procedures), len(want.Procedures), func(i int) (any, any) { return got.Procedures[i], want.Procedures[i] })
	check("officers", len(got.Officers), len(want.Officers), func(i int) (any, any) { return got.Officers[i], want.Officers[i] })
	check("cameras", len(got.Cameras), len(want.Cameras), func(i int) (any, any) { return got.Cameras[i], want.Cameras[i] })
	check("calendar", len(got.Calendar), len(want.Calendar), func(i int) (any, any) { return got.Calendar[i], want.Calendar[i] })
}

func TestStore(t *testing.T) {
	db, _ := testenv.ClickHouse(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	st := NewStore(db)

	empty, err := st.Empty(ctx)
	if err != nil || !empty {
		t.Fatalf("Empty on a new database = %v, %v; want true", empty, err)
	}

	full := mustHCMC(t)
	if err := st.SaveAll(ctx, full); err != nil {
		t.Fatalf("SaveAll: %v", err)
	}
	t.Run("load back equal", func(t *testing.T) {
		got, err := st.Load(ctx)
		if err != nil {
			t.Fatal(err)
		}
		diff(t, got, sorted(full))
		if empty, err := st.Empty(ctx); err != nil || empty {
			t.Errorf("Empty after SaveAll = %v, %v; want false", empty, err)
		}
	})
	t.Run("units carry their path", func(t *testing.T) {
		var path []string
		if err := db.Conn.QueryRow(ctx, "SELECT path FROM "+db.Table("units")+" WHERE code = ?", "L-26761").Scan(&path); err != nil {
			t.Fatal(err)
		}
		if want := []string{"79", "L-760", "L-26761"}; !slices.Equal(path, want) {
			t.Errorf("path of Cầu Kho = %v, want %v", path, want)
		}
	})
	t.Run("saving again changes nothing", func(t *testing.T) {
		if err := st.Save(ctx, "officers", full); err != nil {
			t.Fatal(err)
		}
		got, err := st.Load(ctx)
		if err != nil {
			t.Fatal(err)
		}
		diff(t, got, sorted(full))
	})
	t.Run("replace with a smaller set", func(t *testing.T) {
		small := smallSet()
		if err := small.Validate(); err != nil {
			t.Fatal(err)
		}
		if err := st.SaveAll(ctx, small); err != nil {
			t.Fatalf("SaveAll: %v", err)
		}
		got, err := st.Load(ctx)
		if err != nil {
			t.Fatal(err)
		}
		diff(t, got, sorted(small))
		for view, key := range map[string]string{"units": "26758", "officers": "CB-SO-TP-01", "cameras": "CAM-TTH21.84", "procedures": "KD-001"} {
			col := keyName(view)
			var n uint64
			if err := db.Conn.QueryRow(ctx, "SELECT count() FROM "+db.Table(view)+" WHERE "+col+" = ?", key).Scan(&n); err != nil {
				t.Fatal(err)
			}
			if n != 0 {
				t.Errorf("%s %q still in the view after it was removed", view, key)
			}
		}
	})
	t.Run("a removed row comes back", func(t *testing.T) {
		back := smallSet()
		back.Officers = append(back.Officers, Officer{ID: "CB-SO-TP-01", Unit: "SO-TP", Name: "Trần Thị Bình", Title: "Giám đốc"})
		if err := st.Save(ctx, "officers", back); err != nil {
			t.Fatal(err)
		}
		got, err := st.Load(ctx)
		if err != nil {
			t.Fatal(err)
		}
		diff(t, got, sorted(back))
	})
	t.Run("a save wins over rows of a clock ahead", func(t *testing.T) {
		// Rows written by a node whose clock is an hour ahead (or before
		// this clock was stepped back): the save must still take effect.
		ahead := uint64(time.Now().Add(time.Hour).UnixNano())
		if err := db.Conn.Exec(ctx, fmt.Sprintf("INSERT INTO %s (id, unit, name, title, version, deleted) SELECT 'CB-26740-01', '26740', 'Tên cũ', '', toUInt64(%d), 0",
			db.Table("ref_officers"), ahead)); err != nil {
			t.Fatal(err)
		}
		again := smallSet()
		again.Officers[0].Name = "Tên mới"
		if err := NewStore(db).Save(ctx, "officers", again); err != nil {
			t.Fatal(err)
		}
		got, err := st.Load(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(got.Officers) != 1 || got.Officers[0].Name != "Tên mới" {
			t.Errorf("officers after the save: %+v", got.Officers)
		}
	})
	t.Run("unknown kind", func(t *testing.T) {
		if err := st.Save(ctx, "wards", full); err == nil {
			t.Error("Save accepted an unknown kind")
		}
	})
}

// A replacement validated against the stored set must not be written over
// a save that came in between from another Store (another node, the CLI):
// it is read and validated again. Here, while officers of the department
// SO-TP are validated, another Store removes that department.
func TestReplaceSeesASaveInBetween(t *testing.T) {
	db, _ := testenv.ClickHouse(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	st := NewStore(db)
	if err := st.SaveAll(ctx, smallSet()); err != nil {
		t.Fatal(err)
	}
	officers := &Set{Officers: append(smallSet().Officers, Officer{ID: "CB-SO-TP-01", Unit: "SO-TP", Name: "Trần Thị Bình"})}
	var between []func()
	st.beforeWrite = func() {
		if len(between) > 0 {
			between[0]()
			between = between[1:]
		}
	}
	other := NewStore(db)

	t.Run("the unit removed in between", func(t *testing.T) {
		withoutDept := smallSet()
		withoutDept.Units = slices.DeleteFunc(withoutDept.Units, func(u Unit) bool { return u.Code == "SO-TP" })
		between = []func(){func() {
			if err := other.Save(ctx, "units", withoutDept); err != nil {
				t.Error(err)
			}
		}}
		_, err := st.Replace(ctx, "officers", officers)
		var invalid *Invalid
		if !errors.As(err, &invalid) || !strings.Contains(err.Error(), `unit "SO-TP" does not exist`) {
			t.Fatalf("Replace = %v, want it refused for the removed unit", err)
		}
		got, err := st.Load(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(got.Officers) != 1 || got.Officers[0].ID != "CB-26740-01" {
			t.Errorf("officers stored: %+v", got.Officers)
		}
	})
	t.Run("another kind saved in between", func(t *testing.T) {
		if err := other.Save(ctx, "units", smallSet()); err != nil {
			t.Fatal(err)
		}
		cal := smallSet()
		cal.Calendar = cal.Calendar[:1]
		between = []func(){func() {
			if err := other.Save(ctx, "calendar", cal); err != nil {
				t.Error(err)
			}
		}}
		next, err := st.Replace(ctx, "officers", officers)
		if err != nil {
			t.Fatal(err)
		}
		got, err := st.Load(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(got.Officers) != 2 || len(got.Calendar) != 1 || len(next.Calendar) != 1 {
			t.Errorf("stored %d officers, %d calendar days (returned %d); want 2 and 1, 1", len(got.Officers), len(got.Calendar), len(next.Calendar))
		}
	})
	t.Run("saves in between every time", func(t *testing.T) {
		between = nil
		for range replaceTries {
			between = append(between, func() {
				if err := other.Save(ctx, "calendar", smallSet()); err != nil {
					t.Error(err)
				}
			})
		}
		if _, err := st.Replace(ctx, "officers", smallSet()); !errors.Is(err, ErrConflict) {
			t.Fatalf("Replace = %v, want ErrConflict", err)
		}
	})
}
