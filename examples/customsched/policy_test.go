package main

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/omegacell/omegacell/jobspec"
	"github.com/omegacell/omegacell/schedulers/policy/policytest"
	"github.com/omegacell/omegacell/schedulers/view"
	"github.com/omegacell/omegacell/txn"
)

func TestLowestIDFillsFromTheLeft(t *testing.T) {
	for _, tc := range []struct {
		name         string
		job          view.JobInfo
		wantMachines []string // per claim, in task order
		wantUnplaced int
	}{
		{"fills m0 then m1", view.JobInfo{ID: "j", Count: 5, Resources: txn.Resources{CPUMilli: 1000, MemoryBytes: 1 << 30}},
			[]string{"m0", "m0", "m1", "m1", "m1"}, 0},
		{"skips machines too small", view.JobInfo{ID: "j", Count: 2, Resources: txn.Resources{CPUMilli: 3000, MemoryBytes: 1 << 30}},
			[]string{"m1", "m3"}, 0},
		{"constraints narrow the candidates", view.JobInfo{ID: "j", Count: 1, Resources: txn.Resources{CPUMilli: 1000, MemoryBytes: 1 << 30},
			Constraints: []txn.Constraint{{Key: "rack", Op: txn.OpIn, Values: []string{"b"}}}}, []string{"m2"}, 0},
		{"what does not fit is unplaced", view.JobInfo{ID: "j", Count: 12, Resources: txn.Resources{CPUMilli: 1000, MemoryBytes: 1 << 30}},
			[]string{"m0", "m0", "m1", "m1", "m1", "m2", "m3", "m3", "m3", "m3"}, 2},
		{"a gang that does not fit places nothing", view.JobInfo{ID: "j", Count: 12, Gang: true, Resources: txn.Resources{CPUMilli: 1000, MemoryBytes: 1 << 30}},
			nil, 12},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := view.New()
			// Added out of order: the policy sorts by id, not by arrival.
			for _, m := range []*txn.Machine{
				txn.NewMachine("m3", map[string]string{"rack": "b"}, txn.Resources{CPUMilli: 4000, MemoryBytes: 8 << 30}),
				txn.NewMachine("m1", map[string]string{"rack": "a"}, txn.Resources{CPUMilli: 3000, MemoryBytes: 8 << 30}),
				txn.NewMachine("m0", map[string]string{"rack": "a"}, txn.Resources{CPUMilli: 2000, MemoryBytes: 8 << 30}),
				txn.NewMachine("m2", map[string]string{"rack": "b"}, txn.Resources{CPUMilli: 1000, MemoryBytes: 8 << 30}),
			} {
				v.PutMachine(m)
			}
			pending := policytest.AddJob(v, tc.job)
			d := LowestID{}.Place(tc.job, pending, v, rand.New(rand.NewPCG(1, 2)))
			policytest.Validate(t, v, LowestID{}, tc.job, pending, d)
			var got []string
			for _, c := range d.Claims {
				got = append(got, c.Machine)
			}
			if !slices.Equal(got, tc.wantMachines) || len(d.Unplaced) != tc.wantUnplaced {
				t.Errorf("claims on %v with %d unplaced, want %v with %d", got, len(d.Unplaced), tc.wantMachines, tc.wantUnplaced)
			}
		})
	}
}

// TestExampleJobNamesThisScheduler keeps the README's job file true: it
// parses and names the scheduler this binary runs by default.
func TestExampleJobNamesThisScheduler(t *testing.T) {
	spec, err := jobspec.ParseFile("left.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if spec.Scheduler != "lowest-id" || spec.Count != 10 {
		t.Errorf("left.yaml: scheduler %q, count %d; want lowest-id, 10", spec.Scheduler, spec.Count)
	}
}
