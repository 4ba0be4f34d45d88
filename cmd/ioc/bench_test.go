package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/vn-ioc/ioc/ingest/refdata"
	"github.com/vn-ioc/ioc/internal/worktime"
)

// A pass of the bench's pool has ids of its own and times moved back by
// whole spans; the first pass keeps the times.
func TestPassBody(t *testing.T) {
	body := []byte(`[{"id":"a-1","time":"2026-11-23T01:24:31+07:00","data":{"due_at":"2026-11-24T08:00:00+07:00"}},` +
		`{"id":"a-2","time":"2026-11-23T01:25:00.5+07:00"}]`)
	got := string(passBody(body, "p", 2, 20*time.Minute))
	want := `[{"id":"p2-a-1","time":"2026-11-23T00:44:31+07:00","data":{"due_at":"2026-11-24T08:00:00+07:00"}},` +
		`{"id":"p2-a-2","time":"2026-11-23T00:45:00.5+07:00"}]`
	if got != want {
		t.Errorf("pass 2:\n got %s\nwant %s", got, want)
	}
	if got := string(passBody(body, "w", 0, 20*time.Minute)); got != `[{"id":"w0-a-1","time":"2026-11-23T01:24:31+07:00","data":{"due_at":"2026-11-24T08:00:00+07:00"}},{"id":"w0-a-2","time":"2026-11-23T01:25:00.5+07:00"}]` {
		t.Errorf("pass 0: %s", got)
	}
}

// The Arrow backfill bench runs end to end on a small stream, and its
// floors measure what they say: the same rows, and with the materialized
// views, rows written by them.
func TestBenchArrowSmall(t *testing.T) {
	if testing.Short() {
		t.Skip("starts ClickHouse and a node")
	}
	var out, errs bytes.Buffer
	if err := runBenchArrow(context.Background(), []string{"--rows", "3000", "--batch-rows", "1000"}, &out, &errs); err != nil {
		t.Fatalf("%v\n%s\n%s", err, out.String(), errs.String())
	}
	for _, want := range []string{
		"accepted 3000 (rejected 0)",
		"floor: clickhouse-client inserted the same 3000 rows",
		"floor with the materialized views (into 2 tables, 6000 rows written by them)",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

func TestBenchStartInOfficeHours(t *testing.T) {
	_, cal := hcmc(t)
	ict := cal.Location()
	for _, c := range []struct{ now, want time.Time }{
		{time.Date(2026, 11, 24, 4, 9, 0, 0, ict), time.Date(2026, 11, 23, 10, 0, 0, 0, ict)},  // Tuesday night → Monday
		{time.Date(2026, 11, 24, 23, 0, 0, 0, ict), time.Date(2026, 11, 24, 10, 0, 0, 0, ict)}, // late → the same day
		{time.Date(2026, 11, 23, 15, 0, 0, 0, ict), time.Date(2026, 11, 20, 10, 0, 0, 0, ict)}, // Monday afternoon → Friday
		{time.Date(2026, 9, 3, 9, 0, 0, 0, ict), time.Date(2026, 8, 28, 10, 0, 0, 0, ict)},     // National Day and the swapped Monday 31 Aug skipped
	} {
		if got := benchStart(c.now, cal); !got.Equal(c.want) {
			t.Errorf("benchStart(%v) = %v, want %v", c.now, got, c.want)
		}
	}
}

// hcmc loads the bundled city's reference data and business calendar.
func hcmc(t *testing.T) (*refdata.Set, *worktime.Calendar) {
	t.Helper()
	set, err := refdata.HCMC()
	if err != nil {
		t.Fatal(err)
	}
	cal, err := worktime.New(set.Calendar, worktime.Config{})
	if err != nil {
		t.Fatal(err)
	}
	return set, cal
}
