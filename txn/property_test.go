package txn_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/omegacell/omegacell/txn"
)

// chooser is where a workload's choices come from: a seeded PRNG in the
// property test, the fuzzer's bytes in FuzzValidate.
type chooser interface {
	// IntN returns a number in [0, n); n > 0.
	IntN(n int) int
}

// workload drives a cell the way the store would see it: schedulers commit
// transactions built from a stale view of the cell (with deliberate
// garbage mixed in), agents and the store move tasks through their
// lifecycle, operators drain machines and submit jobs. After every step
// the caller checks the invariant; the workload itself checks each
// decision against the cell it was validated on.
type workload struct {
	rnd chooser
	c   *cell
	// view is the cell as the schedulers last saw it.
	view *cell
	// keys lists every task in submission order (tasks are never removed).
	keys []txn.TaskKey
	jobs int
	// stats count what happened, so a test can check it exercised Validate.
	stats map[string]int
	// tenants, when set, are given to submitted jobs at random.
	tenants []string
}

var (
	schedulers = []string{"batch", "service", "gpu"}
	priorities = []int32{0, 50, 100, 150, 200, 250}
	fractions  = []int64{250, 500, 750}
)

func newWorkload(rnd chooser) *workload {
	return &workload{rnd: rnd, c: newCell(), stats: map[string]int{}}
}

func (w *workload) pick(n int) int {
	if n <= 0 {
		return 0
	}
	return w.rnd.IntN(n)
}

// chance returns true with probability pct percent.
func (w *workload) chance(pct int) bool { return w.pick(100) < pct }

// addMachine adds a machine with or without GPUs (0 to maxGPUs devices).
func (w *workload) addMachine(maxGPUs int) {
	id := fmt.Sprintf("m%d", len(w.c.machines))
	zone := []string{"a", "b", "c"}[w.pick(3)]
	capacity := res(float64(2+2*w.pick(8)), int64(4+4*w.pick(8)), int64(w.pick(4)*50), int64(w.pick(maxGPUs+1))*txn.MilliPerGPU)
	w.c.addMachine(id, map[string]string{"zone": zone}, capacity)
}

// submit adds a job of 1..maxTasks pending tasks with a random template.
func (w *workload) submit(maxTasks int) {
	job := fmt.Sprintf("j%d", w.jobs)
	w.jobs++
	r := txn.Resources{CPUMilli: int64(250 * (1 + w.pick(12))), MemoryBytes: int64(1+w.pick(16)) * gib / 2, DiskBytes: int64(w.pick(3)) * 10 * gib}
	switch w.pick(10) {
	case 0, 1, 2:
		r.GPUMilli = fractions[w.pick(len(fractions))]
	case 3, 4:
		r.GPUMilli = int64(1+w.pick(3)) * txn.MilliPerGPU
	}
	if err := txn.ValidateRequest(r); err != nil {
		panic(err)
	}
	template := txn.Task{Scheduler: schedulers[w.pick(len(schedulers))], Priority: priorities[w.pick(len(priorities))], State: txn.TaskPending, Resources: r}
	if len(w.tenants) > 0 {
		template.Tenant = w.tenants[w.pick(len(w.tenants))]
	}
	if w.chance(20) {
		template.Constraints = []txn.Constraint{{Key: "zone", Op: txn.OpIn, Values: []string{"a", "b"}[:1+w.pick(2)]}}
	}
	if w.chance(20) {
		template.MaxPerMachine = uint32(1 + w.pick(2))
	}
	if w.chance(20) {
		if w.c.gangs == nil {
			w.c.gangs = map[string]bool{}
		}
		w.c.gangs[job] = true
	}
	for i := range uint32(1 + w.pick(maxTasks)) {
		t := template
		t.Key = txn.TaskKey{Job: job, Index: i}
		w.c.PutTask(&t)
		w.keys = append(w.keys, t.Key)
	}
}

// refreshView lets the schedulers catch up with the cell.
func (w *workload) refreshView() { w.view = w.c.clone() }

