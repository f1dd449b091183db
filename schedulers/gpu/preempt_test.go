package gpu

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/omegacell/omegacell/schedulers/policy/policytest"
	"github.com/omegacell/omegacell/schedulers/view"
	"github.com/omegacell/omegacell/txn"
)

// preemptCell is four 8-GPU machines in two racks.
func preemptCell() *view.View {
	v := view.New()
	for i, id := range policytest.Machines("g", 4) {
		rack := "r0"
		if i >= 2 {
			rack = "r1"
		}
		v.PutMachine(txn.NewMachine(id, map[string]string{"rack": rack}, txn.Resources{CPUMilli: 64_000, MemoryBytes: 512 * gib, GPUMilli: 8000}))
	}
	v.SetRevision(1)
	return v
}

func oneGPU(id string, prio int32, submit int64) view.JobInfo {
	return view.JobInfo{ID: id, Scheduler: Name, Priority: prio, SubmitTime: submit, Resources: txn.Resources{CPUMilli: 1000, MemoryBytes: gib, GPUMilli: 1000}}
}

func TestPreemption(t *testing.T) {
	eight := func(id string, prio int32) view.JobInfo {
		return view.JobInfo{ID: id, Scheduler: Name, Priority: prio, Gang: true, Count: 2, Resources: txn.Resources{CPUMilli: 8000, MemoryBytes: 64 * gib, GPUMilli: 8000}}
	}
	each := func(n int, ms ...string) []string {
		var out []string
		for _, m := range ms {
			for range n {
				out = append(out, m)
			}
		}
		return out
	}
	cases := []struct {
		name    string
		running []struct {
			job view.JobInfo
			on  []string
		}
		job view.JobInfo
		// wantVictims lists the jobs evicted, with how many tasks each;
		// wantMachines the machines the claims use (nil: the job is not
		// placed).
		wantVictims  map[string]int
		wantMachines int
	}{
		{
			name: "production gang evicts best-effort single tasks on the fewest machines",
			running: []struct {
				job view.JobInfo
				on  []string
			}{
				{oneGPU("be-old", txn.PriorityBestEffort, 1), each(8, "g0", "g1")},
				{oneGPU("be-young", txn.PriorityBestEffort, 9), each(8, "g2", "g3")},
			},
			job:          eight("train", txn.PriorityProduction),
			wantVictims:  map[string]int{"be-young": 16},
			wantMachines: 2,
		},
		{
			name: "a best-effort gang is evicted whole, its tasks elsewhere too",
			running: []struct {
				job view.JobInfo
				on  []string
			}{
				{view.JobInfo{ID: "be-gang", Scheduler: Name, Priority: txn.PriorityBestEffort, Gang: true, SubmitTime: 5,
					Resources: txn.Resources{CPUMilli: 1000, MemoryBytes: gib, GPUMilli: 4000}}, []string{"g0", "g0", "g1", "g1", "g2", "g2", "g3", "g3"}},
			},
			job:          view.JobInfo{ID: "train", Scheduler: Name, Priority: txn.PriorityProduction, Gang: true, Count: 1, Resources: txn.Resources{CPUMilli: 8000, MemoryBytes: 64 * gib, GPUMilli: 8000}},
			wantVictims:  map[string]int{"be-gang": 8},
			wantMachines: 1,
		},
		{
			name: "single tasks before a gang when either makes room",
			running: []struct {
				job view.JobInfo
				on  []string
			}{
				{view.JobInfo{ID: "be-gang", Scheduler: Name, Priority: txn.PriorityBestEffort, Gang: true, SubmitTime: 9,
					Resources: txn.Resources{CPUMilli: 1000, MemoryBytes: gib, GPUMilli: 4000}}, []string{"g0", "g1"}},
				{oneGPU("be", txn.PriorityBestEffort, 1), append(each(4, "g0", "g1"), each(8, "g2", "g3")...)},
			},
			job:          view.JobInfo{ID: "train", Scheduler: Name, Priority: txn.PriorityProduction, Count: 1, Resources: txn.Resources{CPUMilli: 1000, MemoryBytes: gib, GPUMilli: 4000}},
			wantVictims:  map[string]int{"be": 4},
			wantMachines: 1,
		},
		{
			name: "batch preempts best-effort",
			running: []struct {
				job view.JobInfo
				on  []string
			}{
				{oneGPU("be", txn.PriorityBestEffort, 1), each(8, "g0", "g1", "g2", "g3")},
			},
			job:          view.JobInfo{ID: "b", Scheduler: Name, Priority: txn.PriorityBatch, Count: 3, Resources: txn.Resources{CPUMilli: 1000, MemoryBytes: gib, GPUMilli: 1000}},
			wantVictims:  map[string]int{"be": 3},
			wantMachines: -1,
		},
		{
			name: "batch does not preempt batch",
			running: []struct {
				job view.JobInfo
				on  []string
			}{
				{oneGPU("low-batch", txn.PriorityBatch, 1), each(8, "g0", "g1", "g2", "g3")},
			},
			job: view.JobInfo{ID: "b", Scheduler: Name, Priority: txn.PriorityBatch + 50, Count: 1, Resources: txn.Resources{CPUMilli: 1000, MemoryBytes: gib, GPUMilli: 1000}},
		},
		{
			name: "production never preempts production",
			running: []struct {
				job view.JobInfo
				on  []string
			}{
				{oneGPU("prod-low", txn.PriorityProduction, 1), each(8, "g0", "g1", "g2", "g3")},
			},
			job: eight("train", txn.PriorityProduction+50),
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v := preemptCell()
			for _, r := range tc.running {
				policytest.Run(t, v, r.job, r.on...)
			}
			pending := policytest.AddJob(v, tc.job)
			p := New()
			d := p.Place(tc.job, pending, v, rand.New(rand.NewPCG(3, 3)))
			dec := policytest.Validate(t, v, p, tc.job, pending, d)
			victims := map[string]int{}
			for _, k := range dec.Preempted {
				victims[k.Job]++
			}
			machines := map[string]bool{}
			for _, c := range d.Claims {
				machines[c.Machine] = true
			}
			if tc.wantVictims == nil {
				if len(d.Claims) != 0 || len(d.Preemptions) != 0 {
					t.Fatalf("placed %d, preempted %v; want nothing", len(d.Claims), d.Preemptions)
				}
				if len(d.Unplaced) == 0 || !strings.Contains(d.Unplaced[0].Reason, "eviction") {
					t.Errorf("unplaced %+v, want a reason that says no eviction helps", d.Unplaced)
				}
				return
			}
			if dec.Accepted != len(pending) {
				t.Fatalf("accepted %d of %d:\n%s", dec.Accepted, len(pending), policytest.Format(v, d))
			}
			if len(victims) != len(tc.wantVictims) {
				t.Fatalf("victims %v, want %v", victims, tc.wantVictims)
			}
			for j, n := range tc.wantVictims {
				if victims[j] != n {
					t.Errorf("victims %v, want %v", victims, tc.wantVictims)
				}
			}
			if tc.wantMachines > 0 && len(machines) != tc.wantMachines {
				t.Errorf("claims on %d machines %v, want %d", len(machines), slices.Sorted(mapKeys(machines)), tc.wantMachines)
			}
			txn.Apply(v, dec)
			policytest.CheckInvariant(t, v)
		})
	}
}

func mapKeys(m map[string]bool) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}
