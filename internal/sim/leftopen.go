package sim

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// LeftOpen ends what an earlier run of the live city left under way. The
// live city does not keep its state: a run stopped and started again
// begins with nothing in hand, so the dossiers and tickets the earlier run
// had received and not yet ended would stay open for ever, overdue on
// every wall. LeftOpen resolves them at now, as an office clearing its
// backlog: each dossier resolved (approved, by the officer holding it),
// each ticket resolved and closed. Only the simulator's own entities are
// touched: ids in its format, received within the last Lookback (a
// scenario's open entities, in a past period, are left as they are).
type LeftOpen struct {
	URL   string // the node's base URL
	Token string // a token that may call the SQL API and send the events (admin)
	// SourcePrefix of the events' sources (default "hcmc").
	SourcePrefix string
	// Lookback: entities received before now minus Lookback are left
	// alone. Default 90 days.
	Lookback time.Duration
	Client   *http.Client
}

// simIDs matches the ids the simulator gives dossiers and tickets:
// <prefix>-<yymmdd>-<run tag>-<n>.
const simIDs = `'-[0-9]{6}-[0-9a-z]+-[0-9]+$'`

// Close sends the events that end every entity left open, and returns how
// many dossiers and tickets it ended.
func (l *LeftOpen) Close(ctx context.Context, now time.Time) (dossiers, tickets int, err error) {
	if l.SourcePrefix == "" {
		l.SourcePrefix = "hcmc"
	}
	if l.Lookback == 0 {
		l.Lookback = 90 * 24 * time.Hour
	}
	if l.Client == nil {
		l.Client = &http.Client{Timeout: 5 * time.Minute}
	}
	since := now.Add(-l.Lookback).UTC().Format(time.DateTime)
	ds, err := l.rows(ctx, `SELECT dossier_id, officer FROM dossiers
WHERE resolved_at = toDateTime(0) AND withdrawn_at = toDateTime(0)
  AND received_at >= toDateTime('`+since+`', 'UTC') AND match(dossier_id, `+simIDs+`)`)
	if err != nil {
		return 0, 0, fmt.Errorf("find the dossiers left open: %w", err)
	}
	ts, err := l.rows(ctx, `SELECT ticket_id, officer FROM tickets
WHERE resolved_at = toDateTime(0) AND closed_at = toDateTime(0)
  AND received_at >= toDateTime('`+since+`', 'UTC') AND match(ticket_id, `+simIDs+`)`)
	if err != nil {
		return 0, 0, fmt.Errorf("find the tickets left open: %w", err)
	}
	src := newSources(l.SourcePrefix)
	at := now.Truncate(time.Second)
	var events []json.RawMessage
	for _, d := range ds {
		data := map[string]any{"outcome": "approved", "e_result": false}
		if d.officer != "" {
			data["officer"] = d.officer
		}
		events = append(events, closing(src.dossier, "left-open-resolved-"+d.id, typeDossierResolved, d.id, at, data))
	}
	for _, t := range ts {
		events = append(events,
			closing(src.feedback, "left-open-resolved-"+t.id, "vn.ioc.feedback.resolved", t.id, at, map[string]any{"outcome": "Đã xử lý"}),
			closing(src.feedback, "left-open-closed-"+t.id, "vn.ioc.feedback.closed", t.id, at.Add(time.Second), map[string]any{}))
	}
	sender := &HTTPSender{URL: l.URL, Token: l.Token, Client: l.Client}
	for len(events) > 0 {
		n := min(len(events), 1000)
		if _, _, rejected, err := sender.Send(ctx, events[:n]); err != nil {
			return 0, 0, fmt.Errorf("end what was left open: %w", err)
		} else if rejected > 0 {
			return 0, 0, fmt.Errorf("end what was left open: %d events rejected", rejected)
		}
		events = events[n:]
	}
	return len(ds), len(ts), nil
}

type openEntity struct{ id, officer string }

// rows runs a statement on the node's SQL API and reads its (id, officer)
// rows.
func (l *LeftOpen) rows(ctx context.Context, sql string) ([]openEntity, error) {
	body, _ := json.Marshal(map[string]any{"sql": sql, "format": "ndjson", "max_rows": 10_000_000, "timeout": "120s"})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(l.URL, "/")+"/api/v1/sql", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+l.Token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := l.Client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var b bytes.Buffer
		_, _ = b.ReadFrom(resp.Body)
		return nil, fmt.Errorf("the SQL API answered %d: %s", resp.StatusCode, snippet(b.Bytes()))
	}
	var out []openEntity
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var row map[string]string
		if err := json.Unmarshal(sc.Bytes(), &row); err != nil {
			return nil, fmt.Errorf("read the SQL API's answer: %w", err)
		}
		id := row["dossier_id"] + row["ticket_id"]
		out = append(out, openEntity{id: id, officer: row["officer"]})
	}
	return out, sc.Err()
}

// closing is one event that ends an entity, encoded.
func closing(source, id, typ, subject string, at time.Time, data map[string]any) json.RawMessage {
	b, _ := json.Marshal(map[string]any{"specversion": "1.0", "id": id, "source": source, "type": typ,
		"subject": subject, "time": at.In(ict).Format(time.RFC3339), "datacontenttype": "application/json", "data": data})
	return b
}