// anyTask returns a random task key of the cell, or one that does not exist.
func (w *workload) anyTask() txn.TaskKey {
	if w.chance(3) || len(w.keys) == 0 {
		return txn.TaskKey{Job: "ghost", Index: uint32(w.pick(3))}
	}
	return w.keys[w.pick(len(w.keys))]
}

// anyMachine returns a random machine id, or one that does not exist.
func (w *workload) anyMachine() string {
	if w.chance(3) {
		return "m-gone"
	}
	return fmt.Sprintf("m%d", w.pick(len(w.c.machines)))
}

// transaction builds a transaction the way a hurried, sometimes buggy
// scheduler would: mostly tasks it owns that were pending in its view, on
// machines picked with FirstUnmet and FitsAnywhere and devices from AssignDevices on its
// view; sometimes another scheduler's task, a duplicate, wrong resources,
// garbage devices or a stale seq; sometimes preemptions of tasks on the
// machines it targets (or anywhere).
func (w *workload) transaction(maxClaims int) *txn.Transaction {
	tx := &txn.Transaction{
		Scheduler: schedulers[w.pick(len(schedulers))],
		Conflict:  txn.ConflictMode(1 + w.pick(2)),
		Commit:    txn.CommitMode(1 + w.pick(2)),
	}
	var pending []txn.TaskKey
	for _, k := range w.keys {
		if t := w.view.tasks[k]; t != nil && t.State == txn.TaskPending && (t.Scheduler == tx.Scheduler || w.chance(2)) {
			pending = append(pending, k)
		}
	}
	machineIDs := make([]string, len(w.view.machines))
	for i := range machineIDs {
		machineIDs[i] = fmt.Sprintf("m%d", i)
	}
	for range 1 + w.pick(maxClaims) {
		var k txn.TaskKey
		switch {
		case len(tx.Claims) > 0 && w.chance(8):
			k = tx.Claims[w.pick(len(tx.Claims))].Task // duplicate
		case len(pending) == 0 || w.chance(8):
			k = w.anyTask()
		default:
			// Without replacement: a scheduler places each task once.
			i := w.pick(len(pending))
			k = pending[i]
			pending = slices.Delete(pending, i, i+1)
		}
		cl := txn.Claim{Task: k, Machine: w.anyMachine()}
		t := w.view.tasks[k]
		if t == nil {
			t = w.c.tasks[k]
		}
		if t != nil {
			cl.Resources = t.Resources
			// Mostly a machine where the task fits in the view.
			if w.chance(80) {
				start := w.pick(len(machineIDs))
				for i := range machineIDs {
					m := w.view.machines[machineIDs[(start+i)%len(machineIDs)]]
					if _, unmet := txn.FirstUnmet(t.Constraints, m.Labels); !unmet && m.State == txn.MachineReady && txn.FitsAnywhere(m, t.Resources) {
						cl.Machine = m.ID
						break
					}
				}
			}
		}
		if m := w.view.machines[cl.Machine]; m != nil {
			cl.SeenSeq = m.Seq
			cl.Devices, _ = txn.AssignDevices(m, cl.Resources.GPUMilli)
		}
		switch w.pick(20) {
		case 0:
			cl.Resources.CPUMilli += 250
		case 1:
			cl.Devices = randomShares(w, 5)
		case 2:
			cl.SeenSeq--
		}
		tx.Claims = append(tx.Claims, cl)
	}
	if w.chance(30) {
		for range 1 + w.pick(3) {
			tx.Preemptions = append(tx.Preemptions, w.victim(tx))
		}
	}
	return tx
}

// victim picks a task holding resources on a machine the transaction
// targets, or any task.
func (w *workload) victim(tx *txn.Transaction) txn.TaskKey {
	if w.chance(75) {
		target := tx.Claims[w.pick(len(tx.Claims))].Machine
		var on []txn.TaskKey
		for _, k := range w.keys {
			if t := w.c.tasks[k]; t.State.HoldsResources() && t.Machine == target {
				on = append(on, k)
			}
		}
		if len(on) > 0 {
			return on[w.pick(len(on))]
		}
	}
	return w.anyTask()
}

