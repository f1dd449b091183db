package sim

import (
	"fmt"
	"math/rand/v2"

	"github.com/omegacell/omegacell/schedulers/batch"
	"github.com/omegacell/omegacell/schedulers/gpu"
	"github.com/omegacell/omegacell/schedulers/policy"
	"github.com/omegacell/omegacell/schedulers/service"
	"github.com/omegacell/omegacell/schedulers/view"
	"github.com/omegacell/omegacell/txn"
)

// Placement selects the decision step's placement algorithm.
type Placement string

const (
	// PlacementAuto uses the production policies where the architecture
	// decides on a copy of the whole cell (monolithic, shared state) and
	// randomized first fit in two-level offers.
	PlacementAuto Placement = "auto"
	// PlacementFirstFit is the Omega paper's lightweight-simulator
	// placement everywhere: randomized first fit. Architecture comparisons
	// use it so they compare architectures, not placement algorithms.
	PlacementFirstFit Placement = "first-fit"
	// PlacementPolicies runs the production policies (schedulers/batch,
	// service and gpu, by job kind) on a schedulers/view copy of the cell.
	PlacementPolicies Placement = "policies"
)

// ParsePlacement parses a placement name.
func ParsePlacement(s string) (Placement, error) {
	switch p := Placement(s); p {
	case PlacementAuto, PlacementFirstFit, PlacementPolicies:
		return p, nil
	}
	return "", fmt.Errorf("placement %q: want auto, first-fit or policies", s)
}

// usesPolicies resolves the placement for an architecture.
func (p Placement) usesPolicies(a Arch) bool {
	switch p {
	case PlacementPolicies:
		return true
	case PlacementAuto:
		return a != TwoLevel
	}
	return false
}

// mirror is a schedulers/view.View kept equal to the cell: every change the
// cell installs is installed in the view too, through the view's own
// PutMachine, PutTask, PutJob and RemoveJob, as the production scheduler's
// copy follows the store's watch stream.
//
// A scheduler's copy is the cell as it is when its decision starts, and the
// decision is computed at that instant (see optimistic.go); so one mirror,
// always current, is every scheduler's copy at the moment it is used. What
// other schedulers commit during the decision time reaches the cell, and
// can conflict, only after the decision was made.
type mirror struct {
	v *view.View
}

func newMirror(machines []*txn.Machine) *mirror {
	m := &mirror{v: view.New()}
	for _, mc := range machines {
		m.v.PutMachine(mc)
	}
	return m
}

func (m *mirror) addJob(j *job) {
	m.v.PutJob(jobInfo(j))
	for _, t := range j.tasks {
		m.v.PutTask(t)
	}
}

// jobInfo is the view's description of a job.
func jobInfo(j *job) view.JobInfo {
	spec := j.spec
	kind := view.JobBatch
	if spec.Kind == KindService {
		kind = view.JobService
	}
	info := view.JobInfo{
		ID:            spec.ID,
		Name:          spec.ID,
		Scheduler:     j.sched.name,
		Tenant:        spec.Tenant,
		Priority:      spec.Priority,
		Kind:          kind,
		State:         view.JobPending,
		Count:         uint32(spec.Tasks),
		Constraints:   spec.Constraints,
		MaxPerMachine: spec.MaxPerMachine,
		SubmitTime:    int64(j.submitted * 1e9),
	}
	if spec.Tasks > 0 {
		info.Resources = spec.resources(0)
	}
	return info
}

// policyDecider is the decision step through a production policy: the
// batch, service or gpu policy by the job's kind, on the mirror.
type policyDecider struct {
	mirror   *mirror
	policies map[string]policy.Policy
	preempt  []txn.TaskKey
}

// productionPolicies are the built-in policies by scheduler kind.
func productionPolicies() map[string]policy.Policy {
	return map[string]policy.Policy{
		KindBatch:   batch.New(),
		KindService: service.New(),
		KindGPU:     gpu.New(),
	}
}

// begin has nothing to do: the mirror is the cell as it is now.
func (d *policyDecider) begin(cellCopy) { d.preempt = d.preempt[:0] }

func (d *policyDecider) place(j *job, pending []*txn.Task, rng *rand.Rand, out []txn.Claim) []txn.Claim {
	dec := d.policies[j.spec.Kind].Place(jobInfo(j), pending, d.mirror.v, rng)
	d.preempt = append(d.preempt, dec.Preemptions...)
	return append(out, dec.Claims...)
}

func (d *policyDecider) preemptions() []txn.TaskKey { return d.preempt }
