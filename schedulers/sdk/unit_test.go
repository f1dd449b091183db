package sdk

import (
	"math"
	"slices"
	"testing"
	"time"

	"github.com/omegacell/omegacell/schedulers/policy"
	"github.com/omegacell/omegacell/schedulers/view"
	"github.com/omegacell/omegacell/txn"
)

var t0 = time.Unix(1_700_000_000, 0)

func TestWindowFigures(t *testing.T) {
	type add struct {
		at         time.Duration // after t0
		busy       time.Duration
		acc, confl int
	}
	for _, tc := range []struct {
		name                string
		adds                []add
		now                 time.Duration
		wantBusy, wantConfl float64
	}{
		{"nothing yet", nil, 10 * time.Second, 0, 0},
		{"before a full window: of the time so far", []add{{1 * time.Second, 2 * time.Second, 4, 1}}, 10 * time.Second, 0.2, 0.25},
		{"full window", []add{{30 * time.Second, 6 * time.Second, 10, 5}, {70 * time.Second, 6 * time.Second, 10, 0}}, 80 * time.Second, 0.2, 0.25},
		{"old buckets drop out", []add{{5 * time.Second, 30 * time.Second, 1, 9}, {100 * time.Second, 3 * time.Second, 2, 2}}, 100 * time.Second, 0.05, 1},
		{"conflicts with nothing accepted count per one claim", []add{{time.Second, 0, 0, 3}}, 2 * time.Second, 0, 3},
		{"clamped to one", []add{{time.Second, 5 * time.Second, 0, 0}}, 2 * time.Second, 1, 0},
		{"a bucket reused after a minute", []add{{0, time.Second, 0, 0}, {60 * time.Second, 0, 1, 0}}, 60 * time.Second, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWindow(t0)
			for _, a := range tc.adds {
				w.addBusy(t0.Add(a.at), a.busy)
				w.addClaims(t0.Add(a.at), a.acc, a.confl)
			}
			busy, confl := w.figures(t0.Add(tc.now))
			if math.Abs(busy-tc.wantBusy) > 1e-9 || math.Abs(confl-tc.wantConfl) > 1e-9 {
				t.Errorf("figures = busyness %v, conflict fraction %v; want %v, %v", busy, confl, tc.wantBusy, tc.wantConfl)
			}
		})
	}
}

func TestBackoffWait(t *testing.T) {
	b := Backoff{Initial: 10 * time.Millisecond, Max: 100 * time.Millisecond}
	for _, tc := range []struct {
		n    int
		u    float64
		want time.Duration
	}{
		{1, 0, 5 * time.Millisecond},
		{1, 0.999999, 10 * time.Millisecond},
		{2, 0, 10 * time.Millisecond},
		{4, 0.5, 60 * time.Millisecond},
		{5, 0, 50 * time.Millisecond}, // 160 ms capped at 100
		{50, 0.5, 75 * time.Millisecond},
	} {
		if got := b.wait(tc.n, tc.u); got.Round(time.Millisecond) != tc.want {
			t.Errorf("wait(%d, %v) = %v, want %v", tc.n, tc.u, got, tc.want)
		}
	}
}

