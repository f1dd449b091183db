package service

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/omegacell/omegacell/schedulers/policy"
	"github.com/omegacell/omegacell/schedulers/policy/policytest"
	"github.com/omegacell/omegacell/schedulers/view"
	"github.com/omegacell/omegacell/txn"
)

const gib = policytest.GiB

// resident is a task already running on a hand-built machine.
type resident struct {
	job  string
	prio int32
	cpu  int64
}

// machineSpec is one machine of a hand-built cell: 8 cores, 32 GiB.
type machineSpec struct {
	rack, zone string
	residents  []resident
}

// handCell builds a view of machines m0.. with their residents placed
// through txn.Validate, so it is consistent.
func handCell(t testing.TB, specs []machineSpec) *view.View {
	t.Helper()
	v := view.New()
	tx := &txn.Transaction{Scheduler: "other", Conflict: txn.ConflictFine, Commit: txn.CommitIncremental}
	next := map[string]uint32{}
	for i, ms := range specs {
		id := fmt.Sprint("m", i)
		v.PutMachine(txn.NewMachine(id, map[string]string{"rack": ms.rack, "zone": ms.zone}, txn.Resources{CPUMilli: 8000, MemoryBytes: 32 * gib}))
		for _, r := range ms.residents {
			if _, ok := v.Job(r.job); !ok {
				v.PutJob(view.JobInfo{ID: r.job, Scheduler: "other", Priority: r.prio})
			}
			job, _ := v.Job(r.job)
			task := job.NewTask(next[r.job])
			next[r.job]++
			task.Resources = txn.Resources{CPUMilli: r.cpu, MemoryBytes: gib}
			v.PutTask(task)
			tx.Claims = append(tx.Claims, txn.Claim{Task: task.Key, Machine: id, Resources: task.Resources})
		}
	}
	dec := txn.Validate(v, tx)
	if dec.Accepted != len(tx.Claims) {
		t.Fatalf("hand-built cell: residents refused: %+v", dec.Results)
	}
	txn.Apply(v, dec)
	v.SetRevision(1)
	return v
}

func racks(n int, residentsPerMachine func(i int) []resident) []machineSpec {
	var specs []machineSpec
	for i := range n {
		specs = append(specs, machineSpec{rack: fmt.Sprint("r", i%4), zone: fmt.Sprint("z", i%2), residents: residentsPerMachine(i)})
	}
	return specs
}

func svcJob(count uint32, cpu int64) view.JobInfo {
	return view.JobInfo{ID: "web", Scheduler: Name, Priority: txn.PriorityProduction, Kind: view.JobService, Count: count,
		Resources: txn.Resources{CPUMilli: cpu, MemoryBytes: gib}, SpreadKey: "rack"}
}

