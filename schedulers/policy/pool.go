package policy

import (
	"math/rand/v2"

	"github.com/omegacell/omegacell/txn"
)

// ScoreFunc ranks machine m for one more task t (lower is better); m is the
// machine as the Place call sees it, before t. It must be deterministic.
type ScoreFunc func(m *txn.Machine, t *txn.Task) int64

// Pool is the candidate machines of one equivalence class under relaxed
// randomization: machines are examined in a random [Permutation] of the
// candidate list and checked with [Scratch.Check]; feasible ones are scored
// once and kept in a heap. When the heap runs dry, the next want feasible
// machines are sampled. After each claim the chosen machine is checked and
// scored again and stays in the heap while the class still fits on it.
type Pool struct {
	s     *Scratch
	rep   *txn.Task
	cands []int32
	perm  Permutation
	score ScoreFunc
	heap  Heap[scored]
	seq   uint32
	// SpreadMachines ranks a machine behind every machine holding fewer
	// of the job's tasks (the job's tasks on it, this call's included),
	// whatever the score: replicas go to machines without one first.
	SpreadMachines bool
	// Reasons counts why sampled machines were refused or, once the
	// call's own claims filled them, dropped.
	Reasons Reasons
}

type scored struct {
	score int64
	seq   uint32 // sampling order: the random tie-break
	ord   int32
}

func lessScored(a, b scored) bool {
	return a.score < b.score || (a.score == b.score && a.seq < b.seq)
}

// NewPool returns a pool over cands (machine ordinals) for tasks shaped
// like rep, ranked by score.
func NewPool(s *Scratch, rep *txn.Task, cands []int32, score ScoreFunc, rng *rand.Rand) *Pool {
	return &Pool{s: s, rep: rep, cands: cands, perm: NewPermutation(len(cands), rng), score: score, heap: NewHeap(lessScored)}
}

// Place claims the best-ranked feasible machine for t (a task of the
// class), first sampling until want feasible machines are in hand if none
// is. It reports false when no candidate is left.
func (p *Pool) Place(t *txn.Task, want int) (txn.Claim, bool) {
	for {
		if p.heap.Len() == 0 {
			p.sample(want)
			if p.heap.Len() == 0 {
				return txn.Claim{}, false
			}
		}
		top := p.heap.Top()
		c, r := p.s.Claim(top.ord, t)
		if r != txn.ReasonOK {
			// Another pool of the same call took the room since it was scored.
			p.heap.Pop()
			p.Reasons.Add(r)
			continue
		}
		if r := p.s.Check(top.ord, p.rep); r == txn.ReasonOK {
			top.score = p.scoreOf(top.ord)
			p.heap.FixTop(top)
		} else {
			p.heap.Pop()
			p.Reasons.Add(r)
		}
		return c, true
	}
}

// spreadPenalty outweighs any score of the built-in policies (a few
// FractionScale at most) per task of the job on the machine.
const spreadPenalty = 64 * FractionScale

func (p *Pool) scoreOf(ord int32) int64 {
	s := p.score(p.s.Machine(ord), p.rep)
	if p.SpreadMachines {
		s += spreadPenalty * int64(p.s.JobTasksOn(ord))
	}
	return s
}

// PlaceFresh is [Pool.Place] on a machine that holds none of the job's
// tasks yet (SpreadMachines must be set), sampling every candidate left
// if need be; it reports false when no such machine has room.
func (p *Pool) PlaceFresh(t *txn.Task, want int) (txn.Claim, bool) {
	for {
		if p.heap.Len() > 0 && p.s.JobTasksOn(p.heap.Top().ord) == 0 {
			return p.Place(t, want)
		}
		if p.perm.Left() == 0 {
			return txn.Claim{}, false
		}
		p.sample(want)
	}
}

// Exhausted reports whether every candidate was sampled and none is left
// in the heap.
func (p *Pool) Exhausted() bool { return p.heap.Len() == 0 && p.perm.Left() == 0 }

// sample examines candidates in the pool's random order until want
// feasible ones were added or the candidates run out.
func (p *Pool) sample(want int) {
	for found := 0; found < want; {
		i, ok := p.perm.Next()
		if !ok {
			return
		}
		ord := p.cands[i]
		if r := p.s.Check(ord, p.rep); r != txn.ReasonOK {
			p.Reasons.Add(r)
			continue
		}
		p.seq++
		p.heap.Push(scored{score: p.scoreOf(ord), seq: p.seq, ord: ord})
		found++
	}
}
