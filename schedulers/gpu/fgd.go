package gpu

import (
	"cmp"
	"slices"

	"github.com/omegacell/omegacell/schedulers/policy"
	"github.com/omegacell/omegacell/schedulers/view"
	"github.com/omegacell/omegacell/txn"
)

// Demand is one task shape of a target workload and its weight.
type Demand struct {
	Resources txn.Resources
	// Weight is the shape's share of the workload's tasks, in millionths
	// (WeightScale is all of them).
	Weight int64
}

// WeightScale is the unit of [Demand.Weight]: 1e6 is every task.
const WeightScale = 1_000_000

// DefaultCoverage is the share of tasks, in millionths, that the shapes of
// a learned workload cover: FGD's "typical tasks" are the most common
// shapes covering 95% of them.
const DefaultCoverage = 950_000

// Workload is the target workload fragmentation is measured against: the
// task shapes expected to arrive and their weights. Only shapes with GPUs
// matter: FGD counts every idle GPU as a fragment for a CPU-only shape
// wherever it lands, a term no placement changes. The policy works on it
// sorted by GPU request, shapes without GPUs left out.
type Workload []Demand

// LearnWorkload is the workload of the given shapes (view.View.Shapes:
// the cell's pending and running tasks, most common first): the most
// common shapes until they cover coverage millionths of the tasks, their
// weights normalised over the shapes kept.
func LearnWorkload(shapes []view.Shape, coverage int64) Workload {
	var total int64
	for _, s := range shapes {
		total += int64(s.Tasks)
	}
	if total == 0 {
		return nil
	}
	var kept int64 // tasks of the shapes kept
	n := 0
	for n < len(shapes) && kept*WeightScale < coverage*total {
		kept += int64(shapes[n].Tasks)
		n++
	}
	w := make(Workload, 0, n)
	for _, s := range shapes[:n] {
		if s.Resources.GPUMilli == 0 {
			continue
		}
		w = append(w, Demand{Resources: s.Resources, Weight: max(1, int64(s.Tasks)*WeightScale/kept)})
	}
	return w.normalize()
}

// normalize sorts the demands by GPU request (the order fragmentation
// walks devices in) and drops shapes without GPUs.
func (w Workload) normalize() Workload {
	w = slices.DeleteFunc(slices.Clone(w), func(d Demand) bool { return d.Resources.GPUMilli <= 0 || d.Weight <= 0 })
	slices.SortStableFunc(w, func(a, b Demand) int { return cmp.Compare(a.Resources.GPUMilli, b.Resources.GPUMilli) })
	return w
}

// sorted is w normalised, without copying if it already is.
func (w Workload) sorted() Workload {
	if w.normalized() {
		return w
	}
	return w.normalize()
}

// workloadFor is the workload a Place call measures against: the
// policy's given one, else the one learned from the view, else the task
// being placed.
func (p *Policy) workloadFor(v *view.View, rep *txn.Task) Workload {
	if len(p.Workload) > 0 {
		return p.Workload.sorted()
	}
	if w := LearnWorkload(v.Shapes(), p.coverage()); len(w) > 0 {
		return w
	}
	if rep.Resources.GPUMilli > 0 {
		return Workload{{Resources: rep.Resources, Weight: WeightScale}}
	}
	return nil
}

// gangWorkload is the workload a gang's plan is ranked against: the
// policy's given one, else the cell's GPU requests by size alone
// (view.View.GPUWorkload), which are few, so that planning a gang over
// every feasible machine stays fast; the plan only orders machines of
// equal capacity by it, and every claim is checked by txn.
func (p *Policy) gangWorkload(v *view.View, rep *txn.Task) Workload {
	if len(p.Workload) > 0 {
		return p.Workload.sorted()
	}
	reqs := v.GPUWorkload()
	var total int64
	for _, r := range reqs {
		total += int64(r.Tasks)
	}
	w := make(Workload, 0, len(reqs))
	for _, r := range reqs {
		w = append(w, Demand{Resources: txn.Resources{GPUMilli: r.Milli}, Weight: max(1, int64(r.Tasks)*WeightScale/max(total, 1))})
	}
	if len(w) == 0 && rep.Resources.GPUMilli > 0 {
		w = Workload{{Resources: txn.Resources{GPUMilli: rep.Resources.GPUMilli}, Weight: WeightScale}}
	}
	return w.normalize()
}

// state is what fragmentation looks at on one machine: free CPU and
// memory and the milli-GPU used on each device.
type state struct {
	cpu, mem int64
	used     []uint32
}

