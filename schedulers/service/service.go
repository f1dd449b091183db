package service

import (
	"cmp"
	"math/rand/v2"
	"slices"

	"github.com/omegacell/omegacell/schedulers/policy"
	"github.com/omegacell/omegacell/schedulers/view"
	"github.com/omegacell/omegacell/txn"
)

// Name is the registry name of the service policy.
const Name = "service"

// Policy is the service policy. Its zero value is not usable; call [New].
type Policy struct {
	// MinSample is the fewest feasible machines of a domain scored before
	// a claim there.
	MinSample int
	// SampleFactor is how many feasible machines of a domain are scored
	// per replica the domain is still expected to take.
	SampleFactor int
	// PreemptProbe bounds the machines examined for preemption per replica.
	PreemptProbe int
	// PreemptOptions stops the preemption search once this many machines
	// with a working set of victims were found.
	PreemptOptions int
}

// New returns the service policy with its default sampling.
func New() *Policy {
	return &Policy{MinSample: 8, SampleFactor: 2, PreemptProbe: 256, PreemptOptions: 8}
}

// Name implements policy.Policy.
func (p *Policy) Name() string { return Name }

// Modes implements policy.Policy: fine-grained, incremental (all-or-nothing
// for a gang).
func (p *Policy) Modes(job view.JobInfo) policy.Modes { return policy.DefaultModes(job) }

// Place implements policy.Policy.
func (p *Policy) Place(job view.JobInfo, pending []*txn.Task, v *view.View, rng *rand.Rand) policy.Decision {
	d := policy.Decision{Claims: make([]txn.Claim, 0, len(pending))}
	s := policy.NewScratch(v, job.ID)
	pending = policy.PlacePinned(s, pending, &d)
	var counts map[string]int // replicas per failure domain, this decision's included
	if job.SpreadKey != "" {
		counts = v.JobPlacement(job.ID).DomainCounts(job.SpreadKey)
	}
	for _, class := range policy.Classes(pending, &d) {
		p.placeClass(job, class, s, rng, counts, &d)
	}
	d.KeepWholeGang(job, pending)
	return d
}

func (p *Policy) placeClass(job view.JobInfo, class policy.Class, s *policy.Scratch, rng *rand.Rand, counts map[string]int, d *policy.Decision) {
	rep := class.Rep()
	cands := s.View().Candidates(rep.Constraints)
	// Spread over the domains, and over machines within each: a replica
	// never joins another on a machine while one with room has none.
	sp := policy.NewSpreader(job.SpreadKey, rep, cands, s, WorstFit, rng, p.MinSample, p.SampleFactor, true, counts)
	spreading := job.SpreadKey != "" && len(s.View().LabelValues(job.SpreadKey)) > 0
	canPreempt := true
	for i, t := range class.Tasks {
		if c, ok := sp.Place(t, len(class.Tasks)-i); ok {
			d.Claims = append(d.Claims, c)
			continue
		}
		if canPreempt {
			if p.preempt(job, t, cands, spreading, s, rng, counts, d) {
				continue
			}
			canPreempt = false
		}
		d.Unplace([]*txn.Task{t}, policy.Explain(s, rep, job.SpreadKey)+"; evicting lower-priority tasks makes no room either")
	}
}

// WorstFit scores m for t by what would be left free, more is better (the
// score is its negation): the CPU and memory fractions free after t. For a
// task without GPUs a GPU machine ranks behind every machine without.
func WorstFit(m *txn.Machine, t *txn.Task) int64 {
	free := m.Free().Sub(t.Resources)
	s := -(policy.Fraction(free.CPUMilli, m.Capacity.CPUMilli) + policy.Fraction(free.MemoryBytes, m.Capacity.MemoryBytes))
	if t.Resources.GPUMilli == 0 && m.Devices() > 0 {
		s += 3 * policy.FractionScale
	}
	return s
}

// option is one machine where evicting victims makes room for a replica.
type option struct {
	ord     int32
	victims []*txn.Task
	maxPrio int32
	sumPrio int64
	domain  int // replicas of the job in the machine's failure domain
	order   int // probe order: the random tie-break
}

func (o *option) better(b *option) bool {
	return cmp.Or(
		cmp.Compare(o.maxPrio, b.maxPrio),
		cmp.Compare(len(o.victims), len(b.victims)),
		cmp.Compare(o.sumPrio, b.sumPrio),
		cmp.Compare(o.domain, b.domain),
		cmp.Compare(o.order, b.order),
	) < 0
}

