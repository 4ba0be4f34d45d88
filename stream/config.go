package stream

import (
	"errors"
	"fmt"
	"net/url"
	"time"
)

// Config of the websocket hub. The zero value of each field means its default.
type Config struct {
	// MaxSubscriptions is the number of channels one connection may be
	// subscribed to at once; one more is refused with an error "limit".
	// Default 500.
	MaxSubscriptions int
	// Computed says whether a channel's values are computed on demand for
	// its subscribers (lists, series, rankings, maps: a node computes a
	// bounded number of them for all its clients); nil: none is.
	Computed func(channel string) bool
	// MaxComputed is the number of Computed channels one connection may
	// be subscribed to at once, so that one client cannot take the node's
	// whole allowance; one more is refused with "limit". Default 64.
	MaxComputed int
	// MaxMessageBytes bounds one inbound message; a larger one closes the
	// connection with 1009 (message too big). Default 4096 (an auth message
	// with a JWT fits easily; a subscribe is about 100 bytes).
	MaxMessageBytes int
	// MessageRate is the number of inbound messages per second one
	// connection may send on average; bursts of twice as many pass. A
	// message over the rate is dropped and answered "rate_limited"; a client
	// that keeps going (3 × the burst of dropped messages without pausing
	// until the budget is full again) is closed with 1008. Default 20.
	MessageRate int
	// QueueSize bounds the frames waiting to be written to one
	// connection: replies, snapshots, recovered updates, errors. One more
	// closes the connection with 1013 (slow client). The one coalesced
	// live update per channel does not count (bounded by
	// MaxSubscriptions); a client that stops reading is closed by
	// WriteTimeout. Default 256.
	QueueSize int
	// QueueBytes bounds the bytes of those frames: past it (one frame, of
	// any size, always fits) the connection is closed with 1013 as well.
	// A client resubscribing to large channels (a map, lists) without
	// reading would otherwise hold QueueSize large snapshots. Default
	// 8 MiB.
	QueueBytes int
	// WriteTimeout bounds the write of one message; a client that does not
	// take it in time is closed as slow (1013). Default 10s.
	WriteTimeout time.Duration
	// PingInterval is how often the server sends a websocket ping frame and
	// an application {"type":"ping"} message. A connection from which
	// nothing (no message, no pong) arrives for 2 × PingInterval is closed.
	// Default 25s.
	PingInterval time.Duration
	// AuthTimeout bounds the wait for the first message when the URL has no
	// token, and one call to the Authenticator. Default 10s.
	AuthTimeout time.Duration
	// SourceTimeout bounds one call to the Source when a client subscribes;
	// past it the client gets an error "unavailable". Default 5s.
	SourceTimeout time.Duration
	// AllowedOrigins lists the browser origins ("https://ioc.example.vn")
	// allowed to open a websocket. Empty (the default) allows any origin:
	// clients authenticate with a token, never with cookies, so a foreign
	// page gains nothing by connecting. Requests without an Origin header
	// (non-browser clients) are always allowed. "*" allows any origin.
	AllowedOrigins []string
}

func (c *Config) setDefaults() {
	if c.MaxSubscriptions == 0 {
		c.MaxSubscriptions = 500
	}
	if c.MaxComputed == 0 {
		c.MaxComputed = 64
	}
	if c.MaxMessageBytes == 0 {
		c.MaxMessageBytes = 4096
	}
	if c.MessageRate == 0 {
		c.MessageRate = 20
	}
	if c.QueueSize == 0 {
		c.QueueSize = 256
	}
	if c.QueueBytes == 0 {
		c.QueueBytes = 8 << 20
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = 10 * time.Second
	}
	if c.PingInterval == 0 {
		c.PingInterval = 25 * time.Second
	}
	if c.AuthTimeout == 0 {
		c.AuthTimeout = 10 * time.Second
	}
	if c.SourceTimeout == 0 {
		c.SourceTimeout = 5 * time.Second
	}
}

// Validate rejects nonsense, naming the field.
func (c Config) Validate() error {
	c.setDefaults()
	switch {
	case c.MaxSubscriptions < 0:
		return fmt.Errorf("stream: MaxSubscriptions (%d) must be positive", c.MaxSubscriptions)
	case c.MaxComputed < 0:
		return fmt.Errorf("stream: MaxComputed (%d) must be positive", c.MaxComputed)
	case c.QueueBytes < 0:
		return fmt.Errorf("stream: QueueBytes (%d) must be positive", c.QueueBytes)
	case c.MaxMessageBytes < 256 || c.MaxMessageBytes > 1<<20:
		return fmt.Errorf("stream: MaxMessageBytes (%d) must be between 256 and 1 MiB", c.MaxMessageBytes)
	case c.MessageRate < 0 || c.MessageRate > 10_000:
		return fmt.Errorf("stream: MessageRate (%d) must be between 1 and 10000 per second", c.MessageRate)
	case c.QueueSize < 4 || c.QueueSize > 1<<20:
		return fmt.Errorf("stream: QueueSize (%d) must be between 4 and 1048576", c.QueueSize)
	case c.WriteTimeout < 10*time.Millisecond:
		return fmt.Errorf("stream: WriteTimeout (%s) must be at least 10ms", c.WriteTimeout)
	case c.PingInterval < 50*time.Millisecond:
		return fmt.Errorf("stream: PingInterval (%s) must be at least 50ms", c.PingInterval)
	case c.AuthTimeout < 10*time.Millisecond:
		return fmt.Errorf("stream: AuthTimeout (%s) must be at least 10ms", c.AuthTimeout)
	case c.SourceTimeout < 10*time.Millisecond:
		return fmt.Errorf("stream: SourceTimeout (%s) must be at least 10ms", c.SourceTimeout)
	}
	for _, o := range c.AllowedOrigins {
		if err := checkOriginPattern(o); err != nil {
			return fmt.Errorf("stream: AllowedOrigins: %q: %w", o, err)
		}
	}
	return nil
}

func checkOriginPattern(o string) error {
	if o == "*" {
		return nil
	}
	u, err := url.Parse(o)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		return errors.New(`want an origin such as "https://ioc.example.vn" (scheme and host, no path) or "*"`)
	}
	return nil
}
