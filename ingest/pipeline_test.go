package ingest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/apache/arrow/go/v15/arrow/ipc"
	"github.com/apache/arrow/go/v15/arrow/memory"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/vn-ioc/ioc/ingest"
	"github.com/vn-ioc/ioc/internal/auth"
	"github.com/vn-ioc/ioc/internal/testenv"
	"github.com/vn-ioc/ioc/query"
)

func TestMain(m *testing.M) { testenv.Main(m) }

type units map[string]bool

func (u units) Has(kind, code string) bool { return kind != "unit" || u[code] }

const pseudonymKey = "test-pseudonym-key-0123456789"

// pipeline is a real intake + writer over real JetStream and ClickHouse.
type pipeline struct {
	db     *query.DB
	nc     *nats.Conn
	js     jetstream.JetStream
	stream jetstream.Stream
	intake *ingest.Intake
	tokens *auth.Issuer
	srv    *httptest.Server
	m      *ingest.Metrics
	// startWriter starts the writer, if newPipelineWith was asked not to.
	startWriter func()
	// stopNATS ends the NATS intake's context, as a node's shutdown does.
	stopNATS context.CancelFunc
}

func newPipeline(t *testing.T) *pipeline {
	t.Helper()
	return newPipelineWith(t, ingest.WriterConfig{FlushInterval: 50 * time.Millisecond}, true)
}

