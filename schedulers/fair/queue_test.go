package fair

import (
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/omegacell/omegacell/txn"
)

// qjob is a test job: its tenant, priority, submit time and name.
type qjob struct {
	tenant   string
	priority int32
	submit   int64
	name     string
}

func fifo(a, b qjob) bool {
	return cmp.Or(cmp.Compare(b.priority, a.priority), cmp.Compare(a.submit, b.submit), cmp.Compare(a.name, b.name)) < 0
}

var capacity = txn.Resources{CPUMilli: 100_000, MemoryBytes: 1000, GPUMilli: 10_000}

func TestDominantShare(t *testing.T) {
	cases := []struct {
		name  string
		usage txn.Resources
		cap   txn.Resources
		want  float64
	}{
		{"cpu dominates", txn.Resources{CPUMilli: 50_000, MemoryBytes: 100}, capacity, 0.5},
		{"memory dominates", txn.Resources{CPUMilli: 10_000, MemoryBytes: 300}, capacity, 0.3},
		{"gpu dominates", txn.Resources{CPUMilli: 1000, MemoryBytes: 10, GPUMilli: 8000}, capacity, 0.8},
		{"nothing held", txn.Resources{}, capacity, 0},
		{"cell without gpus ignores gpu", txn.Resources{CPUMilli: 25_000, GPUMilli: 1000}, txn.Resources{CPUMilli: 100_000, MemoryBytes: 1000}, 0.25},
		{"empty cell", txn.Resources{CPUMilli: 1}, txn.Resources{}, 0},
		{"disk is not a DRF resource", txn.Resources{DiskBytes: 1 << 40}, txn.Resources{CPUMilli: 1, DiskBytes: 1}, 0},
	}
	for _, tc := range cases {
		if got := DominantShare(tc.usage, tc.cap); math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("%s: DominantShare = %v, want %v", tc.name, got, tc.want)
		}
	}
	if got := WeightedShare(txn.Resources{CPUMilli: 60_000}, capacity, 3); math.Abs(got-0.2) > 1e-12 {
		t.Errorf("WeightedShare(0.6, weight 3) = %v, want 0.2", got)
	}
	if got := WeightedShare(txn.Resources{CPUMilli: 60_000}, capacity, 0); math.Abs(got-0.6) > 1e-12 {
		t.Errorf("WeightedShare(0.6, weight 0) = %v, want 0.6 (weight 0 counts as 1)", got)
	}
}

func TestJain(t *testing.T) {
	cases := []struct {
		xs   []float64
		want float64
	}{
		{[]float64{0.25, 0.25, 0.25, 0.25}, 1},
		{[]float64{1, 0, 0, 0}, 0.25},
		{[]float64{0.5, 0.25}, 0.9},
		{nil, 1},
		{[]float64{0, 0}, 1},
	}
	for _, tc := range cases {
		if got := Jain(tc.xs); math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("Jain(%v) = %v, want %v", tc.xs, got, tc.want)
		}
	}
}

