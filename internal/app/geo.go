package app

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/vn-ioc/ioc/ingest"
	"github.com/vn-ioc/ioc/internal/api"
	"github.com/vn-ioc/ioc/internal/auth"
	"github.com/vn-ioc/ioc/query"
	"github.com/vn-ioc/ioc/query/kpi"
)

// What the map draws.
const (
	// mapPrefix starts a map channel: map:<unit>.
	mapPrefix = "map:"
	// mapMaxTickets bounds the open tickets of a map, most recent first.
	mapMaxTickets = 2000
	// cameraOnlineWithin: a camera whose last status is online is online
	// when heard from this recently, as camera.online_ratio counts it.
	cameraOnlineWithin = 2 * time.Minute
	// cameraLevelFresh: a congestion or flooding level older than this is
	// shown as 0, as camera.flooding_active and the camera_level alerts
	// judge it.
	cameraLevelFresh = 30 * time.Minute
)

// mapEvery: a map channel is computed again at most this often after
// commits (cameras report every few seconds somewhere in the city).
const mapEvery = 10 * time.Second

// Camera statuses on the map.
const (
	cameraOnline  = "online"  // last status online, heard from within cameraOnlineWithin
	cameraOffline = "offline" // its last status says offline
	cameraSilent  = "silent"  // never heard from, or not within cameraOnlineWithin
)

type mapCamera struct {
	CameraID        string     `json:"camera_id"`
	Name            string     `json:"name"`
	Unit            string     `json:"unit"`
	Lat             float64    `json:"lat"`
	Lon             float64    `json:"lon"`
	Status          string     `json:"status"`
	CongestionLevel int64      `json:"congestion_level"`
	FloodingLevel   int64      `json:"flooding_level"`
	LastSeen        *time.Time `json:"last_seen"` // null: never heard from
}

type mapTicket struct {
	TicketID   string    `json:"ticket_id"`
	Unit       string    `json:"unit"`
	Lat        float64   `json:"lat"`
	Lon        float64   `json:"lon"`
	Category   string    `json:"category"`
	Overdue    bool      `json:"overdue"`
	ReceivedAt time.Time `json:"received_at"`
}

// mapPayload is GET /api/v1/map; a map channel adds its seq.
type mapPayload struct {
	Unit             string      `json:"unit"`
	At               time.Time   `json:"at"`
	Cameras          []mapCamera `json:"cameras"`
	Tickets          []mapTicket `json:"tickets"`
	TicketsTotal     int64       `json:"tickets_total"`
	TicketsTruncated bool        `json:"tickets_truncated"`
	Seq              uint64      `json:"seq,omitzero"`
}

// mapLayers are what a map value carries: cameras, open tickets.
type mapLayers struct{ cameras, tickets bool }

// only empties the layers p is not to carry.
func (l mapLayers) only(p mapPayload) mapPayload {
	if !l.cameras {
		p.Cameras = []mapCamera{}
	}
	if !l.tickets {
		p.Tickets, p.TicketsTotal, p.TicketsTruncated = []mapTicket{}, 0, false
	}
	return p
}

// mapLayers are the layers of the map the scope may read: all, but for a
// wall those its dashboard's map panels draw.
func (s *scope) mapLayers() mapLayers {
	if s.dash == nil {
		return mapLayers{cameras: true, tickets: true}
	}
	return mapLayers{cameras: s.dash.MapCameras(), tickets: s.dash.MapTickets()}
}

// allowMap checks the layers of the map of a unit subtree: a wall's
// dashboard must have a map panel drawing each.
func (s *scope) allowMap(unit string, want mapLayers) error {
	if err := s.allowUnit(unit); err != nil {
		return err
	}
	if s.dash == nil {
		return nil
	}
	has := s.mapLayers()
	switch {
	case !s.dash.ShowsMap():
		return api.Errorf(api.EFORBIDDEN, "dashboard "+s.dash.ID+" has no map")
	case want.cameras && !has.cameras:
		return api.Errorf(api.EFORBIDDEN, "the map of dashboard "+s.dash.ID+" draws no cameras")
	case want.tickets && !has.tickets:
		return api.Errorf(api.EFORBIDDEN, "the map of dashboard "+s.dash.ID+" draws no tickets")
	}
	return nil
}