func TestPlaceGolden(t *testing.T) {
	light := func(i int) []resident { return []resident{{"batch", txn.PriorityBatch, int64(1000 * (i % 3))}} }
	full := func(prio int32) func(int) []resident {
		return func(i int) []resident {
			return []resident{{"low", prio, 4000}, {"lower", prio - 50, 2000}, {"lowest", prio - 100, 1000}}
		}
	}
	cases := []struct {
		name     string
		cell     []machineSpec
		job      func() view.JobInfo
		existing []string // machines of the job's first replicas, already running
	}{
		{"spread_evenly_over_racks", racks(8, light), func() view.JobInfo { return svcJob(8, 1000) }, nil},
		// r0 (m0, m4) runs 2 replicas and r1 (m1) 1: the next go to r2 and r3.
		{"spread_fills_emptiest_rack_first", racks(8, light), func() view.JobInfo { return svcJob(7, 1000) }, []string{"m0", "m4", "m1"}},
		{"max_per_machine", racks(3, light), func() view.JobInfo {
			j := svcJob(5, 500)
			j.MaxPerMachine = 1
			return j
		}, nil},
		{"worst_fit_without_spread", racks(4, light), func() view.JobInfo {
			j := svcJob(2, 1000)
			j.SpreadKey = ""
			return j
		}, nil},
		{"zone_constraint_and_spread", racks(8, light), func() view.JobInfo {
			j := svcJob(4, 1000)
			j.Constraints = []txn.Constraint{{Key: "zone", Op: txn.OpIn, Values: []string{"z1"}}}
			return j
		}, nil},
		{"preempts_lowest_priority_first", racks(4, full(txn.PriorityBatch+50)), func() view.JobInfo { return svcJob(4, 2000) }, nil},
		{"preempts_fewest_victims", racks(2, func(i int) []resident {
			if i == 0 {
				return []resident{{"a", 10, 4000}, {"b", 10, 4000}}
			}
			return []resident{{"c", 10, 2000}, {"d", 10, 2000}, {"e", 10, 2000}, {"f", 10, 2000}}
		}), func() view.JobInfo { return svcJob(1, 4000) }, nil},
		{"production_never_preempts_production", racks(4, full(txn.PriorityProduction+100)), func() view.JobInfo { return svcJob(2, 2000) }, nil},
		{"batch_preempts_best_effort_before_lower_batch", racks(2, func(int) []resident {
			return []resident{{"be", txn.PriorityBestEffort, 1000}, {"other-batch", txn.PriorityBatch, 7000}}
		}), func() view.JobInfo {
			j := svcJob(3, 1000)
			j.Priority = txn.PriorityBatch + 10
			return j
		}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v := handCell(t, tc.cell)
			job := tc.job()
			pending := policytest.AddJob(v, job)
			pending = placeExisting(t, v, pending, tc.existing)
			p := New()
			d := p.Place(job, pending, v, rand.New(rand.NewPCG(11, 11)))
			dec := policytest.Validate(t, v, p, job, pending, d)
			policytest.Golden(t, tc.name, policytest.Format(v, d))
			txn.Apply(v, dec)
			policytest.CheckInvariant(t, v)
			for _, k := range d.Preemptions {
				if got := v.Task(k).State; got != txn.TaskPending {
					t.Errorf("victim %s is %s after the commit, want pending", k, got)
				}
			}
		})
	}
}

// placeExisting places the first pending tasks on the given machines and
// returns the tasks still pending.
func placeExisting(t *testing.T, v *view.View, pending []*txn.Task, machines []string) []*txn.Task {
	t.Helper()
	if len(machines) == 0 {
		return pending
	}
	tx := &txn.Transaction{Scheduler: Name, Conflict: txn.ConflictFine, Commit: txn.CommitIncremental}
	for i, m := range machines {
		tx.Claims = append(tx.Claims, txn.Claim{Task: pending[i].Key, Machine: m, Resources: pending[i].Resources})
	}
	dec := txn.Validate(v, tx)
	if dec.Accepted != len(machines) {
		t.Fatalf("existing replicas refused: %+v", dec.Results)
	}
	txn.Apply(v, dec)
	return v.Pending(pending[0].Key.Job)
}

// TestSpreadIsEven places many replicas over the racks of a random cell
// and checks that no two racks differ by more than one replica.
func TestSpreadIsEven(t *testing.T) {
	cases := []struct {
		replicas uint32
		racks    int
		maxPer   uint32
	}{
		{100, 40, 0}, {7, 40, 1}, {400, 40, 1}, {41, 40, 0},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%d_over_%d", tc.replicas, tc.racks), func(t *testing.T) {
			v := policytest.Cell(policytest.CellSpec{Machines: 800, Racks: tc.racks, Zones: 4, Fill: 0.5}, 5)
			job := svcJob(tc.replicas, 500)
			job.MaxPerMachine = tc.maxPer
			pending := policytest.AddJob(v, job)
			p := New()
			d := p.Place(job, pending, v, rand.New(rand.NewPCG(1, 2)))
			txn.Apply(v, policytest.Validate(t, v, p, job, pending, d))
			if len(d.Claims) != int(tc.replicas) {
				t.Fatalf("placed %d of %d", len(d.Claims), tc.replicas)
			}
			counts := v.JobPlacement(job.ID).DomainCounts("rack")
			lo, hi := int(tc.replicas), 0
			for _, val := range v.LabelValues("rack") {
				lo, hi = min(lo, counts[val]), max(hi, counts[val])
			}
			if hi-lo > 1 {
				t.Errorf("replicas per rack range %d..%d: %v", lo, hi, counts)
			}
			if tc.maxPer > 0 {
				for ord := range int32(v.NumOrdinals()) {
					if n := v.JobPlacement(job.ID).On(ord); n > tc.maxPer {
						t.Errorf("machine %d runs %d replicas, max %d", ord, n, tc.maxPer)
					}
				}
			}
		})
	}
}

