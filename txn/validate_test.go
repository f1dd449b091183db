package txn_test

import (
	"flag"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/omegacell/omegacell/txn"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// validateCell is the cell every Validate case starts from:
//
//	m1     ready, zone=a, 8 cores, 32 GiB, 100 GiB disk, 4 GPUs, seq 3
//	       runs be/0 (priority 0: 4 cores, 8 GiB, 500m on device 0)
//	       and prodrun/0 (priority 200: 2 cores, 4 GiB)  -> 2 cores free
//	m2     ready, zone=b, 8 cores, 32 GiB, 100 GiB disk, no GPU, seq 4
//	       runs batchrun/0 (priority 100) and spread/3 (max 1 per machine),
//	       has beasg/0 (priority 0) assigned: 1 core, 1 GiB each -> 5 free
//	down   down; drain: draining (both empty, zone=a)
//
// Pending tasks of scheduler "batch" (priority 100 unless noted):
//
//	web/0..3 2 cores 4 GiB       big/0  9 cores          mem/0 33 GiB
//	disk/0   101 GiB disk        gpu/0  one GPU          gpu2/0 two GPUs
//	frac/0,1 half a GPU          zoned/0 needs zone=a    spread/0..2 max 1 per machine
//	prod/0   priority 200, 6 cores 8 GiB
//
// plus svc/0, pending but owned by scheduler "service", and done/0
// (priority 0), succeeded.
func validateCell() *cell {
	c := newCell()
	c.addMachine("m1", map[string]string{"zone": "a", "gpu.model": "h100"}, res(8, 32, 100, 4000))
	c.addMachine("m2", map[string]string{"zone": "b"}, res(8, 32, 100, 0))
	c.addMachine("down", map[string]string{"zone": "a"}, res(8, 32, 100, 0)).State = txn.MachineDown
	c.addMachine("drain", map[string]string{"zone": "a"}, res(8, 32, 100, 0)).State = txn.MachineDraining

	for i := range uint32(4) {
		c.addTask("web", i, 100, res(2, 4, 0, 0))
	}
	c.addTask("big", 0, 100, res(9, 1, 0, 0))
	c.addTask("mem", 0, 100, res(1, 33, 0, 0))
	c.addTask("disk", 0, 100, res(1, 1, 101, 0))
	c.addTask("gpu", 0, 100, res(1, 1, 0, 1000))
	c.addTask("gpu2", 0, 100, res(1, 1, 0, 2000))
	c.addTask("frac", 0, 100, res(1, 1, 0, 500))
	c.addTask("frac", 1, 100, res(1, 1, 0, 500))
	c.addTask("zoned", 0, 100, res(1, 1, 0, 0)).Constraints = []txn.Constraint{{Key: "zone", Op: txn.OpIn, Values: []string{"a"}}}
	for i := range uint32(4) {
		c.addTask("spread", i, 100, res(1, 1, 0, 0)).MaxPerMachine = 1
	}
	c.addTask("prod", 0, 200, res(6, 8, 0, 0))
	c.addTask("svc", 0, 100, res(1, 1, 0, 0)).Scheduler = "service"
	c.addTask("done", 0, 0, res(1, 1, 0, 0)).State = txn.TaskSucceeded

	for _, p := range []struct {
		job      string
		priority int32
		r        txn.Resources
		machine  string
		running  bool
	}{
		{"be", 0, res(4, 8, 0, 500), "m1", true},
		{"prodrun", 200, res(2, 4, 0, 0), "m1", true},
		{"batchrun", 100, res(1, 1, 0, 0), "m2", true},
		{"beasg", 0, res(1, 1, 0, 0), "m2", false},
	} {
		c.addTask(p.job, 0, p.priority, p.r)
		c.place(key(p.job, 0), p.machine)
		if p.running {
			c.setRunning(key(p.job, 0))
		}
	}
	c.place(key("spread", 3), "m2")
	c.setRunning(key("spread", 3))
	return c
}

func key(job string, index uint32) txn.TaskKey { return txn.TaskKey{Job: job, Index: index} }

// claim is a claim of task job/index on machine with the task's own
// resources; gpu tasks get devices from AssignDevices on the base cell.
func claim(job string, index uint32, machine string) txn.Claim {
	c := validateCell()
	cl := txn.Claim{Task: key(job, index), Machine: machine}
	if t := c.tasks[cl.Task]; t != nil {
		cl.Resources = t.Resources
		if m := c.machines[machine]; m != nil {
			cl.Devices, _ = txn.AssignDevices(m, t.Resources.GPUMilli)
			cl.SeenSeq = m.Seq
		}
	}
	return cl
}

// with returns c changed by f.
func with(c txn.Claim, f func(*txn.Claim)) txn.Claim { f(&c); return c }

type validateCase struct {
	name     string
	conflict txn.ConflictMode // default fine
	commit   txn.CommitMode   // default incremental
	claims   []txn.Claim
	preempt  []txn.TaskKey
	want     []txn.Reason
	// wantPreempted lists the victims evicted; wantPreemptErrors has one
	// substring per refused preemption.
	wantPreempted     []txn.TaskKey
	wantPreemptErrors []string
}

func validateCases() []validateCase {
	ok, abort := txn.ReasonOK, txn.ReasonAborted
	seen := func(seq uint64) func(*txn.Claim) { return func(c *txn.Claim) { c.SeenSeq = seq } }
	return []validateCase{
		{name: "accepted", claims: []txn.Claim{claim("web", 0, "m1")}, want: []txn.Reason{ok}},
		{name: "empty transaction", want: []txn.Reason{}},
		{name: "task unknown", claims: []txn.Claim{claim("nope", 0, "m1")}, want: []txn.Reason{txn.ReasonTaskUnknown}},
		{name: "task running is not pending", claims: []txn.Claim{claim("batchrun", 0, "m1")}, want: []txn.Reason{txn.ReasonTaskNotPending}},
		{name: "task succeeded is not pending", claims: []txn.Claim{claim("done", 0, "m2")}, want: []txn.Reason{txn.ReasonTaskNotPending}},
		{name: "wrong scheduler", claims: []txn.Claim{claim("svc", 0, "m2")}, want: []txn.Reason{txn.ReasonWrongScheduler}},
		{name: "duplicate in transaction", claims: []txn.Claim{claim("web", 0, "m2"), claim("web", 0, "m2")}, want: []txn.Reason{ok, txn.ReasonDuplicate}},
		{name: "duplicate even when the first claim fails", claims: []txn.Claim{claim("web", 0, "down"), claim("web", 0, "m2")}, want: []txn.Reason{txn.ReasonMachineNotReady, txn.ReasonDuplicate}},
		{name: "resources mismatch", claims: []txn.Claim{with(claim("web", 0, "m2"), func(c *txn.Claim) { c.Resources.CPUMilli = 1000 })}, want: []txn.Reason{txn.ReasonResourcesMismatch}},
		{name: "machine unknown", claims: []txn.Claim{claim("web", 0, "m9")}, want: []txn.Reason{txn.ReasonMachineUnknown}},
		{name: "machine down", claims: []txn.Claim{claim("web", 0, "down")}, want: []txn.Reason{txn.ReasonMachineNotReady}},
		{name: "machine draining", claims: []txn.Claim{claim("web", 0, "drain")}, want: []txn.Reason{txn.ReasonMachineDraining}},
		{name: "insufficient cpu", claims: []txn.Claim{claim("big", 0, "m2")}, want: []txn.Reason{txn.ReasonInsufficientCPU}},
		{name: "insufficient memory", claims: []txn.Claim{claim("mem", 0, "m2")}, want: []txn.Reason{txn.ReasonInsufficientMemory}},
		{name: "insufficient disk", claims: []txn.Claim{claim("disk", 0, "m2")}, want: []txn.Reason{txn.ReasonInsufficientDisk}},
		{name: "insufficient gpu on a machine without", claims: []txn.Claim{with(claim("gpu", 0, "m2"), func(c *txn.Claim) { c.Devices = shares(0, 1000) })}, want: []txn.Reason{txn.ReasonInsufficientGPU}},
		{name: "insufficient gpu: whole gpu on a shared device", claims: []txn.Claim{with(claim("gpu", 0, "m1"), func(c *txn.Claim) { c.Devices = shares(0, 1000) })}, want: []txn.Reason{txn.ReasonInsufficientGPU}},
		{name: "gpus: whole and fractions share a machine", claims: []txn.Claim{claim("gpu2", 0, "m1"), with(claim("frac", 1, "m1"), func(c *txn.Claim) { c.Devices = shares(3, 500) })}, want: []txn.Reason{ok, ok}},
		{name: "insufficient gpu: fraction on a device filled earlier in the transaction", claims: []txn.Claim{claim("frac", 0, "m1"), with(claim("frac", 1, "m1"), func(c *txn.Claim) { c.Devices = shares(0, 500) }), with(claim("gpu", 0, "m1"), func(c *txn.Claim) { c.Devices = shares(0, 1000) })}, want: []txn.Reason{ok, txn.ReasonInsufficientGPU, txn.ReasonInsufficientGPU}},
		{name: "invalid devices", claims: []txn.Claim{with(claim("gpu", 0, "m1"), func(c *txn.Claim) { c.Devices = shares(7, 1000) })}, want: []txn.Reason{txn.ReasonInvalidDevices}},
		{name: "invalid devices: none named", claims: []txn.Claim{with(claim("frac", 0, "m1"), func(c *txn.Claim) { c.Devices = nil })}, want: []txn.Reason{txn.ReasonInvalidDevices}},
		{name: "earlier claims count: second no longer fits", claims: []txn.Claim{claim("web", 0, "m1"), claim("web", 1, "m1")}, want: []txn.Reason{ok, txn.ReasonInsufficientCPU}},
		{name: "fine ignores a stale seq", claims: []txn.Claim{with(claim("web", 0, "m1"), seen(1))}, want: []txn.Reason{ok}},
		{name: "coarse: seq changed", conflict: txn.ConflictCoarse, claims: []txn.Claim{with(claim("web", 0, "m1"), seen(2)), claim("web", 1, "m2")}, want: []txn.Reason{txn.ReasonSeqChanged, ok}},
		{name: "coarse: several claims on one unchanged machine", conflict: txn.ConflictCoarse, claims: []txn.Claim{claim("web", 0, "m2"), claim("web", 1, "m2"), claim("zoned", 0, "m1")}, want: []txn.Reason{ok, ok, ok}},
		{name: "coarse: unchanged seq still has to fit", conflict: txn.ConflictCoarse, claims: []txn.Claim{claim("web", 0, "m2"), claim("web", 1, "m2"), claim("web", 2, "m2")}, want: []txn.Reason{ok, ok, txn.ReasonInsufficientCPU}},
		{name: "constraint violated", claims: []txn.Claim{claim("zoned", 0, "m2")}, want: []txn.Reason{txn.ReasonConstraintViolated}},
		{name: "constraint met", claims: []txn.Claim{claim("zoned", 0, "m1")}, want: []txn.Reason{ok}},
		{name: "max per machine: a task of the job already runs there", claims: []txn.Claim{claim("spread", 0, "m2")}, want: []txn.Reason{txn.ReasonMaxPerMachine}},
		{name: "max per machine: placed earlier in the transaction", claims: []txn.Claim{claim("spread", 0, "m1"), claim("spread", 1, "m1"), claim("spread", 2, "m2")}, want: []txn.Reason{ok, txn.ReasonMaxPerMachine, txn.ReasonMaxPerMachine}},
		{name: "max per machine: a failed claim does not count", claims: []txn.Claim{with(claim("spread", 0, "m1"), func(c *txn.Claim) { c.Resources.CPUMilli = 1 }), claim("spread", 1, "m1")}, want: []txn.Reason{txn.ReasonResourcesMismatch, ok}},
		{name: "without preemption production does not fit", claims: []txn.Claim{claim("prod", 0, "m1")}, want: []txn.Reason{txn.ReasonInsufficientCPU}},
		{name: "preemption frees room for a higher priority", claims: []txn.Claim{claim("prod", 0, "m1")}, preempt: []txn.TaskKey{key("be", 0)},
			want: []txn.Reason{ok}, wantPreempted: []txn.TaskKey{key("be", 0)}},
		{name: "preemption of an assigned task", claims: []txn.Claim{claim("web", 0, "m2")}, preempt: []txn.TaskKey{key("beasg", 0)},
			want: []txn.Reason{ok}, wantPreempted: []txn.TaskKey{key("beasg", 0)}},
		{name: "preemption of production refused", claims: []txn.Claim{claim("prod", 0, "m1")}, preempt: []txn.TaskKey{key("prodrun", 0)},
			want: []txn.Reason{txn.ReasonInsufficientCPU}, wantPreemptErrors: []string{"victim prodrun/0 (priority 200) may not be preempted by priority 200"}},
		{name: "preemption at equal priority refused", claims: []txn.Claim{claim("web", 0, "m2")}, preempt: []txn.TaskKey{key("batchrun", 0)},
			want: []txn.Reason{ok}, wantPreemptErrors: []string{"victim batchrun/0 (priority 100) may not be preempted by priority 100"}},
		{name: "preemption on a machine no claim targets", claims: []txn.Claim{claim("web", 0, "m2")}, preempt: []txn.TaskKey{key("be", 0)},
			want: []txn.Reason{ok}, wantPreemptErrors: []string{"victim be/0 is on machine m1, which no claim targets"}},
		{name: "preemption for a refused claim does not count", claims: []txn.Claim{claim("svc", 0, "m1")}, preempt: []txn.TaskKey{key("be", 0)},
			want: []txn.Reason{txn.ReasonWrongScheduler}, wantPreemptErrors: []string{"which no claim targets"}},
		{name: "preemption of tasks not running", claims: []txn.Claim{claim("prod", 0, "m1")}, preempt: []txn.TaskKey{key("done", 0), key("web", 3), key("nope", 0)},
			want: []txn.Reason{txn.ReasonInsufficientCPU}, wantPreemptErrors: []string{"victim done/0 is succeeded", "victim web/3 is pending", "victim nope/0 does not exist"}},
		{name: "preemption named twice", claims: []txn.Claim{claim("prod", 0, "m1")}, preempt: []txn.TaskKey{key("be", 0), key("be", 0)},
			want: []txn.Reason{ok}, wantPreempted: []txn.TaskKey{key("be", 0)}, wantPreemptErrors: []string{"victim be/0 named twice"}},
		{name: "all-or-nothing: one failure aborts the rest", commit: txn.CommitAllOrNothing, claims: []txn.Claim{claim("web", 0, "m1"), claim("big", 0, "m2"), claim("web", 1, "m2")},
			want: []txn.Reason{abort, txn.ReasonInsufficientCPU, abort}},
		{name: "all-or-nothing: a refused preemption aborts", commit: txn.CommitAllOrNothing, claims: []txn.Claim{claim("web", 0, "m2")}, preempt: []txn.TaskKey{key("beasg", 0), key("batchrun", 0)},
			want: []txn.Reason{abort}, wantPreemptErrors: []string{"may not be preempted"}},
		{name: "all-or-nothing: all fit", commit: txn.CommitAllOrNothing, claims: []txn.Claim{claim("prod", 0, "m1"), claim("web", 1, "m2"), claim("web", 0, "m2")}, preempt: []txn.TaskKey{key("be", 0)},
			want: []txn.Reason{ok, ok, ok}, wantPreempted: []txn.TaskKey{key("be", 0)}},
		{name: "incremental: partial apply", claims: []txn.Claim{claim("web", 0, "m1"), claim("big", 0, "m2"), claim("web", 1, "m2"), claim("web", 2, "m9")},
			want: []txn.Reason{ok, txn.ReasonInsufficientCPU, ok, txn.ReasonMachineUnknown}},
	}
}

func TestValidate(t *testing.T) {
	var golden strings.Builder
	covered := map[txn.Reason]bool{}
	for _, tt := range validateCases() {
		t.Run(tt.name, func(t *testing.T) {
			c := validateCell()
			tx := &txn.Transaction{Scheduler: "batch", DecidedAt: 7, Conflict: tt.conflict, Commit: tt.commit, Claims: tt.claims, Preemptions: tt.preempt}
			if tx.Conflict == 0 {
				tx.Conflict = txn.ConflictFine
			}
			if tx.Commit == 0 {
				tx.Commit = txn.CommitIncremental
			}
			before := c.clone()
			txBefore := fmt.Sprintf("%+v", *tx)
			d := txn.Validate(c, tx)
			if diff := before.diff(c); diff != "" {
				t.Fatalf("Validate mutated its input state:\n%s", diff)
			}
			if got := fmt.Sprintf("%+v", *tx); got != txBefore {
				t.Fatalf("Validate mutated its transaction:\n%s\n%s", txBefore, got)
			}

			fmt.Fprintf(&golden, "== %s\n", tt.name)
			got := make([]txn.Reason, len(d.Results))
			for i, r := range d.Results {
				got[i] = r.Reason
				covered[r.Reason] = true
				fmt.Fprintf(&golden, "claim %d %s: %s %s\n", i, tx.Claims[i].Task, r.Reason, r.Detail)
			}
			for _, e := range d.PreemptionErrors {
				fmt.Fprintf(&golden, "preemption: %s\n", e)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("reasons = %v, want %v", got, tt.want)
			}
			if !slices.Equal(d.Preempted, tt.wantPreempted) && !(len(d.Preempted) == 0 && len(tt.wantPreempted) == 0) {
				t.Errorf("preempted = %v, want %v", d.Preempted, tt.wantPreempted)
			}
			if len(d.PreemptionErrors) != len(tt.wantPreemptErrors) {
				t.Errorf("preemption errors = %q, want %d matching %q", d.PreemptionErrors, len(tt.wantPreemptErrors), tt.wantPreemptErrors)
			} else {
				for i, want := range tt.wantPreemptErrors {
					if !strings.Contains(d.PreemptionErrors[i], want) {
						t.Errorf("preemption error %d = %q, want it to contain %q", i, d.PreemptionErrors[i], want)
					}
				}
			}
			for i, r := range d.Results {
				if r.Reason != txn.ReasonOK && r.Detail == "" {
					t.Errorf("claim %d: %v without a detail", i, r.Reason)
				}
			}
			checkOutcome(t, c, tx, d)
		})
	}
	for _, r := range txn.AllReasons() {
		// Validate never attributes a refused preemption to a claim: it
		// reports it in PreemptionErrors (and aborts an all-or-nothing
		// transaction), so no claim ever gets ReasonInvalidPreemption.
		// Quota refusals need tenants: TestValidateQuota covers them.
		if !covered[r] && r != txn.ReasonInvalidPreemption && r != txn.ReasonQuotaExceeded {
			t.Errorf("no case produces %v", r)
		}
	}
	checkGolden(t, "validate.golden", golden.String())
}

// checkOutcome checks checkDecision's rules, then applies the decision to
// a copy of the cell and checks that the invariant holds and that every
// machine outside the decision keeps its Seq.
func checkOutcome(t *testing.T, c *cell, tx *txn.Transaction, d *txn.Decision) {
	t.Helper()
	for _, e := range checkDecision(c, tx, d) {
		t.Error(e)
	}
	after := c.clone()
	txn.Apply(after, d)
	for _, e := range checkInvariant(after) {
		t.Errorf("after Apply: %s", e)
	}
	changed := map[string]bool{}
	for _, m := range d.Machines {
		changed[m.ID] = true
	}
	for id, m := range c.machines {
		if !changed[id] && after.machines[id].Seq != m.Seq {
			t.Errorf("machine %s is not in the decision but its seq moved %d -> %d", id, m.Seq, after.machines[id].Seq)
		}
	}
}

// checkGolden compares got with testdata/name, or rewrites it with -update.
func checkGolden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./txn/ -run %s -update to create it)", err, t.Name())
	}
	if string(want) != got {
		gotLines, wantLines := strings.Split(got, "\n"), strings.Split(string(want), "\n")
		for i := range max(len(gotLines), len(wantLines)) {
			g, w := "", ""
			if i < len(gotLines) {
				g = gotLines[i]
			}
			if i < len(wantLines) {
				w = wantLines[i]
			}
			if g != w {
				t.Fatalf("%s differs at line %d:\n got: %s\nwant: %s\n(rerun with -update if the change is intended)", path, i+1, g, w)
			}
		}
	}
}

