package gpu

import (
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/omegacell/omegacell/schedulers/batch"
	"github.com/omegacell/omegacell/schedulers/policy"
	"github.com/omegacell/omegacell/schedulers/view"
	"github.com/omegacell/omegacell/txn"
)

// Name is the registry name of the GPU policy.
const Name = "gpu"

// Policy is the GPU policy. Its zero value is not usable; call [New].
type Policy struct {
	// RackKey is the machine label that names a rack.
	RackKey string
	// MinSample and SampleFactor size the sample of feasible machines for
	// tasks placed one by one when the candidates are more than ScanAll
	// (see package policy's Pool); up to ScanAll candidates, every one is
	// scored, as FGD does.
	MinSample    int
	SampleFactor int
	ScanAll      int
	// Workload, if set, is the target workload fragmentation is measured
	// against; otherwise it is learned from the view on every call
	// ([LearnWorkload] of view.View.Shapes with Coverage).
	Workload Workload
	// Coverage is the share of tasks, in millionths, the shapes of a
	// learned workload cover (0: [DefaultCoverage]).
	Coverage int64
	// Evict places what does not fit by evicting lower-band work
	// (policy.LowerBand); Probe 0 turns preemption off. A gang that does
	// not fit is decided again evicting, task by task.
	Evict policy.Evictor
	// BalanceWeight weighs, in thousandths, the growth of a machine's
	// CPU-to-GPU imbalance against the growth of its fragmentation when a
	// GPU task is placed (0: fragmentation alone, FGD's criterion).
	BalanceWeight int64
}

// New returns the GPU policy: racks are the "rack" label; non-gang tasks
// score every feasible machine in cells of up to 4,096 candidates, else
// at least 16 feasible machines, 2 per task left; the workload is learned
// from the view; imbalance weighs half as much as fragmentation.
func New() *Policy {
	return &Policy{RackKey: "rack", MinSample: 16, SampleFactor: 2, ScanAll: 4096, BalanceWeight: 500,
		Evict: policy.Evictor{May: policy.LowerBand, Reclaim: true, Probe: 256, Options: 8}}
}

// WithWorkload returns a copy of p that measures fragmentation against w.
func (p *Policy) WithWorkload(w Workload) *Policy {
	q := *p
	q.Workload = w.normalize()
	return &q
}

func (p *Policy) coverage() int64 {
	if p.Coverage > 0 {
		return min(p.Coverage, WeightScale)
	}
	return DefaultCoverage
}

// FairShare implements policy.FairSharer: the GPU scheduler's queue is
// ordered by weighted DRF across tenants.
func (p *Policy) FairShare() bool { return true }

// Name implements policy.Policy.
func (p *Policy) Name() string { return Name }

// Modes implements policy.Policy: fine-grained conflicts; all-or-nothing
// for a gang, incremental otherwise.
func (p *Policy) Modes(job view.JobInfo) policy.Modes { return policy.DefaultModes(job) }

// Place implements policy.Policy.
func (p *Policy) Place(job view.JobInfo, pending []*txn.Task, v *view.View, rng *rand.Rand) policy.Decision {
	d := p.place(job, pending, v, rng, false)
	if job.Gang && len(d.Claims) == 0 && len(pending) > 0 && p.Evict.CanEvict(pending[0], v.Ledger()) {
		if e := p.place(job, pending, v, rng, true); len(e.Claims) > 0 {
			return e
		}
		for i := range d.Unplaced {
			d.Unplaced[i].Reason += "; and no lower-band work whose eviction makes room"
		}
	}
	return d
}

// place decides a job; with evict, a gang is placed task by task on the
// best machine where it fits or, failing that, where evicting lower-band
// work makes room.
func (p *Policy) place(job view.JobInfo, pending []*txn.Task, v *view.View, rng *rand.Rand, evict bool) policy.Decision {
	d := policy.Decision{Claims: make([]txn.Claim, 0, len(pending))}
	s := policy.NewScratch(v, job.ID)
	pending = policy.PlacePinned(s, pending, &d)
	var counts map[string]int // tasks per failure domain, this decision's included
	if job.SpreadKey != "" {
		counts = v.JobPlacement(job.ID).DomainCounts(job.SpreadKey)
	}
	for _, class := range policy.Classes(pending, &d) {
		if job.SpreadKey != "" {
			// Spread asked for overrides packing (gangs into few racks,
			// fragmentation-aware device choice): tasks go evenly over
			// the key's values, by best fit within each.
			batch.PlaceSpread(job, class, s, batch.BestFit, rng, p.MinSample, p.SampleFactor, counts, &d)
			continue
		}
		if job.Gang && evict {
			p.placeEvicting(class, s, p.target(p.gangWorkload(v, class.Rep())), rng, &d)
			continue
		}
		if job.Gang {
			w := p.target(p.gangWorkload(v, class.Rep()))
			if reason, ok := p.placeGang(policy.JobName(job), class, s, w, rng, &d); !ok {
				d.Unplace(class.Tasks, reason)
			}
			continue
		}
		p.placeEach(class, s, p.target(p.workloadFor(v, class.Rep())), rng, &d)
	}
	d.KeepWholeGang(job, pending)
	return d
}