// Fragmentation is FGD's F_n(M) for machine state s: the expected idle
// milli-GPU that a task of the workload cannot use, in milli-GPU ×
// millionths. For a shape the machine cannot hold at all (CPU, memory or
// GPUs short) every idle GPU is a fragment; otherwise, for a fractional
// shape, the idle part of each device with less free than it asks, and
// for a whole-GPU shape the idle part of every partly used device.
func (w Workload) fragmentation(s state) int64 {
	var sorted [maxDevicesBuf]int64
	free := sorted[:0]
	if len(s.used) > maxDevicesBuf {
		free = make([]int64, 0, len(s.used))
	}
	var total, whole int64
	for _, u := range s.used {
		f := int64(txn.MilliPerGPU) - int64(u)
		total += f
		if u == 0 {
			whole++
		}
		// insertion sort: machines have few devices
		i := len(free)
		free = append(free, f)
		for i > 0 && free[i-1] > f {
			free[i] = free[i-1]
			i--
		}
		free[i] = f
	}
	if total == 0 {
		return 0
	}
	var frag, below int64
	j := 0
	for _, d := range w {
		g := d.Resources.GPUMilli
		if g < txn.MilliPerGPU {
			for j < len(free) && free[j] < g {
				below += free[j]
				j++
			}
		}
		switch {
		case d.Resources.CPUMilli > s.cpu || d.Resources.MemoryBytes > s.mem:
			frag += d.Weight * total
		case g < txn.MilliPerGPU:
			frag += d.Weight * below
		case whole < g/txn.MilliPerGPU:
			frag += d.Weight * total
		default:
			frag += d.Weight * (total - whole*txn.MilliPerGPU)
		}
	}
	return frag
}

// Score is the ranking of one machine for one task, lower is better, and
// its breakdown. Terms compare in order.
type Score struct {
	// OnGPUMachine: a task without GPUs ranks machines with devices after
	// machines without.
	OnGPUMachine bool
	// Gradient is what the task costs here ([Workload] units: milli-GPU
	// × millionths): FragGradient, the growth of the workload's
	// fragmentation (FGD's criterion), plus BalanceGradient, the growth
	// of the machine's CPU-to-GPU imbalance weighted by
	// Policy.BalanceWeight.
	Gradient        int64
	FragGradient    int64
	BalanceGradient int64
	// Stranded is the change of the machine's idle milli-GPU on partly
	// used devices (txn.StrandedGPUMilli): among equal gradients, a
	// fractional task completes a used device before it breaks a whole
	// one.
	Stranded int64
	// IdleGPU is the machine's idle milli-GPU after the task, for tasks
	// without GPUs only: they go where GPUs are already used up.
	IdleGPU int64
	// Fit breaks ties. For a GPU task it is the machine's imbalance after
	// the task as a fraction of its CPU (policy.FractionScale is all of
	// it); for a task without GPUs, the CPU and GPU the machine would have
	// left, each as a fraction of its capacity, summed (best fit).
	Fit int64
	// Before and After are the machine's fragmentation around the task.
	Before, After int64
}

// Compare orders scores, lower first (better). Machines with equal scores
// are then taken in the view's ordinal order.
func (s Score) Compare(o Score) int {
	b2i := func(b bool) int {
		if b {
			return 1
		}
		return 0
	}
	return cmp.Or(cmp.Compare(b2i(s.OnGPUMachine), b2i(o.OnGPUMachine)), cmp.Compare(s.Gradient, o.Gradient),
		cmp.Compare(s.Stranded, o.Stranded), cmp.Compare(s.IdleGPU, o.IdleGPU), cmp.Compare(s.Fit, o.Fit))
}

// maxDevicesBuf is the device count scored without allocating.
const maxDevicesBuf = 64

// rank scores machine m for one more task shaped r and picks its devices:
// for a fractional request, the device whose use grows fragmentation least
// (the most used of those on ties); for whole GPUs, txn.AssignDevices'
// wholly free devices. ok is false when r does not fit on m.
func (tg target) rank(m *txn.Machine, r txn.Resources) (Score, []txn.DeviceShare, bool) {
	return tg.rankDevices(m, r, nil)
}

