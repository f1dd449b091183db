package view

import (
	"cmp"
	"slices"

	"github.com/omegacell/omegacell/txn"
)

// NumOrdinals is one more than the largest machine ordinal.
func (v *View) NumOrdinals() int { return len(v.machines) }

// Ordinal returns a machine's ordinal.
func (v *View) Ordinal(id string) (int32, bool) {
	ord, ok := v.ordinals[id]
	return ord, ok && v.machines[ord] != nil
}

// MachineAt returns the machine with ordinal ord, or nil if only its id is
// known so far.
func (v *View) MachineAt(ord int32) *txn.Machine { return v.machines[ord] }

// Machines is every known machine (any state) in ordinal order. It
// allocates.
func (v *View) Machines() []*txn.Machine {
	out := make([]*txn.Machine, 0, len(v.machines))
	for _, m := range v.machines {
		if m != nil {
			out = append(out, m)
		}
	}
	return out
}

// Tasks is every task of the view, by job id and index. It allocates.
func (v *View) Tasks() []*txn.Task {
	var out []*txn.Task
	for _, je := range v.jobs {
		for _, t := range je.tasks {
			out = append(out, t)
		}
	}
	slices.SortFunc(out, func(a, b *txn.Task) int {
		return cmp.Or(cmp.Compare(a.Key.Job, b.Key.Job), cmp.Compare(a.Key.Index, b.Key.Index))
	})
	return out
}

// Ready is the ordinals of every ready machine: the stable machine order
// samplers permute.
func (v *View) Ready() []int32 { return v.ready }

// WithLabel is the ready machines whose label key has the given value.
func (v *View) WithLabel(key, value string) []int32 {
	if li := v.labels[key]; li != nil {
		if s := li.byValue[value]; s != nil {
			return *s
		}
	}
	return nil
}

// LabelValues is the sorted distinct values of a label key among ready
// machines: the failure domains of a spread key.
func (v *View) LabelValues(key string) []string {
	li := v.labels[key]
	if li == nil {
		return nil
	}
	if li.values == nil {
		li.values = make([]string, 0, len(li.byValue))
		for val := range li.byValue {
			li.values = append(li.values, val)
		}
		slices.Sort(li.values)
	}
	return li.values
}

// Candidates is a superset of the ready machines that satisfy cs, taken
// from the most selective "in" term's label index (all ready machines when
// there is none). Callers still check every term on each machine.
func (v *View) Candidates(cs []txn.Constraint) []int32 {
	best, bestSize := -1, len(v.ready)
	for i, c := range cs {
		if c.Op != txn.OpIn {
			continue
		}
		size := 0
		for _, val := range c.Values {
			size += len(v.WithLabel(c.Key, val))
		}
		if size < bestSize {
			best, bestSize = i, size
		}
	}
	if best < 0 {
		return v.ready
	}
	c := cs[best]
	if len(c.Values) == 1 {
		return v.WithLabel(c.Key, c.Values[0])
	}
	lists := make([][]int32, 0, len(c.Values))
	for _, val := range c.Values {
		lists = append(lists, v.WithLabel(c.Key, val))
	}
	return union(lists)
}

// GPUMachines is the ready machines with at least one GPU device.
func (v *View) GPUMachines() []int32 { return v.gpus }

// WithWholeFreeDevices is the ready GPU machines with exactly k wholly free
// devices.
func (v *View) WithWholeFreeDevices(k int) []int32 {
	if k < 0 || k >= len(v.wholeFree) {
		return nil
	}
	return v.wholeFree[k]
}

// AtLeastWholeFreeDevices is the ready GPU machines with k or more wholly
// free devices, fullest bucket first (k free, then k+1, ...). It allocates
// one slice.
func (v *View) AtLeastWholeFreeDevices(k int) []int32 {
	n := 0
	for i := max(k, 0); i < len(v.wholeFree); i++ {
		n += len(v.wholeFree[i])
	}
	out := make([]int32, 0, n)
	for i := max(k, 0); i < len(v.wholeFree); i++ {
		out = append(out, v.wholeFree[i]...)
	}
	return out
}

// MaxDevices is the largest number of GPU devices of any machine seen.
func (v *View) MaxDevices() int { return v.maxDevices }

// TasksOn is the tasks holding resources on machine ord, in no particular
// (but deterministic) order.
func (v *View) TasksOn(ord int32) []*txn.Task { return v.residents[ord] }

// GPURequest is how many pending or resource-holding tasks of the cell
// request a given amount of GPU.
type GPURequest struct {
	Milli int64
	Tasks int
}