// candidates is a superset of the ready machines where rep could fit, from
// the view's GPU indexes or its most selective label constraint, whichever
// is smaller.
func candidates(v *view.View, rep *txn.Task) []int32 {
	cs := v.Candidates(rep.Constraints)
	g := rep.Resources.GPUMilli
	var byGPU []int32
	switch {
	case g == 0:
		return cs
	case g >= txn.MilliPerGPU:
		byGPU = v.AtLeastWholeFreeDevices(int(g / txn.MilliPerGPU))
	default:
		byGPU = v.GPUMachines()
	}
	if len(cs) < len(byGPU) {
		return cs
	}
	return byGPU
}

// slot is one feasible machine in a gang plan.
type slot struct {
	ord   int32
	fits  int     // estimated tasks of the class it holds
	score gangKey // of one more task
	order int     // random rotation: the final tie-break
}

// gangKey is a [Score] packed into two words, in the same order, so that
// sorting a gang's slots moves little.
type gangKey [2]int64

func keyOf(sc Score) gangKey {
	k := gangKey{sc.Gradient, 0}
	if sc.OnGPUMachine {
		k[0] = math.MaxInt64
	}
	stranded := clamp(sc.Stranded, 1<<20) + 1<<20      // 21 bits
	idle := min(max(sc.IdleGPU, 0), 1<<17-1)           // 17 bits
	fit := min(max(sc.Fit, 0), policy.FractionScale*2) // 22 bits
	k[1] = stranded<<39 | idle<<22 | fit
	return k
}

func (k gangKey) compare(o gangKey) int {
	return cmp.Or(cmp.Compare(k[0], o[0]), cmp.Compare(k[1], o[1]))
}

func clamp(x, limit int64) int64 { return max(-limit+1, min(x, limit-1)) }

// rack is a group of slots sharing a rack label.
type rack struct {
	name  string
	slots []slot
	fits  int
	order int
}

// placeGang claims every task of class or, if that is impossible, nothing;
// it returns the reason when it claims nothing.
func (p *Policy) placeGang(name string, class policy.Class, s *policy.Scratch, w target, rng *rand.Rand, d *policy.Decision) (string, bool) {
	rep, n := class.Rep(), len(class.Tasks)
	cands := candidates(s.View(), rep)
	rotation := 0
	if len(cands) > 0 {
		rotation = rng.IntN(len(cands))
	}
	var racks []*rack
	rackIndex := make(map[string]*rack)
	total := 0
	for i, ord := range cands {
		if r := s.Admits(ord, rep); r != txn.ReasonOK {
			continue
		}
		m := s.Machine(ord)
		devices, r := policy.FitOn(m, rep.Resources)
		if r != txn.ReasonOK {
			continue
		}
		score, _, _ := w.rankDevices(m, rep.Resources, devices)
		sl := slot{ord: ord, fits: p.estimateFits(s, ord, rep, n), score: keyOf(score), order: (i + len(cands) - rotation) % len(cands)}
		name := m.Labels[p.RackKey]
		rk := rackIndex[name]
		if rk == nil {
			rk = &rack{name: name, order: sl.order}
			rackIndex[name] = rk
			racks = append(racks, rk)
		}
		rk.slots = append(rk.slots, sl)
		rk.fits += sl.fits
		total += sl.fits
	}
	if total < n {
		return fmt.Sprintf("gang %s needs %d tasks × (%s) at once: room for %d now, %d short; %s",
			name, n, policy.Shape(rep.Resources), total, n-total, policy.Explain(s, rep, "")), false
	}
	plan := planGang(racks, n)
	leftover := class.Tasks
	for _, step := range plan {
		for range min(step.tasks, len(leftover)) {
			c, r := s.Claim(step.ord, leftover[0])
			if r != txn.ReasonOK {
				break // the estimate was optimistic; the rest moves on
			}
			d.Claims = append(d.Claims, c)
			leftover = leftover[1:]
		}
	}
	// Estimates are upper bounds, so a shortfall is rare: walk every
	// feasible machine, planned racks first, for the tasks still left.
	for _, rk := range racks {
		for _, sl := range rk.slots {
			for len(leftover) > 0 {
				c, r := s.Claim(sl.ord, leftover[0])
				if r != txn.ReasonOK {
					break
				}
				d.Claims = append(d.Claims, c)
				leftover = leftover[1:]
			}
		}
	}
	if len(leftover) > 0 {
		return fmt.Sprintf("gang %s needs %d tasks × (%s) at once: only %d could be claimed; %s",
			name, n, policy.Shape(rep.Resources), n-len(leftover), policy.Explain(s, rep, "")), false
	}
	return "", true
}