func TestValidateBaseCell(t *testing.T) {
	// The cases above rely on this starting point; check it so that a
	// change to placement shows up here and not as puzzling case failures.
	c := validateCell()
	for _, e := range checkInvariant(c) {
		t.Error(e)
	}
	for _, tt := range []struct {
		id   string
		free txn.Resources
		seq  uint64
		devs []uint32
	}{
		{"m1", res(2, 20, 100, 3500), 3, []uint32{500, 0, 0, 0}},
		{"m2", res(5, 29, 100, 0), 4, []uint32{}},
	} {
		m := c.machines[tt.id]
		if m.Free() != tt.free || m.Seq != tt.seq || !slices.Equal(m.DeviceUsed, tt.devs) {
			t.Errorf("%s: free %v seq %d devices %v; want %v %d %v", tt.id, m.Free(), m.Seq, m.DeviceUsed, tt.free, tt.seq, tt.devs)
		}
	}
}

// TestValidateAcceptedTasks checks one accepted claim and one preemption in
// detail: the new task and machine versions, and that the decision's
// objects are fresh (changing them does not reach the input state).
func TestValidateAcceptedTasks(t *testing.T) {
	c := validateCell()
	before := c.clone()
	tx := &txn.Transaction{Scheduler: "batch", Conflict: txn.ConflictFine, Commit: txn.CommitIncremental,
		Claims:      []txn.Claim{claim("web", 0, "m1"), claim("frac", 0, "m1")},
		Preemptions: []txn.TaskKey{key("be", 0)}}
	d := txn.Validate(c, tx)
	if d.Accepted != 2 || len(d.Machines) != 1 || len(d.Tasks) != 3 {
		t.Fatalf("decision: %+v", d)
	}
	// be/0 frees device 0, and best fit puts frac/0 there again.
	m := d.Machines[0]
	want := res(5, 9, 0, 500)
	if m.ID != "m1" || m.Allocated != want || m.Seq != 4 || !slices.Equal(m.DeviceUsed, []uint32{500, 0, 0, 0}) {
		t.Errorf("m1 after: %+v, want allocated %v seq 4 devices [500 0 0 0]", m, want)
	}
	got := func() map[txn.TaskKey]string {
		out := map[txn.TaskKey]string{}
		for _, nt := range d.Tasks {
			out[nt.Key] = fmt.Sprintf("%s %q attempt %d devices %v", nt.State, nt.Machine, nt.Attempt, nt.Devices)
		}
		return out
	}
	wantTasks := map[txn.TaskKey]string{
		key("web", 0):  `assigned "m1" attempt 1 devices []`,
		key("frac", 0): `assigned "m1" attempt 1 devices [{0 500}]`,
		key("be", 0):   `pending "" attempt 1 devices []`,
	}
	if g := got(); !maps.Equal(g, wantTasks) {
		t.Errorf("tasks after: %v, want %v", g, wantTasks)
	}
	var order []txn.TaskKey
	for _, nt := range d.Tasks {
		order = append(order, nt.Key)
	}
	if want := []txn.TaskKey{key("be", 0), key("web", 0), key("frac", 0)}; !slices.Equal(order, want) {
		t.Errorf("decision tasks in order %v, want victims then accepted claims %v", order, want)
	}
	// The accepted task's devices are its own, not the claim's.
	tx.Claims[1].Devices[0].Milli = 7
	if g := got(); !maps.Equal(g, wantTasks) {
		t.Errorf("changing the transaction changed the decision: %v", g)
	}
	// Scribble over everything the decision returned.
	m.DeviceUsed[1] = 999
	m.Allocated = txn.Resources{}
	for _, nt := range d.Tasks {
		nt.State = txn.TaskKilled
		if len(nt.Devices) > 0 {
			nt.Devices[0].Milli = 1
		}
	}
	if diff := before.diff(c); diff != "" {
		t.Fatalf("the decision shares memory with the input state:\n%s", diff)
	}
}
