package view

import (
	"maps"
	"slices"

	"github.com/omegacell/omegacell/txn"
)

// View is a scheduler's indexed local copy of the cell. The zero value is
// not usable; call [New].
type View struct {
	revision uint64

	// ordinals maps machine id -> ordinal. A machine id named by a task
	// before its machine arrives gets an ordinal with a nil machine.
	ordinals  map[string]int32
	machines  []*txn.Machine // by ordinal
	residents [][]*txn.Task  // by ordinal: tasks holding resources there

	// Indexes over ready machines.
	ready      ordSet
	labels     map[string]*labelIndex
	gpus       ordSet   // ready machines with at least one device
	wholeFree  []ordSet // [k]: ready GPU machines with exactly k wholly free devices
	maxDevices int

	// Tasks live in their job's entry: no map is keyed by (job, index),
	// whose hash covers the job's whole id on every change.
	jobs        map[string]*jobEntry
	withPending map[string]struct{} // ids of jobs with pending tasks
	// gpuRequests counts pending and resource-holding tasks by GPU request.
	gpuRequests map[int64]int
	// shapes counts pending and resource-holding tasks by request.
	shapes map[txn.Resources]int
	// tenants: usage per tenant, ready capacity, weights (tenant.go).
	tenants tenants
	// ledger: quotas and their use, as the store keeps them, so claims
	// are pre-checked against quota by txn.Validate (a txn.QuotaState).
	ledger *txn.Ledger
}

// labelIndex is the ready machines carrying one label key, by value.
type labelIndex struct {
	byValue map[string]*ordSet
	values  []string // sorted values; nil when it must be rebuilt
}

// jobEntry is what the view knows about one job.
type jobEntry struct {
	info  JobInfo
	known bool // info came from PutJob (tasks may arrive before their job)
	tasks map[uint32]*txn.Task
	// residesAt is the position of each resource-holding task in its
	// machine's residents.
	residesAt map[uint32]int32
	// pending is the job's pending tasks by index.
	pending map[uint32]*txn.Task
	// on counts the job's tasks holding resources per machine ordinal.
	on map[int32]uint32
}

// New returns an empty view at revision 0.
func New() *View {
	return &View{
		ordinals:    make(map[string]int32),
		labels:      make(map[string]*labelIndex),
		jobs:        make(map[string]*jobEntry),
		withPending: make(map[string]struct{}),
		gpuRequests: make(map[int64]int),
		shapes:      make(map[txn.Resources]int),
		ledger:      txn.NewLedger(),
	}
}

// Reset empties the view, as before a resnapshot. Tenants that held
// resources or had a weight are reported by the next
// [View.TenantChanges] (with nothing held), as is the capacity.
func (v *View) Reset() {
	old := v.tenants
	*v = *New()
	v.tenants.changed = make(map[string]struct{})
	for n := range old.changed {
		v.tenants.changed[n] = struct{}{}
	}
	for n := range old.use {
		v.tenants.changed[n] = struct{}{}
	}
	for n := range old.weight {
		v.tenants.changed[n] = struct{}{}
	}
	v.tenants.capChanged = !old.capacity.IsZero() || old.capChanged
}

// Revision is the cell revision this copy reflects.
func (v *View) Revision() uint64 { return v.revision }

// SetRevision records that the copy now reflects revision r. Revisions only
// move forward; an older r is ignored.
func (v *View) SetRevision(r uint64) {
	if r > v.revision {
		v.revision = r
	}
}

// ---------------------------------------------------------------- txn.State

// Machine returns the machine or nil.
func (v *View) Machine(id string) *txn.Machine {
	if ord, ok := v.ordinals[id]; ok {
		return v.machines[ord]
	}
	return nil
}

// Task returns the task or nil.
func (v *View) Task(k txn.TaskKey) *txn.Task {
	if je := v.jobs[k.Job]; je != nil {
		return je.tasks[k.Index]
	}
	return nil
}

// TasksOfJobOn counts the job's tasks holding resources on a machine.
func (v *View) TasksOfJobOn(job, machine string) uint32 {
	ord, ok := v.ordinals[machine]
	if !ok {
		return 0
	}
	return v.JobPlacement(job).On(ord)
}

// Gang reports whether a job is a gang and how many of its tasks are
// pending.
func (v *View) Gang(job string) (uint32, bool) {
	if je := v.jobs[job]; je != nil && je.known && je.info.Gang {
		return uint32(len(je.pending)), true
	}
	return 0, false
}

