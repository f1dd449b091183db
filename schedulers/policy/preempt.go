package policy

import (
	"cmp"
	"math/rand/v2"
	"slices"

	"github.com/omegacell/omegacell/txn"
)

// LowerBand is the preemption rule of the batch and GPU policies: a task
// may evict only work of a lower priority band (and, as txn.CanPreempt
// says for everyone, never production).
func LowerBand(claimant, victim int32) bool {
	return txn.BandOf(victim) < txn.BandOf(claimant) && txn.CanPreempt(claimant, victim)
}

// Reclaimable reports whether claimant may evict victim to reclaim batch
// quota that victim's tenant borrowed, as txn.Validate allows it (issue
// 12): both are batch, of different tenants; the claimant's tenant has a
// batch quota and stays within its nominal part with the claim; the
// victim's tenant uses more than its nominal batch quota of a kind the
// victim holds. l is the copy's ledger (nil: no quotas).
func Reclaimable(l *txn.Ledger, claimant, victim *txn.Task) bool {
	if l == nil || claimant.Tenant == victim.Tenant || txn.BandOf(victim.Priority) != txn.BandBatch || txn.BandOf(claimant.Priority) != txn.BandBatch {
		return false
	}
	q := l.Quota(claimant.Tenant, txn.BandBatch)
	if q == nil {
		return false
	}
	after := l.Use(claimant.Tenant, txn.BandBatch).InUse.Add(claimant.Resources)
	after.DiskBytes = 0
	if !after.LessOrEqual(q.Nominal) {
		return false
	}
	b, r := l.Borrowed(victim.Tenant, txn.BandBatch), victim.Resources
	return (r.CPUMilli > 0 && b.CPUMilli > 0) || (r.MemoryBytes > 0 && b.MemoryBytes > 0) || (r.GPUMilli > 0 && b.GPUMilli > 0)
}

// CanEvict reports whether t may evict anything under the evictor's
// rules: some lower priority exists that it may preempt, or it may
// reclaim borrowed batch quota.
func (e Evictor) CanEvict(t *txn.Task, l *txn.Ledger) bool {
	if e.Probe <= 0 {
		return false
	}
	if e.May(t.Priority, txn.PriorityBestEffort) {
		return true
	}
	return e.Reclaim && l != nil && txn.BandOf(t.Priority) == txn.BandBatch && l.Quota(t.Tenant, txn.BandBatch) != nil
}

// Evictor places tasks by evicting lower-priority work, gang-aware: a
// victim that belongs to a gang job is evicted whole (its tasks on other
// machines too, as txn.Validate allows), so a unit of eviction is a single
// task or a whole gang. On each machine it examines, it picks the fewest
// units that make room, lowest priority first, then the smallest units
// (a single task before a gang), the largest tasks, the youngest jobs;
// among machines it prefers the lowest victim priority, then machines this
// decision already uses (a gang lands on few machines), the fewest evicted
// tasks, the fewest machines touched, the youngest victims.
type Evictor struct {
	// May is the preemption rule (claimant, victim priority).
	May func(claimant, victim int32) bool
	// Reclaim also lets a batch task whose tenant is within its nominal
	// quota evict batch tasks of tenants that borrow ([Reclaimable]).
	Reclaim bool
	// Probe bounds the machines examined per task; Options stops the
	// search once this many machines with a working set of victims were
	// found.
	Probe, Options int
}

// unit is one unit of eviction on a machine: a task, or a gang's tasks.
type unit struct {
	job    string
	here   []*txn.Task // on the machine examined
	all    []*txn.Task // every resource-holding task of the unit
	prio   int32
	size   int64 // share of the machine its tasks there hold
	submit int64
}

// evictOption is one machine where evicting units makes room.
type evictOption struct {
	ord      int32
	units    []unit
	maxPrio  int32
	reused   bool // the decision already claims there
	tasks    int
	machines int
	youngest int64
	order    int
}

func (o *evictOption) better(b *evictOption) bool {
	return cmp.Or(
		cmp.Compare(o.maxPrio, b.maxPrio),
		-cmpBool(o.reused, b.reused),
		cmp.Compare(o.tasks, b.tasks),
		cmp.Compare(o.machines, b.machines),
		cmp.Compare(b.youngest, o.youngest),
		cmp.Compare(o.order, b.order),
	) < 0
}

func cmpBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}

