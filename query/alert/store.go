package alert

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vn-ioc/ioc/internal/lease"
	"github.com/vn-ioc/ioc/query"
)

// Store keeps alerts in two places: every state in ClickHouse (alert_log,
// read through the view alerts), the history analysts and the REST API
// read; and the open alerts in a NATS KV bucket, the live set every node
// watches to push the alert feeds. The evaluator writes ClickHouse first
// and the bucket second, so an alert a client sees live is always in
// ClickHouse too.
type Store struct {
	db   *query.DB
	kv   jetstream.KeyValue
	hold jetstream.KeyValue // the hold on the rules (hold.go)
}

// StoreConfig shapes the bucket of open alerts.
type StoreConfig struct {
	// Bucket name. Default "ioc_alerts".
	Bucket string
	// Replicas of the bucket on a NATS cluster. Default 1.
	Replicas int
}

// OpenStore creates the bucket when missing.
func OpenStore(ctx context.Context, js jetstream.JetStream, db *query.DB, cfg StoreConfig) (*Store, error) {
	if cfg.Bucket == "" {
		cfg.Bucket = "ioc_alerts"
	}
	if cfg.Replicas == 0 {
		cfg.Replicas = 1
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: cfg.Bucket, Description: "ioc: open alerts (raised or acknowledged)", History: 1,
		Replicas: cfg.Replicas, Storage: jetstream.FileStorage,
	})
	if err != nil {
		return nil, fmt.Errorf("alert bucket %s: %w", cfg.Bucket, err)
	}
	hold, err := openHoldBucket(ctx, js, cfg)
	if err != nil {
		return nil, err
	}
	return &Store{db: db, kv: kv, hold: hold}, nil
}

// save writes alert states: ClickHouse, then the live set (an open alert is
// put, a cleared one deleted).
func (s *Store) save(ctx context.Context, as []*Alert) error {
	if len(as) == 0 {
		return nil
	}
	// Not past the evaluator's lease by this node's clock (a paused
	// leader must not write beside the next one).
	if err := lease.Check(ctx); err != nil {
		return err
	}
	if err := s.insert(ctx, as); err != nil {
		return fmt.Errorf("insert alerts: %w", err)
	}
	for _, a := range as {
		var err error
		if a.Open() {
			b, _ := json.Marshal(a)
			_, err = s.kv.Put(ctx, a.ID, b)
		} else {
			err = s.kv.Delete(ctx, a.ID)
		}
		if err != nil {
			return fmt.Errorf("alert bucket %s: %w", a.ID, err)
		}
	}
	return nil
}

const columns = "id, rule, kind, severity, unit, subject_kind, subject, state, title, title_vi, detail, value, threshold, " +
	"raised_at, acked_at, acked_by, ack_note, cleared_at, version"

func (s *Store) insert(ctx context.Context, as []*Alert) error {
	return s.db.Insert(s.db.InsertContext(ctx), "INSERT INTO "+s.db.Table("alert_log")+" ("+columns+")", func(b driver.Batch) error {
		for _, a := range as {
			if err := b.Append(a.ID, a.Rule, a.Kind, a.Severity, a.Unit, a.SubjectKind, a.Subject, a.State, a.Title, a.TitleVI,
				a.Detail, a.Value, a.Threshold, query.DateTime(a.RaisedAt), query.DateTime(a.AckedAt), a.AckedBy, a.AckNote, query.DateTime(a.ClearedAt),
				a.Version); err != nil {
				return err
			}
		}
		return nil
	})
}

func fromCH(t time.Time) time.Time {
	if t.Unix() <= 0 {
		return time.Time{}
	}
	return t.UTC()
}

// Open reads the live set: every open alert.
func (s *Store) Open(ctx context.Context) (map[string]*Alert, error) {
	w, err := s.kv.WatchAll(ctx, jetstream.IgnoreDeletes())
	if err != nil {
		return nil, fmt.Errorf("read open alerts: %w", err)
	}
	defer w.Stop()
	out := map[string]*Alert{}
	for e := range w.Updates() {
		if e == nil {
			return out, nil
		}
		var a Alert
		if json.Unmarshal(e.Value(), &a) == nil {
			out[a.ID] = &a
		}
	}
	return out, errors.New("read open alerts: watch closed")
}

