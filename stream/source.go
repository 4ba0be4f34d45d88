package stream

import (
	"context"
	"encoding/json"
)

// Update is one published value of a channel.
type Update struct {
	Channel string          `json:"channel"` // e.g. "kpi:dossier.received:79:today"
	Seq     uint64          `json:"seq"`     // per channel, contiguous from 1
	Data    json.RawMessage `json:"data"`    // the value payload, opaque to the hub
}

// Source is what the hub needs from whoever stores the latest values of the
// channels (implemented elsewhere over a NATS KV bucket). It must be safe
// for concurrent use.
type Source interface {
	// Latest returns the latest update of a channel; ok=false when none
	// exists yet.
	Latest(ctx context.Context, channel string) (u Update, ok bool, err error)
	// Since returns the updates of a channel with Seq > seq, in order, and
	// complete=true when every one of them is still known (no gap from
	// seq+1 to the latest); complete=false otherwise.
	Since(ctx context.Context, channel string, seq uint64) (ups []Update, complete bool, err error)
}

// SourceFullError is what a Source returns (or wraps) when it cannot take
// one more channel (it computes a bounded number of them): the client gets
// "limit" with Reason, rather than "unavailable".
type SourceFullError struct{ Reason string }

func (e *SourceFullError) Error() string { return e.Reason }

// KPIChannel names the channel of one KPI of one unit over one window:
// "kpi:" + kpi + ":" + unit + ":" + window, as a client's subscribe
// {"key": {"kpi", "unit", "window"}} means.
func KPIChannel(kpi, unit, window string) string {
	return "kpi:" + kpi + ":" + unit + ":" + window
}