// ------------------------------------------------------------------ changes

// PutMachine installs a new version of a machine and re-indexes it.
func (v *View) PutMachine(m *txn.Machine) {
	ord := v.ordinal(m.ID)
	old := v.machines[ord]
	v.machines[ord] = m
	v.reindexMachine(ord, old, m)
	v.tenants.machineChanged(old, m)
	v.ledger.AccountMachine(old, m)
}

// PutTask installs a new version of a task and updates the per-machine,
// per-job and pending indexes.
func (v *View) PutTask(t *txn.Task) {
	je := v.jobEntry(t.Key.Job)
	if old := je.tasks[t.Key.Index]; old != nil {
		v.untrack(je, old)
	}
	je.tasks[t.Key.Index] = t
	v.track(je, t)
}

// PutJob installs a job's scheduling information. Tasks of the job that
// arrived before it without their template's constraints and
// max-per-machine (from the protobuf stream) get them now.
func (v *View) PutJob(j JobInfo) {
	je := v.jobEntry(j.ID)
	retenant := !je.known || je.info.Tenant != j.Tenant
	je.info, je.known = j, true
	if retenant {
		for _, t := range je.tasks {
			if t.Tenant != j.Tenant {
				// Tasks of the stream carry no tenant: their job names it.
				nt := *t
				nt.Tenant = j.Tenant
				v.PutTask(&nt)
			}
		}
	}
	if len(j.Constraints) == 0 && j.MaxPerMachine == 0 {
		return
	}
	for _, t := range je.tasks {
		if t.Constraints == nil && t.MaxPerMachine == 0 {
			nt := *t
			nt.Constraints, nt.MaxPerMachine = j.Constraints, j.MaxPerMachine
			v.replaceTask(je, t, &nt)
		}
	}
}

// RemoveJob forgets a job and all its tasks (a finished job the scheduler
// no longer needs). Machines are not changed: their allocation is whatever
// their own latest version says.
func (v *View) RemoveJob(id string) {
	je, ok := v.jobs[id]
	if !ok {
		return
	}
	// Index order, so the residents left behind stay in a deterministic order.
	for _, idx := range slices.Sorted(maps.Keys(je.tasks)) {
		v.untrack(je, je.tasks[idx])
	}
	delete(v.jobs, id)
}

// ordinal returns the ordinal of a machine id, assigning the next one on
// first sight.
func (v *View) ordinal(id string) int32 {
	if ord, ok := v.ordinals[id]; ok {
		return ord
	}
	ord := int32(len(v.machines))
	v.ordinals[id] = ord
	v.machines = append(v.machines, nil)
	v.residents = append(v.residents, nil)
	return ord
}

func (v *View) jobEntry(id string) *jobEntry {
	je, ok := v.jobs[id]
	if !ok {
		je = &jobEntry{
			info:      JobInfo{ID: id},
			tasks:     make(map[uint32]*txn.Task),
			residesAt: make(map[uint32]int32),
			pending:   make(map[uint32]*txn.Task),
			on:        make(map[int32]uint32),
		}
		v.jobs[id] = je
	}
	return je
}

// reindexMachine moves a machine between the ready, label and GPU indexes
// as its state, labels and free devices changed from old to m.
func (v *View) reindexMachine(ord int32, old, m *txn.Machine) {
	wasReady := old != nil && old.State == txn.MachineReady
	isReady := m.State == txn.MachineReady
	switch {
	case wasReady && !isReady:
		v.ready.remove(ord)
	case !wasReady && isReady:
		v.ready.insert(ord)
	}
	if !wasReady || !isReady || !sameLabels(old.Labels, m.Labels) {
		if wasReady {
			v.unindexLabels(ord, old.Labels)
		}
		if isReady {
			v.indexLabels(ord, m.Labels)
		}
	}
	oldFree, newFree := -1, -1 // -1: not in the GPU indexes
	if wasReady && old.Devices() > 0 {
		oldFree = wholeFreeDevices(old)
	}
	if isReady && m.Devices() > 0 {
		newFree = wholeFreeDevices(m)
	}
	if oldFree == newFree {
		return
	}
	if oldFree >= 0 {
		v.wholeFree[oldFree].remove(ord)
		if newFree < 0 {
			v.gpus.remove(ord)
		}
	}
	if newFree >= 0 {
		for len(v.wholeFree) <= newFree {
			v.wholeFree = append(v.wholeFree, nil)
		}
		v.wholeFree[newFree].insert(ord)
		if oldFree < 0 {
			v.gpus.insert(ord)
		}
		v.maxDevices = max(v.maxDevices, m.Devices())
	}
}

