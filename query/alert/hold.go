package alert

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vn-ioc/ioc/ingest"
)

// Hold suspends the evaluation of every alert rule while the data is known
// to be incomplete: a backfill of history, a replay, a source catching up
// after an outage. Judged against the wall clock, such data raises alerts
// that are false (a dossier whose resolution is still to be loaded is
// overdue) and clears them as the rest arrives. While a hold is in force
// no alert is raised or cleared; acknowledgements still apply. When it is
// lifted, or its Until passes, every rule is judged again at once against
// the data as it then is.
//
// There is one hold for the whole deployment, kept in the NATS KV bucket
// <Store.Bucket>_hold, so it applies whichever node evaluates.
type Hold struct {
	Reason string `json:"reason"`
	By     string `json:"by"`
	// Families it holds: the rules over their entities and KPIs (a
	// backfill of feedback need not silence the dossiers). Empty: every
	// rule.
	Families []string  `json:"families,omitempty"`
	Since    time.Time `json:"since"`
	// Until the hold ends by itself: a forgotten hold never silences the
	// rules for good.
	Until time.Time `json:"until"`
}

// MaxHold is the longest a hold may last.
const MaxHold = 7 * 24 * time.Hour

const holdKey = "hold"

// Validate names the field that is wrong, at time now.
func (h Hold) Validate(now time.Time) error {
	switch {
	case strings.TrimSpace(h.Reason) == "":
		return errors.New("reason: required (what the data is waiting for)")
	case len(h.Reason) > 500:
		return errors.New("reason: at most 500 bytes")
	case len(h.By) > 200:
		return errors.New("by: at most 200 bytes")
	case h.Until.Sub(now) < time.Second:
		return fmt.Errorf("until %s: must be in the future, at least 1s ahead", h.Until.Format(time.RFC3339))
	case h.Until.Sub(now) > MaxHold:
		return fmt.Errorf("until %s: at most %s ahead", h.Until.Format(time.RFC3339), MaxHold)
	}
	for i, f := range h.Families {
		if !slices.Contains(ingest.Families, f) || slices.Contains(h.Families[:i], f) {
			return fmt.Errorf("families: %q is not a family, or repeated (%s)", f, strings.Join(ingest.Families, ", "))
		}
	}
	return nil
}

// InvalidHoldError is a hold SetHold refuses; its message names the field.
type InvalidHoldError struct{ Err error }

func (e *InvalidHoldError) Error() string { return e.Err.Error() }
func (e *InvalidHoldError) Unwrap() error { return e.Err }

// InForce reports whether the hold suspends rules at time t.
func (h *Hold) InForce(t time.Time) bool { return h != nil && t.Before(h.Until) }

// HoldsFamily reports whether, at time t, the hold suspends the rules
// over a family's data.
func (h *Hold) HoldsFamily(family string, t time.Time) bool {
	return h.InForce(t) && (len(h.Families) == 0 || slices.Contains(h.Families, family))
}

func openHoldBucket(ctx context.Context, js jetstream.JetStream, cfg StoreConfig) (jetstream.KeyValue, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: cfg.Bucket + "_hold", Description: "ioc: the hold on the alert rules, when one is set", History: 1,
		Replicas: cfg.Replicas, Storage: jetstream.FileStorage,
	})
	if err != nil {
		return nil, fmt.Errorf("alert hold bucket %s_hold: %w", cfg.Bucket, err)
	}
	return kv, nil
}

// SetHold puts a hold in force (replacing the one there was); Since is
// set to now when zero.
func (s *Store) SetHold(ctx context.Context, h Hold) (*Hold, error) {
	now := time.Now()
	if err := h.Validate(now); err != nil {
		return nil, &InvalidHoldError{err}
	}
	if h.Since.IsZero() {
		h.Since = now
	}
	h.Since, h.Until = h.Since.UTC().Truncate(time.Millisecond), h.Until.UTC().Truncate(time.Millisecond)
	b, err := json.Marshal(h)
	if err != nil {
		return nil, err
	}
	if _, err := s.hold.Put(ctx, holdKey, b); err != nil {
		return nil, fmt.Errorf("set the alert hold: %w", err)
	}
	return &h, nil
}

// LiftHold ends the hold, if there is one.
func (s *Store) LiftHold(ctx context.Context) error {
	if err := s.hold.Delete(ctx, holdKey); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("lift the alert hold: %w", err)
	}
	return nil
}

// Hold is the hold set, nil when there is none. It may have expired
// (InForce tells).
func (s *Store) Hold(ctx context.Context) (*Hold, error) {
	e, err := s.hold.Get(ctx, holdKey)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("read the alert hold: %w", err)
	}
	return decodeHold(e)
}

func decodeHold(e jetstream.KeyValueEntry) (*Hold, error) {
	if e.Operation() != jetstream.KeyValuePut {
		return nil, nil
	}
	var h Hold
	if err := json.Unmarshal(e.Value(), &h); err != nil {
		return nil, fmt.Errorf("alert hold: %w", err)
	}
	return &h, nil
}

// WatchHold calls fn with the hold as it is (nil: none), then with each
// change, until ctx ends.
func (s *Store) WatchHold(ctx context.Context, fn func(*Hold)) error {
	w, err := s.hold.Watch(ctx, holdKey)
	if err != nil {
		return fmt.Errorf("watch the alert hold: %w", err)
	}
	defer w.Stop()
	initial := true
	for {
		select {
		case <-ctx.Done():
			return nil
		case e, ok := <-w.Updates():
			if !ok {
				return errors.New("alert hold watch closed")
			}
			if e == nil { // the end of the initial values
				if initial {
					fn(nil)
				}
				initial = false
				continue
			}
			// A value that does not decode is no hold: it must not stop
			// the rules (Hold, the REST API's read, reports the error).
			h, _ := decodeHold(e)
			if initial {
				// The key's current value; the nil marker that follows
				// must not undo it.
				initial = false
			}
			fn(h)
		}
	}
}
