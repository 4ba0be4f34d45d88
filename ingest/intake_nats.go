package ingest

import (
	"bytes"
	"context"
	"encoding/json"
	"strconv"
	"sync"

	"github.com/nats-io/nats.go"

	"github.com/vn-ioc/ioc/internal/api"
	"github.com/vn-ioc/ioc/internal/auth"
)

// ServeNATS answers intake requests on IngestSubject (queue group
// "ioc-intake", so every node shares the load) until ctx ends. A request
// carries the same body as POST /api/v1/events, with headers
// "Authorization: Bearer <token>" and "Content-Type"; the reply is the same
// JSON: {accepted, duplicates, rejected} or {"error": {code, message}}.
// A single event may also carry Nats-Msg-Id, which must equal source/id.
//
// Requests are served concurrently, up to natsConcurrency at once (as HTTP
// requests are): a request waiting for JetStream to store its events does
// not hold up the next one. When ctx ends, ServeNATS waits for the requests
// in hand to be answered, as they would have been; requests still pending
// are answered one by one while the subscription drains.
func (in *Intake) ServeNATS(ctx context.Context, nc *nats.Conn, tokens *auth.Issuer) error {
	// A request taken is served to its end (bounded by the publish
	// timeout), whether or not ctx ends meanwhile: its events may be
	// stored already, and its sender is to be told so.
	reqCtx := context.WithoutCancel(ctx)
	serve := func(m *nats.Msg) {
		reply := in.serveNATSMsg(reqCtx, m, tokens)
		if m.Reply != "" {
			_ = m.Respond(reply)
		}
	}
	slots := make(chan struct{}, natsConcurrency)
	var (
		mu       sync.Mutex
		stopping bool
		inHand   sync.WaitGroup
	)
	sub, err := nc.QueueSubscribe(IngestSubject, "ioc-intake", func(m *nats.Msg) {
		mu.Lock()
		if stopping {
			mu.Unlock()
			serve(m)
			return
		}
		inHand.Add(1)
		mu.Unlock()
		slots <- struct{}{}
		go func() {
			defer func() {
				<-slots
				inHand.Done()
			}()
			serve(m)
		}()
	})
	if err != nil {
		return err
	}
	<-ctx.Done()
	err = sub.Drain()
	mu.Lock()
	stopping = true
	mu.Unlock()
	inHand.Wait()
	return err
}

// natsConcurrency bounds the NATS intake requests served at once.
const natsConcurrency = 16

func (in *Intake) serveNATSMsg(ctx context.Context, m *nats.Msg, tokens *auth.Issuer) []byte {
	code := 0
	defer func() { in.m.Requests.WithLabelValues("nats", strconv.Itoa(code)).Inc() }()
	tok := auth.BearerToken(m.Header.Get("Authorization"))
	if tok == "" {
		code = 401
		return marshalError(api.Errorf(api.EUNAUTHORIZED, "missing header Authorization: Bearer <token>"))
	}
	c, err := tokens.Verify(tok)
	if err != nil {
		code = 401
		return marshalError(api.Errorf(api.EUNAUTHORIZED, err.Error()))
	}
	if c.Role != auth.RoleIngest && c.Role != auth.RoleAdmin {
		code = 403
		return marshalError(api.Errorf(api.EFORBIDDEN, "role "+c.Role+" may not send events"))
	}
	bound := ""
	if c.Role == auth.RoleIngest {
		bound = c.Source
	}
	if id := m.Header.Get(nats.MsgIdHdr); id != "" {
		var head struct{ Source, ID string }
		if json.Unmarshal(bytes.TrimSpace(m.Data), &head) != nil || head.Source+"/"+head.ID != id {
			code = 400
			return marshalError(api.Errorf(api.EINVALID, "Nats-Msg-Id must be source/id of the single event it carries"))
		}
	}
	res, status, err := in.handleData(ctx, m.Header.Get("Content-Type"), m.Data, bound)
	code = status
	if err != nil {
		return marshalError(err)
	}
	b, _ := json.Marshal(res)
	return b
}
