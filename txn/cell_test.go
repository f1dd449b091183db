package txn_test

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/omegacell/omegacell/txn"
)

// This file holds what every test of the package shares: cell, a plain
// map-based [txn.Mutable]; builders for machines and tasks; and
// checkInvariant, the cell invariant that the property test and the fuzz
// target assert after every step.

const gib = int64(1) << 30

// cell is the simplest correct txn.Mutable: two maps, and TasksOfJobOn
// answered by scanning every task, so it cannot disagree with the tasks.
type cell struct {
	machines map[string]*txn.Machine
	tasks    map[txn.TaskKey]*txn.Task
	gangs    map[string]bool // jobs placed whole or not at all
	// ledger, when set (withQuotas), makes the cell a txn.QuotaState:
	// PutMachine and PutTask feed it, as the store's state does.
	ledger  *txn.Ledger
	tenants []txn.Tenant
}

// Ledger implements txn.QuotaState (nil: no quotas).
func (c *cell) Ledger() *txn.Ledger { return c.ledger }

// withQuotas installs tenants and builds the ledger from the cell's
// machines and tasks (call it after the cell is set up by hand).
func (c *cell) withQuotas(tenants ...txn.Tenant) *cell {
	c.tenants = tenants
	c.ledger = rebuildLedger(c)
	return c
}

// rebuildLedger computes a ledger from scratch: what the incremental one
// must always equal.
func rebuildLedger(c *cell) *txn.Ledger {
	l := txn.NewLedger()
	for _, t := range c.tenants {
		l.SetTenant(t)
	}
	for _, m := range c.machines {
		l.AccountMachine(nil, m)
	}
	for _, t := range c.tasks {
		l.AccountTask(nil, t)
	}
	return l
}

func newCell() *cell {
	return &cell{machines: map[string]*txn.Machine{}, tasks: map[txn.TaskKey]*txn.Task{}}
}

func (c *cell) Machine(id string) *txn.Machine { return c.machines[id] }
func (c *cell) Task(k txn.TaskKey) *txn.Task   { return c.tasks[k] }
func (c *cell) PutMachine(m *txn.Machine) {
	if c.ledger != nil {
		c.ledger.AccountMachine(c.machines[m.ID], m)
	}
	c.machines[m.ID] = m
}

func (c *cell) PutTask(t *txn.Task) {
	if c.ledger != nil {
		c.ledger.AccountTask(c.tasks[t.Key], t)
	}
	c.tasks[t.Key] = t
}
func (c *cell) Gang(job string) (uint32, bool) {
	if !c.gangs[job] {
		return 0, false
	}
	var n uint32
	for _, t := range c.tasks {
		if t.Key.Job == job && t.State == txn.TaskPending {
			n++
		}
	}
	return n, true
}

func (c *cell) TasksOfJobOn(job, machine string) uint32 {
	var n uint32
	for _, t := range c.tasks {
		if t.Key.Job == job && t.Machine == machine && t.State.HoldsResources() {
			n++
		}
	}
	return n
}

// clone deep-copies the cell (machines, tasks and their slices), so a test
// can compare the cell before and after an operation that must not mutate it.
func (c *cell) clone() *cell {
	out := &cell{machines: make(map[string]*txn.Machine, len(c.machines)), tasks: make(map[txn.TaskKey]*txn.Task, len(c.tasks)), gangs: maps.Clone(c.gangs)}
	for id, m := range c.machines {
		cm := m.Clone()
		cm.Labels = maps.Clone(m.Labels)
		out.machines[id] = cm
	}
	for k, t := range c.tasks {
		ct := t.Clone()
		ct.Constraints = slices.Clone(t.Constraints)
		out.tasks[k] = ct
	}
	if c.ledger != nil {
		out.withQuotas(c.tenants...)
	}
	return out
}

