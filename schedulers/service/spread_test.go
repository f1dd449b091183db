package service

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/omegacell/omegacell/schedulers/policy/policytest"
	"github.com/omegacell/omegacell/schedulers/view"
	"github.com/omegacell/omegacell/txn"
)

// TestSpreadNeverDoublesUpWhileMachinesSitEmpty reproduces issue 13's
// report: 5,000 machines in 25 racks, a job constrained to 12 racks and
// spread over rack. No machine may get two replicas while an eligible
// machine with room has none, and the racks the constraint excludes must
// not count as spread domains (the replicas spread evenly over the 12).
func TestSpreadNeverDoublesUpWhileMachinesSitEmpty(t *testing.T) {
	eligible := make([]string, 12)
	for i := range eligible {
		eligible[i] = fmt.Sprintf("r%02d", 2*i)
	}
	for _, tc := range []struct {
		name  string
		count uint32
		cons  []txn.Constraint
	}{
		{"12 of 25 racks", 600, []txn.Constraint{{Key: "rack", Op: txn.OpIn, Values: eligible}}},
		{"12 of 25 racks, more replicas than fit one each", 2600, []txn.Constraint{{Key: "rack", Op: txn.OpIn, Values: eligible}}},
		{"unconstrained", 2000, nil},
		{"excluded by notin", 900, []txn.Constraint{{Key: "rack", Op: txn.OpNotIn, Values: []string{"r00", "r01", "r02"}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := policytest.Cell(policytest.CellSpec{Machines: 5000, Racks: 25, Fill: 0.3}, 1)
			job := view.JobInfo{ID: "web", Name: "web", Scheduler: Name, Priority: txn.PriorityProduction, Kind: view.JobService,
				Count: tc.count, Resources: txn.Resources{CPUMilli: 1000, MemoryBytes: gib}, Constraints: txn.Compile(tc.cons), SpreadKey: "rack"}
			pending := policytest.AddJob(v, job)
			d := New().Place(job, pending, v, rand.New(rand.NewPCG(7, 7)))
			policytest.Validate(t, v, New(), job, pending, d)
			if len(d.Claims) != int(tc.count) {
				t.Fatalf("placed %d of %d: %v", len(d.Claims), tc.count, d.Unplaced[:min(1, len(d.Unplaced))])
			}
			perMachine := map[string]int{}
			perRack := map[string]int{}
			for _, c := range d.Claims {
				perMachine[c.Machine]++
				perRack[v.Machine(c.Machine).Labels["rack"]]++
			}
			empty := 0 // eligible machines with room for a replica that got none
			for _, m := range v.Machines() {
				if _, bad := txn.FirstUnmet(job.Constraints, m.Labels); !bad && perMachine[m.ID] == 0 && txn.FitsAnywhere(m, job.Resources) {
					empty++
				}
			}
			doubled := 0
			for _, n := range perMachine {
				if n > 1 {
					doubled++
				}
			}
			if doubled > 0 && empty > 0 {
				t.Errorf("%d machines got two or more replicas while %d eligible machines got none", doubled, empty)
			}
			lo, hi := int(tc.count), 0
			for _, n := range perRack {
				lo, hi = min(lo, n), max(hi, n)
			}
			if hi-lo > 1 {
				t.Errorf("replicas per rack range %d..%d over %d racks, want within 1: %v", lo, hi, len(perRack), perRack)
			}
		})
	}
}
