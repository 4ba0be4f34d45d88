package sim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"time"
)

// RunConfig paces a Run. The zero value is valid: each field documents its
// default.
type RunConfig struct {
	// Rate is the most events sent per second of wall time (a token
	// bucket). Default 200.
	Rate float64
	// CatchUpRate, when above Rate, is the most events sent per second
	// while the stream is more than 10 s behind the wall clock: a
	// replay of the past (Start long ago, a high Speed) goes out at this
	// rate, then the live stream at Rate. Default 0: Rate throughout.
	CatchUpRate float64
	// BatchSize is the most events per request, and the token bucket's
	// capacity: Run never bursts beyond one batch. Default 500.
	BatchSize int
	// Duration of the run in wall time. Default 0: no limit.
	Duration time.Duration
	// MaxEvents to send. Default 0: no limit. Without Duration or
	// MaxEvents, Run goes on until ctx ends or the source runs out.
	MaxEvents int64
	// Start is the simulated time at the moment Run starts. Default: the
	// time of the source's first event.
	Start time.Time
	// Speed of the simulated clock: simulated seconds per wall second.
	// Default 1 (real time); e.g. 60 replays an hour a minute (backfills).
	Speed float64
	// Unpaced ignores the simulated clock: events go out as fast as Rate
	// allows (replaying a scenario). Default false.
	Unpaced bool
	// FlushEvery is the longest a partial batch waits. Default 1s.
	FlushEvery time.Duration
	// ProgressEvery is the interval of the progress log line. Default 10s.
	ProgressEvery time.Duration
	// CaughtUp, when set, is called once, the first time the stream is
	// within 10 s of the wall clock with every event before it answered
	// by the sender: the end of a replay of the past. Run waits for it.
	CaughtUp func(Stats)
}

func (c *RunConfig) setDefaults() {
	if c.Rate == 0 {
		c.Rate = 200
	}
	if c.BatchSize == 0 {
		c.BatchSize = 500
	}
	if c.Speed == 0 {
		c.Speed = 1
	}
	if c.FlushEvery == 0 {
		c.FlushEvery = time.Second
	}
	if c.ProgressEvery == 0 {
		c.ProgressEvery = 10 * time.Second
	}
}

// Validate names the first field that is wrong. It accepts the zero value.
func (c RunConfig) Validate() error {
	switch {
	case c.Rate < 0 || math.IsNaN(c.Rate) || math.IsInf(c.Rate, 0):
		return fmt.Errorf("Rate %v: must be a positive number of events per second", c.Rate)
	case c.CatchUpRate < 0 || math.IsNaN(c.CatchUpRate) || math.IsInf(c.CatchUpRate, 0):
		return fmt.Errorf("CatchUpRate %v: must be a positive number of events per second", c.CatchUpRate)
	case c.BatchSize < 0 || c.BatchSize > 10_000:
		return fmt.Errorf("BatchSize %d: must be between 1 and 10000 (intake's limit)", c.BatchSize)
	case c.Duration < 0:
		return fmt.Errorf("Duration %v: must not be negative", c.Duration)
	case c.MaxEvents < 0:
		return fmt.Errorf("MaxEvents %d: must not be negative", c.MaxEvents)
	case c.Speed < 0 || math.IsNaN(c.Speed) || math.IsInf(c.Speed, 0):
		return fmt.Errorf("Speed %v: must be positive", c.Speed)
	case c.FlushEvery < 0:
		return fmt.Errorf("FlushEvery %v: must not be negative", c.FlushEvery)
	case c.ProgressEvery < 0:
		return fmt.Errorf("ProgressEvery %v: must not be negative", c.ProgressEvery)
	}
	return nil
}

// catchUpLag: a stream further behind the wall clock is catching up.
const catchUpLag = 10 * time.Second

// rate is the most events per second when the stream is at the simulated
// time sim (its next event, or the last one sent) at wall time now.
func (c RunConfig) rate(sim, now time.Time) float64 {
	if c.CatchUpRate > c.Rate && sim.Before(now.Add(-catchUpLag)) {
		return c.CatchUpRate
	}
	return c.Rate
}

// Stats are the totals of a Run.
type Stats struct {
	Sent       int64 // events handed to the sender
	Accepted   int64
	Duplicates int64
	Rejected   int64
	Batches    int64
	Elapsed    time.Duration
	SimTime    time.Time // time of the last event sent
}

// EventsPerSecond is the achieved send rate.
func (s Stats) EventsPerSecond() float64 {
	if s.Elapsed <= 0 {
		return 0
	}
	return float64(s.Sent) / s.Elapsed.Seconds()
}