// randomShares returns up to three arbitrary device shares.
func randomShares(w *workload, devices int) []txn.DeviceShare {
	var out []txn.DeviceShare
	for range w.pick(4) {
		out = append(out, txn.DeviceShare{Device: uint32(w.pick(devices)), Milli: []uint32{0, 250, 500, 750, 1000, 1500}[w.pick(6)]})
	}
	return out
}

// commit validates tx against the cell, checks the decision, and applies it.
func (w *workload) commit(tx *txn.Transaction) []string {
	before := w.c.clone()
	d := txn.Validate(w.c, tx)
	bad := checkDecision(before, tx, d)
	if diff := before.diff(w.c); diff != "" {
		bad = append(bad, "Validate mutated its input:\n"+diff)
	}
	bad = append(bad, checkClaimsAgainst(before, tx, d)...)
	bad = append(bad, checkGangsWhole(before, tx, d)...)
	if again := txn.Validate(w.c, tx); fmt.Sprint(again.Results, again.Preempted, again.PreemptionErrors) != fmt.Sprint(d.Results, d.Preempted, d.PreemptionErrors) {
		bad = append(bad, "Validate is not deterministic")
	}
	txn.Apply(w.c, d)
	w.stats["claims"] += len(tx.Claims)
	w.stats["accepted"] += d.Accepted
	w.stats["preempted"] += len(d.Preempted)
	for _, k := range d.Preempted {
		v := before.tasks[k]
		if !slices.ContainsFunc(tx.Claims, func(c txn.Claim) bool {
			t := before.tasks[c.Task]
			return c.Machine == v.Machine && t != nil && txn.CanPreempt(t.Priority, v.Priority)
		}) {
			w.stats["reclaimed"]++
		}
	}
	for _, r := range d.Results {
		w.stats[r.Reason.String()]++
	}
	return bad
}

// checkGangsWhole checks, independently of Validate, that a decision
// places every pending task of a gang job or none of them.
func checkGangsWhole(before *cell, tx *txn.Transaction, d *txn.Decision) []string {
	placed := map[string]uint32{}
	for i, r := range d.Results {
		if job := tx.Claims[i].Task.Job; r.Reason == txn.ReasonOK && before.gangs[job] {
			placed[job]++
		}
	}
	var bad []string
	for job, n := range placed {
		if pending, _ := before.Gang(job); n != pending {
			bad = append(bad, fmt.Sprintf("gang %s: %d of its %d pending tasks placed", job, n, pending))
		}
	}
	return bad
}

// checkClaimsAgainst checks, independently of Validate's own bookkeeping,
// that every accepted claim was legal on the cell before: a pending task of
// the transaction's scheduler with the claim's resources, a ready machine
// satisfying its constraints, an unchanged seq under coarse conflict mode,
// and (after the decision) no more than MaxPerMachine tasks of its job on
// the machine. It also checks the reasons of refused claims that do not
// depend on the order of claims.
func checkClaimsAgainst(before *cell, tx *txn.Transaction, d *txn.Decision) []string {
	var bad []string
	perJobMachine := map[[2]string]int{}
	for _, t := range before.tasks {
		if t.State.HoldsResources() {
			perJobMachine[[2]string{t.Key.Job, t.Machine}]++
		}
	}
	for _, k := range d.Preempted {
		t := before.tasks[k]
		perJobMachine[[2]string{k.Job, t.Machine}]--
	}
	for i, r := range d.Results {
		c := tx.Claims[i]
		t, m := before.tasks[c.Task], before.machines[c.Machine]
		switch {
		case t == nil:
			if r.Reason != txn.ReasonTaskUnknown {
				bad = append(bad, fmt.Sprintf("claim %d of unknown task %s: %v", i, c.Task, r.Reason))
			}
			continue
		case r.Reason == txn.ReasonTaskUnknown:
			bad = append(bad, fmt.Sprintf("claim %d: task %s exists but is reported unknown", i, c.Task))
		case r.Reason == txn.ReasonMachineUnknown && m != nil:
			bad = append(bad, fmt.Sprintf("claim %d: machine %s exists but is reported unknown", i, c.Machine))
		}
		if r.Reason != txn.ReasonOK {
			continue
		}
		perJobMachine[[2]string{c.Task.Job, c.Machine}]++
		switch {
		case t.State != txn.TaskPending || t.Scheduler != tx.Scheduler || t.Resources != c.Resources:
			bad = append(bad, fmt.Sprintf("claim %d accepted for task %+v of tx scheduler %s resources %v", i, t, tx.Scheduler, c.Resources))
		case m == nil || m.State != txn.MachineReady:
			bad = append(bad, fmt.Sprintf("claim %d accepted on machine %+v", i, m))
		case tx.Conflict == txn.ConflictCoarse && m.Seq != c.SeenSeq:
			bad = append(bad, fmt.Sprintf("claim %d accepted under coarse mode with seq %d, machine at %d", i, c.SeenSeq, m.Seq))
		}
		if m != nil {
			if u, unmet := txn.FirstUnmet(t.Constraints, m.Labels); unmet {
				bad = append(bad, fmt.Sprintf("claim %d accepted on %s, which does not satisfy %s", i, m.ID, u))
			}
		}
		if n := perJobMachine[[2]string{c.Task.Job, c.Machine}]; t.MaxPerMachine > 0 && n > int(t.MaxPerMachine) {
			bad = append(bad, fmt.Sprintf("claim %d: %d tasks of job %s on %s, max %d", i, n, c.Task.Job, c.Machine, t.MaxPerMachine))
		}
	}
	return bad
}

