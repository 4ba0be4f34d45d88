package stream

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestParseClientMsg(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		code     string // "" for a valid message
		msg      string // expected in the error, or the resolved channel
	}{
		{"subscribe", `{"type":"subscribe","id":"r1","channel":"kpi:a:79:today","since":12}`, "", "kpi:a:79:today"},
		{"subscribe by key", `{"type":"subscribe","id":"r1","key":{"kpi":"dossier.received","unit":"79","window":"today"}}`, "", "kpi:dossier.received:79:today"},
		{"unsubscribe", ` {"type":"unsubscribe","channel":"c"} `, "", "c"},
		{"ping", `{"type":"ping","id":"p1"}`, "", ""},
		{"pong", `{"type":"pong"}`, "", ""},
		{"auth", `{"type":"auth","token":"t"}`, "", ""},
		{"empty", ``, codeBadRequest, "empty message"},
		{"not JSON", `hello`, codeBadRequest, "not valid JSON: invalid character 'h'"},
		{"cut", `{"type":"ping"`, codeBadRequest, "not valid JSON"},
		{"array", `[1]`, codeBadRequest, "want a JSON object, got array"},
		{"two objects", `{"type":"ping"}{"type":"ping"}`, codeBadRequest, "one JSON object per message"},
		{"no type", `{"id":"x"}`, codeBadRequest, "type is missing"},
		{"unknown type", `{"type":"sub"}`, codeBadRequest, `unknown message type "sub"`},
		{"unknown field", `{"type":"ping","foo":1}`, codeBadRequest, `unknown field "foo"`},
		{"id not a string", `{"type":"ping","id":7}`, codeBadRequest, "id: want a string, got number"},
		{"since negative", `{"type":"subscribe","channel":"c","since":-1}`, codeBadRequest, "since: want a non-negative integer"},
		{"since text", `{"type":"subscribe","channel":"c","since":"12"}`, codeBadRequest, "since: want a non-negative integer, got string"},
		{"key not object", `{"type":"subscribe","key":"k"}`, codeBadRequest, "key: want an object"},
		{"no channel", `{"type":"subscribe","id":"r"}`, codeBadRequest, "channel (or key) is missing"},
		{"both", `{"type":"subscribe","channel":"c","key":{"kpi":"a","unit":"1","window":"w"}}`, codeBadRequest, "channel or key, not both"},
		{"key without unit", `{"type":"subscribe","key":{"kpi":"a","window":"w"}}`, codeBadRequest, "key.unit is missing"},
		{"key with colon", `{"type":"subscribe","key":{"kpi":"a:b","unit":"1","window":"w"}}`, codeBadRequest, "key.kpi: must not contain ':'"},
		{"channel with space", `{"type":"subscribe","channel":"a b"}`, codeBadRequest, "channel: no spaces"},
		{"channel too long", `{"type":"subscribe","channel":"` + strings.Repeat("c", 257) + `"}`, codeBadRequest, "channel: longer than 256 bytes"},
		{"since on unsubscribe", `{"type":"unsubscribe","channel":"c","since":1}`, codeBadRequest, "since: only in a subscribe message"},
		{"channel on ping", `{"type":"ping","channel":"c"}`, codeBadRequest, "channel: not in a ping message"},
		{"token on subscribe", `{"type":"subscribe","channel":"c","token":"t"}`, codeBadRequest, "token: only in an auth message"},
		{"auth without token", `{"type":"auth"}`, codeUnauthorized, "token is missing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := parseClientMsg([]byte(tc.in))
			if tc.code == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if m.Channel != tc.msg {
					t.Fatalf("channel %q, want %q", m.Channel, tc.msg)
				}
				return
			}
			if err == nil || err.code != tc.code || !strings.Contains(err.msg, tc.msg) {
				t.Fatalf("want %s %q, got %v", tc.code, tc.msg, err)
			}
		})
	}
}

// TestServerMessages pins the wire format of every server message.
func TestServerMessages(t *testing.T) {
	cfg := Config{}
	cfg.setDefaults()
	for _, tc := range []struct {
		got  []byte
		want string
	}{
		{appendWelcome(nil, "leader:760", &cfg), `{"type":"welcome","session":"leader:760","heartbeat_s":25,"limits":{"subscriptions":500,"computed":64,"message_bytes":4096,"messages_per_s":20,"queue":256,"queue_bytes":8388608}}`},
		{appendSubscribed(nil, "r1", "kpi:a:79:today", true), `{"type":"subscribed","id":"r1","channel":"kpi:a:79:today","recovered":true}`},
		{appendSubscribed(nil, "", "c", false), `{"type":"subscribed","channel":"c","recovered":false}`},
		{appendUnsubscribed(nil, "r2", "c"), `{"type":"unsubscribed","id":"r2","channel":"c"}`},
		{encodeSnapshot("c", &Update{Seq: 12, Data: []byte(`{"value":3.5}`)}), `{"type":"snapshot","channel":"c","seq":12,"data":{"value":3.5}}`},
		{encodeSnapshot("c", nil), `{"type":"snapshot","channel":"c","seq":0,"data":null}`},
		{encodeUpdate(&Update{Channel: `k"<`, Seq: 13, Data: []byte(`[1,2]`)}), `{"type":"update","channel":"k\"\u003c","seq":13,"data":[1,2]}`},
		{appendError(nil, "r1", codeLimit, "subscription limit 500 reached"), `{"type":"error","id":"r1","code":"limit","message":"subscription limit 500 reached"}`},
		{appendPong(nil, "p1"), `{"type":"pong","id":"p1"}`},
		{appendPong(nil, ""), `{"type":"pong"}`},
		{pingFrame, `{"type":"ping"}`},
		{append(encodeUpdate(&Update{Channel: "c", Seq: 2, Data: []byte("1")})[:len(`{"type":"update","channel":"c","seq":2,"data":1}`)-1], coalescedTail...), `{"type":"update","channel":"c","seq":2,"data":1,"coalesced":true}`},
	} {
		if string(tc.got) != tc.want {
			t.Errorf("got  %s\nwant %s", tc.got, tc.want)
		}
		if !json.Valid(tc.got) {
			t.Errorf("not JSON: %s", tc.got)
		}
	}
	cfg.PingInterval = 1500 * time.Millisecond
	if got := string(appendWelcome(nil, "s", &cfg)); !strings.Contains(got, `"heartbeat_s":1.5,`) {
		t.Errorf("welcome: %s", got)
	}
}

func FuzzParseClientMsg(f *testing.F) {
	for _, s := range []string{
		`{"type":"subscribe","id":"r1","channel":"kpi:a:79:today","since":12}`,
		`{"type":"subscribe","key":{"kpi":"a","unit":"1","window":"w"}}`,
		`{"type":"auth","token":"x"}`, `{"type":"ping","id":"p"}`, `[]`, `{"since":1e99}`, "\x00",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := parseClientMsg(b)
		if err != nil {
			if err.code == "" || err.msg == "" {
				t.Fatalf("error without code or message: %#v", err)
			}
			// Whatever was refused, the answer is valid JSON.
			if !json.Valid(appendError(nil, m.ID, err.code, err.msg)) {
				t.Fatalf("error reply is not JSON for %q", b)
			}
			return
		}
		if (m.Type == msgSubscribe || m.Type == msgUnsubscribe) && (m.Channel == "" || checkChannel(m.Channel) != nil) {
			t.Fatalf("accepted channel %q", m.Channel)
		}
		if !json.Valid(appendSubscribed(nil, m.ID, m.Channel, true)) {
			t.Fatalf("reply is not JSON for %q", b)
		}
	})
}