// TestQueueOrder pushes jobs with given usages and weights and checks the
// pop order.
func TestQueueOrder(t *testing.T) {
	type usage struct {
		tenant string
		use    txn.Resources
		weight uint32
	}
	cases := []struct {
		name   string
		usages []usage
		jobs   []qjob
		want   string
	}{
		{
			name:   "lowest dominant share first",
			usages: []usage{{"a", txn.Resources{CPUMilli: 50_000}, 1}, {"b", txn.Resources{MemoryBytes: 100}, 1}, {"c", txn.Resources{GPUMilli: 3000}, 1}},
			jobs:   []qjob{{"a", 100, 1, "a1"}, {"b", 100, 2, "b1"}, {"c", 100, 3, "c1"}},
			want:   "b1 c1 a1",
		},
		{
			name:   "weight divides the share",
			usages: []usage{{"a", txn.Resources{CPUMilli: 60_000}, 3}, {"b", txn.Resources{CPUMilli: 30_000}, 1}},
			jobs:   []qjob{{"b", 100, 1, "b1"}, {"a", 100, 2, "a1"}},
			want:   "a1 b1",
		},
		{
			name:   "FIFO by priority within a tenant",
			usages: []usage{{"a", txn.Resources{}, 1}},
			jobs:   []qjob{{"a", 100, 3, "late"}, {"a", 150, 5, "urgent"}, {"a", 100, 1, "early"}},
			want:   "urgent early late",
		},
		{
			name:   "a higher band never waits behind a lower band",
			usages: []usage{{"rich", txn.Resources{CPUMilli: 90_000}, 1}, {"poor", txn.Resources{}, 1}},
			jobs:   []qjob{{"poor", 100, 1, "poor-batch"}, {"rich", 200, 2, "rich-prod"}, {"poor", 0, 3, "poor-be"}},
			want:   "rich-prod poor-batch poor-be",
		},
		{
			name:   "starving tenants first, longest waiting first",
			usages: []usage{{"a", txn.Resources{CPUMilli: 1000}, 1}, {"b", txn.Resources{}, 1}, {"c", txn.Resources{}, 1}},
			jobs:   []qjob{{"a", 100, 1, "a1"}, {"c", 100, 5, "c1"}, {"b", 100, 7, "b1"}},
			want:   "c1 b1 a1",
		},
		{
			name:   "equal shares and heads: tenant name",
			usages: []usage{{"y", txn.Resources{CPUMilli: 1000}, 1}, {"x", txn.Resources{CPUMilli: 1000}, 1}},
			jobs:   []qjob{{"y", 100, 1, "j"}, {"x", 100, 1, "j"}},
			want:   "j(x) j(y)",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			q := NewQueue(fifo)
			q.SetCapacity(capacity)
			for _, u := range tc.usages {
				q.SetUsage(u.tenant, u.use)
				q.SetWeight(u.tenant, u.weight)
			}
			for _, j := range tc.jobs {
				q.Push(j.tenant, j.priority, j)
			}
			var got []string
			names := map[string]int{}
			for _, j := range tc.jobs {
				names[j.name]++
			}
			for {
				j, tenant, ok := q.Pop()
				if !ok {
					break
				}
				if tenant != j.tenant {
					t.Errorf("popped %s with tenant %q, pushed with %q", j.name, tenant, j.tenant)
				}
				if names[j.name] > 1 {
					got = append(got, j.name+"("+j.tenant+")")
				} else {
					got = append(got, j.name)
				}
			}
			if s := strings.Join(got, " "); s != tc.want {
				t.Errorf("order %q, want %q", s, tc.want)
			}
			if q.Len() != 0 {
				t.Errorf("Len = %d after popping everything", q.Len())
			}
		})
	}
}

// TestUsageChangeReorders checks that a usage, weight or capacity change
// after the jobs were pushed moves tenants.
func TestUsageChangeReorders(t *testing.T) {
	q := NewQueue(fifo)
	q.SetCapacity(capacity)
	q.Push("a", 100, qjob{"a", 100, 1, "a1"})
	q.Push("b", 100, qjob{"b", 100, 2, "b1"})
	q.SetUsage("a", txn.Resources{CPUMilli: 10_000})
	if j, _, _ := q.Pop(); j.name != "b1" {
		t.Fatalf("after a's usage grew, popped %s, want b1", j.name)
	}
	q.Push("b", 100, qjob{"b", 100, 2, "b1"})
	q.SetUsage("b", txn.Resources{GPUMilli: 2000}) // 0.2 > a's 0.1
	if j, _, _ := q.Pop(); j.name != "a1" {
		t.Fatalf("after b's usage grew past a's, popped %s, want a1", j.name)
	}
	q.Push("a", 100, qjob{"a", 100, 1, "a1"})
	q.SetWeight("b", 4) // 0.05 < 0.1
	if j, _, _ := q.Pop(); j.name != "b1" {
		t.Fatalf("after b's weight grew, popped %s, want b1", j.name)
	}
	q.Push("b", 100, qjob{"b", 100, 2, "b1"})
	q.SetCapacity(txn.Resources{CPUMilli: 1_000_000, MemoryBytes: 1000, GPUMilli: 10_000}) // a: 0.01, b: 0.05
	if j, _, _ := q.Pop(); j.name != "a1" {
		t.Fatalf("after the cell grew, popped %s, want a1", j.name)
	}
	if !q.Forget("a") || q.Forget("b") {
		t.Error("Forget: a has no queued job and is forgotten; b has one and stays")
	}
}

