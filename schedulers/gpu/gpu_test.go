package gpu

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/omegacell/omegacell/schedulers/policy/policytest"
	"github.com/omegacell/omegacell/schedulers/view"
	"github.com/omegacell/omegacell/txn"
)

const gib = policytest.GiB

// gpuMachine is one machine of a hand-built GPU cell: 64 cores, 512 GiB,
// its devices already used as given (by one filler task per used device).
type gpuMachine struct {
	rack, model string
	used        []uint32
}

func handCell(t testing.TB, specs []gpuMachine) *view.View {
	t.Helper()
	v := view.New()
	filler := view.JobInfo{ID: "filler", Scheduler: "filler", Priority: txn.PriorityBatch}
	v.PutJob(filler)
	tx := &txn.Transaction{Scheduler: "filler", Conflict: txn.ConflictFine, Commit: txn.CommitIncremental}
	next := uint32(0)
	for i, ms := range specs {
		id := fmt.Sprint("g", i)
		labels := map[string]string{"rack": ms.rack}
		if ms.model != "" {
			labels["gpu.model"] = ms.model
		}
		v.PutMachine(txn.NewMachine(id, labels, txn.Resources{CPUMilli: 64000, MemoryBytes: 512 * gib, GPUMilli: int64(len(ms.used)) * txn.MilliPerGPU}))
		for dev, u := range ms.used {
			if u == 0 {
				continue
			}
			task := filler.NewTask(next)
			next++
			task.Resources = txn.Resources{CPUMilli: 1000, MemoryBytes: gib, GPUMilli: int64(u)}
			v.PutTask(task)
			tx.Claims = append(tx.Claims, txn.Claim{Task: task.Key, Machine: id, Resources: task.Resources,
				Devices: []txn.DeviceShare{{Device: uint32(dev), Milli: u}}})
		}
	}
	dec := txn.Validate(v, tx)
	if dec.Accepted != len(tx.Claims) {
		t.Fatalf("hand-built cell refused: %+v", dec.Results)
	}
	txn.Apply(v, dec)
	v.SetRevision(1)
	return v
}

func free8() []uint32 { return make([]uint32, 8) }

// used8 is eight devices of which the first n are wholly used.
func used8(n int) []uint32 {
	u := make([]uint32, 8)
	for i := range n {
		u[i] = 1000
	}
	return u
}

// threeRacks: r0 has 2 empty machines (16 GPUs), r1 has 4 machines with 4
// free each (16 GPUs), r2 has 4 empty machines (32 GPUs). Models differ.
func threeRacks() []gpuMachine {
	return []gpuMachine{
		{"r0", "A100", free8()}, {"r0", "A100", free8()},
		{"r1", "H100", used8(4)}, {"r1", "H100", used8(4)}, {"r1", "H100", used8(4)}, {"r1", "H100", used8(4)},
		{"r2", "H100", free8()}, {"r2", "H100", free8()}, {"r2", "H100", free8()}, {"r2", "H100", free8()},
	}
}

func gangJob(count uint32, gpuMilli int64) view.JobInfo {
	return view.JobInfo{ID: "train", Scheduler: Name, Priority: txn.PriorityBatch, Gang: true, Count: count,
		Resources: txn.Resources{CPUMilli: 4000, MemoryBytes: 16 * gib, GPUMilli: gpuMilli}}
}