// transitions moves a few random tasks to random states, as agents, the
// store and users would: mostly tasks holding resources finishing, failing
// or being requeued, and requeues of failed tasks; sometimes any task to
// any state. Transition must refuse exactly the illegal moves.
func (w *workload) transitions(n int) []string {
	var holding, requeue []txn.TaskKey
	for _, k := range w.keys {
		switch t := w.c.tasks[k]; {
		case t.State.HoldsResources():
			holding = append(holding, k)
		case t.State == txn.TaskFailed || t.State == txn.TaskLost:
			requeue = append(requeue, k)
		}
	}
	var bad []string
	for range 1 + w.pick(n) {
		k := w.anyTask()
		to := []txn.TaskState{txn.TaskRunning, txn.TaskSucceeded, txn.TaskFailed, txn.TaskKilled, txn.TaskLost, txn.TaskPending, txn.TaskAssigned}[w.pick(7)]
		switch p := w.pick(10); {
		case p < 6 && len(holding) > 0:
			k = holding[w.pick(len(holding))]
			to = []txn.TaskState{txn.TaskRunning, txn.TaskRunning, txn.TaskSucceeded, txn.TaskSucceeded, txn.TaskFailed, txn.TaskPending}[w.pick(6)]
		case p < 8 && len(requeue) > 0:
			k, to = requeue[w.pick(len(requeue))], txn.TaskPending
		}
		old := w.c.tasks[k]
		var (
			nt  *txn.Task
			nm  *txn.Machine
			err error
		)
		if old != nil && w.chance(50) {
			// Through the agent fence, sometimes with a stale attempt or
			// the wrong machine.
			u := txn.AgentUpdate{Task: k, Machine: old.Machine, Attempt: old.Attempt, State: to}
			switch w.pick(6) {
			case 0:
				u.Attempt--
			case 1:
				u.Machine = w.anyMachine()
			}
			nt, nm, err = txn.ValidateAgentUpdate(w.c, u)
			if err == nil && (u.Attempt != old.Attempt || u.Machine != old.Machine || !old.State.HoldsResources()) {
				bad = append(bad, fmt.Sprintf("agent update %+v accepted for task %+v", u, old))
			}
		} else {
			nt, nm, err = txn.Transition(w.c, k, to)
		}
		legal := old != nil && txn.CanTransition(old.State, to)
		if err == nil && !legal {
			bad = append(bad, fmt.Sprintf("illegal transition of %s to %s accepted (task %+v)", k, to, old))
		}
		if err == nil {
			w.stats["transitions"]++
			w.c.install(nt, nm)
		}
	}
	return bad
}

