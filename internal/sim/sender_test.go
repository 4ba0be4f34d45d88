package sim

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeIntake answers like POST /api/v1/events: it rejects events whose
// index is odd as retryable the first time it sees them, rejects broken
// events for good, counts an id seen before as a duplicate, and fails the
// first request with a 503.
type fakeIntake struct {
	mu       sync.Mutex
	requests int
	stored   map[string]bool
	refused  map[string]bool
}

func (f *fakeIntake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests++
	if r.URL.Path != "/api/v1/events" || r.Method != http.MethodPost ||
		r.Header.Get("Authorization") != "Bearer tok" ||
		r.Header.Get("Content-Type") != "application/cloudevents-batch+json" {
		http.Error(w, "bad request line or headers", http.StatusBadRequest)
		return
	}
	if f.requests == 1 {
		http.Error(w, `{"error":"unavailable"}`, http.StatusServiceUnavailable)
		return
	}
	body, _ := io.ReadAll(r.Body)
	var batch []struct {
		ID          string `json:"id"`
		Source      string `json:"source"`
		SpecVersion string `json:"specversion"`
	}
	if err := json.Unmarshal(body, &batch); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	type rej struct {
		Index     int    `json:"index"`
		ID        string `json:"id"`
		Error     string `json:"error"`
		Retryable bool   `json:"retryable,omitempty"`
	}
	res := struct {
		Accepted   int   `json:"accepted"`
		Duplicates int   `json:"duplicates"`
		Rejected   []rej `json:"rejected"`
	}{Rejected: []rej{}}
	for i, ev := range batch {
		key := ev.Source + "/" + ev.ID
		switch {
		case ev.SpecVersion != "1.0":
			res.Rejected = append(res.Rejected, rej{i, ev.ID, "specversion: not supported", false})
		case f.stored[key]:
			res.Duplicates++
		case i%2 == 1 && !f.refused[key]:
			f.refused[key] = true
			res.Rejected = append(res.Rejected, rej{i, ev.ID, "not stored; send it again", true})
		default:
			f.stored[key] = true
			res.Accepted++
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	json.NewEncoder(w).Encode(res)
}

func TestHTTPSender(t *testing.T) {
	set, cal := fixture(t)
	fi := &fakeIntake{stored: map[string]bool{}, refused: map[string]bool{}}
	srv := httptest.NewServer(fi)
	defer srv.Close()
	cfg := testConfig()
	cfg.InvalidShare, cfg.DuplicateShare = 0.02, 0.02
	g, err := NewGenerator(cfg, set, cal)
	if err != nil {
		t.Fatal(err)
	}
	var batch []Event
	var raws []json.RawMessage
	for range 400 {
		ev, _ := g.Next()
		batch = append(batch, ev)
		raws = append(raws, ev.AppendJSON(nil))
	}
	s := &HTTPSender{URL: srv.URL + "/", Token: "tok", Client: srv.Client(), Backoff: time.Millisecond}
	acc, dup, rej, err := s.Send(context.Background(), raws)
	if err != nil {
		t.Fatal(err)
	}
	var wantDup, wantRej int
	for _, ev := range batch {
		switch {
		case ev.Flaw == "duplicate":
			wantDup++
		case ev.Flaw == "invalid: specversion 0.3":
			wantRej++
		}
	}
	if acc+dup+rej != len(raws) || dup != wantDup || rej != wantRej {
		t.Errorf("accepted %d, duplicates %d, rejected %d of %d; want %d duplicates, %d rejected", acc, dup, rej, len(raws), wantDup, wantRej)
	}
	if fi.requests != 3 {
		t.Errorf("%d requests, want 3 (503, batch, retryable rejections)", fi.requests)
	}

	// A refusal that retrying cannot fix is returned at once.
	bad := &HTTPSender{URL: srv.URL, Token: "wrong", Client: srv.Client(), Backoff: time.Millisecond}
	if _, _, _, err := bad.Send(context.Background(), raws[:1]); err == nil {
		t.Error("no error for a 400")
	} else if se, ok := err.(*StatusError); !ok || se.Status != http.StatusBadRequest {
		t.Errorf("error %v, want a StatusError 400", err)
	}
}

// countingSender accepts everything.
type countingSender struct {
	n       int
	batches []int
}

func (c *countingSender) Send(_ context.Context, b []json.RawMessage) (int, int, int, error) {
	c.n += len(b)
	c.batches = append(c.batches, len(b))
	return len(b), 0, 0, nil
}

func TestRun(t *testing.T) {
	set, cal := fixture(t)
	cfg := testConfig()
	cfg.Start = time.Now().AddDate(0, 0, -30).Truncate(time.Second)
	g, err := NewGenerator(cfg, set, cal)
	if err != nil {
		t.Fatal(err)
	}
	snd := &countingSender{}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	// Unpaced, at 20,000 events/s in batches of 1,000: 3,000 events take
	// about 0.15 s; no batch exceeds the bucket.
	rctx, rcancel := context.WithTimeout(context.Background(), time.Minute)
	defer rcancel()
	st, err := Run(rctx, RunConfig{Rate: 20000, BatchSize: 1000, MaxEvents: 3000, Unpaced: true}, g, snd, log)
	if rctx.Err() != nil {
		t.Fatalf("3000 unpaced events not sent within a minute: %+v", st)
	}
	if err != nil {
		t.Fatal(err)
	}
	if st.Sent != 3000 || st.Accepted != 3000 || snd.n != 3000 {
		t.Errorf("sent %d, accepted %d, sender saw %d; want 3000", st.Sent, st.Accepted, snd.n)
	}
	for _, b := range snd.batches {
		if b > 1000 {
			t.Errorf("batch of %d > BatchSize", b)
		}
	}
	if st.Elapsed < 100*time.Millisecond {
		t.Errorf("3000 events at 20,000/s took %v: not rate-limited", st.Elapsed)
	}
	// Paced on the simulated clock: the live stream never runs ahead of
	// the wall clock, however high the rate.
	cfg.Start = time.Now().Truncate(time.Second)
	g, _ = NewGenerator(cfg, set, cal)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	st, err = Run(ctx, RunConfig{Rate: 1e6}, g, &countingSender{}, log)
	if err != nil {
		t.Fatal(err)
	}
	if st.SimTime.After(time.Now()) {
		t.Errorf("sent an event of %v, in the future", st.SimTime)
	}
}

// TestRunCatchesUp: a replay of the past goes out at CatchUpRate until the
// stream is within 10 s of the wall clock, then at Rate.
func TestRunCatchesUp(t *testing.T) {
	now := time.Now()
	rc := RunConfig{Rate: 10, CatchUpRate: 5000}
	for _, tc := range []struct {
		sim  time.Time
		want float64
	}{
		{now.Add(-48 * time.Hour), 5000},
		{now.Add(-11 * time.Second), 5000},
		{now.Add(-9 * time.Second), 10},
		{now, 10},
	} {
		if got := rc.rate(tc.sim, now); got != tc.want {
			t.Errorf("stream at %v behind: rate %v, want %v", now.Sub(tc.sim), got, tc.want)
		}
	}
	if got := (RunConfig{Rate: 10, CatchUpRate: 5}).rate(now.Add(-time.Hour), now); got != 10 {
		t.Errorf("CatchUpRate below Rate: rate %v, want 10", got)
	}
	// Ten days of the past (some 60,000 events in testConfig's city) at
	// 10 events/s would take hours; at the catch-up rate, their first
	// 3,000 go out at once.
	set, cal := fixture(t)
	cfg := testConfig()
	cfg.Start = now.AddDate(0, 0, -10).Truncate(time.Second)
	g, err := NewGenerator(cfg, set, cal)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	st, err := Run(ctx, RunConfig{Rate: 10, CatchUpRate: 1e6, Speed: 1e6, MaxEvents: 3000}, g, &countingSender{}, log)
	if err != nil {
		t.Fatal(err)
	}
	if ctx.Err() != nil || st.Sent != 3000 {
		t.Fatalf("sent %d of 3,000 events of the past within a minute, at the catch-up rate", st.Sent)
	}
	if st.SimTime.After(time.Now()) || st.SimTime.Before(cfg.Start) {
		t.Errorf("last event of %v, outside the replayed past", st.SimTime)
	}
}

// sliceSource hands out its events in order.
type sliceSource []Event

func (s *sliceSource) Next() (Event, bool) {
	if len(*s) == 0 {
		return Event{}, false
	}
	ev := (*s)[0]
	*s = (*s)[1:]
	return ev, true
}

// TestRunCallsCaughtUp: CaughtUp is called once, when the replayed past
// has all been answered and before the first event of the live stream.
func TestRunCallsCaughtUp(t *testing.T) {
	now := time.Now()
	var src sliceSource
	for i := range 100 { // the past, an hour to 10 minutes ago
		src = append(src, Event{ID: fmt.Sprint(i), Source: "s", Type: typeDossierReceived, Subject: "d",
			Time: now.Add(-time.Hour + time.Duration(i)*time.Minute/2), Data: json.RawMessage(`{}`)})
	}
	for i := range 2 { // live
		src = append(src, Event{ID: fmt.Sprint("live", i), Source: "s", Type: typeDossierReceived, Subject: "d",
			Time: now.Add(time.Duration(i+1) * 300 * time.Millisecond), Data: json.RawMessage(`{}`)})
	}
	snd := &countingSender{}
	var calls []int64
	rc := RunConfig{Rate: 10, CatchUpRate: 1e6, Speed: 1e6, BatchSize: 30, FlushEvery: 50 * time.Millisecond,
		CaughtUp: func(st Stats) { calls = append(calls, st.Sent, int64(snd.n)) }}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := Run(ctx, rc, &src, snd, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil || st.Sent != 102 {
		t.Fatalf("sent %d: %v", st.Sent, err)
	}
	if len(calls) != 2 || calls[0] != 100 || calls[1] != 100 {
		t.Fatalf("CaughtUp calls (sent, answered): %v; want one, after the 100 events of the past", calls)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg   Config
		field string
	}{
		{Config{DossiersPerDay: -1}, "DossiersPerDay"},
		{Config{Cameras: -2}, "Cameras"},
		{Config{DetectionEvery: time.Millisecond}, "DetectionEvery"},
		{Config{InvalidShare: 0.9}, "InvalidShare"},
		{Config{SourcePrefix: "a b"}, "SourcePrefix"},
	} {
		if err := tc.cfg.Validate(); err == nil || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%+v: error %v, want one naming %s", tc.cfg, err, tc.field)
		}
	}
	if err := (Config{}).Validate(); err != nil {
		t.Errorf("zero Config: %v", err)
	}
	if err := (RunConfig{BatchSize: 20000}).Validate(); err == nil || !strings.Contains(err.Error(), "BatchSize") {
		t.Errorf("RunConfig: %v", err)
	}
	if err := (RunConfig{CatchUpRate: -1}).Validate(); err == nil || !strings.Contains(err.Error(), "CatchUpRate") {
		t.Errorf("RunConfig: %v", err)
	}
}

func BenchmarkGenerator(b *testing.B) {
	set, cal := fixture(b)
	start := time.Date(2025, 9, 1, 6, 0, 0, 0, ict)
	for _, bc := range []struct {
		name string
		cfg  Config
	}{
		{"city", Config{Seed: 1, Start: start}},
		{"no-cameras", Config{Seed: 1, Start: start, Cameras: -1}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			g, err := NewGenerator(bc.cfg, set, cal)
			if err != nil {
				b.Fatal(err)
			}
			var buf []byte
			var n int64
			b.ReportAllocs()
			for b.Loop() {
				ev, _ := g.Next()
				buf = ev.AppendJSON(buf[:0])
				n += int64(len(buf))
			}
			b.SetBytes(n / int64(max(b.N, 1)))
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

func BenchmarkScenario(b *testing.B) {
	set, cal := fixture(b)
	s, err := LoadScenario("hcmc-2024-q1")
	if err != nil {
		b.Fatal(err)
	}
	var buf []byte
	b.ReportAllocs()
	events := 0
	for b.Loop() {
		events = 0
		for ev, err := range s.Scale(0.1).Events(1, set, cal) {
			if err != nil {
				b.Fatal(err)
			}
			buf = ev.AppendJSON(buf[:0])
			events++
		}
	}
	b.ReportMetric(float64(events)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
