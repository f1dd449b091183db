package policy_test

import (
	"math/rand/v2"
	"testing"

	"github.com/omegacell/omegacell/schedulers/batch"
	"github.com/omegacell/omegacell/schedulers/gpu"
	"github.com/omegacell/omegacell/schedulers/policy"
	"github.com/omegacell/omegacell/schedulers/policy/policytest"
	"github.com/omegacell/omegacell/schedulers/service"
	"github.com/omegacell/omegacell/schedulers/view"
	"github.com/omegacell/omegacell/txn"
)

// TestEveryPolicyHonoursSpreadKey: the batch, GPU (gang or not) and
// service policies all spread a job with a spread key evenly over the
// key's values that its constraints allow, on a half-full cell.
func TestEveryPolicyHonoursSpreadKey(t *testing.T) {
	for _, tc := range []struct {
		policy policy.Policy
		gang   bool
		gpu    int64
	}{
		{batch.New(), false, 0},
		{batch.New(), true, 0},
		{gpu.New(), false, 1000},
		{gpu.New(), true, 1000},
		{service.New(), false, 0},
	} {
		name := tc.policy.Name()
		if tc.gang {
			name += "-gang"
		}
		t.Run(name, func(t *testing.T) {
			v := policytest.Cell(policytest.CellSpec{Machines: 400, Racks: 10, GPUEvery: 1, GPUsPerMachine: 8, Fill: 0.4}, 3)
			allowed := []string{"r01", "r03", "r04", "r07", "r09"}
			job := view.JobInfo{ID: "j", Name: "j", Scheduler: tc.policy.Name(), Priority: txn.PriorityBatch, Gang: tc.gang, Count: 53,
				Resources:   txn.Resources{CPUMilli: 1000, MemoryBytes: policytest.GiB, GPUMilli: tc.gpu},
				Constraints: txn.Compile([]txn.Constraint{{Key: "rack", Op: txn.OpIn, Values: allowed}}), SpreadKey: "rack"}
			pending := policytest.AddJob(v, job)
			d := tc.policy.Place(job, pending, v, rand.New(rand.NewPCG(1, 2)))
			policytest.Validate(t, v, tc.policy, job, pending, d)
			if len(d.Claims) != int(job.Count) {
				t.Fatalf("placed %d of %d: %v", len(d.Claims), job.Count, d.Unplaced[:min(1, len(d.Unplaced))])
			}
			perRack := map[string]int{}
			for _, c := range d.Claims {
				perRack[v.Machine(c.Machine).Labels["rack"]]++
			}
			lo, hi := 1<<30, 0
			for _, r := range allowed {
				lo, hi = min(lo, perRack[r]), max(hi, perRack[r])
			}
			if len(perRack) != len(allowed) || hi-lo > 1 {
				t.Errorf("tasks per rack %v: want %d racks within 1 of each other", perRack, len(allowed))
			}
		})
	}
}
