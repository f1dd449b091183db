package policy

import (
	"math/rand/v2"

	"github.com/omegacell/omegacell/schedulers/view"
	"github.com/omegacell/omegacell/txn"
)

// Spreader places the tasks of one class over the failure domains of a
// label (spreadKey: zone, rack), for every policy that honours a job's
// spread key: each task goes to the domain holding the fewest of the
// job's tasks (this call's included), among the domains that still have
// a machine with room and none of the job's tasks ("fresh"); only when no
// domain has such a machine does a task join another of the job's on a
// machine ("crowded" domains, emptiest first). Within a domain a [Pool]
// ranks machines by the policy's score. Values of the key that the
// job's own constraints exclude ("rack in (r1, r2)" spread over rack) are
// not domains; machines without the label are never chosen. Without a
// key there is one domain: the candidates.
type Spreader struct {
	s              *Scratch
	rep            *txn.Task
	score          ScoreFunc
	rng            *rand.Rand
	minSample      int
	sampleFactor   int
	spreadMachines bool
	doms           []spreadDomain
	fresh, crowded Heap[int32]
	counts         map[string]int
}

type spreadDomain struct {
	name  string
	cands []int32
	count int    // the job's tasks in the domain
	order uint32 // random order among domains with equal counts
	pool  *Pool
}

// NewSpreader prepares domains of key over cands (candidate machines of
// rep's class). counts holds the job's tasks per domain value and is kept
// up to date (nil: start from zero). spreadMachines also keeps a task off
// machines that hold one of the job's while others have room (services);
// without it a domain's pool packs by score alone. Pools sample
// max(minSample, sampleFactor × tasks left per domain) machines at a time.
func NewSpreader(key string, rep *txn.Task, cands []int32, s *Scratch, score ScoreFunc, rng *rand.Rand,
	minSample, sampleFactor int, spreadMachines bool, counts map[string]int) *Spreader {
	sp := &Spreader{s: s, rep: rep, score: score, rng: rng, minSample: minSample, sampleFactor: sampleFactor,
		spreadMachines: spreadMachines, counts: counts}
	sp.doms = domainsOf(key, rep.Constraints, cands, s.View(), rng, counts)
	byCount := func(a, b int32) bool {
		x, y := &sp.doms[a], &sp.doms[b]
		return x.count < y.count || (x.count == y.count && x.order < y.order)
	}
	sp.fresh, sp.crowded = NewHeap(byCount), NewHeap(byCount)
	for i := range sp.doms {
		sp.fresh.Push(int32(i))
	}
	return sp
}

// Place claims a machine for t, one of left tasks still to place in the
// class, or reports that no domain has room.
func (sp *Spreader) Place(t *txn.Task, left int) (txn.Claim, bool) {
	for _, h := range []*Heap[int32]{&sp.fresh, &sp.crowded} {
		for h.Len() > 0 {
			di := h.Top()
			dom := &sp.doms[di]
			if dom.pool == nil {
				dom.pool = NewPool(sp.s, sp.rep, dom.cands, sp.score, sp.rng)
				dom.pool.SpreadMachines = sp.spreadMachines
			}
			want := max(sp.minSample, sp.sampleFactor*((left+h.Len()-1)/h.Len()))
			var c txn.Claim
			var ok bool
			if h == &sp.fresh {
				c, ok = dom.pool.PlaceFresh(t, want)
			} else {
				c, ok = dom.pool.Place(t, want)
			}
			if !ok {
				h.Pop()
				if h == &sp.fresh && !dom.pool.Exhausted() {
					sp.crowded.Push(di)
				}
				continue
			}
			dom.count++
			if sp.counts != nil {
				sp.counts[dom.name]++
			}
			h.FixTop(di)
			return c, true
		}
	}
	return txn.Claim{}, false
}

// domainsOf splits candidate machines into the failure domains of key.
// Domains with equal counts are taken in a random rotation of their
// sorted names (one random number, however many domains).
func domainsOf(key string, cons []txn.Constraint, cands []int32, v *view.View, rng *rand.Rand, counts map[string]int) []spreadDomain {
	values := v.LabelValues(key)
	if key == "" || len(values) == 0 {
		return []spreadDomain{{cands: cands}}
	}
	doms := make([]spreadDomain, 0, len(values))
	if len(cands) > len(v.Ready())/4 {
		// Unselective constraints: a domain's candidates are its label
		// index; the pool checks the constraints machine by machine.
		for _, val := range values {
			if allowed(key, val, cons) {
				doms = append(doms, spreadDomain{name: val, cands: v.WithLabel(key, val)})
			}
		}
	} else {
		byValue := make(map[string][]int32)
		for _, ord := range cands {
			if val, ok := v.MachineAt(ord).Labels[key]; ok {
				byValue[val] = append(byValue[val], ord)
			}
		}
		for _, val := range values {
			if len(byValue[val]) > 0 {
				doms = append(doms, spreadDomain{name: val, cands: byValue[val]})
			}
		}
	}
	if len(doms) == 0 {
		return []spreadDomain{{}}
	}
	rotation := rng.IntN(len(doms))
	for i := range doms {
		doms[i].count = counts[doms[i].name]
		doms[i].order = uint32((i + len(doms) - rotation) % len(doms))
	}
	return doms
}

// allowed reports whether the terms on key admit the value val.
func allowed(key, val string, cons []txn.Constraint) bool {
	labels := map[string]string{key: val}
	for _, c := range cons {
		if c.Key == key && !c.Matches(labels) {
			return false
		}
	}
	return true
}
