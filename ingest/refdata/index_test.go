package refdata

import (
	"slices"
	"sync"
	"testing"
)

func TestIndex(t *testing.T) {
	x := NewIndex(smallSet())
	t.Run("has", func(t *testing.T) {
		for _, tt := range []struct {
			kind, code string
			want       bool
		}{
			{"unit", "26740", true}, {"units", "L-26740", true}, {"unit", "26741", false},
			{"procedure", "TP-001", true}, {"procedure", "TP-999", false},
			{"officer", "CB-26740-01", true}, {"camera", "CAM-TTH406", true}, {"camera", "26740", false},
			{"planet", "26740", false},
		} {
			if got := x.Has(tt.kind, tt.code); got != tt.want {
				t.Errorf("Has(%q, %q) = %v, want %v", tt.kind, tt.code, got, tt.want)
			}
		}
	})
	t.Run("children", func(t *testing.T) {
		for code, want := range map[string][]string{"79": {"26740", "L-760", "SO-TP"}, "L-760": {"L-26740"}, "26740": nil, "nowhere": nil} {
			got := x.Children(code)
			if !slices.Equal(got, want) {
				t.Errorf("Children(%q) = %v, want %v", code, got, want)
			}
			if len(got) > 0 {
				got[0] = "changed"
				if x.Children(code)[0] == "changed" {
					t.Errorf("Children(%q) shares the index's slice", code)
				}
			}
		}
	})
	t.Run("subtree", func(t *testing.T) {
		for _, tt := range []struct {
			code string
			want []string
		}{
			{"79", []string{"79", "26740", "L-760", "L-26740", "SO-TP"}},
			{"L-760", []string{"L-760", "L-26740"}},
			{"26740", []string{"26740"}},
			{"nowhere", nil},
		} {
			if got := x.Subtree(tt.code); !slices.Equal(got, tt.want) {
				t.Errorf("Subtree(%q) = %v, want %v", tt.code, got, tt.want)
			}
		}
	})
	t.Run("path", func(t *testing.T) {
		for _, tt := range []struct {
			code string
			want []string
		}{
			{"79", []string{"79"}},
			{"L-26740", []string{"79", "L-760", "L-26740"}},
			{"SO-TP", []string{"79", "SO-TP"}},
			{"nowhere", nil},
		} {
			if got := x.Path(tt.code); !slices.Equal(got, tt.want) {
				t.Errorf("Path(%q) = %v, want %v", tt.code, got, tt.want)
			}
		}
	})
	t.Run("cycle does not hang", func(t *testing.T) {
		s := smallSet()
		s.Units[0].Parent = "L-26740"
		y := NewIndex(s)
		if got := y.Path("L-26740"); len(got) != 3 {
			t.Errorf("Path in a cycle = %v", got)
		}
		if got := y.Subtree("L-760"); len(got) != 5 {
			t.Errorf("Subtree in a cycle = %v", got)
		}
	})
	t.Run("replace", func(t *testing.T) {
		y := NewIndex(smallSet())
		s := smallSet()
		s.Units = s.Units[:3]
		y.Replace(s)
		if y.Has("unit", "L-760") || !y.Has("unit", "26740") || y.Set() != s {
			t.Error("Replace did not swap the set")
		}
		if u, ok := y.Unit("26740"); !ok || u.Name != "Phường Sài Gòn" {
			t.Errorf("Unit = %+v, %v", u, ok)
		}
	})
	t.Run("nil set", func(t *testing.T) {
		if NewIndex(nil).Has("unit", "79") {
			t.Error("empty index has a unit")
		}
	})
}

// TestIndexConcurrent is for the race detector: readers while the set is
// replaced see a whole set, old or new.
func TestIndexConcurrent(t *testing.T) {
	full, small := smallSet(), smallSet()
	small.Units = small.Units[:3]
	x := NewIndex(full)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 2000 {
				n := len(x.Subtree("79"))
				if n != 5 && n != 3 {
					t.Errorf("Subtree(79) has %d units, want 5 or 3", n)
					return
				}
				_ = x.Path("L-26740")
				_ = x.Has("unit", "L-760")
			}
		})
	}
	for i := range 500 {
		if i%2 == 0 {
			x.Replace(small)
		} else {
			x.Replace(full)
		}
	}
	wg.Wait()
}

func BenchmarkIndexPath(b *testing.B) {
	s := mustHCMC(b)
	x := NewIndex(s)
	b.ReportAllocs()
	for b.Loop() {
		_ = x.Path("L-26761")
	}
}