func (v *View) indexLabels(ord int32, labels map[string]string) {
	for k, val := range labels {
		li := v.labels[k]
		if li == nil {
			li = &labelIndex{byValue: make(map[string]*ordSet)}
			v.labels[k] = li
		}
		s := li.byValue[val]
		if s == nil {
			s = new(ordSet)
			li.byValue[val] = s
			li.values = nil
		}
		s.insert(ord)
	}
}

func (v *View) unindexLabels(ord int32, labels map[string]string) {
	for k, val := range labels {
		li := v.labels[k]
		if li == nil {
			continue
		}
		s := li.byValue[val]
		if s == nil {
			continue
		}
		s.remove(ord)
		if len(*s) == 0 {
			delete(li.byValue, val)
			li.values = nil
			if len(li.byValue) == 0 {
				delete(v.labels, k)
			}
		}
	}
}

func sameLabels(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, va := range a {
		if vb, ok := b[k]; !ok || vb != va {
			return false
		}
	}
	return true
}

// wholeFreeDevices counts the devices of m with nothing in use.
func wholeFreeDevices(m *txn.Machine) int {
	n := 0
	for _, used := range m.DeviceUsed {
		if used == 0 {
			n++
		}
	}
	return n
}

// track adds t to the indexes; untrack removes it. Both mirror the same
// conditions so a put of a new version is untrack(old) + track(new).
func (v *View) track(je *jobEntry, t *txn.Task) {
	if t.State == txn.TaskPending {
		je.pending[t.Key.Index] = t
		v.withPending[t.Key.Job] = struct{}{}
	}
	if t.State.HoldsResources() {
		ord := v.ordinal(t.Machine)
		je.residesAt[t.Key.Index] = int32(len(v.residents[ord]))
		v.residents[ord] = append(v.residents[ord], t)
		je.on[ord]++
		v.tenants.charge(t.Tenant, t.Resources, 1)
	}
	v.ledger.AccountTask(nil, t)
	if t.State == txn.TaskPending || t.State.HoldsResources() {
		v.shapes[t.Resources]++
		if t.Resources.GPUMilli > 0 {
			v.gpuRequests[t.Resources.GPUMilli]++
		}
	}
}

func (v *View) untrack(je *jobEntry, t *txn.Task) {
	if t.State == txn.TaskPending {
		delete(je.pending, t.Key.Index)
		if len(je.pending) == 0 {
			delete(v.withPending, t.Key.Job)
		}
	}
	if t.State.HoldsResources() {
		ord := v.ordinals[t.Machine]
		rs := v.residents[ord]
		i := je.residesAt[t.Key.Index]
		last := rs[len(rs)-1]
		rs[i] = last
		lastJob := je
		if last.Key.Job != t.Key.Job {
			lastJob = v.jobs[last.Key.Job]
		}
		lastJob.residesAt[last.Key.Index] = i
		rs[len(rs)-1] = nil
		v.residents[ord] = rs[:len(rs)-1]
		delete(je.residesAt, t.Key.Index)
		if je.on[ord]--; je.on[ord] == 0 {
			delete(je.on, ord)
		}
		v.tenants.charge(t.Tenant, t.Resources, -1)
	}
	v.ledger.AccountTask(t, nil)
	if t.State == txn.TaskPending || t.State.HoldsResources() {
		if v.shapes[t.Resources]--; v.shapes[t.Resources] == 0 {
			delete(v.shapes, t.Resources)
		}
		if t.Resources.GPUMilli > 0 {
			if v.gpuRequests[t.Resources.GPUMilli]--; v.gpuRequests[t.Resources.GPUMilli] == 0 {
				delete(v.gpuRequests, t.Resources.GPUMilli)
			}
		}
	}
}

// replaceTask swaps in a new version of a task that differs only in fields
// no index depends on, keeping its position in every index.
func (v *View) replaceTask(je *jobEntry, old, nt *txn.Task) {
	je.tasks[nt.Key.Index] = nt
	if old.State == txn.TaskPending {
		je.pending[nt.Key.Index] = nt
	}
	if old.State.HoldsResources() {
		v.residents[v.ordinals[old.Machine]][je.residesAt[old.Key.Index]] = nt
	}
}
