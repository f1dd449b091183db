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

// TestReclaimBorrowedQuota: a tenant borrowed the whole cell above its
// nominal batch quota; when another tenant with a batch quota of its own
// (created since) submits within it, batch tasks of the borrower are
// evicted for it, and nothing of a tenant that does not borrow is.
func TestReclaimBorrowedQuota(t *testing.T) {
	cpu := func(n int64) txn.Resources { return txn.Resources{CPUMilli: n * 1000} }
	for _, tc := range []struct {
		name        string
		fillTenant  txn.Tenant
		owner       *txn.Tenant
		wantVictims int
	}{
		{"owner reclaims from a borrower", txn.Tenant{Name: "borrower", Quota: [txn.NumBands]*txn.Quota{txn.BandBatch: {Nominal: cpu(8), BorrowLimit: cpu(32)}}},
			&txn.Tenant{Name: "owner", Quota: [txn.NumBands]*txn.Quota{txn.BandBatch: {Nominal: cpu(16)}}}, 2},
		{"a tenant without quota reclaims nothing", txn.Tenant{Name: "borrower", Quota: [txn.NumBands]*txn.Quota{txn.BandBatch: {Nominal: cpu(8), BorrowLimit: cpu(32)}}},
			nil, 0},
		{"nothing is reclaimed from a tenant within its quota", txn.Tenant{Name: "borrower", Quota: [txn.NumBands]*txn.Quota{txn.BandBatch: {Nominal: cpu(32)}}},
			&txn.Tenant{Name: "owner", Quota: [txn.NumBands]*txn.Quota{txn.BandBatch: {Nominal: cpu(16)}}}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := view.New()
			ids := policytest.Machines("m", 4)
			for _, id := range ids {
				v.PutMachine(txn.NewMachine(id, nil, txn.Resources{CPUMilli: 8000, MemoryBytes: 32 * gib}))
			}
			v.PutTenant(tc.fillTenant)
			var on []string
			for _, id := range ids {
				on = append(on, id, id, id, id)
			}
			policytest.Run(t, v, view.JobInfo{ID: "fill", Scheduler: Name, Tenant: "borrower", Priority: txn.PriorityBatch, Resources: cpu(2)}, on...)
			if tc.owner != nil {
				v.PutTenant(*tc.owner)
			}
			job := view.JobInfo{ID: "j", Scheduler: Name, Tenant: "owner", Priority: txn.PriorityBatch, Count: 2, Resources: cpu(2)}
			pending := policytest.AddJob(v, job)
			p := New()
			d := p.Place(job, pending, v, rand.New(rand.NewPCG(1, 1)))
			dec := policytest.Validate(t, v, p, job, pending, d)
			if len(dec.Preempted) != tc.wantVictims || (tc.wantVictims > 0 && dec.Accepted != 2) {
				t.Fatalf("placed %d with %d victims, want 2 with %d:\n%s", dec.Accepted, len(dec.Preempted), tc.wantVictims, policytest.Format(v, d))
			}
			for _, k := range dec.Preempted {
				if k.Job != "fill" {
					t.Errorf("victim %s is not the borrower's", k)
				}
			}
		})
	}
}
