package sim

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Sender delivers a batch of encoded events and reports what the receiver
// did with them. err is for the batch as a whole (the receiver could not be
// reached, or refused the request); rejected counts events refused one by
// one for good.
type Sender interface {
	Send(ctx context.Context, batch []json.RawMessage) (accepted, duplicates, rejected int, err error)
}

// HTTPSender posts batches to an ioc server's intake,
// POST <URL>/api/v1/events as application/cloudevents-batch+json.
//
// Retries are safe because source+id is the idempotency key: an event
// stored by an attempt whose answer was lost comes back as a duplicate.
// The whole batch is sent again on network errors, 5xx and 429; events
// rejected as retryable (valid, but not stored) are sent again alone.
type HTTPSender struct {
	URL    string       // server base URL, e.g. http://localhost:8080
	Token  string       // bearer token of the ingest role
	Client *http.Client // default: a client with a 60s timeout
	// MaxAttempts per batch (and per round of retryable rejections).
	// Default 8.
	MaxAttempts int
	// Backoff is the first wait between attempts; it doubles up to
	// MaxBackoff. Defaults 200ms and 10s.
	Backoff, MaxBackoff time.Duration
}

var _ Sender = (*HTTPSender)(nil)

var defaultClient = &http.Client{Timeout: 60 * time.Second}

// intakeResult is the body of a 202 from POST /api/v1/events.
type intakeResult struct {
	Accepted   int `json:"accepted"`
	Duplicates int `json:"duplicates"`
	Rejected   []struct {
		Index     int    `json:"index"`
		ID        string `json:"id"`
		Error     string `json:"error"`
		Retryable bool   `json:"retryable"`
	} `json:"rejected"`
}

// StatusError is a response that retrying will not fix (e.g. 400, 401, 413).
type StatusError struct {
	Status int
	Body   string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("intake answered %d: %s", e.Status, e.Body)
}

// Send posts the batch, retrying as described on HTTPSender.
func (s *HTTPSender) Send(ctx context.Context, batch []json.RawMessage) (accepted, duplicates, rejected int, err error) {
	maxAttempts := s.MaxAttempts
	if maxAttempts <= 0 {
		maxAttempts = 8
	}
	backoff, maxBackoff := s.Backoff, s.MaxBackoff
	if backoff <= 0 {
		backoff = 200 * time.Millisecond
	}
	if maxBackoff <= 0 {
		maxBackoff = 10 * time.Second
	}
	pending := batch
	rounds := 0
	for len(pending) > 0 {
		res, err := s.post(ctx, pending, maxAttempts, backoff, maxBackoff)
		if err != nil {
			return accepted, duplicates, rejected, err
		}
		accepted += res.Accepted
		duplicates += res.Duplicates
		var again []json.RawMessage
		for _, rj := range res.Rejected {
			if rj.Retryable && rj.Index >= 0 && rj.Index < len(pending) {
				again = append(again, pending[rj.Index])
			} else {
				rejected++
			}
		}
		if len(again) > 0 {
			rounds++
			if rounds >= maxAttempts {
				return accepted, duplicates, rejected + len(again),
					fmt.Errorf("%d events still not stored after %d attempts", len(again), rounds)
			}
			if err := sleep(ctx, jittered(backoff, maxBackoff, rounds)); err != nil {
				return accepted, duplicates, rejected, err
			}
		}
		pending = again
	}
	return accepted, duplicates, rejected, nil
}

// post sends one request, retrying transient failures of the whole batch.
func (s *HTTPSender) post(ctx context.Context, batch []json.RawMessage, maxAttempts int, backoff, maxBackoff time.Duration) (*intakeResult, error) {
	body := encodeBatch(batch)
	client := s.Client
	if client == nil {
		client = defaultClient
	}
	url := strings.TrimSuffix(s.URL, "/") + "/api/v1/events"
	var lastErr error
	for attempt := 1; ; attempt++ {
		wait := jittered(backoff, maxBackoff, attempt)
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Content-Type", "application/cloudevents-batch+json")
		req.Header.Set("Accept", "application/json")
		if s.Token != "" {
			req.Header.Set("Authorization", "Bearer "+s.Token)
		}
		resp, err := client.Do(req)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			lastErr = err
		} else {
			b, rerr := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
			resp.Body.Close()
			switch {
			case rerr != nil:
				lastErr = rerr
			case resp.StatusCode == http.StatusAccepted || resp.StatusCode == http.StatusOK:
				var res intakeResult
				if err := json.Unmarshal(b, &res); err != nil {
					return nil, fmt.Errorf("decode intake answer: %w", err)
				}
				return &res, nil
			case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
				lastErr = &StatusError{resp.StatusCode, snippet(b)}
				if ra, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && ra > 0 {
					wait = min(time.Duration(ra)*time.Second, maxBackoff)
				}
			default:
				return nil, &StatusError{resp.StatusCode, snippet(b)}
			}
		}
		if attempt >= maxAttempts {
			return nil, fmt.Errorf("send batch: %d attempts: %w", attempt, lastErr)
		}
		if err := sleep(ctx, wait); err != nil {
			return nil, err
		}
	}
}

func encodeBatch(batch []json.RawMessage) []byte {
	n := 2
	for _, r := range batch {
		n += len(r) + 1
	}
	b := make([]byte, 0, n)
	b = append(b, '[')
	for i, r := range batch {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, r...)
	}
	return append(b, ']')
}

// jittered is the capped exponential backoff of an attempt, with ±25 %
// jitter so that many senders do not retry in step.
func jittered(base, max time.Duration, attempt int) time.Duration {
	d := base
	for i := 1; i < attempt && d < max; i++ {
		d *= 2
	}
	d = min(d, max)
	return time.Duration(float64(d) * (0.75 + 0.5*rand.Float64()))
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func snippet(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	if s == "" {
		s = "(empty body)"
	}
	return s
}
