package sim

import (
	"github.com/omegacell/omegacell/txn"
)

// cell is the simulator's authoritative cell state: the shared state that
// transactions are validated against with txn.Validate and installed into
// with txn.Apply, exactly as the store does. It implements txn.Mutable.
//
// Tasks live in their job's slice rather than in one big map: lookups go
// through the (much smaller) map of live jobs, and a finished job's tasks
// go away with it.
//
// Besides the state, the cell integrates resource use over virtual time for
// the utilisation metrics; every change first accounts the time since the
// previous one.
type cell struct {
	machines []*txn.Machine
	// hints[i] is what is free on machines[i] (see machineHint).
	hints []machineHint
	index map[string]int32
	jobs  map[string]*job
	now   *float64

	capacity  txn.Resources // of machines that are not down
	allocated txn.Resources
	stranded  int64 // txn.StrandedGPUMilli summed over machines
	last      float64
	area      usageArea

	// mirror, if set, is kept equal to the cell for the production
	// policies (see policies.go).
	mirror *mirror

	// ledger keeps tenants' quotas and use exactly as the store's state
	// does (every task and machine version goes through it), so
	// txn.Validate enforces the same quotas here (txn.QuotaState).
	// Tenants' quotas are set with ledger.SetTenant; tasks carry their
	// job's tenant.
	ledger *txn.Ledger
	// tenants, if set, counts what each tenant holds (tenants.go).
	tenants *tenantBook
}

// Ledger implements txn.QuotaState.
func (c *cell) Ledger() *txn.Ledger { return c.ledger }

// usageArea integrates resources over time (resource × seconds).
type usageArea struct {
	CapCPU, CapMem, CapGPU    float64
	UsedCPU, UsedMem, UsedGPU float64
	StrandedGPU               float64
}

func newCell(machines []*txn.Machine, now *float64) *cell {
	c := &cell{index: make(map[string]int32, len(machines)), jobs: make(map[string]*job), now: now, ledger: txn.NewLedger()}
	for _, m := range machines {
		c.addMachine(m)
	}
	return c
}

// Machine implements txn.State.
func (c *cell) Machine(id string) *txn.Machine {
	if i, ok := c.index[id]; ok {
		return c.machines[i]
	}
	return nil
}

// Task implements txn.State.
func (c *cell) Task(k txn.TaskKey) *txn.Task {
	j := c.jobs[k.Job]
	if j == nil || int(k.Index) >= len(j.tasks) {
		return nil
	}
	return j.tasks[k.Index]
}

// TasksOfJobOn implements txn.State. txn only asks for jobs with a
// per-machine limit, which are rare, so a scan of the job's tasks is fine.
func (c *cell) TasksOfJobOn(jobID, machine string) uint32 {
	j := c.jobs[jobID]
	if j == nil {
		return 0
	}
	var n uint32
	for _, t := range j.tasks {
		if t != nil && t.Machine == machine && t.State.HoldsResources() {
			n++
		}
	}
	return n
}

// Gang implements txn.State. The simulator's workloads have no gangs (an
// all-or-nothing commit mode stands in for them).
func (c *cell) Gang(string) (uint32, bool) { return 0, false }

// PutMachine implements txn.Mutable: it replaces a known machine.
func (c *cell) PutMachine(m *txn.Machine) {
	i := c.index[m.ID]
	c.account()
	c.uncount(c.machines[i])
	c.ledger.AccountMachine(c.machines[i], m)
	c.machines[i] = m
	c.hints[i] = hintOf(m)
	c.count(m)
	if c.mirror != nil {
		c.mirror.v.PutMachine(m)
	}
}

// PutTask implements txn.Mutable: it replaces a task of a live job.
func (c *cell) PutTask(t *txn.Task) {
	j := c.jobs[t.Key.Job]
	old := j.tasks[t.Key.Index]
	c.ledger.AccountTask(old, t)
	if c.tenants != nil {
		c.tenants.change(j.spec.Tenant, old, t)
	}
	j.tasks[t.Key.Index] = t
	if c.mirror != nil {
		c.mirror.v.PutTask(t)
	}
}

