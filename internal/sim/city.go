package sim

import (
	"cmp"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/vn-ioc/ioc/ingest/refdata"
)

// ict is Asia/Ho_Chi_Minh: UTC+7 without daylight saving since 1975, so a
// fixed zone gives the same local dates and clock times on any system, with
// or without a time zone database.
var ict = time.FixedZone("ICT", 7*3600)

// unit is an org unit with the traits the simulation gives it.
type unit struct {
	*refdata.Unit
	officers []string // officer ids (synthetic ones when the unit has none)
	procs    *procTable
	weight   float64 // share of the city's dossiers and tickets

	onlineShare float64 // share of dossiers filed online (60–95 %)
	overdue     float64 // probability that a dossier resolves late (lateness factor)
	onTime      float64 // probability that a dossier resolves on its due day
	lateScale   float64 // how late, in working hours, its late dossiers are
	satisfied   float64 // share of satisfied surveys (97–99.8 %)
	ticketLate  float64 // probability that a feedback ticket resolves late
}

// procedure is a procedure with its position in the popularity ranking.
type procedure struct {
	*refdata.Procedure
	online bool // may be filed online (full or partial online service)
}

// procTable picks procedures by popularity (a Zipf-like law: a few
// procedures, e.g. certified copies and civil status, carry most dossiers).
type procTable struct {
	all        []*procedure
	cum        []float64
	online     []*procedure
	onlineCum  []float64
	shortest   *procedure // shortest whole-day deadline of at least 2 days
	hasOnline  bool
	hasOffline bool
}

func newProcTable(ps []*procedure) *procTable {
	t := &procTable{all: ps}
	var sum, osum float64
	for i, p := range ps {
		w := 1 / math.Pow(float64(i+1), 0.9)
		sum += w
		t.cum = append(t.cum, sum)
		if p.online {
			osum += w
			t.online = append(t.online, p)
			t.onlineCum = append(t.onlineCum, osum)
			t.hasOnline = true
		} else {
			t.hasOffline = true
		}
		if p.DeadlineHours == 0 && p.DeadlineDays >= 2 && (t.shortest == nil || p.DeadlineDays < t.shortest.DeadlineDays) {
			t.shortest = p
		}
	}
	return t
}

// pick draws a procedure; online restricts it to procedures that can be
// filed online (when there are any).
func (t *procTable) pick(r *rand.Rand, online bool) *procedure {
	if online && t.hasOnline {
		return t.online[pickCum(r, t.onlineCum)]
	}
	return t.all[pickCum(r, t.cum)]
}

func pickCum(r *rand.Rand, cum []float64) int {
	x := r.Float64() * cum[len(cum)-1]
	i, _ := slices.BinarySearch(cum, x)
	return min(i, len(cum)-1)
}

// procDepartments maps a procedure code prefix to the HCMC departments
// that handle it (procedures.csv names fields, not departments).
var procDepartments = map[string][]string{
	"TP": {"SO-TP"}, "XD": {"SO-XD", "SO-QHKT"}, "DD": {"SO-NNMT"}, "MT": {"SO-NNMT"},
	"KD": {"SO-TC"}, "CT": {"SO-CT"}, "YT": {"SO-YT"}, "GD": {"SO-GDDT"}, "NV": {"SO-NV"},
	"CA": {"CA-TP"}, "DL": {"SO-DL"}, "VH": {"SO-VHTT"},
}

// city is the reference data prepared for simulation.
type city struct {
	set      *refdata.Set
	byCode   map[string]*unit
	units    []*unit // every unit, in reference data order
	current  []*unit // 2025 wards, communes, special zones and departments
	curCum   []float64
	wards    []*unit // 2025 wards, communes and special zones
	wardCum  []float64
	depts    []*unit
	children map[string][]*unit
	cameras  []refdata.Camera
	wardP    *procTable
	deptP    *procTable
}

// isCurrentWard reports whether kind is a 2025 ward-level unit.
func isCurrentWard(kind string) bool {
	return kind == refdata.KindWard || kind == refdata.KindCommune || kind == refdata.KindSpecialZone
}

