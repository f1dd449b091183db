package batch

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/omegacell/omegacell/schedulers/policy"
	"github.com/omegacell/omegacell/schedulers/policy/policytest"
	"github.com/omegacell/omegacell/schedulers/view"
	"github.com/omegacell/omegacell/txn"
)

const gib = policytest.GiB

// smallCell is four 8-core machines with 1, 3, 5 and 8 cores free, and a
// GPU machine with all 8 free, in two zones.
func smallCell() *view.View {
	v := view.New()
	free := []int64{1000, 3000, 5000, 8000}
	filler := view.JobInfo{ID: "filler", Scheduler: "filler", Priority: txn.PriorityBatch}
	v.PutJob(filler)
	tx := &txn.Transaction{Scheduler: "filler", Conflict: txn.ConflictFine, Commit: txn.CommitIncremental}
	for i, f := range free {
		id := fmt.Sprint("m", i)
		v.PutMachine(txn.NewMachine(id, map[string]string{"zone": fmt.Sprint("z", i%2), "rack": fmt.Sprint("r", i)}, txn.Resources{CPUMilli: 8000, MemoryBytes: 32 * gib}))
		if f < 8000 {
			task := filler.NewTask(uint32(i))
			task.Resources = txn.Resources{CPUMilli: 8000 - f, MemoryBytes: 8 * gib}
			v.PutTask(task)
			tx.Claims = append(tx.Claims, txn.Claim{Task: task.Key, Machine: id, Resources: task.Resources})
		}
	}
	v.PutMachine(txn.NewMachine("gpu0", map[string]string{"zone": "z0", "rack": "r9", "gpu.model": "H100"}, txn.Resources{CPUMilli: 8000, MemoryBytes: 32 * gib, GPUMilli: 8000}))
	txn.Apply(v, txn.Validate(v, tx))
	v.SetRevision(1)
	return v
}

func TestPlaceGolden(t *testing.T) {
	cases := []struct {
		name string
		job  view.JobInfo
	}{
		{"best_fit_fills_tightest_first", view.JobInfo{ID: "j", Count: 6, Resources: txn.Resources{CPUMilli: 1000, MemoryBytes: gib}}},
		{"larger_task_skips_small_holes", view.JobInfo{ID: "j", Count: 2, Resources: txn.Resources{CPUMilli: 4000, MemoryBytes: gib}}},
		{"zone_constraint", view.JobInfo{ID: "j", Count: 3, Resources: txn.Resources{CPUMilli: 2000, MemoryBytes: gib},
			Constraints: []txn.Constraint{{Key: "zone", Op: txn.OpIn, Values: []string{"z1"}}}}},
		{"max_per_machine", view.JobInfo{ID: "j", Count: 4, Resources: txn.Resources{CPUMilli: 500, MemoryBytes: gib}, MaxPerMachine: 1}},
		{"gpu_machine_only_when_needed", view.JobInfo{ID: "j", Count: 5, Resources: txn.Resources{CPUMilli: 3000, MemoryBytes: gib}}},
		{"gpu_task", view.JobInfo{ID: "j", Count: 2, Resources: txn.Resources{CPUMilli: 1000, MemoryBytes: gib, GPUMilli: 2000}}},
		{"nothing_fits", view.JobInfo{ID: "j", Count: 2, Resources: txn.Resources{CPUMilli: 9000, MemoryBytes: gib}}},
		{"gang_that_does_not_fit_places_nothing", view.JobInfo{ID: "j", Count: 8, Gang: true, Resources: txn.Resources{CPUMilli: 4000, MemoryBytes: gib}}},
		{"invalid_request", view.JobInfo{ID: "j", Count: 1, Resources: txn.Resources{CPUMilli: 1000, GPUMilli: 1500}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v := smallCell()
			tc.job.Scheduler, tc.job.Priority = Name, txn.PriorityBatch
			pending := policytest.AddJob(v, tc.job)
			p := New()
			d := p.Place(tc.job, pending, v, rand.New(rand.NewPCG(7, 7)))
			policytest.Validate(t, v, p, tc.job, pending, d)
			policytest.Golden(t, tc.name, policytest.Format(v, d))
		})
	}
}

// TestBestFit checks the ranking itself on explicit machines.
func TestBestFit(t *testing.T) {
	task := &txn.Task{Resources: txn.Resources{CPUMilli: 1000, MemoryBytes: gib}}
	gpuTask := &txn.Task{Resources: txn.Resources{CPUMilli: 1000, MemoryBytes: gib, GPUMilli: 1000}}
	mk := func(cpuFree, memFree int64, gpus int64) *txn.Machine {
		m := txn.NewMachine("m", nil, txn.Resources{CPUMilli: 8000, MemoryBytes: 8 * gib, GPUMilli: gpus * 1000})
		m.Allocated = txn.Resources{CPUMilli: 8000 - cpuFree, MemoryBytes: 8*gib - memFree}
		return m
	}
	cases := []struct {
		name          string
		better, worse *txn.Machine
		task          *txn.Task
	}{
		{"less cpu left", mk(2000, 4*gib, 0), mk(4000, 4*gib, 0), task},
		{"less memory left", mk(4000, 2*gib, 0), mk(4000, 4*gib, 0), task},
		{"exact fit beats everything", mk(1000, gib, 0), mk(2000, 2*gib, 0), task},
		{"plain machine before gpu machine", mk(8000, 8*gib, 0), mk(2000, 2*gib, 8), task},
		{"gpu task: fuller gpu machine", mk(4000, 4*gib, 2), mk(4000, 4*gib, 8), gpuTask},
	}
	for _, tc := range cases {
		if b, w := BestFit(tc.better, tc.task), BestFit(tc.worse, tc.task); b >= w {
			t.Errorf("%s: better scores %d, worse %d", tc.name, b, w)
		}
	}
}