// TestProgressiveFilling is DRF's progressive filling on a saturated cell:
// tenants with weights 1 and 3 (and the paper's example of CPU-heavy and
// memory-heavy tasks) take turns by lowest weighted share until the cell is
// full; their dominant shares end at the weights' ratio.
func TestProgressiveFilling(t *testing.T) {
	cases := []struct {
		name    string
		weights map[string]uint32
		task    map[string]txn.Resources
		cap     txn.Resources
		want    map[string]float64 // dominant shares, ± 0.02
	}{
		{
			name:    "weights 1 and 3, same shape",
			weights: map[string]uint32{"a": 1, "b": 3},
			task:    map[string]txn.Resources{"a": {CPUMilli: 1000, MemoryBytes: 1}, "b": {CPUMilli: 1000, MemoryBytes: 1}},
			cap:     txn.Resources{CPUMilli: 400_000, MemoryBytes: 1000},
			want:    map[string]float64{"a": 0.25, "b": 0.75},
		},
		{
			// Ghodsi et al. §4: 9 CPUs, 18 GB; A's tasks <1 CPU, 4 GB>, B's
			// <3 CPU, 1 GB>: A gets 3 tasks, B 2; both dominant shares 2/3.
			name:    "the paper's example",
			weights: map[string]uint32{"a": 1, "b": 1},
			task:    map[string]txn.Resources{"a": {CPUMilli: 1000, MemoryBytes: 4}, "b": {CPUMilli: 3000, MemoryBytes: 1}},
			cap:     txn.Resources{CPUMilli: 9000, MemoryBytes: 18},
			want:    map[string]float64{"a": 2.0 / 3, "b": 2.0 / 3},
		},
		{
			// Different dominant resources do not compete: each fills its own
			// (GPUs for one, CPU for the other), whatever the weights.
			name:    "GPU tenant against CPU tenant, weights 2 and 1",
			weights: map[string]uint32{"gpu": 2, "cpu": 1},
			task:    map[string]txn.Resources{"gpu": {CPUMilli: 100, GPUMilli: 1000}, "cpu": {CPUMilli: 1000}},
			cap:     txn.Resources{CPUMilli: 30_000, GPUMilli: 30_000},
			want:    map[string]float64{"gpu": 1, "cpu": 0.9},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			q := NewQueue(fifo)
			q.SetCapacity(tc.cap)
			use := map[string]txn.Resources{}
			for _, name := range slices.Sorted(func(yield func(string) bool) {
				for k := range tc.weights {
					if !yield(k) {
						return
					}
				}
			}) {
				q.SetWeight(name, tc.weights[name])
				q.Push(name, 100, qjob{name, 100, 0, name})
			}
			var total txn.Resources
			for {
				j, tenant, ok := q.Pop()
				if !ok {
					break
				}
				next := total.Add(tc.task[tenant])
				if !next.LessOrEqual(tc.cap) {
					continue // the tenant's next task does not fit: it is done
				}
				total = next
				use[tenant] = use[tenant].Add(tc.task[tenant])
				q.SetUsage(tenant, use[tenant])
				q.Push(tenant, 100, j)
			}
			for name, want := range tc.want {
				if got := DominantShare(use[name], tc.cap); math.Abs(got-want) > 0.02 {
					t.Errorf("tenant %s: dominant share %.3f, want %.3f", name, got, want)
				}
			}
		})
	}
}

// TestQueueMatchesSort is the property test: with random usages, weights,
// bands and submit times, popping the queue (with usage changes between
// pops) gives the order a full sort by the documented key gives.
func TestQueueMatchesSort(t *testing.T) {
	for seed := range uint64(20) {
		rng := rand.New(rand.NewPCG(seed, 1))
		q := NewQueue(fifo)
		q.SetCapacity(capacity)
		tenants := 1 + rng.IntN(12)
		use := map[string]txn.Resources{}
		weight := map[string]uint32{}
		var jobs []qjob
		for i := range tenants {
			name := fmt.Sprint("t", i)
			use[name] = txn.Resources{CPUMilli: rng.Int64N(50_000), MemoryBytes: rng.Int64N(500), GPUMilli: rng.Int64N(5000)}
			weight[name] = uint32(1 + rng.IntN(4))
			q.SetUsage(name, use[name])
			q.SetWeight(name, weight[name])
		}
		for i := range 200 {
			j := qjob{fmt.Sprint("t", rng.IntN(tenants)), []int32{0, 100, 150, 200}[rng.IntN(4)], rng.Int64N(50), fmt.Sprint("j", i)}
			jobs = append(jobs, j)
			q.Push(j.tenant, j.priority, j)
		}
		for len(jobs) > 0 {
			if rng.IntN(3) == 0 {
				name := fmt.Sprint("t", rng.IntN(tenants))
				use[name] = use[name].Add(txn.Resources{CPUMilli: rng.Int64N(5000)})
				q.SetUsage(name, use[name])
			}
			share := func(j qjob) float64 { return WeightedShare(use[j.tenant], capacity, weight[j.tenant]) }
			want := slices.MinFunc(jobs, func(a, b qjob) int {
				return cmp.Or(cmp.Compare(BandIndex(a.priority), BandIndex(b.priority)), cmp.Compare(share(a), share(b)),
					cmp.Compare(b.priority, a.priority), cmp.Compare(a.submit, b.submit), cmp.Compare(a.name, b.name), cmp.Compare(a.tenant, b.tenant))
			})
			got, _, ok := q.Pop()
			if !ok || got != want {
				t.Fatalf("seed %d: popped %+v, want %+v", seed, got, want)
			}
			jobs = slices.DeleteFunc(jobs, func(j qjob) bool { return j == want })
		}
	}
}
