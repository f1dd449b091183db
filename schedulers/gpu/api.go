package gpu

import (
	"fmt"
	"math/rand/v2"

	"github.com/omegacell/omegacell/schedulers/view"
	"github.com/omegacell/omegacell/txn"
)

// Choice is the decision for one task by [Decide]: the machine and devices
// it goes to, with the score that ranked the machine first, or the reason
// it fits nowhere (Machine empty).
type Choice struct {
	Machine string
	Devices []txn.DeviceShare
	Score   Score
	// Workload is the target workload fragmentation was measured against.
	Workload Workload
	Reason   string
}

// Decide is the researcher's entry point: it places one pending task t on
// view v with policy p, exactly as p.Place would for a job of that one
// task, and returns the choice with its score breakdown. The view is not
// changed; [Commit] applies the choice. rng only matters in cells of more
// than p.ScanAll candidates (sampling); nil means a fixed seed.
func Decide(p *Policy, v *view.View, t *txn.Task, rng *rand.Rand) Choice {
	if rng == nil {
		rng = rand.New(rand.NewPCG(1, 1))
	}
	job := view.JobInfo{ID: t.Key.Job, Scheduler: t.Scheduler, Priority: t.Priority, Count: 1,
		Resources: t.Resources, Constraints: t.Constraints, MaxPerMachine: t.MaxPerMachine}
	d := p.Place(job, []*txn.Task{t}, v, rng)
	w := p.workloadFor(v, t)
	if len(d.Claims) == 0 {
		reason := "no decision"
		if len(d.Unplaced) > 0 {
			reason = d.Unplaced[0].Reason
		}
		return Choice{Workload: w, Reason: reason}
	}
	c := d.Claims[0]
	sc, _, _ := p.target(w).rank(v.Machine(c.Machine), t.Resources)
	return Choice{Machine: c.Machine, Devices: c.Devices, Score: sc, Workload: w}
}

// Commit applies a choice of [Decide] for task t to v as the store
// commits it: a transaction of one claim, checked by txn.Validate and
// applied by txn.Apply. t must be a pending task of v.
func Commit(v *view.View, t *txn.Task, c Choice) error {
	if c.Machine == "" {
		return fmt.Errorf("commit %s: nothing to commit: %s", t.Key, c.Reason)
	}
	m := v.Machine(c.Machine)
	if m == nil {
		return fmt.Errorf("commit %s: machine %q is not in the view", t.Key, c.Machine)
	}
	tx := &txn.Transaction{Scheduler: t.Scheduler, DecidedAt: v.Revision(), Conflict: txn.ConflictFine, Commit: txn.CommitIncremental,
		Claims: []txn.Claim{{Task: t.Key, Machine: c.Machine, Resources: t.Resources, Devices: c.Devices, SeenSeq: m.Seq}}}
	dec := txn.Validate(v, tx)
	if dec.Accepted != 1 {
		return fmt.Errorf("commit %s on %s: refused: %+v", t.Key, c.Machine, dec.Results)
	}
	txn.Apply(v, dec)
	return nil
}

// Fragmentation is FGD's fragmentation of machine m against w (see
// [Score]): the expected idle milli-GPU a task of w cannot use there, in
// milli-GPU × millionths (divide by [WeightScale] for milli-GPU).
func (w Workload) Fragmentation(m *txn.Machine) int64 {
	free := m.Free()
	return w.sorted().fragmentation(state{cpu: free.CPUMilli, mem: free.MemoryBytes, used: m.DeviceUsed})
}

// normalized reports whether w is as normalize leaves it: GPU shapes in
// ascending order of their request.
func (w Workload) normalized() bool {
	for i, d := range w {
		if d.Resources.GPUMilli <= 0 || d.Weight <= 0 || (i > 0 && w[i-1].Resources.GPUMilli > d.Resources.GPUMilli) {
			return false
		}
	}
	return true
}
