package sim

import (
	"encoding/json"
	"math"
	"testing"
	"time"

	"github.com/vn-ioc/ioc/ingest/refdata"
)

// TestCityIsPlausible reads a simulated week and checks what a reader of
// the events would find implausible: payments, digitization or syncing
// after a dossier ended; fee_paid_online saying otherwise than the payment;
// a ward's chair or a director handling a dossier, a ticket or a counter;
// a ticket farther from its ward's centre than the ward reaches.
func TestCityIsPlausible(t *testing.T) {
	set, cal := fixture(t)
	cfg := testConfig()
	cfg.Cameras = 0
	cfg.DossiersPerDay, cfg.FeedbackPerDay = 3000, 600
	g, err := NewGenerator(cfg, set, cal)
	if err != nil {
		t.Fatal(err)
	}
	titles := map[string]string{}
	for _, o := range set.Officers {
		titles[o.ID] = o.Title
	}
	units := map[string]refdata.Unit{}
	for _, u := range set.Units {
		units[u.Code] = u
	}
	type dossier struct {
		ended    time.Time
		feeFlag  *bool
		paidWith string
	}
	dossiers := map[string]*dossier{}
	of := func(id string) *dossier {
		if dossiers[id] == nil {
			dossiers[id] = &dossier{}
		}
		return dossiers[id]
	}
	var data struct {
		Unit          string `json:"unit"`
		Officer       string `json:"officer"`
		Method        string `json:"method"`
		FeePaidOnline *bool  `json:"fee_paid_online"`
	}
	var raw struct {
		Data json.RawMessage `json:"data"`
	}
	var loc struct {
		Location struct {
			Lat float64 `json:"lat"`
			Lon float64 `json:"lon"`
		} `json:"location"`
	}
	leaders, handled, tickets, far := 0, 0, 0, 0
	end := cfg.Start.Add(7 * 24 * time.Hour)
	for {
		ev, ok := g.Next()
		if !ok || ev.Time.After(end) {
			break
		}
		raw.Data = nil
		data.Unit, data.Officer, data.Method, data.FeePaidOnline = "", "", "", nil
		if err := json.Unmarshal(ev.AppendJSON(nil), &raw); err != nil {
			t.Fatal(err)
		}
		_ = json.Unmarshal(raw.Data, &data)
		if data.Officer != "" && (ev.Type == typeDossierAssigned || ev.Type == "vn.ioc.feedback.assigned" || ev.Type == "vn.ioc.survey.submitted") {
			handled++
			if isLeader(titles[data.Officer]) {
				leaders++
			}
		}
		switch ev.Type {
		case "vn.ioc.dossier.received":
			of(ev.Subject).feeFlag = data.FeePaidOnline
		case "vn.ioc.dossier.resolved", "vn.ioc.dossier.withdrawn":
			of(ev.Subject).ended = ev.Time
		case "vn.ioc.dossier.paid", "vn.ioc.dossier.digitized", "vn.ioc.dossier.synced":
			d := of(ev.Subject)
			if !d.ended.IsZero() {
				t.Errorf("%s %s at %v, after the dossier ended at %v", ev.Subject, ev.Type, ev.Time, d.ended)
			}
			if ev.Type == "vn.ioc.dossier.paid" {
				d.paidWith = data.Method
			}
		case "vn.ioc.feedback.received":
			tickets++
			_ = json.Unmarshal(raw.Data, &loc)
			u := units[data.Unit]
			if u.AreaKm2 <= 0 || (u.Lat == 0 && u.Lon == 0) {
				continue
			}
			dy := (loc.Location.Lat - u.Lat) * 111_320
			dx := (loc.Location.Lon - u.Lon) * 111_320 * math.Cos(u.Lat*math.Pi/180)
			if dist := math.Hypot(dx, dy); dist > wardRadius(u.AreaKm2)+5 || dist > math.Sqrt(u.AreaKm2*1e6/math.Pi) {
				far++
				if far <= 3 {
					t.Errorf("ticket %s %.0f m from the centre of %s (%.2f km²)", ev.Subject, dist, u.Name, u.AreaKm2)
				}
			}
		}
	}
	paid := 0
	for id, d := range dossiers {
		if d.paidWith == "" || d.feeFlag == nil {
			continue
		}
		paid++
		if *d.feeFlag != (d.paidWith == "online") {
			t.Errorf("%s: fee_paid_online %v, paid by %s", id, *d.feeFlag, d.paidWith)
		}
	}
	if handled < 1000 || tickets < 1000 || paid < 100 {
		t.Fatalf("too few to judge: %d handled, %d tickets, %d paid", handled, tickets, paid)
	}
	if leaders > 0 {
		t.Errorf("%d of %d dossiers, tickets and surveys handled by a unit's leader", leaders, handled)
	}
	if far > 0 {
		t.Errorf("%d of %d tickets outside their ward's reach", far, tickets)
	}
}