// GPUWorkload is the cell's GPU requests by size, ascending: the workload
// a fragmentation measure weighs free GPU capacity against.
func (v *View) GPUWorkload() []GPURequest {
	out := make([]GPURequest, 0, len(v.gpuRequests))
	for milli, n := range v.gpuRequests {
		out = append(out, GPURequest{Milli: milli, Tasks: n})
	}
	slices.SortFunc(out, func(a, b GPURequest) int { return cmp.Compare(a.Milli, b.Milli) })
	return out
}

// Shape is how many pending or resource-holding tasks of the cell request
// exactly the given resources.
type Shape struct {
	Resources txn.Resources
	Tasks     int
}

// Shapes is the cell's task requests by shape, most common first (ties in
// a fixed order of the resources): the workload a fragmentation measure
// that also weighs CPU and memory is taken from. It allocates.
func (v *View) Shapes() []Shape {
	out := make([]Shape, 0, len(v.shapes))
	for r, n := range v.shapes {
		out = append(out, Shape{Resources: r, Tasks: n})
	}
	slices.SortFunc(out, func(a, b Shape) int {
		return cmp.Or(cmp.Compare(b.Tasks, a.Tasks), cmp.Compare(a.Resources.GPUMilli, b.Resources.GPUMilli),
			cmp.Compare(a.Resources.CPUMilli, b.Resources.CPUMilli), cmp.Compare(a.Resources.MemoryBytes, b.Resources.MemoryBytes),
			cmp.Compare(a.Resources.DiskBytes, b.Resources.DiskBytes))
	})
	return out
}

// ---------------------------------------------------------------------- jobs

// Job returns a job's scheduling information, if PutJob gave it.
func (v *View) Job(id string) (JobInfo, bool) {
	je, ok := v.jobs[id]
	if !ok || !je.known {
		return JobInfo{}, false
	}
	return je.info, true
}

// Pending is the job's pending tasks in index order. It allocates.
func (v *View) Pending(job string) []*txn.Task {
	je, ok := v.jobs[job]
	if !ok {
		return nil
	}
	out := make([]*txn.Task, 0, len(je.pending))
	for _, t := range je.pending {
		out = append(out, t)
	}
	slices.SortFunc(out, func(a, b *txn.Task) int { return cmp.Compare(a.Key.Index, b.Key.Index) })
	return out
}

// JobsWithPending is the known jobs of a scheduler that have pending tasks,
// in queue order: higher priority first, then earlier submission, then id.
func (v *View) JobsWithPending(scheduler string) []JobInfo {
	var out []JobInfo
	for id := range v.withPending {
		je := v.jobs[id]
		if je.known && je.info.Scheduler == scheduler {
			out = append(out, je.info)
		}
	}
	slices.SortFunc(out, func(a, b JobInfo) int {
		return cmp.Or(cmp.Compare(b.Priority, a.Priority), cmp.Compare(a.SubmitTime, b.SubmitTime), cmp.Compare(a.ID, b.ID))
	})
	return out
}

// JobPlacement is a read-only handle on where one job's tasks hold
// resources; the zero value (unknown job) has none.
type JobPlacement struct {
	v  *View
	je *jobEntry
}

// JobPlacement returns the handle of a job; look it up once per placement
// and ask it per machine.
func (v *View) JobPlacement(job string) JobPlacement {
	return JobPlacement{v: v, je: v.jobs[job]}
}

// On counts the job's tasks holding resources on machine ord.
func (p JobPlacement) On(ord int32) uint32 {
	if p.je == nil {
		return 0
	}
	return p.je.on[ord]
}

// Machines counts the machines the job holds resources on.
func (p JobPlacement) Machines() int {
	if p.je == nil {
		return 0
	}
	return len(p.je.on)
}

// DomainCounts counts the job's resource-holding tasks per value of a label
// key (its failure domains). Machines without the label are not counted.
// It costs one step per machine the job is on, not per machine of the cell.
func (p JobPlacement) DomainCounts(key string) map[string]int {
	out := make(map[string]int)
	if p.je == nil {
		return out
	}
	for ord, n := range p.je.on {
		if m := p.v.machines[ord]; m != nil {
			if val, ok := m.Labels[key]; ok {
				out[val] += int(n)
			}
		}
	}
	return out
}

// Residents returns the job's tasks holding resources, by index (a gang
// victim is evicted whole, wherever its tasks are).
func (p JobPlacement) Residents() []*txn.Task {
	if p.je == nil {
		return nil
	}
	idx := make([]uint32, 0, len(p.je.residesAt))
	for i := range p.je.residesAt {
		idx = append(idx, i)
	}
	slices.Sort(idx)
	out := make([]*txn.Task, len(idx))
	for n, i := range idx {
		out[n] = p.je.tasks[i]
	}
	return out
}
