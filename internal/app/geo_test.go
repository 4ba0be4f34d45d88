package app

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"
)

type mapResult struct {
	Unit    string `json:"unit"`
	Seq     uint64 `json:"seq"`
	Cameras []struct {
		CameraID        string     `json:"camera_id"`
		Unit            string     `json:"unit"`
		Lat             float64    `json:"lat"`
		Lon             float64    `json:"lon"`
		Status          string     `json:"status"`
		CongestionLevel int64      `json:"congestion_level"`
		FloodingLevel   int64      `json:"flooding_level"`
		LastSeen        *time.Time `json:"last_seen"`
	} `json:"cameras"`
	Tickets []struct {
		TicketID string  `json:"ticket_id"`
		Unit     string  `json:"unit"`
		Lat      float64 `json:"lat"`
		Lon      float64 `json:"lon"`
		Category string  `json:"category"`
		Overdue  bool    `json:"overdue"`
	} `json:"tickets"`
	TicketsTotal     int64 `json:"tickets_total"`
	TicketsTruncated bool  `json:"tickets_truncated"`
}

func (m mapResult) camera(id string) (status string, flooding int64, ok bool) {
	for _, c := range m.Cameras {
		if c.CameraID == id {
			return c.Status, c.FloodingLevel, true
		}
	}
	return "", 0, false
}

// The map of a ward has its cameras with their status and levels at the
// reference coordinates, and its open tickets with coordinates; the map
// channel follows camera and feedback events.
func TestMap(t *testing.T) {
	a, toks := node(t)
	cam := a.refs.Set().Cameras[0]
	ward := cam.Unit
	now := time.Now().Truncate(time.Second)
	ticket := func(id string, due time.Time, loc string) string {
		return event("feedback.received", id, now.Add(-time.Hour), fmt.Sprintf(`{"channel":"zalo","category":"traffic","unit":%q,"due_at":%q%s}`,
			ward, due.Format(time.RFC3339), loc))
	}
	postEvents(t, a, toks["ingest"],
		event("camera.status", cam.ID, now, `{"online":true}`),
		event("camera.detection", cam.ID, now, `{"kind":"flooding","level":3}`),
		ticket("MAP-LATE", now.Add(-time.Minute), `,"location":{"lat":10.77,"lon":106.70}`),
		ticket("MAP-OPEN", now.Add(24*time.Hour), `,"location":{"lat":10.78,"lon":106.71}`),
		ticket("MAP-NOWHERE", now.Add(24*time.Hour), ""))

	var m mapResult
	waitFor(t, "the camera and tickets on the map", func() bool {
		code, body := call(t, "GET", a.URL()+"/api/v1/map?unit="+ward, toks["analyst"], "", "")
		if code != 200 || json.Unmarshal([]byte(body), &m) != nil {
			t.Fatalf("map: %d %s", code, body)
		}
		st, fl, _ := m.camera(cam.ID)
		return st == "online" && fl == 3 && len(m.Tickets) == 2
	})
	for _, c := range m.Cameras {
		if c.Unit != ward {
			t.Errorf("camera %s of unit %s on the map of %s", c.CameraID, c.Unit, ward)
		}
		if c.CameraID == cam.ID && (c.Lat != cam.Lat || c.Lon != cam.Lon || c.LastSeen == nil || !c.LastSeen.Equal(now)) {
			t.Errorf("camera %+v, reference %+v", c, cam)
		}
		if c.CameraID != cam.ID && (c.Status != "silent" || c.LastSeen != nil) {
			t.Errorf("camera never heard from: %+v", c)
		}
	}
	if m.TicketsTotal != 2 || m.TicketsTruncated || m.Tickets[0].TicketID != "MAP-LATE" && m.Tickets[0].TicketID != "MAP-OPEN" {
		t.Fatalf("tickets %+v", m)
	}
	for _, tk := range m.Tickets {
		if (tk.TicketID == "MAP-LATE") != tk.Overdue || tk.Lat == 0 || tk.Category != "traffic" || tk.Unit != ward {
			t.Errorf("ticket %+v", tk)
		}
	}
	// The city's map has the camera too.
	code, body := call(t, "GET", a.URL()+"/api/v1/map", toks["analyst"], "", "")
	if code != 200 || json.Unmarshal([]byte(body), &m) != nil || m.Unit != "79" || len(m.Cameras) != len(a.refs.Set().Cameras) {
		t.Fatalf("city map: %d, %d cameras of %d", code, len(m.Cameras), len(a.refs.Set().Cameras))
	}

	c := dialWS(t, a, toks["analyst"])
	next(t, c, "welcome")
	ch := "map:" + ward
	if s := subscribe(t, c, ch, nil); s.Type != "subscribed" {
		t.Fatalf("subscribe %+v", s)
	}
	if s := next(t, c, "snapshot"); json.Unmarshal(s.Data, &m) != nil || m.Seq != s.Seq || s.Seq == 0 {
		t.Fatalf("snapshot %+v", s)
	}
	postEvents(t, a, toks["ingest"], event("camera.detection", cam.ID, now.Add(time.Second), `{"kind":"flooding","level":1}`),
		event("camera.status", cam.ID, now.Add(time.Second), `{"online":false}`),
		event("feedback.resolved", "MAP-LATE", now, `{"outcome":"đã xử lý"}`))
	for {
		u := next(t, c, "update")
		if err := json.Unmarshal(u.Data, &m); err != nil || m.Seq != u.Seq {
			t.Fatalf("update %+v", u)
		}
		if st, fl, _ := m.camera(cam.ID); st == "offline" && fl == 1 && len(m.Tickets) == 1 && m.Tickets[0].TicketID == "MAP-OPEN" {
			break
		}
	}
}