// Reconcile returns the open alerts as ClickHouse and the live set
// together say, newest version of each alert winning, and the states the
// live set lacks or holds wrongly (a write to ClickHouse whose write to the
// live set failed, and leadership moved before it was tried again): to be
// saved again, which puts or deletes them in the live set.
func (s *Store) Reconcile(ctx context.Context) (open []*Alert, resave []*Alert, err error) {
	live, err := s.Open(ctx)
	if err != nil {
		return nil, nil, err
	}
	q := "SELECT " + columns + " FROM " + s.db.Table("alerts") + " WHERE state != 'cleared'"
	if len(live) > 0 {
		ids := make([]string, 0, len(live))
		for id := range live {
			ids = append(ids, query.Quote(id))
		}
		q += " OR id IN (" + strings.Join(ids, ", ") + ")"
	}
	stored, err := s.query(ctx, q)
	if err != nil {
		return nil, nil, fmt.Errorf("read open alerts from ClickHouse: %w", err)
	}
	newest := maps.Clone(live) // Open returns a map, never nil
	for _, a := range stored {
		if l, ok := newest[a.ID]; ok && l.Version >= a.Version {
			continue
		}
		newest[a.ID] = a
		if a.Open() || live[a.ID] != nil {
			resave = append(resave, a)
		}
	}
	for _, a := range newest {
		if a.Open() {
			open = append(open, a)
		}
	}
	return open, resave, nil
}

// Watch calls fn with every open alert, then with every change of the
// live set until ctx ends: a put (raised, acknowledged) with the alert, a
// delete (cleared) with its id alone and State cleared. ready is called
// once the open alerts were all delivered.
func (s *Store) Watch(ctx context.Context, fn func(a *Alert), ready func()) error {
	w, err := s.kv.WatchAll(ctx)
	if err != nil {
		return fmt.Errorf("watch alerts: %w", err)
	}
	defer w.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case e, ok := <-w.Updates():
			if !ok {
				return errors.New("alert bucket watch closed")
			}
			if e == nil {
				ready()
				continue
			}
			if e.Operation() != jetstream.KeyValuePut {
				fn(&Alert{ID: e.Key(), State: StateCleared})
				continue
			}
			var a Alert
			if json.Unmarshal(e.Value(), &a) == nil {
				fn(&a)
			}
		}
	}
}

// Filter selects alerts from ClickHouse.
type Filter struct {
	// Units: the alerts of these units (a scope's subtree); nil: all.
	Units []string
	// State: open (raised or acknowledged, the default), raised,
	// acknowledged, cleared or all.
	State string
	Rule  string
	// Since: alerts raised at or after it (zero: any time).
	Since time.Time
	// Limit of rows, newest first. Default 100, at most 1000.
	Limit int
}

// States a Filter takes.
var FilterStates = []string{"open", StateRaised, StateAcknowledged, StateCleared, "all"}

// List reads alerts, newest raised first.
func (s *Store) List(ctx context.Context, f Filter) ([]*Alert, error) {
	var where []string
	if f.Units != nil {
		q := make([]string, len(f.Units))
		for i, u := range f.Units {
			q[i] = query.Quote(u)
		}
		if len(q) == 0 {
			q = []string{"''"}
		}
		where = append(where, "unit IN ("+strings.Join(q, ", ")+")")
	}
	switch f.State {
	case "", "open":
		where = append(where, "state != 'cleared'")
	case "all":
	default:
		where = append(where, "state = "+query.Quote(f.State))
	}
	if f.Rule != "" {
		where = append(where, "rule = "+query.Quote(f.Rule))
	}
	if !f.Since.IsZero() {
		where = append(where, "raised_at >= toDateTime("+strconv.FormatInt(f.Since.Unix(), 10)+")")
	}
	if f.Limit <= 0 {
		f.Limit = 100
	}
	q := "SELECT " + columns + " FROM " + s.db.Table("alerts")
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY raised_at DESC, id LIMIT " + strconv.Itoa(min(f.Limit, 1000))
	return s.query(ctx, q)
}

// Get reads one alert; nil when there is none with that id.
func (s *Store) Get(ctx context.Context, id string) (*Alert, error) {
	as, err := s.query(ctx, "SELECT "+columns+" FROM "+s.db.Table("alerts")+" WHERE id = "+query.Quote(id))
	if err != nil || len(as) == 0 {
		return nil, err
	}
	return as[0], nil
}

func (s *Store) query(ctx context.Context, q string) ([]*Alert, error) {
	rows, err := s.db.Conn.Query(ctx, q)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*Alert
	for rows.Next() {
		var a Alert
		var raised, acked, cleared time.Time
		if err := rows.Scan(&a.ID, &a.Rule, &a.Kind, &a.Severity, &a.Unit, &a.SubjectKind, &a.Subject, &a.State, &a.Title,
			&a.TitleVI, &a.Detail, &a.Value, &a.Threshold, &raised, &acked, &a.AckedBy, &a.AckNote, &cleared, &a.Version); err != nil {
			return nil, err
		}
		a.RaisedAt, a.AckedAt, a.ClearedAt = fromCH(raised), fromCH(acked), fromCH(cleared)
		out = append(out, &a)
	}
	return out, rows.Err()
}