func TestPlaceGolden(t *testing.T) {
	cases := []struct {
		name string
		cell []gpuMachine
		job  func() view.JobInfo
		// waiting adds pending tasks of another job asking this much GPU
		// each: part of the workload fragmentation is measured against.
		waiting []int64
	}{
		{"gang_fits_smallest_rack_that_holds_it", threeRacks(), func() view.JobInfo { return gangJob(16, 1000) }, nil},
		{"gang_on_fewest_machines", threeRacks(), func() view.JobInfo { return gangJob(4, 2000) }, nil},
		{"gang_spans_fewest_racks", threeRacks(), func() view.JobInfo { return gangJob(40, 1000) }, nil},
		{"gang_model_constraint", threeRacks(), func() view.JobInfo {
			j := gangJob(3, 4000)
			j.Constraints = []txn.Constraint{{Key: "gpu.model", Op: txn.OpIn, Values: []string{"H100"}}}
			return j
		}, nil},
		{"gang_too_big_places_nothing", threeRacks(), func() view.JobInfo { return gangJob(65, 1000) }, nil},
		{"gang_of_whole_machines", threeRacks(), func() view.JobInfo { return gangJob(6, 8000) }, nil},
		// Half GPUs complete half-used devices before breaking whole ones
		// (the stranded share shrinks), then pair on a fresh device.
		{"fractional_completes_half_used_devices", []gpuMachine{
			{"r0", "T4", free8()}, {"r0", "T4", []uint32{500, 500, 0, 0}}, {"r1", "T4", free8()},
		}, halfGPUs, nil},
		// With devices a quarter used, a half GPU there would leave a
		// quarter no half-GPU task can use: FGD pairs the halves on fresh
		// devices instead (of the machine where CPU is least in excess of
		// what its GPUs need).
		{"fractional_avoids_unusable_slivers", []gpuMachine{
			{"r0", "T4", free8()}, {"r0", "T4", []uint32{250, 250, 0, 0}}, {"r1", "T4", free8()},
		}, halfGPUs, nil},
		// The cell also waits for 2-GPU tasks: a 1-GPU task takes the lone
		// free device and keeps the free pair usable.
		{"whole_gpu_keeps_pairs_free", []gpuMachine{
			{"r0", "A100", []uint32{1000, 1000, 0, 0}}, {"r0", "A100", []uint32{1000, 1000, 1000, 0}},
		}, func() view.JobInfo {
			return view.JobInfo{ID: "one", Scheduler: Name, Priority: txn.PriorityBatch, Count: 1, Resources: txn.Resources{CPUMilli: 1000, MemoryBytes: gib, GPUMilli: 1000}}
		}, []int64{2000, 2000, 2000}},
		{"cpu_task_avoids_gpu_machines", []gpuMachine{{"r0", "A100", free8()}, {"r0", "", nil}}, func() view.JobInfo {
			return view.JobInfo{ID: "cpu", Scheduler: Name, Priority: txn.PriorityBatch, Count: 2, Resources: txn.Resources{CPUMilli: 1000, MemoryBytes: gib}}
		}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v := handCell(t, tc.cell)
			waiting := view.JobInfo{ID: "waiting", Scheduler: "other"}
			for i, g := range tc.waiting {
				task := waiting.NewTask(uint32(i))
				task.Resources = txn.Resources{CPUMilli: 1000, GPUMilli: g}
				v.PutTask(task)
			}
			job := tc.job()
			pending := policytest.AddJob(v, job)
			p := New()
			d := p.Place(job, pending, v, rand.New(rand.NewPCG(3, 3)))
			dec := policytest.Validate(t, v, p, job, pending, d)
			policytest.Golden(t, tc.name, policytest.Format(v, d))
			txn.Apply(v, dec)
			policytest.CheckInvariant(t, v)
		})
	}
}

func halfGPUs() view.JobInfo {
	return view.JobInfo{ID: "infer", Scheduler: Name, Priority: txn.PriorityBatch, Count: 4, Resources: txn.Resources{CPUMilli: 1000, MemoryBytes: gib, GPUMilli: 500}}
}

func TestFragmentation(t *testing.T) {
	const plenty = 1 << 40
	cases := []struct {
		used     []uint32
		milli    int64
		want     int64
		cpu, mem int64 // free; 0 means plenty
	}{
		{[]uint32{0, 0, 0, 0}, 1000, 0, 0, 0},
		{[]uint32{0, 0, 0, 0}, 500, 0, 0, 0},
		{[]uint32{0, 0, 0, 0}, 8000, 4000, 0, 0},        // cannot fit at all: everything is a fragment
		{[]uint32{300, 0, 1000, 1000}, 1000, 700, 0, 0}, // stranded on the partial device
		{[]uint32{300, 0, 1000, 1000}, 500, 0, 0, 0},    // 700 free fits a half GPU
		{[]uint32{600, 0, 1000, 1000}, 500, 400, 0, 0},  // 400 free does not
		{[]uint32{600, 700, 1000, 1000}, 2000, 700, 0, 0},
		{[]uint32{600, 0, 0, 1000}, 2000, 400, 0, 0},
		// CPU or memory short: every idle GPU is a fragment (FGD's Q4).
		{[]uint32{300, 0, 1000, 1000}, 500, 1700, 1000, 0},
		{[]uint32{300, 0, 1000, 1000}, 1000, 1700, 0, 1 << 20},
		{[]uint32{1000, 1000}, 500, 0, 1000, 0}, // nothing idle, nothing fragmented
	}
	for _, tc := range cases {
		w := Workload{{Resources: txn.Resources{CPUMilli: 4000, MemoryBytes: 1 << 30, GPUMilli: tc.milli}, Weight: 1}}
		s := state{cpu: plenty, mem: plenty, used: tc.used}
		if tc.cpu > 0 {
			s.cpu = tc.cpu
		}
		if tc.mem > 0 {
			s.mem = tc.mem
		}
		if got := w.fragmentation(s); got != tc.want {
			t.Errorf("fragmentation(%v, cpu %d, mem %d) for %d milli = %d, want %d", tc.used, s.cpu, s.mem, tc.milli, got, tc.want)
		}
	}
}

