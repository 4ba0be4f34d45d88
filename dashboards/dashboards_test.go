package dashboards

import "testing"

func TestLoadCity(t *testing.T) {
	all, err := Load(func(string, string) error { return nil }, func(u string) bool { return u == "79" })
	if err != nil {
		t.Fatal(err)
	}
	city := all["city"]
	if city == nil || city.Unit != "79" {
		t.Fatalf("city: %+v", city)
	}
	if !city.Shows("dossier.overdue_open", "now") || city.Shows("dossier.overdue_open", "today") {
		t.Error("Shows")
	}
	for list, want := range map[string]bool{"dossier.overdue": true, "feedback.overdue": true, "dossier.due_soon": false, "": false} {
		if got := city.ShowsList(list); got != want {
			t.Errorf("ShowsList(%q) = %v, want %v", list, got, want)
		}
	}
	if _, err := Load(func(string, string) error { return nil }, func(string) bool { return false }); err == nil {
		t.Error("a dashboard of an unknown unit loaded")
	}
}
