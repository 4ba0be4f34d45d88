package sim

import (
	"encoding/json"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/vn-ioc/ioc/internal/worktime"
)

// Event is one simulated CloudEvent (CloudEvents 1.0, structured JSON mode).
type Event struct {
	ID      string          // unique per source, deterministic for a seed and configuration
	Source  string          // e.g. "hcmc/one-stop"
	Type    string          // vn.ioc.<family>.<transition>
	Subject string          // the entity id: dossier code, ticket id, camera id…
	Time    time.Time       // when it happened; written with the +07:00 offset
	Data    json.RawMessage // the type's data, as the contract's schema fixes it

	// Flaw is empty for a valid event; "duplicate" for an exact resend of an
	// earlier event (same source and id), or "invalid: <what>" for an event
	// broken on purpose (Config.InvalidShare). It is not part of the JSON.
	Flaw string

	raw []byte // the whole encoded event, when it was crafted byte by byte
}

// AppendJSON appends the event in CloudEvents structured JSON mode.
func (e *Event) AppendJSON(b []byte) []byte {
	if e.raw != nil {
		return append(b, e.raw...)
	}
	o := beginObj(b)
	o.str("specversion", "1.0")
	o.str("id", e.ID)
	o.str("source", e.Source)
	o.str("type", e.Type)
	o.str("subject", e.Subject)
	o.time("time", e.Time)
	o.str("datacontenttype", "application/json")
	o.raw("data", e.Data)
	return o.end()
}

// MarshalJSON encodes the event in CloudEvents structured JSON mode.
func (e Event) MarshalJSON() ([]byte, error) { return e.AppendJSON(nil), nil }

// Source is a stream of events in nondecreasing time order: a Generator or
// a scenario's Player. Next reports false when the stream has ended.
type Source interface {
	Next() (Event, bool)
}

// Event types.
const (
	typeDossierReceived      = "vn.ioc.dossier.received"
	typeDossierAssigned      = "vn.ioc.dossier.assigned"
	typeDossierSuppRequested = "vn.ioc.dossier.supplement_requested"
	typeDossierSuppReceived  = "vn.ioc.dossier.supplement_received"
	typeDossierDueChanged    = "vn.ioc.dossier.due_changed"
	typeDossierResolved      = "vn.ioc.dossier.resolved"
	typeDossierReturned      = "vn.ioc.dossier.returned"
	typeDossierWithdrawn     = "vn.ioc.dossier.withdrawn"
	typeDossierApology       = "vn.ioc.dossier.apology_issued"
	typeDossierSynced        = "vn.ioc.dossier.synced"
	typeDossierDigitized     = "vn.ioc.dossier.digitized"
	typeDossierPaid          = "vn.ioc.dossier.paid"
	typeFeedbackReceived     = "vn.ioc.feedback.received"
	typeFeedbackAssigned     = "vn.ioc.feedback.assigned"
	typeFeedbackResolved     = "vn.ioc.feedback.resolved"
	typeFeedbackClosed       = "vn.ioc.feedback.closed"
	typeFeedbackRated        = "vn.ioc.feedback.rated"
	typeCameraStatus         = "vn.ioc.camera.status"
	typeCameraDetection      = "vn.ioc.camera.detection"
	typeSurveySubmitted      = "vn.ioc.survey.submitted"
	typeIndicatorReported    = "vn.ioc.indicator.reported"
)

// sources are the CloudEvents sources of the city's systems.
type sources struct {
	dossier, feedback, camera, survey, indicator string
}

func newSources(prefix string) sources {
	return sources{
		dossier:   prefix + "/one-stop",
		feedback:  prefix + "/1022",
		camera:    prefix + "/cameras",
		survey:    prefix + "/surveys",
		indicator: prefix + "/reports",
	}
}

// engine runs actors in simulated-time order and numbers their events; the
// Generator and the scenario Player are engines with different actors.
type engine struct {
	q       queue
	ord     uint64
	seq     uint64 // events emitted, for ids
	tag     string // run tag: ids and entity codes of different seeds never collide
	src     sources
	city    *city
	cal     *worktime.Calendar
	pending int        // entity actors in the queue
	rng     *rand.Rand // the live generator's random source
	buf     []byte

	dossiers, tickets, surveys uint64 // entity counters, for codes
}

func (e *engine) schedule(at time.Time, a actor, ent bool) {
	e.ord++
	if ent {
		e.pending++
	}
	e.q.push(item{at: at.UnixNano(), ord: e.ord, a: a, ent: ent})
}

// next runs actors until one emits an event.
func (e *engine) next() (Event, bool) {
	for len(e.q) > 0 {
		it := e.q.pop()
		now := time.Unix(0, it.at).In(ict)
		ev, emit, next, more := it.a.act(e, now)
		if more {
			e.ord++
			it.at, it.ord = max(next.UnixNano(), it.at), e.ord
			e.q.push(it)
		} else if it.ent {
			e.pending--
		}
		if emit {
			return ev, true
		}
	}
	return Event{}, false
}

// event builds an event with the next id; data is copied out of the
// engine's scratch buffer.
func (e *engine) event(source, typ, subject string, t time.Time, data []byte) Event {
	e.seq++
	return Event{
		ID:      e.tag + "-" + strconv.FormatUint(e.seq, 10),
		Source:  source,
		Type:    typ,
		Subject: subject,
		Time:    t,
		Data:    append(json.RawMessage(nil), data...),
	}
}

// data starts a data object in the engine's scratch buffer.
func (e *engine) data() obj { return beginObj(e.buf[:0]) }

// done keeps the scratch buffer for the next event.
func (e *engine) done(o obj) []byte {
	b := o.end()
	e.buf = b
	return b
}

// runTag is a short base-36 tag derived from the inputs.
func runTag(parts ...uint64) string {
	h := uint64(0x9e3779b97f4a7c15)
	for _, p := range parts {
		h = mix64(h ^ p)
	}
	s := strconv.FormatUint(h%(36*36*36*36*36*36), 36)
	for len(s) < 6 {
		s = "0" + s
	}
	return s
}