// TestFractionalTasksShareDevices places many fractional tasks and checks
// they share devices without any device above 1000 milli.
func TestFractionalTasksShareDevices(t *testing.T) {
	for _, milli := range []int64{100, 250, 300, 500, 999} {
		t.Run(fmt.Sprint(milli, "m"), func(t *testing.T) {
			v := handCell(t, []gpuMachine{{"r0", "T4", make([]uint32, 4)}, {"r0", "T4", make([]uint32, 4)}})
			job := view.JobInfo{ID: "infer", Scheduler: Name, Priority: txn.PriorityBatch, Count: 40, Resources: txn.Resources{CPUMilli: 100, MemoryBytes: gib, GPUMilli: milli}}
			pending := policytest.AddJob(v, job)
			p := New()
			d := p.Place(job, pending, v, rand.New(rand.NewPCG(1, 1)))
			txn.Apply(v, policytest.Validate(t, v, p, job, pending, d))
			policytest.CheckInvariant(t, v)
			perDevice := 1000 / milli
			if want := min(40, int(perDevice)*8); len(d.Claims) != want {
				t.Errorf("placed %d, want %d (%d per device on 8 devices)", len(d.Claims), want, perDevice)
			}
			shared := false
			for _, id := range []string{"g0", "g1"} {
				for dev, u := range v.Machine(id).DeviceUsed {
					if u > txn.MilliPerGPU {
						t.Errorf("%s device %d used %d milli", id, dev, u)
					}
					shared = shared || int64(u) > milli
				}
			}
			if perDevice > 1 && !shared {
				t.Error("no device is shared by two tasks")
			}
		})
	}
}

// TestGangAllOrNothing: on random cells, a gang decision claims all of the
// gang or nothing, and what it claims commits in full.
func TestGangAllOrNothing(t *testing.T) {
	whole, none := 0, 0
	for seed := range uint64(8) {
		rng := rand.New(rand.NewPCG(seed, 3))
		v := policytest.Cell(policytest.CellSpec{Machines: 40, Racks: 4, GPUEvery: 1, GPUsPerMachine: 8, GPUModels: []string{"A100", "H100"},
			CPUMilli: 64000, MemoryBytes: 512 * gib, Fill: 0.3, FillGPU: true}, seed)
		p := New()
		for round := range 10 {
			job := gangJob(uint32(1+rng.IntN(48)), []int64{500, 1000, 2000, 4000, 8000}[rng.IntN(5)])
			job.ID = fmt.Sprint("gang", round)
			pending := policytest.AddJob(v, job)
			d := p.Place(job, pending, v, rng)
			dec := policytest.Validate(t, v, p, job, pending, d)
			switch len(d.Claims) {
			case len(pending):
				whole++
				if dec.Accepted != len(pending) {
					t.Errorf("gang %s: %d of %d claims accepted", job.ID, dec.Accepted, len(pending))
				}
			case 0:
				none++
			default:
				t.Errorf("gang %s: %d claims for %d tasks", job.ID, len(d.Claims), len(pending))
			}
			txn.Apply(v, dec)
			policytest.CheckInvariant(t, v)
		}
	}
	if whole == 0 || none == 0 {
		t.Fatalf("%d gangs placed whole, %d not at all: both outcomes must be exercised", whole, none)
	}
}