// step is one machine of a gang plan and how many tasks go there.
type step struct {
	ord   int32
	tasks int
}

// planGang picks the fewest racks, then the fewest machines in each, for n
// tasks (see the package doc). racks is reordered: planned racks first.
func planGang(racks []*rack, n int) []step {
	for _, rk := range racks {
		slices.SortFunc(rk.slots, func(a, b slot) int {
			return cmp.Or(cmp.Compare(b.fits, a.fits), a.score.compare(b.score), cmp.Compare(a.order, b.order))
		})
	}
	slices.SortFunc(racks, func(a, b *rack) int { return cmp.Or(cmp.Compare(b.fits, a.fits), cmp.Compare(a.order, b.order)) })
	// The fewest racks whose capacity covers n are the largest ones; the
	// last of them is swapped for the rack that holds the rest on the
	// fewest machines, then with the least capacity to spare.
	covered, r := 0, 0
	for covered < n {
		covered += racks[r].fits
		r++
	}
	rest := n - (covered - racks[r-1].fits)
	last, lastNeeds := r-1, machinesFor(racks[r-1].slots, rest)
	for i := r; i < len(racks) && racks[i].fits >= rest; i++ {
		needs := machinesFor(racks[i].slots, rest)
		if needs < lastNeeds || (needs == lastNeeds && racks[i].fits < racks[last].fits) {
			last, lastNeeds = i, needs
		}
	}
	racks[r-1], racks[last] = racks[last], racks[r-1]
	var plan []step
	left := n
	for _, rk := range racks[:r] {
		take := min(left, rk.fits)
		plan = appendMachines(plan, rk.slots, take)
		left -= take
	}
	return plan
}

// machinesFor counts the slots (sorted by capacity, largest first) that
// take tasks need.
func machinesFor(slots []slot, take int) int {
	for i, sl := range slots {
		if take -= sl.fits; take <= 0 {
			return i + 1
		}
	}
	return len(slots) + 1
}

// appendMachines plans take tasks on the fewest slots (sorted by capacity,
// largest first): whole slots while they are needed entirely, and for the
// remainder the slot with the least fragmentation gradient among those
// that hold it.
func appendMachines(plan []step, slots []slot, take int) []step {
	for i := 0; take > 0 && i < len(slots); i++ {
		if slots[i].fits <= take {
			plan = append(plan, step{ord: slots[i].ord, tasks: slots[i].fits})
			take -= slots[i].fits
			continue
		}
		best := i
		for j := i + 1; j < len(slots) && slots[j].fits >= take; j++ {
			if cmp.Or(slots[j].score.compare(slots[best].score), cmp.Compare(slots[j].fits, slots[best].fits)) < 0 {
				best = j
			}
		}
		plan = append(plan, step{ord: slots[best].ord, tasks: take})
		take = 0
	}
	return plan
}

// estimateFits estimates how many tasks shaped like t machine ord holds,
// up to n: an upper bound from its free CPU, memory, disk and devices and
// the job's max per machine. It only plans; every claim is checked by
// txn.Fits.
func (p *Policy) estimateFits(s *policy.Scratch, ord int32, t *txn.Task, n int) int {
	m := s.Machine(ord)
	free, r := m.Free(), t.Resources
	k := int64(n)
	for _, dim := range [][2]int64{{free.CPUMilli, r.CPUMilli}, {free.MemoryBytes, r.MemoryBytes}, {free.DiskBytes, r.DiskBytes}} {
		if dim[1] > 0 {
			k = min(k, dim[0]/dim[1])
		}
	}
	switch g := r.GPUMilli; {
	case g >= txn.MilliPerGPU:
		whole := int64(0)
		for _, u := range m.DeviceUsed {
			if u == 0 {
				whole++
			}
		}
		k = min(k, whole/(g/txn.MilliPerGPU))
	case g > 0:
		shares := int64(0)
		for _, u := range m.DeviceUsed {
			shares += (txn.MilliPerGPU - int64(u)) / g
		}
		k = min(k, shares)
	}
	if t.MaxPerMachine > 0 {
		k = min(k, int64(t.MaxPerMachine)-int64(s.JobTasksOn(ord)))
	}
	return int(max(k, 1)) // Check found room for one
}
