package kpi

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/vn-ioc/ioc/query"
)

// The reference data the rollups keep as it was when they were written:
// the unit of a camera (a detection's unit is its camera's, from
// ref_cameras) and the business calendar (the working time of a KPI that
// measures it). Their digests are part of a family's fingerprint, so that a
// change of either rebuilds the rollups that took from it, as a change of
// definition does.
const (
	refCameras  = "cameras"
	refCalendar = "calendar"
)

// referenceDigests computes the digest of each kind of reference data: the
// calendar the builder measures working time with (what the engine writes
// with), the cameras as ClickHouse holds them (what the views read).
var referenceDigests = map[string]func(ctx context.Context, db *query.DB, b *Builder) (string, error){
	refCalendar: func(_ context.Context, _ *query.DB, b *Builder) (string, error) {
		cal := b.Calendar()
		off, worked := cal.Exceptions()
		j, err := json.Marshal(struct {
			Zone     string
			Sessions any
			Off      any
			Worked   any
		}{cal.Location().String(), cal.Sessions(), off, worked})
		if err != nil {
			return "", err
		}
		sum := sha256.Sum256(j)
		return hex.EncodeToString(sum[:8]), nil
	},
	refCameras: func(ctx context.Context, db *query.DB, b *Builder) (string, error) {
		var n, xor uint64
		err := db.Conn.QueryRow(ctx, fmt.Sprintf("SELECT count(), groupBitXor(cityHash64(id, unit)) FROM %s",
			query.Ref(b.DB, "cameras", ""))).Scan(&n, &xor)
		return fmt.Sprintf("%d-%016x", n, xor), err
	},
}

// References are the kinds of reference data the family's rollups take
// from: those its windowed KPIs' sources declare, and the calendar when
// one of them measures working time.
func (c *Catalog) References(family string) []string {
	var out []string
	for _, k := range c.KPIs {
		if k.Family != family || k.Instant() {
			continue
		}
		if s := c.Sources[k.Source]; s != nil {
			out = append(out, s.Reference...)
		}
		if strings.Contains(k.Numerator+k.Denominator+k.Filter, "{working_seconds") {
			out = append(out, refCalendar)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// fingerprintNow is the family's fingerprint with its reference data as
// it is now: what the engine notes when it builds, and what a reader
// compares the noted one with.
func fingerprintNow(ctx context.Context, cat *Catalog, db *query.DB, b *Builder, family string) (string, error) {
	refs := map[string]string{}
	for _, kind := range cat.References(family) {
		d, err := referenceDigests[kind](ctx, db, b)
		if err != nil {
			return "", fmt.Errorf("digest of the %s: %w", kind, err)
		}
		refs[kind] = d
	}
	return cat.Fingerprint(family, refs), nil
}