func TestDeterministicGivenSeed(t *testing.T) {
	v := policytest.Cell(policytest.CellSpec{Machines: 500, Racks: 10, Zones: 2, Fill: 0.5}, 3)
	job := view.JobInfo{ID: "j", Scheduler: Name, Priority: txn.PriorityBatch, Count: 300, Resources: txn.Resources{CPUMilli: 2000, MemoryBytes: 2 * gib}}
	pending := policytest.AddJob(v, job)
	a := policytest.Format(v, New().Place(job, pending, v, rand.New(rand.NewPCG(1, 1))))
	b := policytest.Format(v, New().Place(job, pending, v, rand.New(rand.NewPCG(1, 1))))
	c := policytest.Format(v, New().Place(job, pending, v, rand.New(rand.NewPCG(2, 1))))
	if a != b {
		t.Error("two runs with one seed decided differently")
	}
	if a == c {
		t.Error("two seeds decided identically; the sample order is not random")
	}
}

// TestClaimsAlwaysValid is the property test: on random consistent cells,
// every claim batch returns passes txn.Validate, and after applying the
// decisions round after round the cell invariant holds.
func TestClaimsAlwaysValid(t *testing.T) {
	for seed := range uint64(6) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 99))
			v := policytest.Cell(policytest.CellSpec{Machines: 60, Racks: 6, Zones: 3, GPUEvery: 4, GPUsPerMachine: 4, GPUModels: []string{"A100", "H100"},
				Fill: 0.6, FillGPU: true}, seed)
			p := New()
			placed := 0
			for round := range 30 {
				job := randomJob(rng, round)
				pending := policytest.AddJob(v, job)
				d := p.Place(job, pending, v, rng)
				dec := policytest.Validate(t, v, p, job, pending, d)
				txn.Apply(v, dec)
				v.SetRevision(v.Revision() + 1)
				placed += dec.Accepted
				policytest.CheckInvariant(t, v)
				if t.Failed() {
					t.Fatalf("round %d, job %+v", round, job)
				}
			}
			if placed == 0 {
				t.Fatal("no task was ever placed; the property was not exercised")
			}
		})
	}
}

func randomJob(rng *rand.Rand, n int) view.JobInfo {
	job := view.JobInfo{
		ID: fmt.Sprint("job", n), Scheduler: Name, Priority: txn.PriorityBatch, Count: uint32(1 + rng.IntN(40)),
		Resources: txn.Resources{CPUMilli: int64(250 * (1 + rng.IntN(16))), MemoryBytes: int64(1+rng.IntN(16)) * gib},
		Gang:      rng.IntN(5) == 0,
	}
	switch rng.IntN(5) {
	case 0:
		job.Constraints = []txn.Constraint{{Key: "zone", Op: txn.OpIn, Values: []string{"z0", "z2"}}}
	case 1:
		job.Constraints = []txn.Constraint{{Key: "gpu.model", Op: txn.OpDoesNotExist}}
	case 2:
		job.MaxPerMachine = uint32(1 + rng.IntN(2))
	case 3:
		job.Resources.GPUMilli = []int64{300, 500, 1000, 2000}[rng.IntN(4)]
	}
	return job
}

// TestMixedClassesInOneJob places a job whose pending tasks differ (as after
// a template change): each class is placed, and together they never
// over-commit a machine.
func TestMixedClassesInOneJob(t *testing.T) {
	v := smallCell()
	job := view.JobInfo{ID: "j", Scheduler: Name, Priority: txn.PriorityBatch, Count: 4, Resources: txn.Resources{CPUMilli: 1000, MemoryBytes: gib}}
	pending := policytest.AddJob(v, job)
	big := *pending[1]
	big.Resources = txn.Resources{CPUMilli: 3000, MemoryBytes: gib}
	v.PutTask(&big)
	pending = v.Pending("j")
	var d policy.Decision
	if classes := policy.Classes(pending, &d); len(classes) != 2 {
		t.Fatalf("%d classes, want 2", len(classes))
	}
	p := New()
	d = p.Place(job, pending, v, rand.New(rand.NewPCG(1, 2)))
	policytest.Validate(t, v, p, job, pending, d)
	if len(d.Claims) != 4 {
		t.Errorf("placed %d of 4:\n%s", len(d.Claims), policytest.Format(v, d))
	}
}

func TestUnplacedReasonCountsRefusals(t *testing.T) {
	v := smallCell()
	job := view.JobInfo{ID: "j", Scheduler: Name, Count: 1, Resources: txn.Resources{CPUMilli: 8500, MemoryBytes: gib},
		Constraints: []txn.Constraint{{Key: "zone", Op: txn.OpNotIn, Values: []string{"z0"}}}}
	pending := policytest.AddJob(v, job)
	d := New().Place(job, pending, v, rand.New(rand.NewPCG(1, 2)))
	if len(d.Unplaced) != 1 {
		t.Fatalf("unplaced = %+v", d.Unplaced)
	}
	// Ready machines: m0..m3 and gpu0; m0, m2, gpu0 are in z0.
	want := "no machine can ever fit: 0/5 machines fit even when empty: 3 didn't match zone != z0, 2 too little cpu (need 8500m, at most 8000m)"
	if got := d.Unplaced[0].Reason; !strings.Contains(got, want) {
		t.Errorf("reason %q, want %q", got, want)
	}
}