// rankDevices is rank with the devices given (gang planning, which only
// estimates, passes txn.AssignDevices'), or chosen as rank says if nil.
func (tg target) rankDevices(m *txn.Machine, r txn.Resources, given []txn.DeviceShare) (Score, []txn.DeviceShare, bool) {
	w := tg.w
	free := m.Free()
	if free.CPUMilli < r.CPUMilli || free.MemoryBytes < r.MemoryBytes || free.DiskBytes < r.DiskBytes {
		return Score{}, nil, false
	}
	var buf [maxDevicesBuf]uint32
	after := buf[:0]
	if m.Devices() > maxDevicesBuf {
		after = make([]uint32, 0, m.Devices())
	}
	after = append(after, m.DeviceUsed...)
	before := w.fragmentation(state{cpu: free.CPUMilli, mem: free.MemoryBytes, used: m.DeviceUsed})
	next := state{cpu: free.CPUMilli - r.CPUMilli, mem: free.MemoryBytes - r.MemoryBytes, used: after}
	sc := Score{Before: before, Fit: policy.Fraction(next.cpu, m.Capacity.CPUMilli)}
	var devices []txn.DeviceShare
	switch g := r.GPUMilli; {
	case g == 0:
		sc.After = w.fragmentation(next)
		sc.OnGPUMachine = m.Devices() > 0
		sc.IdleGPU = m.Capacity.GPUMilli - m.Allocated.GPUMilli
	case g < txn.MilliPerGPU:
		best, bestAfter := -1, int64(0)
		search := given == nil
		if !search {
			best = int(given[0].Device)
			after[best] += uint32(g)
			bestAfter = w.fragmentation(next)
		}
		var tried [maxDevicesBuf]uint32 // device uses already scored
		nTried := 0
	devices:
		for i, u := range m.DeviceUsed {
			if !search || int64(u)+g > txn.MilliPerGPU {
				continue
			}
			for _, x := range tried[:nTried] {
				if x == u {
					continue devices // same use, same fragmentation
				}
			}
			if nTried < len(tried) {
				tried[nTried] = u
				nTried++
			}
			after[i] = u + uint32(g)
			f := w.fragmentation(next)
			after[i] = u
			if best < 0 || f < bestAfter || (f == bestAfter && u > m.DeviceUsed[best]) {
				best, bestAfter = i, f
			}
		}
		if best < 0 {
			return Score{}, nil, false
		}
		devices = []txn.DeviceShare{{Device: uint32(best), Milli: uint32(g)}}
		sc.After = bestAfter
		u := int64(m.DeviceUsed[best])
		switch {
		case u == 0:
			sc.Stranded = txn.MilliPerGPU - g
		case u+g == txn.MilliPerGPU:
			sc.Stranded = -(txn.MilliPerGPU - u)
		default:
			sc.Stranded = -g
		}
	default:
		d, ok := given, given != nil
		if !ok {
			d, ok = txn.AssignDevices(m, g)
		}
		if !ok {
			return Score{}, nil, false
		}
		for _, s := range d {
			after[s.Device] += s.Milli
		}
		devices = d
		sc.After = w.fragmentation(next)
	}
	sc.FragGradient = sc.After - sc.Before
	idle := m.Capacity.GPUMilli - m.Allocated.GPUMilli
	if r.GPUMilli == 0 {
		if m.Capacity.GPUMilli > 0 {
			sc.Fit += policy.Fraction(idle, m.Capacity.GPUMilli)
		}
	} else {
		ratio := tg.ratio
		after := ratio.imbalance(next.cpu, idle-r.GPUMilli)
		// In milli-GPU, rounded: a rounding error must not outrank the
		// terms after the gradient.
		delta := (after - ratio.imbalance(free.CPUMilli, idle) + 500) / 1000
		sc.BalanceGradient = delta * WeightScale * tg.balance / 1000
		sc.Fit = policy.Fraction(after/1000*ratio.cpu/max(ratio.gpu, 1), m.Capacity.CPUMilli)
	}
	sc.Gradient = sc.FragGradient + sc.BalanceGradient
	return sc, devices, true
}

// target is what a Place call ranks machines against: the workload, its
// CPU per GPU and the policy's balance weight.
type target struct {
	w       Workload
	ratio   ratio
	balance int64
}

func (p *Policy) target(w Workload) target {
	return target{w: w, ratio: w.cpuPerGPU(), balance: p.BalanceWeight}
}

// ratio is the workload's CPU per GPU: cpu milli-CPU for gpu milli-GPU.
type ratio struct{ cpu, gpu int64 }

// cpuPerGPU is the CPU the workload asks per GPU, weighted by its shapes.
func (w Workload) cpuPerGPU() ratio {
	var r ratio
	for _, d := range w {
		r.cpu += d.Weight * d.Resources.CPUMilli / 1000
		r.gpu += d.Weight * d.Resources.GPUMilli / 1000
	}
	return r
}

// imbalance is how far a machine with cpu milli-CPU and gpu milli-GPU
// idle is from the workload's CPU per GPU, in micro-GPU: the idle GPU its
// CPU cannot serve, counted twice (CPU short strands GPUs), or the GPU its
// spare CPU would need (spare CPU is only idle CPU).
func (r ratio) imbalance(cpu, gpu int64) int64 {
	if r.cpu <= 0 || r.gpu <= 0 {
		return 0
	}
	d := cpu - gpu*r.cpu/r.gpu
	if d < 0 {
		d = -2 * d
	}
	return d * r.gpu * 1000 / r.cpu
}
