package refdata

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/vn-ioc/ioc/query"
)

// Store keeps reference data in ClickHouse (tables ref_*, migration 0003)
// and reads it back from the curated views (units, procedures, officers,
// cameras, calendar; migration 0004).
//
// Saving a kind writes every row of the new set with a new version and a
// tombstone (deleted = 1, same version) for every key the views still show
// that the new set no longer has; ReplacingMergeTree keeps the highest
// version of each key and the views drop tombstones, so readers see the old
// set or the new one per key, and a save interrupted half-way is repaired
// by saving again. Saves through one Store are serialized. Replace, which
// validates a kind against the others as stored, checks just before it
// writes that no other Store (another node, the CLI) saved in between, and
// reads and validates again if one did.
type Store struct {
	db   *query.DB
	mu   sync.Mutex
	last uint64 // last version written
	// beforeWrite, when set (tests), runs in Replace between the
	// validation and the check that precedes the write.
	beforeWrite func()
}

// Invalid is the error of a replacement refused by validation (or by a
// kind it does not know); its text names the rows and fields at fault.
type Invalid struct{ Err error }

func (e *Invalid) Error() string { return e.Err.Error() }
func (e *Invalid) Unwrap() error { return e.Err }

// ErrConflict: other saves kept changing the stored set between Replace's
// reads and its write.
var ErrConflict = errors.New("the reference data kept changing while this replacement was validated (other saves at the same time); try again")

// replaceTries is how often Replace reads and validates again when another
// save came first.
const replaceTries = 5

// NewStore returns a store over db (migrated).
func NewStore(db *query.DB) *Store { return &Store{db: db} }

// epochDate stands for a zero date: ClickHouse's Date starts at 1970-01-01.
var epochDate = time.Unix(0, 0).UTC()

func toDate(t time.Time) time.Time {
	if t.IsZero() {
		return epochDate
	}
	return dateOf(t)
}

func fromDate(t time.Time) time.Time {
	t = dateOf(t)
	if t.Equal(epochDate) {
		return time.Time{}
	}
	return t
}

func b2u(b bool) uint8 {
	if b {
		return 1
	}
	return 0
}

// version is a new row version: the time in nanoseconds, strictly
// increasing within this Store even if the clock is not.
func (st *Store) version() uint64 {
	v := uint64(time.Now().UnixNano())
	if v <= st.last {
		v = st.last + 1
	}
	st.last = v
	return v
}

// SaveAll saves every kind of s, the units last: Empty looks at the units,
// so a first save that fails half-way (ClickHouse restarting) is made
// again at the next start instead of leaving the other kinds empty.
func (st *Store) SaveAll(ctx context.Context, s *Set) error {
	for _, k := range Kinds {
		if k == "units" {
			continue
		}
		if err := st.Save(ctx, k, s); err != nil {
			return err
		}
	}
	return st.Save(ctx, "units", s)
}

// Replace replaces the rows of one kind with those of part, after
// validating them with the other kinds as stored, and returns the new set.
// It is a read, a validation and a write: when another save changed the
// stored set in between (its highest row version moved), it reads and
// validates again, up to replaceTries times (ErrConflict after). What is
// left is the moment between that check and the write itself.
func (st *Store) Replace(ctx context.Context, kind string, part *Set) (*Set, error) {
	if !KnownKind(kind) {
		return nil, &Invalid{fmt.Errorf("unknown kind of reference data %q", kind)}
	}
	for range replaceTries {
		base, err := st.stamp(ctx)
		if err != nil {
			return nil, err
		}
		cur, err := st.Load(ctx)
		if err != nil {
			return nil, err
		}
		next, err := cur.With(kind, part)
		if err != nil {
			return nil, &Invalid{err}
		}
		if err := next.Validate(); err != nil {
			return nil, &Invalid{err}
		}
		if st.beforeWrite != nil {
			st.beforeWrite()
		}
		saved, err := st.saveIfAt(ctx, kind, next, base)
		if err != nil || saved {
			return next, err
		}
	}
	return nil, ErrConflict
}

// saveIfAt saves kind of s when the stored set is still at stamp base.
func (st *Store) saveIfAt(ctx context.Context, kind string, s *Set, base uint64) (bool, error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	now, err := st.stamp(ctx)
	if err != nil || now != base {
		return false, err
	}
	return true, st.save(ctx, kind, s)
}

// stamp is the highest row version of the reference tables: every save of
// any kind moves it.
func (st *Store) stamp(ctx context.Context) (uint64, error) {
	var parts []string
	for _, t := range []string{"ref_units", "ref_procedures", "ref_officers", "ref_cameras", "ref_calendar"} {
		parts = append(parts, "SELECT max(version) AS v FROM "+st.db.Table(t))
	}
	var v uint64
	if err := st.db.Conn.QueryRow(ctx, "SELECT max(v) FROM ("+strings.Join(parts, " UNION ALL ")+")").Scan(&v); err != nil {
		return 0, fmt.Errorf("read the reference data's versions: %w", err)
	}
	return v, nil
}