// newPipelineWith makes a pipeline whose writer has the configuration
// given, running at once or only when startWriter is called.
// wrap, when given, stands between the intake and JetStream.
func newPipelineWith(t *testing.T, wcfg ingest.WriterConfig, start bool, wrap ...func(jetstream.JetStream) jetstream.JetStream) *pipeline {
	t.Helper()
	db, _ := testenv.ClickHouse(t)
	_, nc := testenv.NATS(t)
	ctx := context.Background()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	intakeJS := js
	for _, w := range wrap {
		intakeJS = w(intakeJS)
	}
	st, err := ingest.EnsureStream(ctx, js, ingest.StreamConfig{})
	if err != nil {
		t.Fatal(err)
	}
	contract, err := ingest.LoadContract()
	if err != nil {
		t.Fatal(err)
	}
	p, err := ingest.NewPseudonymizer([]byte(pseudonymKey))
	if err != nil {
		t.Fatal(err)
	}
	m := ingest.NewMetrics(nil)
	v := ingest.NewValidator(contract, units{"26740": true, "26734": true, "79": true}, p)
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	in, err := ingest.NewIntake(ingest.IntakeConfig{}, intakeJS, v, m, log)
	if err != nil {
		t.Fatal(err)
	}
	w, err := ingest.NewWriter(wcfg, db, nc, st, m, log)
	if err != nil {
		t.Fatal(err)
	}
	startWriter := func() {
		wctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- w.Run(wctx) }()
		t.Cleanup(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("writer: %v", err)
			}
		})
	}
	if start {
		startWriter()
		startWriter = func() { t.Fatal("the writer runs already") }
	}
	tokens, err := auth.NewIssuer([]byte("test-token-key-0123456789abcdef-0123"))
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("POST /api/v1/events", tokens.Require(auth.RoleIngest, auth.RoleAdmin)(http.HandlerFunc(in.HandleEvents)))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	nctx, ncancel := context.WithCancel(ctx)
	t.Cleanup(ncancel)
	go in.ServeNATS(nctx, nc, tokens)
	return &pipeline{db: db, nc: nc, js: js, stream: st, intake: in, tokens: tokens, srv: srv, m: m, startWriter: startWriter, stopNATS: ncancel}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func (p *pipeline) token(t *testing.T, role, source string) string {
	t.Helper()
	tok, err := p.tokens.Issue(auth.Claims{Role: role, Source: source}, "test", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

type response struct {
	Accepted   int                `json:"accepted"`
	Duplicates int                `json:"duplicates"`
	Rejected   []ingest.Rejection `json:"rejected"`
	Error      *struct {
		Code    string         `json:"code"`
		Message string         `json:"message"`
		Detail  map[string]any `json:"detail"`
	} `json:"error"`
}

func (p *pipeline) post(t *testing.T, token, contentType string, body []byte) (int, response) {
	t.Helper()
	req, _ := http.NewRequest("POST", p.srv.URL+"/api/v1/events", bytes.NewReader(body))
	req.Header.Set("Content-Type", contentType)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r response
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatalf("decode response (%d): %v", resp.StatusCode, err)
	}
	return resp.StatusCode, r
}

func (p *pipeline) count(t *testing.T, sql string, args ...any) uint64 {
	t.Helper()
	var n uint64
	sql = strings.ReplaceAll(sql, "DB.", p.db.Database()+".")
	if err := p.db.Conn.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

func (p *pipeline) waitCount(t *testing.T, want uint64, sql string, args ...any) {
	t.Helper()
	testenv.Eventually(t, 20*time.Second, sql, func() (bool, error) {
		n := p.count(t, sql, args...)
		return n == want, fmt.Errorf("have %d, want %d", n, want)
	})
}

func event(id, typ, subject, when string, data map[string]any) map[string]any {
	return map[string]any{"specversion": "1.0", "id": id, "source": "hcmc/one-stop", "type": typ,
		"subject": subject, "time": when, "data": data}
}

func received(id, subject, when string) map[string]any {
	return event(id, "vn.ioc.dossier.received", subject, when, map[string]any{
		"procedure_code": "TP-001", "channel": "online", "unit": "26740", "due_at": "2024-03-08T17:00:00+07:00",
		"service_level": "full_online",
		"applicant":     map[string]any{"kind": "citizen", "id": "079123456789", "name": "Nguyễn Văn An"},
	})
}

func batch(t *testing.T, evs ...map[string]any) []byte {
	t.Helper()
	b, err := json.Marshal(evs)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestBatchLandsValidEventsAndRejectsInvalidOnes(t *testing.T) {
	p := newPipeline(t)
	tok := p.token(t, auth.RoleIngest, "hcmc/one-stop")
	bad := received("e2", "D-2", "2024-03-01T09:00:00+07:00")
	bad["data"].(map[string]any)["channel"] = "carrier-pigeon"
	unknownUnit := received("e3", "D-3", "2024-03-01T09:00:00+07:00")
	unknownUnit["data"].(map[string]any)["unit"] = "99999"
	otherSource := received("e4", "D-4", "2024-03-01T09:00:00+07:00")
	otherSource["source"] = "hcmc/1022"
	noTime := received("e5", "D-5", "")
	code, r := p.post(t, tok, ingest.ContentBatch, batch(t,
		received("e1", "D-1", "2024-03-01T09:00:00+07:00"), bad, unknownUnit, otherSource, noTime,
		received("e6", "D-6", "2024-03-01T10:00:00+07:00")))
	if code != 202 || r.Accepted != 2 || len(r.Rejected) != 4 {
		t.Fatalf("got %d %+v", code, r)
	}
	want := map[int]string{1: "data.channel", 2: "data.unit", 3: "source", 4: "time"}
	for _, rej := range r.Rejected {
		if rej.Field != want[rej.Index] || rej.ID == "" || !strings.Contains(rej.Error, rej.Field) {
			t.Errorf("rejection %+v: want field %q named in the error", rej, want[rej.Index])
		}
	}
	p.waitCount(t, 2, "SELECT count() FROM DB.dossier_events FINAL")
	p.waitCount(t, 2, "SELECT count() FROM DB.dossiers WHERE unit = '26740' AND procedure_code = 'TP-001'")
}

// stalling is JetStream with a client whose outstanding publications are
// full for the first attempt of every other chunk, as when another user
// of the connection publishes a burst.
type stalling struct {
	jetstream.JetStream
	calls, refused atomic.Int64
}

func (s *stalling) PublishMsgAsync(m *nats.Msg, opts ...jetstream.PublishOpt) (jetstream.PubAckFuture, error) {
	if s.calls.Add(1)%2 == 1 {
		s.refused.Add(1)
		return nil, jetstream.ErrTooManyStalledMsgs
	}
	return s.JetStream.PublishMsgAsync(m, opts...)
}

// TestStalledPublicationsWait: events whose chunks find the client's
// outstanding publications full wait for room and are accepted, not
// refused.
func TestStalledPublicationsWait(t *testing.T) {
	st := &stalling{}
	p := newPipelineWith(t, ingest.WriterConfig{FlushInterval: 50 * time.Millisecond}, true, func(js jetstream.JetStream) jetstream.JetStream {
		st.JetStream = js
		return st
	})
	tok := p.token(t, auth.RoleIngest, "hcmc/one-stop")
	code, r := p.post(t, tok, ingest.ContentBatch, batch(t,
		received("s1", "D-1", "2024-03-01T09:00:00+07:00"), received("s2", "D-2", "2024-03-01T09:00:00+07:00")))
	if code != 202 || r.Accepted != 2 || len(r.Rejected) != 0 || st.refused.Load() == 0 {
		t.Fatalf("got %d %+v after %d refusals", code, r, st.refused.Load())
	}
	p.waitCount(t, 2, "SELECT count() FROM DB.dossier_events FINAL")
}

// lateAcks publishes through JetStream but holds every acknowledgement
// back until release is closed.
type lateAcks struct {
	jetstream.JetStream
	published chan struct{} // closed at the first publication
	once      sync.Once
	release   chan struct{}
}

type lateAck struct {
	jetstream.PubAckFuture
	ok  chan *jetstream.PubAck
	err chan error
}

func (f *lateAck) Ok() <-chan *jetstream.PubAck { return f.ok }
func (f *lateAck) Err() <-chan error            { return f.err }

func (s *lateAcks) PublishMsgAsync(m *nats.Msg, opts ...jetstream.PublishOpt) (jetstream.PubAckFuture, error) {
	f, err := s.JetStream.PublishMsgAsync(m, opts...)
	if err != nil {
		return f, err
	}
	s.once.Do(func() { close(s.published) })
	late := &lateAck{PubAckFuture: f, ok: make(chan *jetstream.PubAck, 1), err: make(chan error, 1)}
	go func() {
		<-s.release
		select {
		case a := <-f.Ok():
			late.ok <- a
		case e := <-f.Err():
			late.err <- e
		}
	}()
	return late, nil
}

// TestNATSRequestInHandAtShutdown: a NATS intake request whose events are
// being stored when the node starts stopping is answered as it would have
// been (accepted), not 503 "not stored".
func TestNATSRequestInHandAtShutdown(t *testing.T) {
	la := &lateAcks{published: make(chan struct{}), release: make(chan struct{})}
	p := newPipelineWith(t, ingest.WriterConfig{FlushInterval: 50 * time.Millisecond}, true, func(js jetstream.JetStream) jetstream.JetStream {
		la.JetStream = js
		return la
	})
	tok := p.token(t, auth.RoleIngest, "hcmc/one-stop")
	msg := nats.NewMsg(ingest.IngestSubject)
	msg.Header.Set("Authorization", "Bearer "+tok)
	msg.Header.Set("Content-Type", ingest.ContentBatch)
	msg.Data = batch(t, received("s1", "D-1", "2024-03-01T09:00:00+07:00"))
	replies := make(chan *nats.Msg, 1)
	go func() {
		for {
			reply, err := p.nc.RequestMsg(msg, 20*time.Second)
			if errors.Is(err, nats.ErrNoResponders) {
				time.Sleep(10 * time.Millisecond) // the intake is subscribing
				continue
			}
			if err != nil {
				t.Error(err)
			}
			replies <- reply
			return
		}
	}()
	select {
	case <-la.published:
	case <-time.After(20 * time.Second):
		t.Fatal("the request's events were never published")
	}
	p.stopNATS()
	time.Sleep(100 * time.Millisecond)
	close(la.release)
	reply := <-replies
	if reply == nil {
		t.FailNow()
	}
	var r response
	if err := json.Unmarshal(reply.Data, &r); err != nil || r.Accepted != 1 || r.Error != nil {
		t.Fatalf("reply %s", reply.Data)
	}
	p.waitCount(t, 1, "SELECT count() FROM DB.dossier_events")
}

func TestBodyErrors(t *testing.T) {
	p := newPipeline(t)
	tok := p.token(t, auth.RoleAdmin, "")
	cases := []struct {
		name, ct, body string
		code           int
		errCode        string
	}{
		{"syntax error names the offset", ingest.ContentBatch, `[{"id":"x"},{"id":}]`, 400, "invalid"},
		{"ndjson syntax error", ingest.ContentNDJSON, "{\"a\":1}\n{oops}\n", 400, "invalid"},
		{"unsupported media type", "text/plain", `{}`, 415, "unsupported"},
		{"empty batch", ingest.ContentBatch, `[]`, 400, "invalid"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, r := p.post(t, tok, c.ct, []byte(c.body))
			if code != c.code || r.Error == nil || r.Error.Code != c.errCode {
				t.Fatalf("got %d %+v", code, r)
			}
		})
	}
	t.Run("syntax error offset", func(t *testing.T) {
		_, r := p.post(t, tok, ingest.ContentBatch, []byte(`[{"id":"x"},{"id":}]`))
		if off, _ := r.Error.Detail["offset"].(float64); off != 18 {
			t.Fatalf("offset %v, want 18 (%s)", r.Error.Detail, r.Error.Message)
		}
	})
	t.Run("no token", func(t *testing.T) {
		code, r := p.post(t, "", ingest.ContentSingle, []byte(`{}`))
		if code != 401 || r.Error.Code != "unauthorized" {
			t.Fatalf("got %d %+v", code, r)
		}
	})
	t.Run("wrong role", func(t *testing.T) {
		tok, _ := p.tokens.Issue(auth.Claims{Role: auth.RoleAnalyst}, "a", time.Hour)
		code, _ := p.post(t, tok, ingest.ContentSingle, []byte(`{}`))
		if code != 403 {
			t.Fatalf("got %d", code)
		}
	})
}

func TestSameEventAnyNumberOfTimesAnyPathCountsOnce(t *testing.T) {
	p := newPipeline(t)
	tok := p.token(t, auth.RoleIngest, "hcmc/one-stop")
	ev := received("dup-1", "D-DUP", "2024-03-01T09:00:00+07:00")
	body := batch(t, ev)
	_, r1 := p.post(t, tok, ingest.ContentBatch, body)
	_, r2 := p.post(t, tok, ingest.ContentBatch, body)
	single, _ := json.Marshal(ev)
	_, r3 := p.post(t, tok, ingest.ContentSingle, single)
	if r1.Accepted != 1 || r2.Duplicates != 1 || r3.Duplicates != 1 {
		t.Fatalf("http: %+v %+v %+v", r1, r2, r3)
	}
	// Over NATS, with Nats-Msg-Id.
	msg := nats.NewMsg(ingest.IngestSubject)
	msg.Header.Set("Authorization", "Bearer "+tok)
	msg.Header.Set("Content-Type", ingest.ContentSingle)
	msg.Header.Set(nats.MsgIdHdr, "hcmc/one-stop/dup-1")
	msg.Data = single
	reply, err := p.nc.RequestMsg(msg, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var r4 response
	_ = json.Unmarshal(reply.Data, &r4)
	if r4.Duplicates != 1 {
		t.Fatalf("nats: %s", reply.Data)
	}
	p.waitCount(t, 1, "SELECT count() FROM DB.dossier_events")
	// A redelivery after a crash between insert and ack reaches the stream
	// again without the dedup header: ClickHouse must still count it once.
	raw, _ := json.Marshal(ingest.Record{Source: "hcmc/one-stop", ID: "dup-1", Family: "dossier", Transition: "received",
		Subject: "D-DUP", Time: time.Date(2024, 3, 1, 2, 0, 0, 0, time.UTC), AcceptedAt: time.Now(),
		Data: json.RawMessage(`{"procedure_code":"TP-001","channel":"online","unit":"26740","due_at":"2024-03-08T17:00:00+07:00"}`)})
	if _, err := p.js.Publish(context.Background(), "ioc.events.dossier.received", raw); err != nil {
		t.Fatal(err)
	}
	p.waitCount(t, 2, "SELECT count() FROM DB.dossier_events")
	if n := p.count(t, "SELECT count() FROM DB.dossier_events FINAL"); n != 1 {
		t.Fatalf("FINAL count %d, want 1", n)
	}
	if n := p.count(t, "SELECT toUInt64(events) FROM DB.dossiers WHERE dossier_id = 'D-DUP'"); n != 1 {
		t.Fatalf("state counts %d events, want 1", n)
	}
	if n := p.count(t, "SELECT count() FROM DB.dossiers"); n != 1 {
		t.Fatalf("%d dossiers, want 1", n)
	}
}

func TestOutOfOrderAndLateEvents(t *testing.T) {
	p := newPipeline(t)
	tok := p.token(t, auth.RoleIngest, "hcmc/one-stop")
	resolved := event("r1", "vn.ioc.dossier.resolved", "D-OOO", "2024-03-05T10:00:00+07:00",
		map[string]any{"outcome": "approved", "officer": "CB-1", "e_result": true})
	assigned := event("a1", "vn.ioc.dossier.assigned", "D-OOO", "2024-03-02T10:00:00+07:00",
		map[string]any{"unit": "26734", "officer": "CB-1"})
	// resolved first, then assigned, then received; plus one event months late.
	for _, ev := range []map[string]any{resolved, assigned, received("x1", "D-OOO", "2024-03-01T09:00:00+07:00"),
		received("late1", "D-LATE", "2023-09-15T09:00:00+07:00")} {
		if code, r := p.post(t, tok, ingest.ContentBatch, batch(t, ev)); code != 202 || r.Accepted != 1 {
			t.Fatalf("%d %+v", code, r)
		}
	}
	p.waitCount(t, 2, "SELECT count() FROM DB.dossiers")
	var unit, holder, outcome, last string
	var recv, res time.Time
	var eres uint8
	err := p.db.Conn.QueryRow(context.Background(), "SELECT unit, holder_unit, outcome, last_type, received_at, resolved_at, e_result FROM "+
		p.db.Table("dossiers")+" WHERE dossier_id = 'D-OOO'").Scan(&unit, &holder, &outcome, &last, &recv, &res, &eres)
	if err != nil {
		t.Fatal(err)
	}
	if unit != "26740" || holder != "26734" || outcome != "approved" || last != "resolved" || eres != 1 ||
		!recv.Equal(time.Date(2024, 3, 1, 2, 0, 0, 0, time.UTC)) || !res.Equal(time.Date(2024, 3, 5, 3, 0, 0, 0, time.UTC)) {
		t.Fatalf("state %q %q %q %q %v %v %d", unit, holder, outcome, last, recv, res, eres)
	}
	if n := p.count(t, "SELECT count() FROM system.parts WHERE database = ? AND table = 'dossier_events' AND partition = '202309' AND active",
		p.db.Database()); n == 0 {
		t.Fatal("the late event is not in partition 202309")
	}
}

// Events of one dossier in the same second are ordered by their
// microseconds, then by their place in the lifecycle, whatever the order
// they arrive in: the state is that of the later one.
func TestEventsOfOneSecondAreOrdered(t *testing.T) {
	p := newPipeline(t)
	tok := p.token(t, auth.RoleIngest, "hcmc/one-stop")
	assigned := func(id, subject, when, unit, officer string) map[string]any {
		return event(id, "vn.ioc.dossier.assigned", subject, when, map[string]any{"unit": unit, "officer": officer})
	}
	send := func(evs ...map[string]any) {
		t.Helper()
		for _, ev := range evs {
			if code, r := p.post(t, tok, ingest.ContentBatch, batch(t, ev)); code != 202 || r.Accepted != 1 {
				t.Fatalf("%d %+v", code, r)
			}
			// one insert each, so that each is folded on its own
			p.waitCount(t, 1, "SELECT count() FROM DB.dossier_events WHERE id = ?", ev["id"])
		}
	}
	send(
		// passed on 0.5 s after reception; the assignment arrives first
		assigned("a1", "D-US1", "2024-03-01T09:00:00.7+07:00", "26734", "CB-1"),
		received("r1", "D-US1", "2024-03-01T09:00:00.2+07:00"),
		// the same, in order
		received("r2", "D-US2", "2024-03-01T09:00:00.2+07:00"),
		assigned("a2", "D-US2", "2024-03-01T09:00:00.7+07:00", "26734", "CB-1"),
		// reassigned within the second, the later assignment arriving first
		received("r3", "D-US3", "2024-03-01T09:00:00+07:00"),
		assigned("a3b", "D-US3", "2024-03-01T09:00:00.900001+07:00", "26734", "CB-3"),
		assigned("a3a", "D-US3", "2024-03-01T09:00:00.9+07:00", "26740", "CB-2"),
		// received and passed on with the same time: the lifecycle orders them
		received("r4", "D-SAME", "2024-03-01T09:00:00+07:00"),
		assigned("a4", "D-SAME", "2024-03-01T09:00:00+07:00", "26734", "CB-4"),
	)
	// The state is written after the raw rows of an insert: wait for every
	// event to be folded (9 events of 4 dossiers).
	p.waitCount(t, 9, "SELECT sum(events) FROM DB.dossiers WHERE dossier_id IN ('D-US1', 'D-US2', 'D-US3', 'D-SAME')")
	for id, want := range map[string][2]string{"D-US1": {"26734", "CB-1"}, "D-US2": {"26734", "CB-1"},
		"D-US3": {"26734", "CB-3"}, "D-SAME": {"26734", "CB-4"}} {
		var holder, officer, last string
		if err := p.db.Conn.QueryRow(context.Background(), "SELECT holder_unit, officer, last_type FROM "+
			p.db.Table("dossiers")+" WHERE dossier_id = ?", id).Scan(&holder, &officer, &last); err != nil {
			t.Fatal(err)
		}
		if holder != want[0] || officer != want[1] || last != "assigned" {
			t.Errorf("%s: held by %q, officer %q, last %q; want %q, %q, assigned", id, holder, officer, last, want[0], want[1])
		}
	}
	if n := p.count(t, "SELECT toUInt64(time_us) FROM DB.dossier_events WHERE id = 'a3b'"); n != 900001 {
		t.Errorf("time_us %d, want 900001", n)
	}
}

func TestPersonalDataIsNeverStoredInClear(t *testing.T) {
	p := newPipeline(t)
	tok := p.token(t, auth.RoleIngest, "hcmc/1022")
	fb := event("fb1", "vn.ioc.feedback.received", "T-1", "2024-03-01T09:00:00+07:00", map[string]any{
		"channel": "app", "category": "traffic", "unit": "26740", "due_at": "2024-03-20T17:00:00+07:00",
		"location": map[string]any{"lat": 10.77, "lon": 106.70, "address": "1 Lê Lợi"},
		"citizen":  map[string]any{"id": "079188001234", "name": "Trần Thị Bình", "phone": "0903123456"},
	})
	fb["source"] = "hcmc/1022"
	if code, r := p.post(t, tok, ingest.ContentBatch, batch(t, fb)); code != 202 || r.Accepted != 1 {
		t.Fatalf("%d %+v", code, r)
	}
	p.waitCount(t, 1, "SELECT count() FROM DB.feedback_events")
	for _, clear := range []string{"079188001234", "Trần Thị Bình", "0903123456"} {
		n := p.count(t, "SELECT count() FROM DB.feedback_events WHERE positionUTF8(concat(data, citizen_ref, citizen_name_ref, citizen_phone_ref), ?) > 0", clear)
		if n != 0 {
			t.Errorf("clear value %q stored", clear)
		}
	}
	ps, _ := ingest.NewPseudonymizer([]byte(pseudonymKey))
	want := ps.Pseudonym("079188001234")
	if n := p.count(t, "SELECT count() FROM DB.feedback_events WHERE citizen_ref = ?", want); n != 1 {
		t.Errorf("citizen_ref is not the keyed pseudonym %s", want)
	}
}

func TestPoisonEventGoesToDeadLetters(t *testing.T) {
	p := newPipeline(t)
	if _, err := p.js.Publish(context.Background(), "ioc.events.survey.submitted", []byte("{not json")); err != nil {
		t.Fatal(err)
	}
	p.waitCount(t, 1, "SELECT count() FROM DB.dead_letters WHERE family = 'survey' AND payload = '{not json' AND reason LIKE 'undecodable%'")
	// The writer goes on: a valid survey still lands.
	tok := p.token(t, auth.RoleAdmin, "")
	sv := event("s1", "vn.ioc.survey.submitted", "S-1", "2024-03-01T09:00:00+07:00", map[string]any{"unit": "26740", "rating": "satisfied"})
	if code, r := p.post(t, tok, ingest.ContentBatch, batch(t, sv)); code != 202 || r.Accepted != 1 {
		t.Fatalf("%d %+v", code, r)
	}
	p.waitCount(t, 1, "SELECT count() FROM DB.surveys WHERE score = 4")
}

// TestRefusedRowGoesToDeadLetters: ClickHouse refuses one row of a batch
// for its value (here a view's throwIf); the batch is split, the other
// rows land, and the refused one goes to dead letters with the server's
// reason.
func TestRefusedRowGoesToDeadLetters(t *testing.T) {
	p := newPipelineWith(t, ingest.WriterConfig{FlushInterval: 50 * time.Millisecond, RetryMin: 10 * time.Millisecond}, false)
	ctx := context.Background()
	if err := p.db.Conn.Exec(ctx, "CREATE MATERIALIZED VIEW "+p.db.Database()+".refuse_mv ENGINE = Memory AS SELECT throwIf(subject = 'REFUSED') AS x FROM "+p.db.Database()+".survey_events"); err != nil {
		t.Fatal(err)
	}
	var evs []map[string]any
	for i := range 9 {
		evs = append(evs, event(fmt.Sprint("s", i), "vn.ioc.survey.submitted", fmt.Sprint("S-", i), "2024-03-01T09:00:00+07:00", map[string]any{"unit": "26740", "rating": "satisfied"}))
	}
	evs = append(evs[:4], append([]map[string]any{event("bad", "vn.ioc.survey.submitted", "REFUSED", "2024-03-01T09:00:00+07:00", map[string]any{"unit": "26740", "rating": "satisfied"})}, evs[4:]...)...)
	tok := p.token(t, auth.RoleAdmin, "")
	if code, r := p.post(t, tok, ingest.ContentBatch, batch(t, evs...)); code != 202 || r.Accepted != 10 {
		t.Fatalf("%d %+v", code, r)
	}
	p.startWriter()
	p.waitCount(t, 1, "SELECT count() FROM DB.dead_letters WHERE family = 'survey' AND id = 'bad' AND reason LIKE 'clickhouse refused the row:%395%throwIf%'")
	// An insert the view refused may have stored its rows in survey_events
	// before the view threw, and the retries store them again: what the
	// analysts and the KPIs read (the surveys view) counts each once.
	p.waitCount(t, 9, "SELECT count() FROM DB.surveys WHERE survey_id != 'REFUSED'")
	if n := p.count(t, "SELECT count() FROM DB.dead_letters"); n != 1 {
		t.Fatalf("%d dead letters, want 1", n)
	}
}

// TestWriterWaitsForItsConsumer: a consumer lookup that fails at the
// writer's start (here the consumer is missing until the stream is set up
// again) is retried; the family's writer, and the others, go on.
func TestWriterWaitsForItsConsumer(t *testing.T) {
	p := newPipelineWith(t, ingest.WriterConfig{FlushInterval: 50 * time.Millisecond, RetryMin: 10 * time.Millisecond}, false)
	ctx := context.Background()
	if err := p.stream.DeleteConsumer(ctx, "writer-survey"); err != nil {
		t.Fatal(err)
	}
	p.startWriter()
	tok := p.token(t, auth.RoleAdmin, "")
	sv := event("s1", "vn.ioc.survey.submitted", "S-1", "2024-03-01T09:00:00+07:00", map[string]any{"unit": "26740", "rating": "satisfied"})
	if code, r := p.post(t, tok, ingest.ContentBatch, batch(t, sv, received("d1", "D-1", "2024-03-01T09:00:00+07:00"))); code != 202 || r.Accepted != 2 {
		t.Fatalf("%d %+v", code, r)
	}
	p.waitCount(t, 1, "SELECT count() FROM DB.dossier_events WHERE subject = 'D-1'")
	time.Sleep(100 * time.Millisecond)
	if _, err := ingest.EnsureStream(ctx, p.js, ingest.StreamConfig{}); err != nil {
		t.Fatal(err)
	}
	p.waitCount(t, 1, "SELECT count() FROM DB.survey_events WHERE subject = 'S-1'")
}

func TestCommitNoticeNamesFamilyAndUnits(t *testing.T) {
	p := newPipeline(t)
	sub, err := p.nc.SubscribeSync(ingest.CommitSubjectPrefix + "dossier")
	if err != nil {
		t.Fatal(err)
	}
	tok := p.token(t, auth.RoleAdmin, "")
	if code, _ := p.post(t, tok, ingest.ContentNDJSON, append(append(mustJSON(received("n1", "D-N1", "2024-03-01T09:00:00+07:00")), '\n'),
		mustJSON(received("n2", "D-N2", "2024-03-01T09:05:00+07:00"))...)); code != 202 {
		t.Fatalf("code %d", code)
	}
	var got ingest.CommitNotice
	total := 0
	for total < 2 {
		m, err := sub.NextMsg(20 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		_ = json.Unmarshal(m.Data, &got)
		total += got.Count
		if got.Family != "dossier" || len(got.Units) != 1 || got.Units[0] != "26740" || got.Watermark.IsZero() {
			t.Fatalf("notice %+v", got)
		}
	}
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

func arrowStream(t *testing.T, n int, idPrefix string) []byte {
	t.Helper()
	mem := memory.NewGoAllocator()
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "id", Type: arrow.BinaryTypes.String}, {Name: "source", Type: arrow.BinaryTypes.String},
		{Name: "type", Type: arrow.BinaryTypes.String}, {Name: "subject", Type: arrow.BinaryTypes.String},
		{Name: "time", Type: arrow.BinaryTypes.String}, {Name: "data", Type: arrow.BinaryTypes.String},
	}, nil)
	b := array.NewRecordBuilder(mem, schema)
	defer b.Release()
	for i := 0; i < n; i++ {
		b.Field(0).(*array.StringBuilder).Append(fmt.Sprintf("%s-%d", idPrefix, i))
		b.Field(1).(*array.StringBuilder).Append("legacy/one-stop")
		b.Field(2).(*array.StringBuilder).Append("received")
		b.Field(3).(*array.StringBuilder).Append(fmt.Sprintf("HS-OLD-%d", i))
		b.Field(4).(*array.StringBuilder).Append(time.Date(2021, 1, 4, 8, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Minute).Format(time.RFC3339))
		unit := "26740"
		if i == 7 {
			unit = "nowhere" // one bad row: rejected, the rest lands
		}
		b.Field(5).(*array.StringBuilder).Append(`{"procedure_code":"TP-001","channel":"counter","unit":"` + unit + `","due_at":"2021-02-01T17:00:00+07:00"}`)
	}
	rec := b.NewRecord()
	defer rec.Release()
	var buf bytes.Buffer
	w := ipc.NewWriter(&buf, ipc.WithSchema(schema))
	if err := w.Write(rec); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestArrowBackfillLandsOnceEvenWhenSentTwice(t *testing.T) {
	p := newPipeline(t)
	body := arrowStream(t, 25_000, "old")
	post := func() ingest.ArrowResult {
		code, b := p.postArrow(t, body)
		var r ingest.ArrowResult
		if code != 202 || json.Unmarshal(b, &r) != nil {
			t.Fatalf("status %d", code)
		}
		return r
	}
	r := post()
	if r.Accepted != 24_999 || r.RejectedTotal != 1 || r.Rejected[0].Index != 7 || r.Rejected[0].Field != "data.unit" {
		t.Fatalf("first backfill: %+v", r.Result)
	}
	p.waitCount(t, 24_999, "SELECT count() FROM DB.dossiers")
	// The media type is read with its parameters and in any case.
	if code, b := p.postArrow(t, body, "Application/vnd.apache.arrow.stream; charset=binary"); code != 202 {
		t.Fatalf("with parameters: %d %s", code, b)
	}
	if code, _ := p.postArrow(t, body, "application/json"); code != 415 {
		t.Fatalf("json: %d", code)
	}
	r = post()
	if r.Duplicates != 24_999 {
		t.Fatalf("second backfill: accepted %d, duplicates %d", r.Accepted, r.Duplicates)
	}
	if n := p.count(t, "SELECT count() FROM DB.dossier_events FINAL"); n != 24_999 {
		t.Fatalf("%d events after sending twice", n)
	}
	if n := p.count(t, "SELECT count() FROM system.parts WHERE database = ? AND table = 'dossier_events' AND partition = '202101' AND active", p.db.Database()); n == 0 {
		t.Fatal("history not in its month's partition")
	}
}

// The writer inserts a quiet family's events without waiting for the
// flush interval, a backlog in one insert, while a family that has just
// inserted gathers its next events for the interval.
func TestWriterInsertsQuietFamiliesAtOnce(t *testing.T) {
	// An interval longer than waitCount waits: what lands, landed at once.
	p := newPipelineWith(t, ingest.WriterConfig{FlushInterval: 10 * time.Minute}, false)
	tok := p.token(t, auth.RoleAdmin, "")
	send := func(evs ...map[string]any) {
		t.Helper()
		if code, r := p.post(t, tok, ingest.ContentBatch, batch(t, evs...)); code != 202 || r.Accepted != len(evs) {
			t.Fatalf("%d %+v", code, r)
		}
	}
	// A backlog: three messages stored before the writer runs.
	for i := range 3 {
		send(received(fmt.Sprintf("q%d", i), fmt.Sprintf("D-Q%d", i), "2024-03-01T09:00:00+07:00"))
	}
	// The stream's own count is exact as soon as the publishes were
	// acknowledged (202).
	if n, err := ingest.Pending(context.Background(), p.stream); err != nil || n[ingest.FamilyDossier] != 3 || n[ingest.FamilySurvey] != 0 || len(n) != len(ingest.Families) {
		t.Fatalf("pending before the writer runs: %v %v, want 3 dossier messages and every family", n, err)
	}
	// The pending count a delivered message carries is the server's
	// running count, updated asynchronously as messages are stored; on a
	// busy machine the first message of a fresh backlog can say nothing is
	// left. Start reading once the consumer counts all three.
	testenv.Eventually(t, 20*time.Second, "the consumer counts the backlog", func() (bool, error) {
		c, err := p.stream.Consumer(context.Background(), "writer-"+ingest.FamilyDossier)
		if err != nil {
			return false, err
		}
		info, err := c.Info(context.Background())
		if err != nil {
			return false, err
		}
		return info.NumPending == 3, nil
	})
	p.startWriter()
	p.waitCount(t, 3, "SELECT count() FROM DB.dossier_events")
	// The writer counts an insert once it has acked its messages.
	testenv.Eventually(t, 20*time.Second, "the backlog's insert counted", func() (bool, error) {
		return inserts(t, p.m, ingest.FamilyDossier) > 0, nil
	})
	if n := inserts(t, p.m, ingest.FamilyDossier); n != 1 {
		t.Errorf("the backlog of 3 messages took %d inserts, want 1", n)
	}
	// Acked once inserted: the messages left the stream.
	testenv.Eventually(t, 20*time.Second, "the backlog gone from the stream", func() (bool, error) {
		n, err := ingest.Pending(context.Background(), p.stream)
		return err == nil && n[ingest.FamilyDossier] == 0, err
	})
	// The dossier family has just inserted: its next event waits; the
	// survey family is quiet: its event lands at once.
	send(received("q3", "D-Q3", "2024-03-01T10:00:00+07:00"))
	send(event("q4", "vn.ioc.survey.submitted", "S-Q4", "2024-03-01T10:00:00+07:00", map[string]any{"unit": "26740", "rating": "satisfied"}))
	p.waitCount(t, 1, "SELECT count() FROM DB.survey_events")
	time.Sleep(time.Second)
	if n := p.count(t, "SELECT count() FROM DB.dossier_events"); n != 3 || inserts(t, p.m, ingest.FamilyDossier) != 1 {
		t.Errorf("a dossier event read right after the family's last insert was inserted without waiting (%d rows)", n)
	}
}

// inserts is how many batches the writer has inserted for a family.
func inserts(t *testing.T, m *ingest.Metrics, family string) uint64 {
	t.Helper()
	var d dto.Metric
	if err := m.BatchSize.WithLabelValues(family).(prometheus.Histogram).Write(&d); err != nil {
		t.Fatal(err)
	}
	return d.GetHistogram().GetSampleCount()
}

// postArrow posts a dossier backfill with a token of source
// legacy/one-stop, and returns the answer's status and body; ct is the
// content type, the Arrow stream's when empty.
func (p *pipeline) postArrow(t *testing.T, body []byte, ct ...string) (int, []byte) {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle("POST /api/v1/events/arrow", p.tokens.Require(auth.RoleIngest)(http.HandlerFunc(p.intake.HandleArrow)))
	srv := httptest.NewServer(mux)
	defer srv.Close()
	req, _ := http.NewRequest("POST", srv.URL+"/api/v1/events/arrow?family=dossier", bytes.NewReader(body))
	req.Header.Set("Content-Type", append(ct, ingest.ContentArrowStream)[0])
	req.Header.Set("Authorization", "Bearer "+p.token(t, auth.RoleIngest, "legacy/one-stop"))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// failingOnce is JetStream whose n-th publication fails.
type failingOnce struct {
	jetstream.JetStream
	n, calls atomic.Int64
}

func (f *failingOnce) PublishMsgAsync(m *nats.Msg, opts ...jetstream.PublishOpt) (jetstream.PubAckFuture, error) {
	if f.calls.Add(1) == f.n.Load() {
		return nil, errors.New("injected: the stream is not writable")
	}
	return f.JetStream.PublishMsgAsync(m, opts...)
}

// A backfill one of whose chunks JetStream did not store stops there with
// 503 and the row to resume from — it was answered 202, the rows not
// stored listed after a thousand invalid ones, where no client saw them —
// and sent again it lands whole, each event once.
func TestArrowBackfillStopsAtAChunkNotStored(t *testing.T) {
	f := &failingOnce{}
	f.n.Store(5) // in the second chunk of 10,000 rows
	p := newPipelineWith(t, ingest.WriterConfig{FlushInterval: 50 * time.Millisecond}, true, func(js jetstream.JetStream) jetstream.JetStream {
		f.JetStream = js
		return f
	})
	body := arrowStream(t, 25_000, "ns")
	code, b := p.postArrow(t, body)
	var stopped struct {
		Error struct {
			Message string
			Detail  struct {
				Accepted int `json:"accepted"`
				RowsDone int `json:"rows_done"`
			}
		}
	}
	if err := json.Unmarshal(b, &stopped); code != 503 || err != nil || stopped.Error.Detail.RowsDone != 10_000 ||
		!strings.Contains(stopped.Error.Message, "from row 10000") {
		t.Fatalf("%d %s", code, b)
	}
	code, b = p.postArrow(t, body)
	var r ingest.ArrowResult
	if err := json.Unmarshal(b, &r); code != 202 || err != nil || r.Accepted+r.Duplicates != 24_999 || r.RejectedTotal != 1 {
		t.Fatalf("sent again: %d %s", code, b)
	}
	p.waitCount(t, 24_999, "SELECT count() FROM DB.dossiers")
	if n := p.count(t, "SELECT count() FROM DB.dossier_events FINAL"); n != 24_999 {
		t.Fatalf("%d events", n)
	}
}

// An event JetStream did not store is rejected as retryable, with its id
// and type, while the other events of the request land.
func TestEventNotStoredIsRetryable(t *testing.T) {
	f := &failingOnce{}
	f.n.Store(1)
	p := newPipelineWith(t, ingest.WriterConfig{FlushInterval: 50 * time.Millisecond}, true, func(js jetstream.JetStream) jetstream.JetStream {
		f.JetStream = js
		return f
	})
	tok := p.token(t, auth.RoleIngest, "hcmc/one-stop")
	survey := event("sv1", "vn.ioc.survey.submitted", "SV-1", "2024-03-01T10:00:00+07:00",
		map[string]any{"unit": "26740", "rating": "satisfied"})
	code, r := p.post(t, tok, ingest.ContentBatch, batch(t, received("nr1", "D-NR", "2024-03-01T09:00:00+07:00"), survey))
	if code != 202 || r.Accepted != 1 || len(r.Rejected) != 1 {
		t.Fatalf("%d %+v", code, r)
	}
	rj := r.Rejected[0]
	if !rj.Retryable || rj.Index != 0 || rj.ID != "nr1" || rj.Type != "vn.ioc.dossier.received" || !strings.HasPrefix(rj.Error, "not stored: ") {
		t.Fatalf("rejection %+v", rj)
	}
}