// forgetFinished removes succeeded and killed tasks from the cell, as the
// store does when their job is deleted, so the cell stays small.
func (w *workload) forgetFinished() {
	kept := w.keys[:0]
	for _, k := range w.keys {
		if s := w.c.tasks[k].State; s == txn.TaskSucceeded || s == txn.TaskKilled {
			delete(w.c.tasks, k)
			continue
		}
		kept = append(kept, k)
	}
	w.keys = kept
}

// pending counts the pending tasks.
func (w *workload) pending() int {
	n := 0
	for _, t := range w.c.tasks {
		if t.State == txn.TaskPending {
			n++
		}
	}
	return n
}

// changeMachine drains, downs or readies a machine (bumping its seq), as
// an operator or the heartbeat monitor would. Its tasks stay.
func (w *workload) changeMachine() {
	id := fmt.Sprintf("m%d", w.pick(len(w.c.machines)))
	m := w.c.machines[id].Clone()
	m.State = []txn.MachineState{txn.MachineReady, txn.MachineReady, txn.MachineReady, txn.MachineDraining, txn.MachineDown}[w.pick(5)]
	m.Seq++
	w.c.PutMachine(m)
}

// checkMaxPerMachine reports jobs with more tasks on one machine than
// their MaxPerMachine allows.
func checkMaxPerMachine(c *cell) []string {
	var bad []string
	n := map[[2]string]uint32{}
	for k, t := range c.tasks {
		if t.State.HoldsResources() && t.MaxPerMachine > 0 {
			pk := [2]string{k.Job, t.Machine}
			if n[pk]++; n[pk] > t.MaxPerMachine {
				bad = append(bad, fmt.Sprintf("job %s has %d tasks on %s, max %d", k.Job, n[pk], t.Machine, t.MaxPerMachine))
			}
		}
	}
	slices.Sort(bad)
	return bad
}

func TestPropertyRandomTransactions(t *testing.T) {
	const steps = 4000
	w := newWorkload(rand.New(rand.NewPCG(20130415, 1)))
	for range 24 {
		w.addMachine(8)
	}
	for range 30 {
		w.submit(8)
	}
	w.refreshView()
	for step := range steps {
		var bad []string
		action := w.pick(100)
		switch {
		case action < 55:
			bad = w.commit(w.transaction(12))
		case action < 95:
			bad = w.transitions(6)
		case action < 97:
			w.changeMachine()
		default:
			w.submit(8)
		}
		for w.pending() < 100 {
			w.submit(8)
		}
		if len(w.c.tasks) > 300 {
			w.forgetFinished()
		}
		if w.chance(25) {
			w.refreshView()
		}
		bad = append(bad, checkInvariant(w.c)...)
		bad = append(bad, checkMaxPerMachine(w.c)...)
		bad = append(bad, checkCellInvariant(w.c)...)
		if step%500 == 0 {
			var used, capa int64
			for _, m := range w.c.machines {
				used += m.Allocated.CPUMilli
				capa += m.Capacity.CPUMilli
			}
			t.Logf("step %d: %d tasks, %d pending, cpu %d/%d", step, len(w.c.tasks), w.pending(), used, capa)
		}
		if len(bad) > 0 {
			t.Fatalf("step %d (action %d):\n%s", step, action, strings.Join(bad, "\n"))
		}
	}
	// The run must have exercised acceptance, conflicts and preemption,
	// or it proves nothing.
	t.Logf("stats: %v", w.stats)
	for _, k := range []string{"accepted", "preempted", "transitions", "duplicate_in_transaction", "seq_changed",
		"aborted", "insufficient_cpu", "insufficient_gpu", "invalid_devices", "task_not_pending", "max_per_machine",
		"constraint_violated", "wrong_scheduler", "machine_unknown", "task_unknown", "resources_mismatch"} {
		if w.stats[k] < 5 {
			t.Errorf("only %d %s in %d steps: the workload does not exercise it", w.stats[k], k, steps)
		}
	}
}
