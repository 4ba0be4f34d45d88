package stream

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestRPC(t *testing.T) {
	th := newTestHub(t, Config{SourceTimeout: 300 * time.Millisecond})
	c := th.dialWelcome(t)

	c.send(`{"type":"rpc","id":"1","method":"echo","data":{"alert":"a1","note":"on it"}}`)
	m := c.expect("rpc")
	var got map[string]string
	if m.ID != "1" || json.Unmarshal(m.Data, &got) != nil || got["alert"] != "a1" || got["note"] != "on it" {
		t.Fatalf("echo: %s", m.raw)
	}

	for _, tc := range []struct{ msg, code, text string }{
		{`{"type":"rpc","id":"2","method":"refuse"}`, "conflict", "already done"},
		{`{"type":"rpc","id":"3","method":"nope"}`, "not_found", "no method nope"},
		{`{"type":"rpc","id":"4","method":"broken"}`, "unavailable", "invalid JSON"},
		{`{"type":"rpc","id":"5","method":"slow"}`, "unavailable", "too slow"},
		{`{"type":"rpc","id":"6"}`, "bad_request", "method is missing"},
		{`{"type":"rpc","id":"7","method":"echo","channel":"x"}`, "bad_request", "channel: not in a rpc message"},
		{`{"type":"subscribe","id":"8","channel":"x","data":1}`, "bad_request", "data: only in an rpc message"},
		{`{"type":"rpc","id":"9","method":3}`, "bad_request", "method: want a string"},
	} {
		c.send(tc.msg)
		m := c.expect("error")
		if m.Code != tc.code || !strings.Contains(m.Message, tc.text) || m.ID == "" {
			t.Errorf("%s: got %s, want code %s with %q", tc.msg, m.raw, tc.code, tc.text)
		}
	}
}

func TestRPCLimit(t *testing.T) {
	// The slow calls must still run when the last one is read.
	th := newTestHub(t, Config{SourceTimeout: 30 * time.Second})
	c := th.dialWelcome(t)
	for i := range MaxRPCs + 1 {
		c.send(map[string]string{"type": "rpc", "id": string(rune('a' + i)), "method": "slow"})
	}
	m := c.expect("error")
	if m.Code != "limit" || m.ID != string(rune('a'+MaxRPCs)) {
		t.Fatalf("call %d of %d at once: got %s, want a limit error", MaxRPCs+1, MaxRPCs+1, m.raw)
	}
}