// Save replaces the stored rows of kind (one of Kinds) with those of s,
// which Save does not validate: call s.Validate first, or use Replace.
// Units are saved with their path (Index.Path) computed from s.Units.
func (st *Store) Save(ctx context.Context, kind string, s *Set) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.save(ctx, kind, s)
}

func (st *Store) save(ctx context.Context, kind string, s *Set) error {
	v := st.version()
	switch kind {
	case "units":
		idx := NewIndex(&Set{Units: s.Units})
		return st.replace(ctx, "units", "ref_units", "units", "code",
			[]string{"code", "parent", "name", "level", "kind", "lat", "lon", "population", "area_km2", "valid_from", "valid_to", "path", "successors"},
			len(s.Units), func(i int) (string, []any) {
				u := s.Units[i]
				succ := u.Successors
				if succ == nil {
					succ = []string{}
				}
				return u.Code, []any{u.Code, u.Parent, u.Name, u.Level, u.Kind, u.Lat, u.Lon, u.Population, u.AreaKm2,
					toDate(u.ValidFrom), toDate(u.ValidTo), idx.Path(u.Code), succ}
			},
			func(code string) []any {
				return []any{code, "", "", uint8(0), "", 0.0, 0.0, uint32(0), 0.0, epochDate, epochDate, []string{}, []string{}}
			}, v)
	case "procedures":
		return st.replace(ctx, "procedures", "ref_procedures", "procedures", "code",
			[]string{"code", "name", "field", "unit_kind", "deadline_days", "deadline_hours", "service_level", "fee"},
			len(s.Procedures), func(i int) (string, []any) {
				p := s.Procedures[i]
				return p.Code, []any{p.Code, p.Name, p.Field, p.UnitKind, float32(p.DeadlineDays), float32(p.DeadlineHours), p.ServiceLevel, b2u(p.Fee)}
			},
			func(code string) []any { return []any{code, "", "", "", float32(0), float32(0), "", uint8(0)} }, v)
	case "officers":
		return st.replace(ctx, "officers", "ref_officers", "officers", "id",
			[]string{"id", "unit", "name", "title"},
			len(s.Officers), func(i int) (string, []any) {
				o := s.Officers[i]
				return o.ID, []any{o.ID, o.Unit, o.Name, o.Title}
			},
			func(id string) []any { return []any{id, "", "", ""} }, v)
	case "cameras":
		return st.replace(ctx, "cameras", "ref_cameras", "cameras", "id",
			[]string{"id", "code", "name", "lat", "lon", "unit", "type", "ptz"},
			len(s.Cameras), func(i int) (string, []any) {
				c := s.Cameras[i]
				return c.ID, []any{c.ID, c.Code, c.Name, c.Lat, c.Lon, c.Unit, c.Type, b2u(c.PTZ)}
			},
			func(id string) []any { return []any{id, "", "", 0.0, 0.0, "", "", uint8(0)} }, v)
	case "calendar":
		return st.replace(ctx, "calendar", "ref_calendar", "calendar", "toString(date)",
			[]string{"date", "kind", "name"},
			len(s.Calendar), func(i int) (string, []any) {
				d := s.Calendar[i]
				date := toDate(d.Date)
				return date.Format(time.DateOnly), []any{date, d.Kind, d.Name}
			},
			func(key string) []any {
				d, _ := time.Parse(time.DateOnly, key)
				return []any{d, "", ""}
			}, v)
	}
	return fmt.Errorf("unknown kind of reference data %q", kind)
}