// Run sends the source's events in batches at a controlled rate until ctx
// ends, Duration passes, MaxEvents are sent or the source runs out, and
// returns the totals. An event goes out only once the simulated clock
// (Start + Speed × elapsed wall time) has reached its time, and never
// before the wall clock has: no event is from the future. Ending ctx is the
// normal way to stop a run and is not an error; a sender error ends the
// run and is returned with the totals so far.
func Run(ctx context.Context, rc RunConfig, src Source, snd Sender, log *slog.Logger) (Stats, error) {
	if err := rc.Validate(); err != nil {
		return Stats{}, err
	}
	rc.setDefaults()
	if src == nil || snd == nil {
		return Stats{}, errors.New("run: nil source or sender")
	}
	if log == nil {
		log = slog.Default()
	}
	var (
		st        Stats
		begin     = time.Now()
		lastFill  = begin
		lastSend  = begin
		lastLog   = begin
		logged    Stats
		tokens    float64
		held      *Event
		exhausted bool
		batch     = make([]json.RawMessage, 0, rc.BatchSize)
		capacity  = float64(rc.BatchSize)
	)
	if first, ok := src.Next(); ok {
		held = &first
		if rc.Start.IsZero() {
			rc.Start = first.Time
		}
	} else {
		exhausted = true
	}
	simNow := func(now time.Time) time.Time {
		if rc.Unpaced {
			return now
		}
		sim := rc.Start.Add(time.Duration(float64(now.Sub(begin)) * rc.Speed))
		if sim.After(now) {
			return now
		}
		return sim
	}
	send := func(ctx context.Context) error {
		a, d, r, err := snd.Send(ctx, batch)
		st.Sent += int64(len(batch))
		st.Accepted += int64(a)
		st.Duplicates += int64(d)
		st.Rejected += int64(r)
		st.Batches++
		tokens -= float64(len(batch))
		batch = batch[:0]
		lastSend = time.Now()
		return err
	}
	progress := func(now time.Time) {
		dt := now.Sub(lastLog).Seconds()
		log.Info("sim progress",
			"events_per_s", math.Round(float64(st.Sent-logged.Sent)/dt*10)/10,
			"sent", st.Sent, "accepted", st.Accepted, "duplicates", st.Duplicates, "rejected", st.Rejected,
			"sim_time", st.SimTime.Format(time.RFC3339))
		logged, lastLog = st, now
	}
	finish := func(err error) (Stats, error) {
		st.Elapsed = time.Since(begin)
		progress(time.Now())
		return st, err
	}
	for {
		now := time.Now()
		if ctx.Err() != nil {
			return finish(nil)
		}
		stop := exhausted && held == nil
		if rc.Duration > 0 && now.Sub(begin) >= rc.Duration {
			stop = true
		}
		if rc.MaxEvents > 0 && st.Sent+int64(len(batch)) >= rc.MaxEvents {
			stop = true
		}
		if stop {
			if len(batch) > 0 {
				if err := send(ctx); err != nil && ctx.Err() == nil {
					return finish(err)
				}
			}
			return finish(nil)
		}
		pos := st.SimTime // where the stream is: its next event, or its last
		if held != nil {
			pos = held.Time
		}
		if rc.CaughtUp != nil && len(batch) == 0 && !pos.IsZero() && !pos.Before(now.Add(-catchUpLag)) {
			st.Elapsed = now.Sub(begin)
			rc.CaughtUp(st)
			rc.CaughtUp = nil
		}
		rate := rc.rate(pos, now)
		tokens = min(capacity, tokens+rate*now.Sub(lastFill).Seconds())
		lastFill = now
		limit := min(rc.BatchSize, int(tokens))
		if rc.MaxEvents > 0 {
			limit = min(limit, int(rc.MaxEvents-st.Sent))
		}
		sim := simNow(now)
		for len(batch) < limit {
			if held == nil {
				ev, ok := src.Next()
				if !ok {
					exhausted = true
					break
				}
				held = &ev
			}
			if held.Time.After(sim) {
				break
			}
			batch = append(batch, held.AppendJSON(nil))
			st.SimTime = held.Time
			held = nil
		}
		if len(batch) > 0 && (len(batch) >= rc.BatchSize || (exhausted && held == nil) ||
			now.Sub(lastSend) >= rc.FlushEvery || (rc.MaxEvents > 0 && st.Sent+int64(len(batch)) >= rc.MaxEvents)) {
			if err := send(ctx); err != nil {
				if ctx.Err() != nil {
					return finish(nil)
				}
				return finish(err)
			}
			continue
		}
		if now.Sub(lastLog) >= rc.ProgressEvery {
			progress(now)
		}
		// Sleep until a batch's worth of tokens, the next event's simulated
		// time, or the flush deadline — whichever comes first.
		wait := 200 * time.Millisecond
		if tokens < capacity {
			wait = min(wait, time.Duration((capacity-tokens)/rate*float64(time.Second)))
		}
		if held != nil && held.Time.After(sim) {
			// The wall time at which the simulated clock reaches the event.
			release := held.Time
			if !rc.Unpaced {
				release = max64(release, begin.Add(time.Duration(float64(held.Time.Sub(rc.Start))/rc.Speed)))
			}
			wait = min(wait, release.Sub(now))
		}
		if len(batch) > 0 {
			wait = min(wait, rc.FlushEvery-now.Sub(lastSend))
		}
		if err := sleep(ctx, max(wait, time.Millisecond)); err != nil {
			return finish(nil)
		}
	}
}