// newCity prepares the reference data; seed fixes the units' traits.
func newCity(set *refdata.Set, seed uint64) (*city, error) {
	if set == nil {
		return nil, errors.New("reference data: nil set")
	}
	c := &city{set: set, byCode: make(map[string]*unit, len(set.Units)), children: map[string][]*unit{}}
	var wardProcs, deptProcs []*procedure
	for i := range set.Procedures {
		p := &set.Procedures[i]
		pp := &procedure{Procedure: p, online: p.ServiceLevel == "full_online" || p.ServiceLevel == "partial_online"}
		if p.UnitKind == refdata.KindDepartment {
			deptProcs = append(deptProcs, pp)
		} else {
			wardProcs = append(wardProcs, pp)
		}
	}
	if len(wardProcs) == 0 {
		return nil, errors.New("reference data: no ward procedures")
	}
	if len(deptProcs) == 0 {
		deptProcs = wardProcs
	}
	c.wardP, c.deptP = newProcTable(wardProcs), newProcTable(deptProcs)
	// Each department handles the procedures of its field (by the
	// procedure code's prefix); one with none of them takes them all.
	byDept := map[string][]*procedure{}
	for _, p := range deptProcs {
		prefix, _, _ := strings.Cut(p.Code, "-")
		for _, d := range procDepartments[prefix] {
			byDept[d] = append(byDept[d], p)
		}
	}
	deptTables := map[string]*procTable{}
	for d, ps := range byDept {
		deptTables[d] = newProcTable(ps)
	}

	// The officers who handle dossiers, tickets and counters: not a ward's
	// chair and vice-chairs nor a department's director and deputies, who
	// sign (unless a unit has nobody else).
	officers, leaders := map[string][]string{}, map[string][]string{}
	for _, o := range set.Officers {
		if isLeader(o.Title) {
			leaders[o.Unit] = append(leaders[o.Unit], o.ID)
		} else {
			officers[o.Unit] = append(officers[o.Unit], o.ID)
		}
	}
	for u, ids := range leaders {
		if len(officers[u]) == 0 {
			officers[u] = ids
		}
	}
	for i := range set.Units {
		u := &unit{Unit: &set.Units[i]}
		r := rand.New(rand.NewPCG(seed, hashString(u.Code)))
		u.officers = officers[u.Code]
		if len(u.officers) == 0 {
			// Legacy units (before July 2025) have no officers in the
			// reference data; dossiers of scenarios set in those years are
			// handled by stable synthetic ids.
			n := 3 + r.IntN(6)
			for j := 1; j <= n; j++ {
				u.officers = append(u.officers, refdata.OfficerID(u.Code, j))
			}
		}
		u.procs = c.wardP
		if u.Kind == refdata.KindDepartment {
			u.procs = c.deptP
			if t := deptTables[u.Code]; t != nil {
				u.procs = t
			}
		}
		u.onlineShare = 0.60 + 0.35*r.Float64()
		// Lateness varies by unit, from 1 to 3 % of its dossiers; the city
		// mean is about 2 %.
		u.overdue = 0.01 + 0.02*r.Float64()
		u.onTime = 0.04 + 0.12*r.Float64()
		u.lateScale = 4 + 36*r.Float64()
		u.satisfied = 0.97 + 0.028*r.Float64()
		u.ticketLate = 0.01 + 0.07*r.Float64()
		pop := float64(u.Population)
		if pop <= 0 {
			pop = 50_000
		}
		u.weight = pop
		c.byCode[u.Code] = u
		c.units = append(c.units, u)
	}
	for _, u := range c.units {
		if u.Parent != "" {
			c.children[u.Parent] = append(c.children[u.Parent], u)
		}
	}
	var wardSum float64
	for _, u := range c.units {
		if isCurrentWard(u.Kind) && u.ValidTo.IsZero() {
			c.wards = append(c.wards, u)
			wardSum += u.weight
		}
	}
	for _, u := range c.units {
		if u.Kind == refdata.KindDepartment && u.ValidTo.IsZero() {
			c.depts = append(c.depts, u)
		}
	}
	if len(c.wards) == 0 {
		return nil, errors.New("reference data: no current wards")
	}
	// Departments take about a third of the city system's dossiers
	// (construction, business registration, land, transport…).
	for _, d := range c.depts {
		d.weight = wardSum * 0.5 / float64(len(c.depts))
	}
	var sum float64
	for _, u := range c.wards {
		sum += u.weight
		c.wardCum = append(c.wardCum, sum)
	}
	c.current = append(append([]*unit(nil), c.wards...), c.depts...)
	sum = 0
	for _, u := range c.current {
		sum += u.weight
		c.curCum = append(c.curCum, sum)
	}
	c.cameras = append([]refdata.Camera(nil), set.Cameras...)
	slices.SortStableFunc(c.cameras, func(a, b refdata.Camera) int { return cmp.Compare(a.ID, b.ID) })
	return c, nil
}

// selectUnits resolves scenario unit selectors: a code, "code/*" for the
// unit and its whole subtree, or "kind:<kind>" for every unit of a kind.
func (c *city) selectUnits(sel []string) ([]*unit, error) {
	seen := map[string]bool{}
	var out []*unit
	add := func(u *unit) {
		if !seen[u.Code] {
			seen[u.Code] = true
			out = append(out, u)
		}
	}
	for _, s := range sel {
		switch {
		case strings.HasPrefix(s, "kind:"):
			k := strings.TrimPrefix(s, "kind:")
			n := len(out)
			for _, u := range c.units {
				if u.Kind == k {
					add(u)
				}
			}
			if len(out) == n {
				return nil, fmt.Errorf("%q: no unit of kind %q", s, k)
			}
		case strings.HasSuffix(s, "/*"):
			code := strings.TrimSuffix(s, "/*")
			u, ok := c.byCode[code]
			if !ok {
				return nil, fmt.Errorf("%q: unknown unit %q", s, code)
			}
			var walk func(u *unit)
			walk = func(u *unit) {
				add(u)
				for _, ch := range c.children[u.Code] {
					walk(ch)
				}
			}
			walk(u)
		default:
			u, ok := c.byCode[s]
			if !ok {
				return nil, fmt.Errorf("unknown unit %q", s)
			}
			add(u)
		}
	}
	return out, nil
}

// hashString is FNV-1a, used to derive stable per-entity seeds.
func hashString(s string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(s))
	return h.Sum64()
}

// mix64 scrambles a 64-bit value (SplitMix64's finalizer).
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// isLeader: the titles of a unit's leadership (Chủ tịch, Phó Chủ tịch UBND;
// Giám đốc, Phó Giám đốc).
func isLeader(title string) bool {
	for _, p := range []string{"Chủ tịch", "Phó Chủ tịch", "Giám đốc", "Phó Giám đốc"} {
		if strings.HasPrefix(title, p) {
			return true
		}
	}
	return false
}
