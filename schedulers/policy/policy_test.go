package policy

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/omegacell/omegacell/schedulers/view"
	"github.com/omegacell/omegacell/txn"
)

func TestPermutationVisitsEachOnce(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	for _, n := range []int{0, 1, 2, 3, 4, 10, 97, 100, 1024} {
		for range 5 {
			p := NewPermutation(n, rng)
			seen := make([]bool, n)
			visits := 0
			for {
				i, ok := p.Next()
				if !ok {
					break
				}
				if seen[i] {
					t.Fatalf("n=%d: %d visited twice", n, i)
				}
				seen[i] = true
				visits++
			}
			if visits != n || p.Left() != 0 {
				t.Fatalf("n=%d: %d visits, %d left", n, visits, p.Left())
			}
		}
	}
}

func TestPermutationOrderDependsOnSeed(t *testing.T) {
	first := func(seed uint64) []int {
		p := NewPermutation(1000, rand.New(rand.NewPCG(seed, 0)))
		var out []int
		for range 10 {
			i, _ := p.Next()
			out = append(out, i)
		}
		return out
	}
	if !slices.Equal(first(1), first(1)) {
		t.Error("same seed, different order")
	}
	if slices.Equal(first(1), first(2)) {
		t.Error("different seeds, same order")
	}
}

func TestHeapOrders(t *testing.T) {
	h := NewHeap(func(a, b int) bool { return a < b })
	rng := rand.New(rand.NewPCG(2, 2))
	var want []int
	for range 200 {
		x := rng.IntN(1000)
		h.Push(x)
		want = append(want, x)
	}
	slices.Sort(want)
	h.FixTop(-1) // replaces the least
	want[0] = -1
	for i, w := range want {
		if got := h.Pop(); got != w {
			t.Fatalf("pop %d = %d, want %d", i, got, w)
		}
	}
	if h.Len() != 0 {
		t.Fatalf("len %d after popping all", h.Len())
	}
}

func TestFraction(t *testing.T) {
	cases := []struct{ part, whole, want int64 }{
		{0, 100, 0},
		{50, 100, FractionScale / 2},
		{100, 100, FractionScale},
		{150, 100, FractionScale},
		{-5, 100, 0},
		{5, 0, 0},
		{1 << 50, 1 << 51, FractionScale / 2}, // beyond 64-bit multiply: 128-bit path
		{3 << 40, 1 << 42, FractionScale * 3 / 4},
	}
	for _, tc := range cases {
		if got := Fraction(tc.part, tc.whole); got != tc.want {
			t.Errorf("Fraction(%d, %d) = %d, want %d", tc.part, tc.whole, got, tc.want)
		}
	}
}

type named string

func (n named) Name() string                                                     { return string(n) }
func (n named) Modes(view.JobInfo) Modes                                         { return Modes{} }
func (n named) Place(view.JobInfo, []*txn.Task, *view.View, *rand.Rand) Decision { return Decision{} }