// preempt places t by evicting lower-priority tasks on the best machine
// among the first PreemptOptions found in random order (at most
// PreemptProbe examined). When spreading, machines outside every failure
// domain are skipped as in normal placement. It reports whether it placed
// t.
func (p *Policy) preempt(job view.JobInfo, t *txn.Task, cands []int32, spreading bool, s *policy.Scratch, rng *rand.Rand, counts map[string]int, d *policy.Decision) bool {
	perm := policy.NewPermutation(len(cands), rng)
	var best *option
	found := 0
	for probed := 0; probed < p.PreemptProbe && found < p.PreemptOptions; probed++ {
		i, ok := perm.Next()
		if !ok {
			break
		}
		ord := cands[i]
		if s.Admits(ord, t) != txn.ReasonOK {
			continue
		}
		domain, inDomain := s.Machine(ord).Labels[job.SpreadKey]
		if spreading && !inDomain {
			continue
		}
		victims := victimsOn(ord, t, s)
		if victims == nil {
			continue
		}
		found++
		o := &option{ord: ord, victims: victims, maxPrio: victims[0].Priority, order: probed}
		for _, vt := range victims {
			o.maxPrio = max(o.maxPrio, vt.Priority)
			o.sumPrio += int64(vt.Priority)
		}
		if spreading {
			o.domain = counts[domain]
		}
		if best == nil || o.better(best) {
			best = o
		}
	}
	if best == nil {
		return false
	}
	c, r := s.ClaimEvicting(best.ord, t, best.victims)
	if r != txn.ReasonOK {
		return false
	}
	d.Claims = append(d.Claims, c)
	for _, vt := range best.victims {
		d.Preemptions = append(d.Preemptions, vt.Key)
	}
	if spreading {
		counts[s.Machine(best.ord).Labels[job.SpreadKey]]++
	}
	return true
}

// victimsOn chooses tasks on machine ord whose eviction lets t fit: the
// preemptible ones, lowest priority and then largest first, until t fits;
// then each chosen victim, highest priority first, is given back if t
// still fits without evicting it. Nil if no set of victims works (or none
// is needed: then normal placement applies, not preemption).
func victimsOn(ord int32, t *txn.Task, s *policy.Scratch) []*txn.Task {
	type candidate struct {
		task *txn.Task
		size int64 // share of the machine it holds
	}
	m := s.Machine(ord)
	var cands []candidate
	for _, r := range s.View().TasksOn(ord) {
		if txn.CanPreempt(t.Priority, r.Priority) && !s.Evicted(r.Key) {
			size := policy.Fraction(r.Resources.CPUMilli, m.Capacity.CPUMilli) + policy.Fraction(r.Resources.MemoryBytes, m.Capacity.MemoryBytes) +
				policy.Fraction(r.Resources.GPUMilli, m.Capacity.GPUMilli)
			cands = append(cands, candidate{r, size})
		}
	}
	if len(cands) == 0 {
		return nil
	}
	slices.SortFunc(cands, func(a, b candidate) int {
		return cmp.Or(cmp.Compare(a.task.Priority, b.task.Priority), cmp.Compare(b.size, a.size),
			cmp.Compare(a.task.Key.Job, b.task.Key.Job), cmp.Compare(a.task.Key.Index, b.task.Key.Index))
	})
	m = m.Clone()
	var chosen []*txn.Task
	fits := false
	for _, c := range cands {
		if txn.Release(m, c.task.Resources, c.task.Devices) != nil {
			continue
		}
		chosen = append(chosen, c.task)
		if _, r := policy.FitOn(m, t.Resources); r == txn.ReasonOK {
			fits = true
			break
		}
	}
	if !fits {
		return nil
	}
	for i := len(chosen) - 1; i >= 0; i-- {
		vt := chosen[i]
		spared := m.Clone()
		txn.Allocate(spared, vt.Resources, vt.Devices)
		if _, r := policy.FitOn(spared, t.Resources); r == txn.ReasonOK {
			m = spared
			chosen = slices.Delete(chosen, i, i+1)
		}
	}
	if len(chosen) == 0 {
		return nil
	}
	return chosen
}
