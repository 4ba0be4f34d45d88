package sim

import (
	"math/rand/v2"
	"strconv"
	"time"
)

// surveyData is one satisfaction survey (khảo sát hài lòng).
type surveyData struct {
	unit, officer, dossier string
	rating, channel        string
	crit                   [3]int // attitude, timeliness, guidance
	comment                string
}

// Survey rating classes, as KPIS.md groups the ratings.
const (
	satSatisfied   = iota // very_satisfied or satisfied
	satNeutral            // neutral
	satUnsatisfied        // unsatisfied or very_unsatisfied
)

var (
	surveyChannels = []string{"qr", "kiosk", "counter_device", "tablet", "online", "ai_camera"}
	surveyChanCum  = []float64{0.38, 0.52, 0.74, 0.82, 0.97, 1.0}
	goodComments   = []string{"Cán bộ hướng dẫn tận tình", "Giải quyết nhanh, đúng hẹn", "Thủ tục đơn giản, thuận tiện", "Rất hài lòng", "Nộp trực tuyến dễ dàng"}
	badComments    = []string{"Chờ đợi lâu", "Hướng dẫn chưa rõ ràng", "Phải bổ sung hồ sơ nhiều lần", "Trả kết quả trễ hẹn"}
)

// newSurveyData draws a survey of u; satShare is the chance it is satisfied.
func newSurveyData(r *rand.Rand, u *unit, satShare float64) *surveyData {
	c := satSatisfied
	if x := r.Float64(); x >= satShare {
		c = satUnsatisfied
		if x < satShare+(1-satShare)*0.4 {
			c = satNeutral
		}
	}
	return surveyOf(r, c, surveyChannels[pickCum(r, surveyChanCum)])
}

// surveyOf draws a survey of a given rating class and channel.
func surveyOf(r *rand.Rand, c int, channel string) *surveyData {
	sv := &surveyData{channel: channel}
	var lo, hi int
	switch c {
	case satSatisfied:
		sv.rating = "satisfied"
		if r.Float64() < 0.6 {
			sv.rating = "very_satisfied"
		}
		lo, hi = 4, 5
	case satNeutral:
		sv.rating = "neutral"
		lo, hi = 3, 4
	default:
		sv.rating = "unsatisfied"
		if r.Float64() < 0.3 {
			sv.rating = "very_unsatisfied"
		}
		lo, hi = 1, 3
	}
	for i := range sv.crit {
		sv.crit[i] = lo + r.IntN(hi-lo+1)
	}
	if r.Float64() < 0.08 {
		if c == satSatisfied {
			sv.comment = pick(r, goodComments)
		} else {
			sv.comment = pick(r, badComments)
		}
	}
	return sv
}

func (e *engine) surveyEvent(sv *surveyData, at time.Time) Event {
	e.surveys++
	o := e.data()
	o.str("unit", sv.unit)
	o.str("rating", sv.rating)
	o.str("channel", sv.channel)
	if sv.officer != "" {
		o.str("officer", sv.officer)
	}
	if sv.dossier != "" {
		o.str("dossier", sv.dossier)
	}
	c := o.sub("criteria")
	c.int("attitude", int64(sv.crit[0]))
	c.int("timeliness", int64(sv.crit[1]))
	c.int("guidance", int64(sv.crit[2]))
	o.endSub(c)
	if sv.comment != "" {
		o.str("comment", sv.comment)
	}
	id := "KS-" + e.tag + "-" + strconv.FormatUint(e.surveys, 10)
	return e.event(e.src.survey, typeSurveySubmitted, id, at, e.done(o))
}