func TestRegistry(t *testing.T) {
	cases := []struct {
		names   []string
		wantErr string
	}{
		{[]string{"b", "a"}, ""},
		{[]string{"a", "a"}, `policies[1]: name "a" is registered twice`},
		{[]string{""}, "policies[0]: name is empty"},
	}
	for _, tc := range cases {
		var ps []Policy
		for _, n := range tc.names {
			ps = append(ps, named(n))
		}
		r, err := NewRegistry(ps...)
		if tc.wantErr != "" {
			if err == nil || err.Error() != tc.wantErr {
				t.Errorf("%v: error %v, want %q", tc.names, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if got := r.Names(); !slices.Equal(got, []string{"a", "b"}) {
			t.Errorf("names = %v", got)
		}
		if p, err := r.Lookup("b"); err != nil || p.Name() != "b" {
			t.Errorf("lookup b = %v, %v", p, err)
		}
	}
}

func TestClasses(t *testing.T) {
	zone := []txn.Constraint{{Key: "zone", Op: txn.OpIn, Values: []string{"a"}}}
	zoneCopy := []txn.Constraint{{Key: "zone", Op: txn.OpIn, Values: []string{"a"}}}
	mk := func(i uint32, cpu int64, cs []txn.Constraint, state txn.TaskState) *txn.Task {
		return &txn.Task{Key: txn.TaskKey{Job: "j", Index: i}, State: state, Resources: txn.Resources{CPUMilli: cpu}, Constraints: cs}
	}
	pending := []*txn.Task{
		mk(0, 1000, zone, txn.TaskPending),
		mk(1, 2000, zone, txn.TaskPending),
		mk(2, 1000, zoneCopy, txn.TaskPending), // equal constraints, other slice: same class
		mk(3, 1000, nil, txn.TaskPending),
		mk(4, 1000, zone, txn.TaskRunning),
		mk(5, 0, nil, txn.TaskPending),
		mk(6, 1000, []txn.Constraint{{Key: "zone", Op: txn.OpIn}}, txn.TaskPending),
	}
	var d Decision
	var got []string
	for _, c := range Classes(pending, &d) {
		var idx []string
		for _, task := range c.Tasks {
			idx = append(idx, fmt.Sprint(task.Key.Index))
		}
		got = append(got, strings.Join(idx, ","))
	}
	if want := []string{"0,2", "1", "3"}; !slices.Equal(got, want) {
		t.Errorf("classes = %v, want %v", got, want)
	}
	var unplaced []string
	for _, u := range d.Unplaced {
		unplaced = append(unplaced, fmt.Sprintf("%d: %s", u.Task.Index, u.Reason))
	}
	want := []string{
		"4: task is running, not pending",
		"5: resources: a task must request some cpu_milli, memory_bytes or gpu_milli",
		`6: constraints[0]: "zone": operator needs at least one value`,
	}
	if !slices.Equal(unplaced, want) {
		t.Errorf("unplaced = %q, want %q", unplaced, want)
	}
}

// TestScratchAccountsOwnClaims: claims of one call see each other, the view
// is never modified, and ClaimEvicting is all or nothing.
func TestScratchAccountsOwnClaims(t *testing.T) {
	v := view.New()
	v.PutMachine(txn.NewMachine("m", nil, txn.Resources{CPUMilli: 3000, MemoryBytes: 1 << 30, GPUMilli: 2000}))
	low := view.JobInfo{ID: "low", Scheduler: "s", Priority: txn.PriorityBestEffort, Resources: txn.Resources{CPUMilli: 1000}}
	v.PutJob(low)
	victim := low.NewTask(0)
	v.PutTask(victim)
	dec := txn.Validate(v, &txn.Transaction{Scheduler: "s", Conflict: txn.ConflictFine, Commit: txn.CommitIncremental,
		Claims: []txn.Claim{{Task: victim.Key, Machine: "m", Resources: victim.Resources}}})
	txn.Apply(v, dec)
	victim = v.Task(victim.Key)
	ord, _ := v.Ordinal("m")
	before := v.MachineAt(ord)

	job := view.JobInfo{ID: "j", Scheduler: "s", Priority: txn.PriorityBatch, Resources: txn.Resources{CPUMilli: 1000, GPUMilli: 600}, MaxPerMachine: 4}
	smaller := func(i uint32) *txn.Task {
		task := job.NewTask(i)
		task.Resources.GPUMilli = 400
		return task
	}
	s := NewScratch(v, "j")
	steps := []struct {
		name string
		do   func() txn.Reason
		want txn.Reason
	}{
		{"first claim", func() txn.Reason { _, r := s.Claim(ord, job.NewTask(0)); return r }, txn.ReasonOK},
		{"second claim", func() txn.Reason { _, r := s.Claim(ord, job.NewTask(1)); return r }, txn.ReasonOK},
		{"third: cpu is taken by the victim", func() txn.Reason { return s.Check(ord, job.NewTask(2)) }, txn.ReasonInsufficientCPU},
		{"evicting frees cpu but no device has 600 free", func() txn.Reason {
			_, r := s.ClaimEvicting(ord, job.NewTask(2), []*txn.Task{victim})
			return r
		}, txn.ReasonInsufficientGPU},
		{"victim still counted after the refused eviction", func() txn.Reason { return s.Check(ord, smaller(2)) }, txn.ReasonInsufficientCPU},
		{"evicting makes room", func() txn.Reason { _, r := s.ClaimEvicting(ord, smaller(2), []*txn.Task{victim}); return r }, txn.ReasonOK},
		{"victim cannot be evicted twice", func() txn.Reason { _, r := s.ClaimEvicting(ord, smaller(3), []*txn.Task{victim}); return r }, txn.ReasonInvalidPreemption},
	}
	for _, st := range steps {
		if got := st.do(); got != st.want {
			t.Errorf("%s: %v, want %v", st.name, got, st.want)
		}
	}
	if !s.Evicted(victim.Key) {
		t.Error("victim not recorded as evicted")
	}
	if s.JobTasksOn(ord) != 3 {
		t.Errorf("job tasks on m = %d, want 3", s.JobTasksOn(ord))
	}
	m := s.Machine(ord)
	if m.Allocated.CPUMilli != 3000 || m.Allocated.GPUMilli != 1600 || !slices.Equal(m.DeviceUsed, []uint32{1000, 600}) {
		t.Errorf("overlay machine: allocated %v devices %v", m.Allocated, m.DeviceUsed)
	}
	if v.MachineAt(ord) != before || before.Allocated.CPUMilli != 1000 {
		t.Error("the view's machine was modified")
	}
}

// TestPoolSamplesOnlyEnough: relaxed randomization examines machines only
// until want feasible ones are in hand.
func TestPoolSamplesOnlyEnough(t *testing.T) {
	v := view.New()
	for i := range 1000 {
		v.PutMachine(txn.NewMachine(fmt.Sprint("m", i), nil, txn.Resources{CPUMilli: 4000, MemoryBytes: 1 << 30}))
	}
	task := &txn.Task{Key: txn.TaskKey{Job: "j"}, State: txn.TaskPending, Resources: txn.Resources{CPUMilli: 1000}}
	scored := 0
	count := func(m *txn.Machine, t *txn.Task) int64 { scored++; return 0 }
	pool := NewPool(NewScratch(v, "j"), task, v.Ready(), count, rand.New(rand.NewPCG(1, 1)))
	for range 8 {
		if _, ok := pool.Place(task, 10); !ok {
			t.Fatal("no machine")
		}
	}
	// 10 sampled; the 8 tasks fill two machines of 4 slots, each rescored
	// after the 3 claims that leave it room.
	if scored != 16 {
		t.Errorf("scored %d times, want 16", scored)
	}
}

func TestKeepWholeGang(t *testing.T) {
	pending := []*txn.Task{{Key: txn.TaskKey{Job: "g", Index: 0}}, {Key: txn.TaskKey{Job: "g", Index: 1}}}
	d := Decision{Claims: []txn.Claim{{Task: pending[0].Key}}, Preemptions: []txn.TaskKey{{Job: "x"}},
		Unplaced: []Unplaced{{Task: pending[1].Key, Reason: "no room"}}}
	d.KeepWholeGang(view.JobInfo{ID: "g", Name: "train", Gang: true, Resources: txn.Resources{GPUMilli: 8000}}, pending)
	if len(d.Claims) != 0 || len(d.Preemptions) != 0 || len(d.Unplaced) != 2 || d.Unplaced[0].Reason != "gang train needs 2 tasks × (8 GPUs) at once: room for 1 now, 1 short; no room" {
		t.Errorf("decision = %+v", d)
	}
	kept := Decision{Claims: []txn.Claim{{Task: pending[0].Key}}, Unplaced: []Unplaced{{Task: pending[1].Key, Reason: "no room"}}}
	kept.KeepWholeGang(view.JobInfo{}, pending)
	if len(kept.Claims) != 1 {
		t.Error("a job that is not a gang lost its claims")
	}
}
