package kpi

import (
	"encoding/json"
	"math/rand/v2"
	"testing"
	"time"
)

// lastSeq reads the sequence of every value as the engine encodes it, and
// refuses anything else (the watchers then decode the whole value).
func TestLastSeq(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	at := time.Date(2026, 11, 24, 9, 0, 0, 0, time.FixedZone("ICT", 7*3600))
	for i := 0; i < 2000; i++ {
		v := Value{Key: Key{KPI: "dossier.on_time_rate", Unit: "26740", Window: "today"},
			Numerator: r.Int64N(1e9), Denominator: r.Int64N(1e9), At: at, Version: r.IntN(9) + 1}
		switch i % 4 {
		case 0:
			v.Seq = r.Uint64()
		case 1:
			v.Seq = uint64(i)
		case 2:
			v.Seq = 0
		}
		if i%3 == 0 {
			x := r.Float64() * 1e6
			v.Value = &x
			v.From, v.To = at.Add(-time.Hour), at
		}
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if seq, ok := lastSeq(b); !ok || seq != v.Seq {
			t.Fatalf("%s: seq %d, ok %v; want %d", b, seq, ok, v.Seq)
		}
	}
	for _, s := range []string{
		``, `{}`, `{"seq":1}`, `{"a":1,"seq":}`, `{"a":1,"seq":12 }`, `{"a":1,"seq":"12"}`,
		`{"a":1,"xseq":12}`, `{"a":1,"seq":-12}`, `{"a":1,"seq":99999999999999999999999}`, `{"seq":1,"a":2}`,
	} {
		if seq, ok := lastSeq([]byte(s)); ok {
			t.Errorf("%q: seq %d read, want refused", s, seq)
		}
	}
}