func TestModes(t *testing.T) {
	fine, coarse := txn.ConflictFine, txn.ConflictCoarse
	incr, aon := txn.CommitIncremental, txn.CommitAllOrNothing
	for _, tc := range []struct {
		name     string
		conflict txn.ConflictMode
		commit   txn.CommitMode
		policy   policy.Modes
		gang     bool
		want     policy.Modes
	}{
		{"the policy's", 0, 0, policy.Modes{Conflict: coarse, Commit: incr}, false, policy.Modes{Conflict: coarse, Commit: incr}},
		{"unspecified by the policy", 0, 0, policy.Modes{}, false, policy.Modes{Conflict: fine, Commit: incr}},
		{"overridden", fine, aon, policy.Modes{Conflict: coarse, Commit: incr}, false, policy.Modes{Conflict: fine, Commit: aon}},
		{"a gang is all-or-nothing whatever the override", coarse, incr, policy.Modes{Conflict: fine, Commit: aon}, true, policy.Modes{Conflict: coarse, Commit: aon}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Config{ConflictMode: tc.conflict, CommitMode: tc.commit}
			if got := c.modes(tc.policy, tc.gang); got != tc.want {
				t.Errorf("modes = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestParseModes(t *testing.T) {
	for _, tc := range []struct {
		in       string
		conflict txn.ConflictMode
		err      bool
	}{{"fine", txn.ConflictFine, false}, {"coarse", txn.ConflictCoarse, false}, {"", 0, false}, {"Fine", 0, true}} {
		if got, err := ParseConflictMode(tc.in); got != tc.conflict || (err != nil) != tc.err {
			t.Errorf("ParseConflictMode(%q) = %v, %v", tc.in, got, err)
		}
	}
	for _, tc := range []struct {
		in     string
		commit txn.CommitMode
		err    bool
	}{{"incremental", txn.CommitIncremental, false}, {"all-or-nothing", txn.CommitAllOrNothing, false}, {"", 0, false}, {"gang", 0, true}} {
		if got, err := ParseCommitMode(tc.in); got != tc.commit || (err != nil) != tc.err {
			t.Errorf("ParseCommitMode(%q) = %v, %v", tc.in, got, err)
		}
	}
}

func TestConfigDefaults(t *testing.T) {
	c, err := Config{Server: "x:1", Name: "mine", Policy: fakePolicy{}}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if c.MaxAttempts != DefaultMaxAttempts || c.Backoff != (Backoff{DefaultBackoffInitial, DefaultBackoffMax}) ||
		c.ParkedRetry != DefaultParkedRetry || c.StatsInterval != DefaultStatsInterval || c.Logger == nil || c.Clock == nil {
		t.Errorf("defaults = %+v", c)
	}
	c, err = Config{Server: "x:1", Name: "mine", Policy: fakePolicy{}, Backoff: Backoff{Initial: 5 * time.Second}}.withDefaults()
	if err != nil || c.Backoff.Max != 5*time.Second {
		t.Errorf("Backoff with only a large Initial = %v, %v; want Max raised to Initial", c.Backoff, err)
	}
}

type fakePolicy struct{ policy.Policy }

func TestQueueOrder(t *testing.T) {
	q := newQueue()
	jobs := []view.JobInfo{
		{ID: "c", Priority: 100, SubmitTime: 3},
		{ID: "a", Priority: 100, SubmitTime: 3},
		{ID: "late-prod", Priority: 200, SubmitTime: 9},
		{ID: "early", Priority: 100, SubmitTime: 1},
		{ID: "best-effort", Priority: 0, SubmitTime: 0},
	}
	for _, info := range jobs {
		q.setReady(q.get(info))
	}
	q.setReady(q.jobs["a"]) // twice: still one entry
	var got []string
	for j := q.pop(); j != nil; j = q.pop() {
		got = append(got, j.info.ID)
	}
	want := []string{"late-prod", "early", "a", "c", "best-effort"}
	if len(got) != len(want) {
		t.Fatalf("order = %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("order = %v, want %v", got, want)
		}
	}
}

func TestQueueStates(t *testing.T) {
	q := newQueue()
	a, b, c := q.get(view.JobInfo{ID: "a"}), q.get(view.JobInfo{ID: "b"}), q.get(view.JobInfo{ID: "c"})
	q.setWaiting(a, t0.Add(2*time.Second))
	q.setWaiting(b, t0.Add(time.Second))
	q.setParked(c, t0.Add(time.Minute), "full")
	if at, ok := q.nextWake(); !ok || !at.Equal(t0.Add(time.Second)) {
		t.Errorf("nextWake = %v, %v; want b's", at, ok)
	}
	// Waiting again replaces the earlier wake time.
	q.setWaiting(b, t0.Add(3*time.Second))
	q.wake(t0.Add(2 * time.Second))
	if j := q.pop(); j != a {
		t.Errorf("after 2 s popped %v, want a", j)
	}
	if j := q.pop(); j != nil {
		t.Errorf("popped %v, want nothing: b waits until 3 s, c is parked", j.info.ID)
	}
	// a stays ready while the loop attempts it.
	if r, w, p := q.counts(); r != 1 || w != 1 || p != 1 {
		t.Errorf("counts = %d ready, %d waiting, %d parked", r, w, p)
	}
	q.remove("b")
	if _, ok := q.nextWake(); ok {
		t.Error("a removed job still has a wake time")
	}
	q.setReady(c)
	if len(q.parked) != 0 || q.pop() != c {
		t.Error("unparked job not ready")
	}
}

func TestHelps(t *testing.T) {
	base := txn.NewMachine("m", map[string]string{"rack": "r1"}, txn.Resources{CPUMilli: 8000, MemoryBytes: 8 << 30, GPUMilli: 2000})
	base.Allocated = txn.Resources{CPUMilli: 4000, MemoryBytes: 4 << 30, GPUMilli: 1500}
	base.DeviceUsed = []uint32{1000, 500}
	with := func(f func(m *txn.Machine)) *txn.Machine {
		m := base.Clone()
		f(m)
		return m
	}
	for _, tc := range []struct {
		name string
		old  *txn.Machine
		m    *txn.Machine
		want bool
	}{
		{"new machine", nil, base, true},
		{"back to ready", with(func(m *txn.Machine) { m.State = txn.MachineDraining }), base, true},
		{"drained", base, with(func(m *txn.Machine) { m.State = txn.MachineDraining }), false},
		{"more allocated", base, with(func(m *txn.Machine) { m.Allocated.CPUMilli = 5000 }), false},
		{"cpu freed", base, with(func(m *txn.Machine) { m.Allocated.CPUMilli = 3000 }), true},
		{"device share freed", base, with(func(m *txn.Machine) { m.DeviceUsed = []uint32{1000, 200} }), true},
		{"capacity grew", base, with(func(m *txn.Machine) { m.Capacity.MemoryBytes = 16 << 30 }), true},
		{"relabelled", base, with(func(m *txn.Machine) { m.Labels = map[string]string{"rack": "r2"} }), true},
		{"only the sequence number", base, with(func(m *txn.Machine) { m.Seq++ }), false},
	} {
		if got := helps(tc.old, tc.m); got != tc.want {
			t.Errorf("%s: helps = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestAnyFits(t *testing.T) {
	gpuBox := txn.NewMachine("g", map[string]string{"gpu.model": "H100"}, txn.Resources{CPUMilli: 8000, MemoryBytes: 8 << 30, GPUMilli: 1000})
	cpuBox := txn.NewMachine("c", nil, txn.Resources{CPUMilli: 2000, MemoryBytes: 8 << 30})
	h100 := []txn.Constraint{{Key: "gpu.model", Op: txn.OpIn, Values: []string{"H100"}}}
	for _, tc := range []struct {
		name string
		job  view.JobInfo
		want bool
	}{
		{"fits the cpu box", view.JobInfo{Resources: txn.Resources{CPUMilli: 1000}}, true},
		{"too big for both", view.JobInfo{Resources: txn.Resources{CPUMilli: 9000}}, false},
		{"needs the gpu box", view.JobInfo{Resources: txn.Resources{CPUMilli: 4000, GPUMilli: 500}}, true},
		{"constraint excludes the only fit", view.JobInfo{Resources: txn.Resources{CPUMilli: 1000}, Constraints: []txn.Constraint{{Key: "gpu.model", Op: txn.OpDoesNotExist}}}, true},
		{"constraint to a box too small", view.JobInfo{Resources: txn.Resources{CPUMilli: 1000, GPUMilli: 2000}, Constraints: h100}, false},
	} {
		if got := anyFits(tc.job, []*txn.Machine{gpuBox, cpuBox}); got != tc.want {
			t.Errorf("%s: anyFits = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestUnplacedReason(t *testing.T) {
	u := func(reasons ...string) []policy.Unplaced {
		var out []policy.Unplaced
		for i, r := range reasons {
			out = append(out, policy.Unplaced{Task: txn.TaskKey{Job: "j", Index: uint32(i)}, Reason: r})
		}
		return out
	}
	for _, tc := range []struct {
		name     string
		unplaced []policy.Unplaced
		pending  int
		want     string
	}{
		{"none given", nil, 3, "the policy placed none of 3 pending tasks and gave no reason"},
		{"one reason", u("full", "full"), 5, "2 of 5 pending tasks unplaced: full"},
		{"most common first", u("a", "b", "b", "c"), 4, "4 of 4 pending tasks unplaced: b (and 2 more tasks for 2 other reasons)"},
		{"ties: first seen", u("a", "b"), 2, "2 of 2 pending tasks unplaced: a (and 1 more task for 1 other reason)"},
	} {
		if got := unplacedReason(tc.unplaced, tc.pending); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}

// TestFairQueueOrder: with fair share, the queue takes the tenant with the
// lowest weighted dominant share first (as the view counts it), bands
// first, FIFO by priority within a tenant.
func TestFairQueueOrder(t *testing.T) {
	v := view.New()
	v.PutMachine(txn.NewMachine("m", nil, txn.Resources{CPUMilli: 100_000, MemoryBytes: 100 << 30}))
	heavy := view.JobInfo{ID: "running", Scheduler: "s", Tenant: "heavy", Count: 1, Resources: txn.Resources{CPUMilli: 40_000}}
	v.PutJob(heavy)
	run := heavy.NewTask(0)
	run.State, run.Machine = txn.TaskRunning, "m"
	v.PutTask(run)
	v.SetTenantWeight("heavy", 2) // 0.4 / 2 = 0.2 weighted
	light := view.JobInfo{ID: "running-light", Scheduler: "s", Tenant: "light", Count: 1, Resources: txn.Resources{CPUMilli: 30_000}}
	v.PutJob(light)
	lr := light.NewTask(0)
	lr.State, lr.Machine = txn.TaskRunning, "m"
	v.PutTask(lr) // 0.3 weighted
	q := newFairQueue()
	for _, info := range []view.JobInfo{
		{ID: "light-1", Tenant: "light", Priority: 100, SubmitTime: 1},
		{ID: "heavy-2", Tenant: "heavy", Priority: 100, SubmitTime: 5},
		{ID: "heavy-1", Tenant: "heavy", Priority: 100, SubmitTime: 2},
		{ID: "light-prod", Tenant: "light", Priority: 200, SubmitTime: 9},
		{ID: "new-1", Tenant: "new", Priority: 100, SubmitTime: 8},
	} {
		q.setReady(q.get(info))
	}
	q.syncShares(v)
	var got []string
	for j := q.pop(); j != nil; j = q.pop() {
		got = append(got, j.info.ID)
	}
	want := []string{"light-prod", "new-1", "heavy-1", "heavy-2", "light-1"}
	if !slices.Equal(got, want) {
		t.Fatalf("order = %v, want %v", got, want)
	}
}
