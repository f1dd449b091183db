package batch

import (
	"math/rand/v2"
	"testing"

	"github.com/omegacell/omegacell/schedulers/policy/policytest"
	"github.com/omegacell/omegacell/schedulers/view"
	"github.com/omegacell/omegacell/txn"
)

// TestPreemption: in a cell full of batch-band tasks, a production job
// evicts batch tasks (the fewest that make room); a batch job evicts only
// best-effort work; production is never evicted.
func TestPreemption(t *testing.T) {
	cases := []struct {
		name        string
		fillPrio    int32
		jobPrio     int32
		wantPlaced  int
		wantVictims int
	}{
		{"production evicts batch", txn.PriorityBatch, txn.PriorityProduction, 3, 3},
		{"batch evicts best-effort", txn.PriorityBestEffort, txn.PriorityBatch, 3, 3},
		{"batch does not evict batch", txn.PriorityBatch, txn.PriorityBatch + 10, 0, 0},
		{"production does not evict production", txn.PriorityProduction, txn.PriorityProduction + 10, 0, 0},
		{"best-effort evicts nothing", txn.PriorityBestEffort, txn.PriorityBestEffort + 10, 0, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v := view.New()
			ids := policytest.Machines("m", 4)
			for _, id := range ids {
				v.PutMachine(txn.NewMachine(id, nil, txn.Resources{CPUMilli: 8000, MemoryBytes: 32 * gib}))
			}
			var on []string
			for _, id := range ids {
				on = append(on, id, id, id, id)
			}
			policytest.Run(t, v, view.JobInfo{ID: "fill", Scheduler: Name, Priority: tc.fillPrio, Resources: txn.Resources{CPUMilli: 2000, MemoryBytes: 4 * gib}}, on...)
			job := view.JobInfo{ID: "j", Scheduler: Name, Priority: tc.jobPrio, Count: 3, Resources: txn.Resources{CPUMilli: 2000, MemoryBytes: gib}}
			pending := policytest.AddJob(v, job)
			p := New()
			d := p.Place(job, pending, v, rand.New(rand.NewPCG(1, 1)))
			dec := policytest.Validate(t, v, p, job, pending, d)
			if dec.Accepted != tc.wantPlaced || len(dec.Preempted) != tc.wantVictims {
				t.Fatalf("placed %d with %d victims, want %d with %d:\n%s", dec.Accepted, len(dec.Preempted), tc.wantPlaced, tc.wantVictims, policytest.Format(v, d))
			}
			txn.Apply(v, dec)
			policytest.CheckInvariant(t, v)
		})
	}
}