// diff describes every difference between two cells, or returns "".
func (c *cell) diff(o *cell) string {
	var lines []string
	for id, m := range c.machines {
		if !sameMachine(m, o.machines[id]) {
			lines = append(lines, fmt.Sprintf("machine %s:\n  %+v\n  %+v", id, m, o.machines[id]))
		}
	}
	for id, m := range o.machines {
		if c.machines[id] == nil {
			lines = append(lines, fmt.Sprintf("machine %s appeared: %+v", id, m))
		}
	}
	for k, t := range c.tasks {
		if !sameTask(t, o.tasks[k]) {
			lines = append(lines, fmt.Sprintf("task %s:\n  %+v\n  %+v", k, t, o.tasks[k]))
		}
	}
	for k, t := range o.tasks {
		if c.tasks[k] == nil {
			lines = append(lines, fmt.Sprintf("task %s appeared: %+v", k, t))
		}
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

func sameMachine(a, b *txn.Machine) bool {
	return a != nil && b != nil && a.ID == b.ID && maps.Equal(a.Labels, b.Labels) && a.Capacity == b.Capacity &&
		a.Allocated == b.Allocated && slices.Equal(a.DeviceUsed, b.DeviceUsed) && a.State == b.State && a.Seq == b.Seq
}

func sameTask(a, b *txn.Task) bool {
	return a != nil && b != nil && a.Key == b.Key && a.Scheduler == b.Scheduler && a.Tenant == b.Tenant && a.Priority == b.Priority &&
		a.State == b.State && a.Machine == b.Machine && a.Resources == b.Resources && slices.Equal(a.Devices, b.Devices) &&
		a.Attempt == b.Attempt && a.MaxPerMachine == b.MaxPerMachine &&
		slices.EqualFunc(a.Constraints, b.Constraints, func(x, y txn.Constraint) bool {
			return x.Key == y.Key && x.Op == y.Op && slices.Equal(x.Values, y.Values)
		})
}

// sortedKeys returns the keys of a and b, deduplicated, in the order of
// their printed forms.
func sortedKeys[K comparable, V any](a, b map[K]V) []K {
	seen := map[K]bool{}
	var ks []K
	for _, m := range []map[K]V{a, b} {
		for k := range m {
			if !seen[k] {
				seen[k] = true
				ks = append(ks, k)
			}
		}
	}
	slices.SortFunc(ks, func(x, y K) int { return strings.Compare(fmt.Sprint(x), fmt.Sprint(y)) })
	return ks
}

// res builds Resources from cores, GiB of memory, GiB of disk and milli-GPU.
func res(cores float64, memGiB, diskGiB, gpuMilli int64) txn.Resources {
	return txn.Resources{CPUMilli: int64(cores * 1000), MemoryBytes: memGiB * gib, DiskBytes: diskGiB * gib, GPUMilli: gpuMilli}
}

// addMachine registers a ready machine with the given capacity.
func (c *cell) addMachine(id string, labels map[string]string, capacity txn.Resources) *txn.Machine {
	m := txn.NewMachine(id, labels, capacity)
	c.PutMachine(m)
	return m
}

// addTask registers a pending task owned by scheduler "batch".
func (c *cell) addTask(job string, index uint32, priority int32, r txn.Resources) *txn.Task {
	t := &txn.Task{Key: txn.TaskKey{Job: job, Index: index}, Scheduler: "batch", Priority: priority, State: txn.TaskPending, Resources: r}
	c.PutTask(t)
	return t
}

// place puts a pending task on a machine through Validate and Apply,
// picking devices with AssignDevices, and fails loudly if it is refused:
// tests use it to build occupied cells the same way the store would.
func (c *cell) place(k txn.TaskKey, machine string) {
	t := c.tasks[k]
	devs, ok := txn.AssignDevices(c.machines[machine], t.Resources.GPUMilli)
	if !ok {
		panic(fmt.Sprintf("place %s on %s: no devices for %dm", k, machine, t.Resources.GPUMilli))
	}
	d := txn.Validate(c, &txn.Transaction{
		Scheduler: t.Scheduler, Conflict: txn.ConflictFine, Commit: txn.CommitIncremental,
		Claims: []txn.Claim{{Task: k, Machine: machine, Resources: t.Resources, Devices: devs}},
	})
	if d.Accepted != 1 {
		panic(fmt.Sprintf("place %s on %s: %v %s", k, machine, d.Results[0].Reason, d.Results[0].Detail))
	}
	txn.Apply(c, d)
}

// setRunning moves an assigned task to running, as its agent would.
func (c *cell) setRunning(k txn.TaskKey) {
	t, m, err := txn.Transition(c, k, txn.TaskRunning)
	if err != nil {
		panic(err)
	}
	c.install(t, m)
}

// install puts the result of a Transition into the cell.
func (c *cell) install(t *txn.Task, m *txn.Machine) {
	if m != nil {
		c.PutMachine(m)
	}
	c.PutTask(t)
}

// checkInvariant returns every violation of the cell invariant:
//   - on every machine, Allocated is the sum of the resources of the tasks
//     holding resources there, and Allocated <= Capacity;
//   - each device's use is the sum of the shares held on it, at most
//     MilliPerGPU, and the machine has Capacity.GPUMilli/1000 devices;
//   - a task holding resources sits on an existing machine with device
//     shares of the right shape: distinct existing devices adding up to its
//     GPU request, whole devices for whole GPUs, one device for a fraction;
//     a task holding nothing holds no devices, and a pending task names no
//     machine.
//
// A task can only name one machine, so "no task holds resources on two
// machines" is the per-machine sums agreeing with Allocated everywhere.
func checkInvariant(c *cell) []string {
	var bad []string
	sum := map[string]txn.Resources{}
	dev := map[string][]int64{}
	for k, t := range c.tasks {
		if !t.State.HoldsResources() {
			if len(t.Devices) != 0 {
				bad = append(bad, fmt.Sprintf("task %s is %s but holds devices %v", k, t.State, t.Devices))
			}
			if t.State == txn.TaskPending && t.Machine != "" {
				bad = append(bad, fmt.Sprintf("task %s is pending but names machine %s", k, t.Machine))
			}
			continue
		}
		m := c.machines[t.Machine]
		if m == nil {
			bad = append(bad, fmt.Sprintf("task %s is %s on unknown machine %q", k, t.State, t.Machine))
			continue
		}
		sum[m.ID] = sum[m.ID].Add(t.Resources)
		if dev[m.ID] == nil {
			dev[m.ID] = make([]int64, m.Devices())
		}
		var gpu int64
		for i, d := range t.Devices {
			if int(d.Device) >= m.Devices() {
				bad = append(bad, fmt.Sprintf("task %s holds device %d of %s, which has %d", k, d.Device, m.ID, m.Devices()))
				continue
			}
			for _, e := range t.Devices[:i] {
				if e.Device == d.Device {
					bad = append(bad, fmt.Sprintf("task %s holds device %d of %s twice", k, d.Device, m.ID))
				}
			}
			dev[m.ID][d.Device] += int64(d.Milli)
			gpu += int64(d.Milli)
		}
		whole := !slices.ContainsFunc(t.Devices, func(d txn.DeviceShare) bool { return d.Milli != txn.MilliPerGPU })
		switch {
		case gpu != t.Resources.GPUMilli:
			bad = append(bad, fmt.Sprintf("task %s requests %dm GPU but holds shares %v", k, t.Resources.GPUMilli, t.Devices))
		case gpu >= txn.MilliPerGPU && !whole:
			bad = append(bad, fmt.Sprintf("task %s requests whole GPUs but holds parts of devices %v", k, t.Devices))
		case gpu > 0 && gpu < txn.MilliPerGPU && len(t.Devices) != 1:
			bad = append(bad, fmt.Sprintf("task %s requests a fraction of a GPU but holds shares of %d devices", k, len(t.Devices)))
		}
	}
	for id, m := range c.machines {
		if m.Allocated != sum[id] {
			bad = append(bad, fmt.Sprintf("machine %s: allocated %v, its tasks hold %v", id, m.Allocated, sum[id]))
		}
		if !m.Allocated.LessOrEqual(m.Capacity) || !(txn.Resources{}).LessOrEqual(m.Allocated) {
			bad = append(bad, fmt.Sprintf("machine %s: allocated %v outside [0, capacity %v]", id, m.Allocated, m.Capacity))
		}
		if int64(m.Devices())*txn.MilliPerGPU != m.Capacity.GPUMilli {
			bad = append(bad, fmt.Sprintf("machine %s: %d devices for %dm GPU capacity", id, m.Devices(), m.Capacity.GPUMilli))
		}
		for i, used := range m.DeviceUsed {
			var held int64
			if dev[id] != nil {
				held = dev[id][i]
			}
			if int64(used) != held || used > txn.MilliPerGPU {
				bad = append(bad, fmt.Sprintf("machine %s device %d: used %dm, tasks hold %dm (max %d)", id, i, used, held, txn.MilliPerGPU))
			}
		}
	}
	slices.Sort(bad)
	return bad
}

// reclaims reports whether an accepted batch claim of d on victim v's
// machine, of a tenant with a batch quota other than v's, justifies
// evicting v because v's tenant borrowed (above its nominal batch quota)
// before the transaction.
func reclaims(before *cell, tx *txn.Transaction, d *txn.Decision, v *txn.Task) bool {
	l := before.ledger
	if l == nil || txn.BandOf(v.Priority) != txn.BandBatch || l.Borrowed(v.Tenant, txn.BandBatch).IsZero() {
		return false
	}
	for i, c := range tx.Claims {
		t := before.tasks[c.Task]
		if d.Results[i].Reason == txn.ReasonOK && c.Machine == v.Machine && t.Tenant != v.Tenant &&
			txn.BandOf(t.Priority) == txn.BandBatch && l.Quota(t.Tenant, txn.BandBatch) != nil {
			return true
		}
	}
	return false
}

// checkDecision checks a decision against the cell it was validated on
// (before Apply): results and Accepted agree, accepted tasks were pending
// and come back assigned to their claim's machine with Attempt+1 and the
// claim's devices, victims were preemptible by a claim on their machine and
// come back pending, no task changes twice, the changed machines are
// exactly those of accepted claims and victims, each with Seq+1, and
// all-or-nothing accepts nothing once something is refused (and changes
// nothing then), while claims are aborted only in that case.
func checkDecision(before *cell, tx *txn.Transaction, d *txn.Decision) []string {
	var bad []string
	if len(d.Results) != len(tx.Claims) {
		return []string{fmt.Sprintf("%d results for %d claims", len(d.Results), len(tx.Claims))}
	}
	accepted := map[txn.TaskKey]txn.Claim{}
	for i, r := range d.Results {
		if r.Reason == txn.ReasonOK {
			accepted[tx.Claims[i].Task] = tx.Claims[i]
		}
		if r.Reason == 0 || r.Reason.String() == fmt.Sprintf("Reason(%d)", uint8(r.Reason)) {
			bad = append(bad, fmt.Sprintf("claim %d: unnamed reason %d", i, r.Reason))
		}
	}
	if d.Accepted != len(accepted) {
		bad = append(bad, fmt.Sprintf("Accepted = %d, %d distinct tasks have ReasonOK", d.Accepted, len(accepted)))
	}
	victims := map[txn.TaskKey]bool{}
	for _, k := range d.Preempted {
		victims[k] = true
		// Some claim of the transaction targets the victim's machine with
		// a priority that may preempt it.
		// Or (quotas) a batch claim of another tenant that has a batch
		// quota, accepted, reclaims from the victim's tenant, which
		// borrowed before the transaction.
		v := before.tasks[k]
		if v == nil || !slices.ContainsFunc(tx.Claims, func(c txn.Claim) bool {
			t := before.tasks[c.Task]
			return c.Machine == v.Machine && t != nil && t.Scheduler == tx.Scheduler && txn.CanPreempt(t.Priority, v.Priority)
		}) && !reclaims(before, tx, d, v) {
			bad = append(bad, fmt.Sprintf("victim %s (%+v) is preempted without a claim of higher priority on its machine", k, v))
		}
	}
	seen := map[txn.TaskKey]bool{}
	for _, t := range d.Tasks {
		if seen[t.Key] {
			bad = append(bad, fmt.Sprintf("task %s changes twice in one decision", t.Key))
		}
		seen[t.Key] = true
		old := before.tasks[t.Key]
		if old == nil {
			bad = append(bad, fmt.Sprintf("decision creates unknown task %s", t.Key))
			continue
		}
		if c, ok := accepted[t.Key]; ok {
			if old.State != txn.TaskPending || t.State != txn.TaskAssigned || t.Machine != c.Machine || t.Attempt != old.Attempt+1 || !slices.Equal(t.Devices, c.Devices) {
				bad = append(bad, fmt.Sprintf("accepted task %s: was %+v, became %+v for claim %+v", t.Key, old, t, c))
			}
		} else if victims[t.Key] {
			if !old.State.HoldsResources() || t.State != txn.TaskPending || t.Machine != "" {
				bad = append(bad, fmt.Sprintf("victim %s: was %+v, became %+v", t.Key, old, t))
			}
		} else {
			bad = append(bad, fmt.Sprintf("task %s changes but is neither accepted nor preempted", t.Key))
		}
	}
	if len(seen) != len(accepted)+len(victims) {
		bad = append(bad, fmt.Sprintf("%d tasks change for %d accepted claims and %d victims", len(seen), len(accepted), len(victims)))
	}
	wantMachines := map[string]bool{}
	for k := range accepted {
		wantMachines[accepted[k].Machine] = true
	}
	for k := range victims {
		if v := before.tasks[k]; v != nil {
			wantMachines[v.Machine] = true
		}
	}
	gotMachines := map[string]bool{}
	for _, m := range d.Machines {
		if gotMachines[m.ID] {
			bad = append(bad, fmt.Sprintf("machine %s appears twice in the decision", m.ID))
		}
		gotMachines[m.ID] = true
		old := before.machines[m.ID]
		if old == nil || m.Seq != old.Seq+1 {
			bad = append(bad, fmt.Sprintf("machine %s: changed machine must have Seq+1 (before %+v, after %+v)", m.ID, old, m))
		}
	}
	if fmt.Sprint(sortedKeys(gotMachines, nil)) != fmt.Sprint(sortedKeys(wantMachines, nil)) {
		bad = append(bad, fmt.Sprintf("changed machines %v, want those of accepted claims and victims %v", sortedKeys(gotMachines, nil), sortedKeys(wantMachines, nil)))
	}
	// A gang job's claims are aborted together whatever the mode; that
	// counts as a refusal. Other claims are aborted only by all-or-nothing.
	var aborted, anyAborted, refused bool
	refused = len(d.PreemptionErrors) > 0
	for i, r := range d.Results {
		gang := before.gangs[tx.Claims[i].Task.Job]
		anyAborted = anyAborted || r.Reason == txn.ReasonAborted
		aborted = aborted || (r.Reason == txn.ReasonAborted && !gang)
		refused = refused || (r.Reason != txn.ReasonOK && (r.Reason != txn.ReasonAborted || gang))
	}
	switch {
	case tx.Commit == txn.CommitAllOrNothing && refused && len(accepted) > 0:
		bad = append(bad, fmt.Sprintf("all-or-nothing accepted %d claims although a claim or preemption was refused", len(accepted)))
	case aborted && (tx.Commit != txn.CommitAllOrNothing || !refused):
		bad = append(bad, "claims aborted although the transaction is incremental or nothing was refused")
	}
	if (aborted || (anyAborted && tx.Commit == txn.CommitAllOrNothing)) && (d.Applied() || d.Accepted != 0 || len(d.Preempted) != 0) {
		bad = append(bad, fmt.Sprintf("aborted decision still changes something: accepted %d, preempted %v, %d machines, %d tasks", d.Accepted, d.Preempted, len(d.Machines), len(d.Tasks)))
	}
	if d.Applied() != (d.Accepted > 0 || len(d.Preempted) > 0) {
		bad = append(bad, fmt.Sprintf("Applied() = %v with %d accepted and %d preempted", d.Applied(), d.Accepted, len(d.Preempted)))
	}
	return bad
}