// TestClaimsAlwaysValid is the property test: on random consistent cells,
// some nearly full with work of every band, every claim and preemption the
// policy returns passes txn.Validate, victims are strictly lower priority
// and never production, and the invariant holds round after round.
func TestClaimsAlwaysValid(t *testing.T) {
	preempted := 0
	for seed := range uint64(6) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 7))
			v := policytest.Cell(policytest.CellSpec{Machines: 80, Racks: 8, Zones: 2, GPUEvery: 5, GPUsPerMachine: 4,
				Fill: []float64{0.5, 0.97}[seed%2], FillGPU: true,
				FillPriorities: []int32{txn.PriorityBestEffort, txn.PriorityBatch, txn.PriorityBatch + 50, txn.PriorityProduction}}, seed)
			p := New()
			for round := range 25 {
				job := randomJob(rng, round)
				pending := policytest.AddJob(v, job)
				d := p.Place(job, pending, v, rng)
				dec := policytest.Validate(t, v, p, job, pending, d)
				for _, k := range d.Preemptions {
					victim := v.Task(k)
					if !txn.CanPreempt(job.Priority, victim.Priority) {
						t.Errorf("job of priority %d preempts %s of priority %d", job.Priority, k, victim.Priority)
					}
				}
				preempted += len(d.Preemptions)
				txn.Apply(v, dec)
				v.SetRevision(v.Revision() + 1)
				policytest.CheckInvariant(t, v)
				if t.Failed() {
					t.Fatalf("round %d, job %+v\n%s", round, job, policytest.Format(v, d))
				}
			}
		})
	}
	if preempted == 0 {
		t.Fatal("no decision preempted; the preemption property was not exercised")
	}
}

func randomJob(rng *rand.Rand, n int) view.JobInfo {
	job := view.JobInfo{
		ID: fmt.Sprint("svc", n), Scheduler: Name, Kind: view.JobService, Count: uint32(1 + rng.IntN(30)),
		Priority:  []int32{txn.PriorityBatch, txn.PriorityBatch + 60, txn.PriorityProduction, txn.PriorityProduction + 50}[rng.IntN(4)],
		Resources: txn.Resources{CPUMilli: int64(500 * (1 + rng.IntN(8))), MemoryBytes: int64(1+rng.IntN(8)) * gib},
		SpreadKey: []string{"", "rack", "zone"}[rng.IntN(3)],
		Gang:      rng.IntN(6) == 0,
	}
	switch rng.IntN(4) {
	case 0:
		job.MaxPerMachine = uint32(1 + rng.IntN(2))
	case 1:
		job.Constraints = []txn.Constraint{{Key: "zone", Op: txn.OpIn, Values: []string{"z1"}}}
	case 2:
		job.Resources.GPUMilli = []int64{500, 1000}[rng.IntN(2)]
	}
	return job
}

func TestUnplacedReason(t *testing.T) {
	v := handCell(t, racks(2, func(int) []resident { return []resident{{"prod", txn.PriorityProduction, 7000}} }))
	job := svcJob(1, 2000)
	pending := policytest.AddJob(v, job)
	d := New().Place(job, pending, v, rand.New(rand.NewPCG(1, 1)))
	if len(d.Unplaced) != 1 {
		t.Fatalf("unplaced = %+v", d.Unplaced)
	}
	want := "0/2 machines fit now: 2 insufficient cpu (need 2000m, at most 1000m free); 2 would fit when empty; evicting lower-priority tasks makes no room either"
	if got := d.Unplaced[0].Reason; got != want {
		t.Errorf("reason %q, want %q", got, want)
	}
	if !slices.ContainsFunc(d.Unplaced, func(u policy.Unplaced) bool { return strings.Contains(u.Reason, "insufficient cpu") }) {
		t.Error("reason does not name the short resource")
	}
}
