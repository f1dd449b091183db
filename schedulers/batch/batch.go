package batch

import (
	"math/rand/v2"

	"github.com/omegacell/omegacell/schedulers/policy"
	"github.com/omegacell/omegacell/schedulers/view"
	"github.com/omegacell/omegacell/txn"
)

// Name is the registry name of the batch policy.
const Name = "batch"

// Policy is the batch policy. Its zero value is not usable; call [New].
type Policy struct {
	// MinSample is the fewest feasible machines scored before a claim.
	MinSample int
	// SampleFactor is how many feasible machines are scored per task
	// still to place in the class.
	SampleFactor int
	// Evict places what does not fit by evicting lower-band work
	// (policy.LowerBand); Probe 0 turns preemption off.
	Evict policy.Evictor
}

// New returns the batch policy with Borg-like sampling: at least 10
// feasible machines, 2 per task left.
func New() *Policy {
	return &Policy{MinSample: 10, SampleFactor: 2, Evict: policy.Evictor{May: policy.LowerBand, Reclaim: true, Probe: 256, Options: 8}}
}

// FairShare implements policy.FairSharer: the batch scheduler's queue is
// ordered by weighted DRF across tenants.
func (p *Policy) FairShare() bool { return true }

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
	var counts map[string]int // tasks per failure domain, this decision's included
	if job.SpreadKey != "" {
		counts = v.JobPlacement(job.ID).DomainCounts(job.SpreadKey)
	}
	for _, class := range policy.Classes(pending, &d) {
		rep := class.Rep()
		if job.SpreadKey != "" {
			// Spread evenly over the key's values, packing by best fit
			// within each.
			PlaceSpread(job, class, s, BestFit, rng, p.MinSample, p.SampleFactor, counts, &d)
			continue
		}
		pool := policy.NewPool(s, rep, v.Candidates(rep.Constraints), BestFit, rng)
		for i, t := range class.Tasks {
			want := max(p.MinSample, p.SampleFactor*(len(class.Tasks)-i))
			c, ok := pool.Place(t, want)
			if ok {
				d.Claims = append(d.Claims, c)
				continue
			}
			if p.Evict.Probe > 0 && p.Evict.Place(s, t, v.Candidates(rep.Constraints), rng, &d) {
				continue
			}
			reason := policy.Explain(s, rep, "")
			if p.Evict.CanEvict(t, v.Ledger()) {
				reason += "; and no lower-band work whose eviction makes room"
			}
			d.Unplace(class.Tasks[i:], reason)
			break
		}
	}
	d.KeepWholeGang(job, pending)
	return d
}

// PlaceSpread places a class over the failure domains of the job's spread
// key (see policy.Spreader), each domain's machines ranked by score; the
// batch and GPU policies use it for jobs with a spread key.
func PlaceSpread(job view.JobInfo, class policy.Class, s *policy.Scratch, score policy.ScoreFunc, rng *rand.Rand,
	minSample, sampleFactor int, counts map[string]int, d *policy.Decision) {
	rep := class.Rep()
	sp := policy.NewSpreader(job.SpreadKey, rep, s.View().Candidates(rep.Constraints), s, score, rng, minSample, sampleFactor, false, counts)
	for i, t := range class.Tasks {
		c, ok := sp.Place(t, len(class.Tasks)-i)
		if !ok {
			d.Unplace(class.Tasks[i:], policy.Explain(s, rep, job.SpreadKey))
			return
		}
		d.Claims = append(d.Claims, c)
	}
}

// BestFit scores m for t by what would be left free: the CPU and memory
// fractions free after t (and the GPU fraction for GPU tasks), lower is
// better. For a task without GPUs a GPU machine ranks behind every machine
// without (the penalty exceeds any CPU plus memory score).
func BestFit(m *txn.Machine, t *txn.Task) int64 {
	free := m.Free().Sub(t.Resources)
	s := policy.Fraction(free.CPUMilli, m.Capacity.CPUMilli) + policy.Fraction(free.MemoryBytes, m.Capacity.MemoryBytes)
	switch {
	case t.Resources.GPUMilli > 0:
		s += policy.Fraction(free.GPUMilli, m.Capacity.GPUMilli)
	case m.Devices() > 0:
		s += 3 * policy.FractionScale
	}
	return s
}
