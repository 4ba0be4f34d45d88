package sim

import (
	"math"
	"math/rand/v2"
	"time"

	"github.com/vn-ioc/ioc/ingest/refdata"
)

// camState is the simulated state of one camera, shared by its heartbeat
// and its detector.
type camState struct {
	cam        *refdata.Camera
	online     bool
	flappy     bool    // a bad link: goes up and down every few minutes
	busy       float64 // traffic of its road relative to an average road
	floodProne bool    // a low street that floods in heavy rain
	floodUntil time.Time
	floodLevel int64
}

func newCamState(r *rand.Rand, c *refdata.Camera) *camState {
	return &camState{
		cam:        c,
		online:     r.Float64() >= 0.025,
		flappy:     r.Float64() < 0.01,
		busy:       0.5 + 1.2*r.Float64(),
		floodProne: r.Float64() < 0.2,
	}
}

// camHeartbeat emits the camera's status every period.
type camHeartbeat struct {
	s     *camState
	every time.Duration
}

func (h *camHeartbeat) act(e *engine, now time.Time) (Event, bool, time.Time, bool) {
	s, r := h.s, e.rng
	switch {
	case s.flappy:
		if r.Float64() < 0.3 {
			s.online = !s.online
		}
	case s.online:
		// Outages start about once a day per camera and last ~45 minutes:
		// a few percent of the cameras are offline at any time.
		if r.Float64() < 0.0006 {
			s.online = false
		}
	default:
		if r.Float64() < 1.0/45 {
			s.online = true
		}
	}
	o := e.data()
	o.bool("online", s.online)
	ev := e.event(e.src.camera, typeCameraStatus, s.cam.ID, now, e.done(o))
	return ev, true, now.Add(h.every), true
}

// camDetector emits the camera's analytics every few seconds.
type camDetector struct {
	s     *camState
	every time.Duration
}

// traffic is the road traffic at local time t relative to the peak: rush
// hours 7–9 and 16–19, quiet nights, lighter weekends.
func traffic(t time.Time, workday bool) float64 {
	h := float64(t.Hour()) + float64(t.Minute())/60
	var f float64
	switch {
	case h < 5:
		f = 0.08
	case h < 7:
		f = 0.08 + 0.6*(h-5)/2
	case h < 9:
		f = 1.0
	case h < 16:
		f = 0.6
	case h < 19:
		f = 1.0
	case h < 22:
		f = 0.55
	default:
		f = 0.25
	}
	if !workday {
		f = 0.2 + 0.6*f
	}
	return f
}

func (d *camDetector) act(e *engine, now time.Time) (Event, bool, time.Time, bool) {
	s, r := d.s, e.rng
	jitter := time.Duration((0.8 + 0.4*r.Float64()) * float64(d.every)).Truncate(time.Second)
	next := now.Add(max(jitter, time.Second))
	if !s.online {
		return Event{}, false, next, true
	}
	window := int64(max(d.every/time.Second, 1))
	lt := now.In(ict)
	dens := traffic(lt, e.cal.IsWorkingDay(lt)) * s.busy
	hour := lt.Hour()
	rainy := lt.Month() >= time.May && lt.Month() <= time.November
	if rainy && hour >= 14 && hour < 21 && now.After(s.floodUntil) {
		p := 3e-6
		if s.floodProne {
			p = 3e-5
		}
		if r.Float64() < p*float64(window)/5 {
			s.floodUntil = now.Add(minutes(r, 20, 120))
			s.floodLevel = 1 + r.Int64N(4)
		}
	}
	o := e.data()
	x := r.Float64()
	switch {
	case now.Before(s.floodUntil) && x < 0.5:
		o.str("kind", "flooding")
		o.int("level", s.floodLevel)
	case x < 5e-7:
		o.str("kind", "fire_smoke")
		o.num("confidence", 0.5+0.4*r.Float64(), 2)
		o.int("window_s", window)
		return e.event(e.src.camera, typeCameraDetection, s.cam.ID, now, e.done(o)), true, next, true
	case x < 5.5e-6:
		o.str("kind", "accident")
		o.num("confidence", 0.5+0.4*r.Float64(), 2)
		o.int("window_s", window)
		return e.event(e.src.camera, typeCameraDetection, s.cam.ID, now, e.done(o)), true, next, true
	case x < 0.02:
		o.str("kind", "illegal_parking")
		c := o.sub("counts")
		c.int("car", 1+r.Int64N(3))
		c.int("motorcycle", r.Int64N(6))
		o.endSub(c)
	case x < 0.02+0.006*(1+3*b2f(hour >= 18 && hour < 23)):
		o.str("kind", "crowd")
		c := o.sub("counts")
		c.int("person", 20+int64(poisson(r, 60*dens)))
		o.endSub(c)
	case x < 0.18:
		o.str("kind", "congestion")
		o.int("level", congestion(r, dens))
	default:
		o.str("kind", "vehicle_count")
		w := float64(window) / 5 * dens
		c := o.sub("counts")
		c.int("motorcycle", int64(poisson(r, 11*w)))
		c.int("car", int64(poisson(r, 1.4*w)))
		c.int("bus", int64(poisson(r, 0.08*w)))
		c.int("truck", int64(poisson(r, 0.14*w)))
		c.int("bicycle", int64(poisson(r, 0.3*w)))
		c.int("person", int64(poisson(r, 0.4*w)))
		o.endSub(c)
		o.int("level", congestion(r, dens))
	}
	o.num("confidence", 0.6+0.39*r.Float64(), 2)
	o.int("window_s", window)
	return e.event(e.src.camera, typeCameraDetection, s.cam.ID, now, e.done(o)), true, next, true
}

// congestion level 0–4 from traffic density, with noise.
func congestion(r *rand.Rand, dens float64) int64 {
	l := math.Floor(dens*3.2 + 1.6*r.Float64() - 0.8)
	return int64(max(0, min(4, l)))
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// poisson draws a Poisson variate (normal approximation above 30).
func poisson(r *rand.Rand, lambda float64) int {
	if lambda <= 0 {
		return 0
	}
	if lambda > 30 {
		return max(0, int(math.Round(lambda+math.Sqrt(lambda)*r.NormFloat64())))
	}
	l, k, p := math.Exp(-lambda), 0, 1.0
	for {
		p *= r.Float64()
		if p <= l {
			return k
		}
		k++
	}
}