// replace inserts n rows (row gives each one's key and values) and a
// tombstone for each key the view still has that the rows do not.
func (st *Store) replace(ctx context.Context, kind, table, view, keyExpr string, cols []string,
	n int, row func(int) (string, []any), tombstone func(key string) []any, version uint64) error {
	current, err := st.keys(ctx, view, keyExpr)
	if err != nil {
		return fmt.Errorf("save %s: %w", kind, err)
	}
	// Past every version stored, whatever the clock says: a node whose
	// clock is behind (or was stepped back) would otherwise save rows that
	// lose to the old ones.
	var stored uint64
	if err := st.db.Conn.QueryRow(ctx, "SELECT max(version) FROM "+st.db.Table(table)).Scan(&stored); err != nil {
		return fmt.Errorf("save %s: read its versions: %w", kind, err)
	}
	if version <= stored {
		version = stored + 1
		st.last = version
	}
	all := append(slices.Clone(cols), "version", "deleted")
	// Synchronous on a cluster: the next save's keys and a validation
	// against this kind read what was just written.
	err = st.db.Insert(st.db.InsertContext(ctx), "INSERT INTO "+st.db.Table(table)+" ("+strings.Join(all, ", ")+")", func(b driver.Batch) error {
		for i := range n {
			key, vals := row(i)
			delete(current, key)
			if err := b.Append(append(vals, version, uint8(0))...); err != nil {
				return fmt.Errorf("row %d (%q): %w", i, key, err)
			}
		}
		for _, key := range sortedKeys(current) {
			if err := b.Append(append(tombstone(key), version, uint8(1))...); err != nil {
				return fmt.Errorf("tombstone %q: %w", key, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("save %s: %w", kind, err)
	}
	return nil
}

// keys lists the live keys of a view.
func (st *Store) keys(ctx context.Context, view, keyExpr string) (map[string]struct{}, error) {
	rows, err := st.db.Conn.Query(ctx, "SELECT "+keyExpr+" FROM "+st.db.Table(view))
	if err != nil {
		return nil, fmt.Errorf("read current keys: %w", err)
	}
	defer rows.Close()
	out := map[string]struct{}{}
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			return nil, err
		}
		out[k] = struct{}{}
	}
	return out, rows.Err()
}

// Empty reports whether no units are stored yet (a new database, to be
// filled with the bundled set).
func (st *Store) Empty(ctx context.Context) (bool, error) {
	var n uint64
	if err := st.db.Conn.QueryRow(ctx, "SELECT count() FROM "+st.db.Table("units")).Scan(&n); err != nil {
		return false, fmt.Errorf("count units: %w", err)
	}
	return n == 0, nil
}

// Load reads the current set from the views, each kind ordered by its key.
func (st *Store) Load(ctx context.Context) (*Set, error) {
	s := &Set{}
	err := st.each(ctx, "units", "SELECT code, parent, name, level, kind, lat, lon, population, area_km2, valid_from, valid_to, successors FROM "+
		st.db.Table("units")+" ORDER BY code", func(scan func(...any) error) error {
		var u Unit
		if err := scan(&u.Code, &u.Parent, &u.Name, &u.Level, &u.Kind, &u.Lat, &u.Lon, &u.Population, &u.AreaKm2,
			&u.ValidFrom, &u.ValidTo, &u.Successors); err != nil {
			return err
		}
		u.ValidFrom, u.ValidTo = fromDate(u.ValidFrom), fromDate(u.ValidTo)
		if len(u.Successors) == 0 {
			u.Successors = nil
		}
		s.Units = append(s.Units, u)
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = st.each(ctx, "procedures", "SELECT code, name, field, unit_kind, deadline_days, deadline_hours, service_level, fee FROM "+
		st.db.Table("procedures")+" ORDER BY code", func(scan func(...any) error) error {
		var p Procedure
		var days, hours float32
		var fee uint8
		if err := scan(&p.Code, &p.Name, &p.Field, &p.UnitKind, &days, &hours, &p.ServiceLevel, &fee); err != nil {
			return err
		}
		p.DeadlineDays, p.DeadlineHours, p.Fee = float64(days), float64(hours), fee != 0
		s.Procedures = append(s.Procedures, p)
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = st.each(ctx, "officers", "SELECT id, unit, name, title FROM "+st.db.Table("officers")+" ORDER BY id",
		func(scan func(...any) error) error {
			var o Officer
			if err := scan(&o.ID, &o.Unit, &o.Name, &o.Title); err != nil {
				return err
			}
			s.Officers = append(s.Officers, o)
			return nil
		})
	if err != nil {
		return nil, err
	}
	err = st.each(ctx, "cameras", "SELECT id, code, name, lat, lon, unit, type, ptz FROM "+st.db.Table("cameras")+" ORDER BY id",
		func(scan func(...any) error) error {
			var c Camera
			var ptz uint8
			if err := scan(&c.ID, &c.Code, &c.Name, &c.Lat, &c.Lon, &c.Unit, &c.Type, &ptz); err != nil {
				return err
			}
			c.PTZ = ptz != 0
			s.Cameras = append(s.Cameras, c)
			return nil
		})
	if err != nil {
		return nil, err
	}
	err = st.each(ctx, "calendar", "SELECT date, kind, name FROM "+st.db.Table("calendar")+" ORDER BY date",
		func(scan func(...any) error) error {
			var d Day
			if err := scan(&d.Date, &d.Kind, &d.Name); err != nil {
				return err
			}
			d.Date = dateOf(d.Date)
			s.Calendar = append(s.Calendar, d)
			return nil
		})
	if err != nil {
		return nil, err
	}
	return s, nil
}

func (st *Store) each(ctx context.Context, kind, sql string, fn func(scan func(...any) error) error) error {
	rows, err := st.db.Conn.Query(ctx, sql)
	if err != nil {
		return fmt.Errorf("load %s: %w", kind, err)
	}
	defer rows.Close()
	for rows.Next() {
		if err := fn(rows.Scan); err != nil {
			return fmt.Errorf("load %s: %w", kind, err)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("load %s: %w", kind, err)
	}
	return nil
}