// Place claims a machine among cands for t by evicting victims there (and
// their gang siblings elsewhere), records the claim and every victim in
// d, and reports whether it did. Machines are examined in a random order.
func (e Evictor) Place(s *Scratch, t *txn.Task, cands []int32, rng *rand.Rand, d *Decision) bool {
	if !e.CanEvict(t, s.View().Ledger()) {
		return false
	}
	perm := NewPermutation(len(cands), rng)
	var best *evictOption
	found := 0
	for probed := 0; probed < e.Probe && found < e.Options; probed++ {
		i, ok := perm.Next()
		if !ok {
			break
		}
		ord := cands[i]
		if s.Admits(ord, t) != txn.ReasonOK {
			continue
		}
		units := e.unitsOn(s, ord, t)
		if units == nil {
			continue
		}
		found++
		o := &evictOption{ord: ord, units: units, maxPrio: units[0].prio, reused: s.JobTasksOn(ord) > s.job.On(ord), order: probed}
		machines := map[string]struct{}{}
		for _, u := range units {
			o.maxPrio = max(o.maxPrio, u.prio)
			o.tasks += len(u.all)
			o.youngest = max(o.youngest, u.submit)
			for _, vt := range u.all {
				machines[vt.Machine] = struct{}{}
			}
		}
		o.machines = len(machines)
		if best == nil || o.better(best) {
			best = o
		}
	}
	if best == nil {
		return false
	}
	var here []*txn.Task
	for _, u := range best.units {
		here = append(here, u.here...)
	}
	c, r := s.ClaimEvicting(best.ord, t, here)
	if r != txn.ReasonOK {
		return false
	}
	d.Claims = append(d.Claims, c)
	for _, u := range best.units {
		for _, vt := range u.all {
			if vt.Machine != c.Machine {
				s.EvictElsewhere(vt)
			}
			d.Preemptions = append(d.Preemptions, vt.Key)
		}
	}
	return true
}

// unitsOn chooses the units on machine ord whose eviction lets t fit, or
// nil if none do (or none is needed).
func (e Evictor) unitsOn(s *Scratch, ord int32, t *txn.Task) []unit {
	m := s.Machine(ord)
	var units []unit
	gangAt := map[string]int{}
	ledger := s.View().Ledger()
	for _, r := range s.View().TasksOn(ord) {
		if s.Evicted(r.Key) {
			continue
		}
		byPriority := e.May(t.Priority, r.Priority)
		if !byPriority && !(e.Reclaim && Reclaimable(ledger, t, r)) {
			continue
		}
		size := Fraction(r.Resources.CPUMilli, m.Capacity.CPUMilli) + Fraction(r.Resources.MemoryBytes, m.Capacity.MemoryBytes) +
			Fraction(r.Resources.GPUMilli, m.Capacity.GPUMilli)
		info, _ := s.View().Job(r.Key.Job)
		if info.Gang && !byPriority {
			continue // a reclaimed task is evicted alone; txn evicts gangs whole only by priority
		}
		if !info.Gang {
			units = append(units, unit{job: r.Key.Job, here: []*txn.Task{r}, all: []*txn.Task{r}, prio: r.Priority, size: size, submit: info.SubmitTime})
			continue
		}
		if i, ok := gangAt[r.Key.Job]; ok {
			units[i].here = append(units[i].here, r)
			units[i].size += size
			continue
		}
		all := s.View().JobPlacement(r.Key.Job).Residents()
		if slices.ContainsFunc(all, func(x *txn.Task) bool { return s.Evicted(x.Key) }) {
			continue // already being evicted whole by this decision
		}
		gangAt[r.Key.Job] = len(units)
		units = append(units, unit{job: r.Key.Job, here: []*txn.Task{r}, all: all, prio: r.Priority, size: size, submit: info.SubmitTime})
	}
	if len(units) == 0 {
		return nil
	}
	slices.SortFunc(units, func(a, b unit) int {
		return cmp.Or(cmp.Compare(a.prio, b.prio), cmp.Compare(len(a.all), len(b.all)), cmp.Compare(b.size, a.size),
			cmp.Compare(b.submit, a.submit), cmp.Compare(a.job, b.job), cmp.Compare(a.here[0].Key.Index, b.here[0].Key.Index))
	})
	m = m.Clone()
	var chosen []unit
	fits := false
	for _, u := range units {
		if !releaseAll(m, u.here) {
			continue
		}
		chosen = append(chosen, u)
		if _, r := FitOn(m, t.Resources); r == txn.ReasonOK {
			fits = true
			break
		}
	}
	if !fits {
		return nil
	}
	// Give back every unit t still fits without, costliest first.
	for i := len(chosen) - 1; i >= 0; i-- {
		spared := m.Clone()
		for _, vt := range chosen[i].here {
			txn.Allocate(spared, vt.Resources, vt.Devices)
		}
		if _, r := FitOn(spared, t.Resources); r == txn.ReasonOK {
			m = spared
			chosen = slices.Delete(chosen, i, i+1)
		}
	}
	if len(chosen) == 0 {
		return nil
	}
	return chosen
}

func releaseAll(m *txn.Machine, ts []*txn.Task) bool {
	c := m.Clone()
	for _, vt := range ts {
		if txn.Release(c, vt.Resources, vt.Devices) != nil {
			return false
		}
	}
	*m = *c
	return true
}