// handleMap serves GET /api/v1/map?unit=.
func (a *App) handleMap(w http.ResponseWriter, r *http.Request) {
	s, err := a.scopeOf(auth.FromContext(r.Context()))
	if err != nil {
		api.WriteError(w, r, err)
		return
	}
	unit := r.URL.Query().Get("unit")
	if unit == "" {
		unit = s.root
	}
	// A wall reads the layers its dashboard's map draws.
	layers := s.mapLayers()
	if s.dash != nil && s.dash.ShowsMap() && !layers.cameras && !layers.tickets {
		api.WriteError(w, r, api.Errorf(api.EFORBIDDEN, "the map of dashboard "+s.dash.ID+" draws neither cameras nor tickets (its values: /api/v1/kpis/{kpi}/ranking)"))
		return
	}
	if err := s.allowMap(unit, layers); err != nil {
		api.WriteError(w, r, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	p, err := a.geo(ctx, unit, time.Now())
	if err != nil {
		api.WriteError(w, r, a.queryError(r.Context(), "map", err, "unit", unit))
		return
	}
	api.WriteJSON(w, http.StatusOK, layers.only(p))
}

// geo reads the cameras and the open tickets with coordinates of a unit
// subtree at an instant.
func (a *App) geo(ctx context.Context, unit string, at time.Time) (mapPayload, error) {
	at = at.Truncate(time.Second)
	p := mapPayload{Unit: unit, At: at.UTC(), Cameras: []mapCamera{}, Tickets: []mapTicket{}}
	db := a.db.Database()
	subtree := func(col string) string { return query.Subtree(db, col, unit) }

	// The cameras of the subtree with their latest state (camera_overview,
	// read in FROM), and their coordinates from the cameras' table (a view
	// is not read in a JOIN, see query.Ref).
	rows, err := a.db.Conn.Query(ctx, `SELECT id, name, unit, lat_f, lon_f, online_i, status_at, last_seen_at,
       congestion_i, congestion_at, flooding_i, flooding_at
FROM (
    SELECT camera_id AS id, name, unit, toInt64(online) AS online_i, status_at, last_seen_at,
           toInt64(congestion_level) AS congestion_i, congestion_at, toInt64(flooding_level) AS flooding_i, flooding_at
    FROM `+db+`.camera_overview
    WHERE `+subtree("unit")+`
) ANY LEFT JOIN (
    SELECT id, toFloat64(lat) AS lat_f, toFloat64(lon) AS lon_f
    FROM `+query.Ref(db, "cameras", "")+`
) USING id
ORDER BY id`)
	if err != nil {
		return p, fmt.Errorf("map cameras: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var c mapCamera
		var online, congestion, flooding int64
		var statusAt, lastSeen, congestionAt, floodingAt time.Time
		if err := rows.Scan(&c.CameraID, &c.Name, &c.Unit, &c.Lat, &c.Lon, &online, &statusAt, &lastSeen,
			&congestion, &congestionAt, &flooding, &floodingAt); err != nil {
			return p, fmt.Errorf("map cameras: %w", err)
		}
		heard := lastSeen.Unix() > 0
		switch {
		case online == 1 && heard && !lastSeen.Before(at.Add(-cameraOnlineWithin)):
			c.Status = cameraOnline
		case statusAt.Unix() > 0 && online == 0:
			c.Status = cameraOffline
		default:
			c.Status = cameraSilent
		}
		if heard {
			t := lastSeen.UTC()
			c.LastSeen = &t
		}
		if congestionAt.Unix() > 0 && !congestionAt.Before(at.Add(-cameraLevelFresh)) {
			c.CongestionLevel = congestion
		}
		if floodingAt.Unix() > 0 && !floodingAt.Before(at.Add(-cameraLevelFresh)) {
			c.FloodingLevel = flooding
		}
		p.Cameras = append(p.Cameras, c)
	}
	if err := rows.Err(); err != nil {
		return p, fmt.Errorf("map cameras: %w", err)
	}

	tickets, err := a.mapTickets(ctx, subtree, at)
	if err != nil {
		return p, fmt.Errorf("map tickets: %w", err)
	}
	p.TicketsTotal = int64(len(tickets))
	p.Tickets = tickets[:min(len(tickets), mapMaxTickets)]
	p.TicketsTruncated = len(tickets) > mapMaxTickets
	return p, nil
}

// mapTickets reads every open ticket with coordinates of a subtree, most
// recently received first. The tickets view merges every ticket ever
// stored: when the KPI engine keeps the open tickets (kpi.OpenIDs), only
// those of the subtree are read from it, by key.
func (a *App) mapTickets(ctx context.Context, subtree func(col string) string, at time.Time) ([]mapTicket, error) {
	db := a.db.Database()
	where := "WHERE " + subtree("unit") + `
  AND received_at > toDateTime(0) AND resolved_at = toDateTime(0) AND closed_at = toDateTime(0)
  AND (lat != 0 OR lon != 0)`
	ids, gen, err := kpi.OpenIDs(ctx, a.db.Conn, db, ingest.FamilyFeedback, func(unit, _ string) string { return subtree(unit) })
	if err != nil {
		return nil, err
	}
	wheres := []string{where}
	if gen != 0 {
		ctx, wheres = query.Pushdown(ctx), nil
		for chunk := range query.Chunks(ids, false) {
			wheres = append(wheres, where+"\n  AND "+query.In("ticket_id", chunk))
		}
	}
	now := "toDateTime(" + query.Quote(at.UTC().Format(time.DateTime)) + ", 'UTC')"
	out := []mapTicket{}
	for _, w := range wheres {
		rows, err := a.db.Conn.Query(ctx, `SELECT ticket_id, unit, toFloat64(lat) AS lat_f, toFloat64(lon) AS lon_f, category,
       toUInt8(due_at > toDateTime(0) AND due_at < `+now+`) AS overdue_u, received_at
FROM `+db+`.tickets
`+w)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var t mapTicket
			var overdue uint8
			if err := rows.Scan(&t.TicketID, &t.Unit, &t.Lat, &t.Lon, &t.Category, &overdue, &t.ReceivedAt); err != nil {
				rows.Close()
				return nil, err
			}
			t.Overdue = overdue == 1
			t.ReceivedAt = t.ReceivedAt.UTC()
			out = append(out, t)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	slices.SortFunc(out, func(x, y mapTicket) int {
		if c := y.ReceivedAt.Compare(x.ReceivedAt); c != 0 {
			return c
		}
		return strings.Compare(x.TicketID, y.TicketID)
	})
	return out, nil
}

// digest of what a client sees change on the map: not the instant, and not
// a camera's last_seen, which moves with every detection (the status it
// decides — online or silent — is in). Without it a city map would be
// sent again after every commit of camera events, hundreds of kilobytes a
// second to each wall; a map value's last_seen is that of its last change.
func (p mapPayload) digest() [32]byte {
	cams := make([]mapCamera, len(p.Cameras))
	for i, c := range p.Cameras {
		c.LastSeen = nil
		cams[i] = c
	}
	b, _ := json.Marshal([]any{cams, p.Tickets, p.TicketsTotal})
	return sha256.Sum256(b)
}

// allowMapChannel is wsSession.Allow for map:<unit>.
func (s wsSession) allowMapChannel(ch string) error {
	unit, layers, ok := parseMapChannel(ch)
	if !ok {
		return badChannel("channel " + ch + " is not map:<unit>, map:<unit>:cameras nor map:<unit>:tickets")
	}
	return wsError(s.s.allowMap(unit, layers))
}
