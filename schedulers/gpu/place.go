package gpu

import (
	"math/rand/v2"

	"github.com/omegacell/omegacell/schedulers/policy"
	"github.com/omegacell/omegacell/schedulers/view"
	"github.com/omegacell/omegacell/txn"
)

// candidate is one feasible machine for a class, scored for one more task,
// with the devices that task would take there.
type candidate struct {
	score   Score
	devices []txn.DeviceShare
	ord     int32
}

// lessCandidate ranks candidates: the better score, then the lower
// ordinal, so equal scores are broken the same way on every run.
func lessCandidate(a, b candidate) bool {
	c := a.score.Compare(b.score)
	return c < 0 || (c == 0 && a.ord < b.ord)
}

// placeEach places the tasks of a non-gang class one by one, each on the
// best-ranked feasible machine (see [Score]). Every candidate is scored
// when there are at most ScanAll of them; otherwise feasible machines are
// sampled in random order, MinSample or SampleFactor per task left at a
// time, as package policy's Pool does. The chosen machine is scored again
// after each claim; the others' scores do not change within the call.
func (p *Policy) placeEach(class policy.Class, s *policy.Scratch, w target, rng *rand.Rand, d *policy.Decision) {
	rep := class.Rep()
	cands := candidates(s.View(), rep)
	scanAll := len(cands) <= p.ScanAll
	if scanAll && len(class.Tasks) == 1 {
		p.placeOne(class.Tasks[0], cands, s, w, rng, d)
		return
	}
	perm := policy.NewPermutation(len(cands), rng)
	h := policy.NewHeap(lessCandidate)
	sample := func(want int) {
		for found := 0; scanAll || found < want; {
			i, ok := perm.Next()
			if !ok {
				return
			}
			if c, r := p.score(s, w, cands[i], rep); r == txn.ReasonOK {
				h.Push(c)
				found++
			}
		}
	}
	for i, t := range class.Tasks {
		for {
			if h.Len() == 0 {
				sample(max(p.MinSample, p.SampleFactor*(len(class.Tasks)-i)))
				if h.Len() == 0 {
					p.evictRest(class.Tasks[i:], s, rng, d)
					return
				}
			}
			top := h.Top()
			c, r := s.ClaimDevices(top.ord, t, top.devices)
			if r != txn.ReasonOK {
				h.Pop()
				continue
			}
			d.Claims = append(d.Claims, c)
			if next, r := p.score(s, w, top.ord, rep); r == txn.ReasonOK {
				h.FixTop(next)
			} else {
				h.Pop()
			}
			break
		}
	}
}

// placeOne places a single task on the best of every candidate: the
// common case, without the heap.
func (p *Policy) placeOne(t *txn.Task, cands []int32, s *policy.Scratch, w target, rng *rand.Rand, d *policy.Decision) {
	var best candidate
	found := false
	for _, ord := range cands {
		c, r := p.score(s, w, ord, t)
		if r != txn.ReasonOK {
			continue
		}
		if !found || lessCandidate(c, best) {
			best, found = c, true
		}
	}
	if found {
		c, r := s.ClaimDevices(best.ord, t, best.devices)
		if r == txn.ReasonOK {
			d.Claims = append(d.Claims, c)
			return
		}
	}
	p.evictRest([]*txn.Task{t}, s, rng, d)
}

// evictRest places tasks that fit nowhere by evicting lower-band work, in
// order, and reports the rest as unplaced.
func (p *Policy) evictRest(tasks []*txn.Task, s *policy.Scratch, rng *rand.Rand, d *policy.Decision) {
	evicting := len(tasks) > 0 && p.Evict.CanEvict(tasks[0], s.View().Ledger())
	var cands []int32
	if evicting {
		cands = evictCandidates(s.View(), tasks[0])
	}
	for i, t := range tasks {
		if !evicting || !p.Evict.Place(s, t, cands, rng, d) {
			d.Unplace(tasks[i:], policy.Explain(s, t, "")+noVictims(evicting))
			return
		}
	}
}

// noVictims is what a reason adds when eviction was tried and did not help.
func noVictims(tried bool) string {
	if tried {
		return "; and no lower-band work whose eviction makes room"
	}
	return ""
}

// placeEvicting places a gang's class task by task: on the best-ranked
// machine where the task fits, else by evicting lower-band work
// (policy.Evictor prefers machines the gang already uses, so it lands on
// few). The caller's KeepWholeGang drops everything if one task fails.
func (p *Policy) placeEvicting(class policy.Class, s *policy.Scratch, w target, rng *rand.Rand, d *policy.Decision) {
	cands := candidates(s.View(), class.Rep())
	all := evictCandidates(s.View(), class.Rep())
	for i, t := range class.Tasks {
		var best candidate
		found := false
		for _, ord := range cands {
			c, r := p.score(s, w, ord, t)
			if r != txn.ReasonOK {
				continue
			}
			if !found || lessCandidate(c, best) {
				best, found = c, true
			}
		}
		if found {
			if c, r := s.ClaimDevices(best.ord, t, best.devices); r == txn.ReasonOK {
				d.Claims = append(d.Claims, c)
				continue
			}
		}
		if !p.Evict.Place(s, t, all, rng, d) {
			d.Unplace(class.Tasks[i:], policy.Explain(s, t, "")+noVictims(true))
			return
		}
	}
}

// score checks t on machine ord of the call's overlay and ranks it.
func (p *Policy) score(s *policy.Scratch, w target, ord int32, t *txn.Task) (candidate, txn.Reason) {
	if r := s.Admits(ord, t); r != txn.ReasonOK {
		return candidate{}, r
	}
	m := s.Machine(ord)
	sc, devices, ok := w.rank(m, t.Resources)
	if !ok {
		if _, r := policy.FitOn(m, t.Resources); r != txn.ReasonOK {
			return candidate{}, r
		}
		return candidate{}, txn.ReasonInsufficientGPU
	}
	return candidate{score: sc, devices: devices, ord: ord}, txn.ReasonOK
}

// evictCandidates is a superset of the ready machines where rep could fit
// once lower-band work is evicted: the GPU machines for a GPU task (the
// free-device indexes count only what is free now), or the machines its
// constraints allow, whichever is smaller.
func evictCandidates(v *view.View, rep *txn.Task) []int32 {
	cs := v.Candidates(rep.Constraints)
	if rep.Resources.GPUMilli > 0 && len(v.GPUMachines()) < len(cs) {
		return v.GPUMachines()
	}
	return cs
}