// addJob adds a submitted job with its pending tasks.
func (c *cell) addJob(j *job) {
	c.jobs[j.spec.ID] = j
	for _, t := range j.tasks {
		c.ledger.AccountTask(nil, t)
	}
	if c.mirror != nil {
		c.mirror.addJob(j)
	}
}

// retireTask removes task i of j from the cell: it finished, was killed or
// was lost for good. final is its last version, for the mirror; nil when
// the job is about to be forgotten as a whole.
func (c *cell) retireTask(j *job, i uint32, final *txn.Task) {
	c.ledger.AccountTask(j.tasks[i], nil)
	if c.tenants != nil {
		c.tenants.change(j.spec.Tenant, j.tasks[i], nil)
	}
	j.tasks[i] = nil
	j.live--
	if c.mirror != nil && final != nil {
		c.mirror.v.PutTask(final)
	}
}

// forgetJob drops a job with no task left.
func (c *cell) forgetJob(j *job) {
	delete(c.jobs, j.spec.ID)
	if c.mirror != nil {
		c.mirror.v.RemoveJob(j.spec.ID)
	}
}

// addMachine adds a machine the cell did not have.
func (c *cell) addMachine(m *txn.Machine) {
	c.account()
	i := int32(len(c.machines))
	c.index[m.ID] = i
	c.machines = append(c.machines, m)
	c.ledger.AccountMachine(nil, m)
	c.hints = append(c.hints, hintOf(m))
	c.count(m)
	if c.mirror != nil {
		c.mirror.v.PutMachine(m)
	}
}

// machineHint is an index entry: the free CPU and memory of a machine, or
// -1 if it takes no tasks. Placement scans these compact entries to skip
// machines where a request's CPU or memory obviously exceeds what is free,
// without touching the machine object; every machine it does not skip is
// then checked with txn.FitsAnywhere, the one fit check. A hint may
// overstate what a scheduler's own copy has free (its claims are not in
// the hint) but never understates it, so no machine that fits is skipped.
type machineHint struct {
	cpu, mem int64
}

func hintOf(m *txn.Machine) machineHint {
	if m.State != txn.MachineReady {
		return machineHint{-1, -1}
	}
	f := m.Free()
	return machineHint{f.CPUMilli, f.MemoryBytes}
}

// copy is the scheduler's copy of the cell at this moment.
func (c *cell) copy() cellCopy { return cellCopy{machines: c.machines, hints: c.hints, state: c} }

// cellCopy is a scheduler's copy of (part of) the cell: machines and their
// hints, index-aligned. Machine objects are never mutated once installed,
// so a copy stays valid as long as its slices are not written to.
type cellCopy struct {
	machines []*txn.Machine
	hints    []machineHint
	// state answers TasksOfJobOn for jobs with a per-machine limit.
	state txn.State
}

// account adds the time since the last change to the usage integrals.
func (c *cell) account() {
	dt := *c.now - c.last
	if dt <= 0 {
		return
	}
	c.last = *c.now
	a := &c.area
	a.CapCPU += float64(c.capacity.CPUMilli) * dt
	a.CapMem += float64(c.capacity.MemoryBytes) * dt
	a.CapGPU += float64(c.capacity.GPUMilli) * dt
	a.UsedCPU += float64(c.allocated.CPUMilli) * dt
	a.UsedMem += float64(c.allocated.MemoryBytes) * dt
	a.UsedGPU += float64(c.allocated.GPUMilli) * dt
	a.StrandedGPU += float64(c.stranded) * dt
}

func (c *cell) count(m *txn.Machine) {
	if m.State != txn.MachineDown {
		c.capacity = c.capacity.Add(m.Capacity)
	}
	c.allocated = c.allocated.Add(m.Allocated)
	if m.Devices() > 0 {
		c.stranded += txn.StrandedGPUMilli(m)
	}
}

func (c *cell) uncount(m *txn.Machine) {
	if m.State != txn.MachineDown {
		c.capacity = c.capacity.Sub(m.Capacity)
	}
	c.allocated = c.allocated.Sub(m.Allocated)
	if m.Devices() > 0 {
		c.stranded -= txn.StrandedGPUMilli(m)
	}
}