// TestClaimsAlwaysValid is the property test for every kind of GPU job.
func TestClaimsAlwaysValid(t *testing.T) {
	for seed := range uint64(6) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 5))
			v := policytest.Cell(policytest.CellSpec{Machines: 60, Racks: 6, GPUEvery: 2, GPUsPerMachine: 8, GPUModels: []string{"A100", "H100"},
				Fill: 0.4, FillGPU: true}, seed)
			p := New()
			for round := range 25 {
				job := view.JobInfo{ID: fmt.Sprint("job", round), Scheduler: Name, Priority: txn.PriorityBatch, Count: uint32(1 + rng.IntN(24)),
					Gang:      rng.IntN(2) == 0,
					Resources: txn.Resources{CPUMilli: int64(1000 * (1 + rng.IntN(4))), MemoryBytes: int64(1+rng.IntN(32)) * gib, GPUMilli: []int64{0, 200, 500, 1000, 2000, 8000}[rng.IntN(6)]}}
				if rng.IntN(3) == 0 {
					job.Constraints = []txn.Constraint{{Key: "gpu.model", Op: txn.OpIn, Values: []string{"H100"}}}
				}
				if rng.IntN(4) == 0 {
					job.MaxPerMachine = 2
				}
				pending := policytest.AddJob(v, job)
				d := p.Place(job, pending, v, rng)
				txn.Apply(v, policytest.Validate(t, v, p, job, pending, d))
				v.SetRevision(v.Revision() + 1)
				policytest.CheckInvariant(t, v)
				if t.Failed() {
					t.Fatalf("round %d, job %+v\n%s", round, job, policytest.Format(v, d))
				}
			}
		})
	}
}

func TestLearnWorkload(t *testing.T) {
	r := func(cpu, gpu int64) txn.Resources { return txn.Resources{CPUMilli: cpu, GPUMilli: gpu} }
	shapes := []view.Shape{
		{Resources: r(4000, 500), Tasks: 50},
		{Resources: r(8000, 0), Tasks: 30}, // CPU only: counted for coverage, dropped from the measure
		{Resources: r(8000, 2000), Tasks: 15},
		{Resources: r(1000, 250), Tasks: 5}, // beyond 95%
	}
	w := LearnWorkload(shapes, DefaultCoverage)
	want := Workload{{Resources: r(4000, 500), Weight: 50 * WeightScale / 95}, {Resources: r(8000, 2000), Weight: 15 * WeightScale / 95}}
	if fmt.Sprint(w) != fmt.Sprint(want) {
		t.Errorf("LearnWorkload = %v, want %v", w, want)
	}
	if w := LearnWorkload(shapes, WeightScale); len(w) != 3 || w[0].Resources.GPUMilli != 250 {
		t.Errorf("all shapes: %v", w)
	}
	if w := LearnWorkload(nil, DefaultCoverage); w != nil {
		t.Errorf("empty view: %v", w)
	}
}

// When every candidate is scored, the decision does not depend on the
// random stream: equal scores go to the lowest ordinal.
func TestDecideIsDeterministic(t *testing.T) {
	v := handCell(t, []gpuMachine{{"r0", "T4", free8()}, {"r0", "T4", free8()}, {"r1", "T4", free8()}})
	task := view.JobInfo{ID: "one", Scheduler: Name, Count: 1, Resources: txn.Resources{CPUMilli: 1000, MemoryBytes: gib, GPUMilli: 300}}.NewTask(0)
	v.PutTask(task)
	first := Decide(New(), v, task, nil)
	for seed := range uint64(20) {
		if c := Decide(New(), v, task, rand.New(rand.NewPCG(seed, seed))); c.Machine != first.Machine || fmt.Sprint(c.Devices) != fmt.Sprint(first.Devices) {
			t.Fatalf("seed %d: %s %v, seed nil: %s %v", seed, c.Machine, c.Devices, first.Machine, first.Devices)
		}
	}
	if first.Machine != "g0" {
		t.Errorf("tie went to %s, want g0 (the lowest ordinal)", first.Machine)
	}
	big := view.JobInfo{ID: "big", Scheduler: Name, Count: 1, Resources: txn.Resources{CPUMilli: 1000, GPUMilli: 16000}}.NewTask(0)
	if c := Decide(New(), v, big, nil); c.Machine != "" || c.Reason == "" {
		t.Errorf("16 GPUs placed on 8-GPU machines: %+v", c)
	}
}
