package sdk

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/omegacell/omegacell/cellstate"
	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
	"github.com/omegacell/omegacell/proto/credentials"
	"github.com/omegacell/omegacell/schedulers/batch"
	"github.com/omegacell/omegacell/schedulers/gpu"
	"github.com/omegacell/omegacell/schedulers/policy"
	"github.com/omegacell/omegacell/schedulers/service"
	"github.com/omegacell/omegacell/schedulers/view"
	"github.com/omegacell/omegacell/txn"
)

const gib = 1 << 30

// These tests run the SDK in-process against a real store and gRPC server
// on loopback; process_test.go runs schedulers as separate processes.

func TestPlacesJobAndReportsFigures(t *testing.T) {
	c := newTestCell(t, cellstate.Options{})
	for i := range 4 {
		c.addMachine(fmt.Sprintf("m%d", i), nil, 4000, 8*gib, 0)
	}
	s := startScheduler(t, c, Config{Name: "batch", Policy: batch.New(), Seed: 1, StatsInterval: 20 * time.Millisecond})
	job := c.submit(jobSpec("web", "batch", 100, 10, 1000, gib, 0))
	c.waitPlaced(job.Id, 10*time.Second)
	c.checkInvariant()

	eventually(t, 5*time.Second, "stats reported to the cell", func() (bool, string) {
		r, err := c.schedulers.ListSchedulers(ctxT(t), &cellv1.ListSchedulersRequest{})
		if err != nil {
			return false, err.Error()
		}
		for _, info := range r.Schedulers {
			if info.Name == "batch" && info.Stats.GetClaimsAccepted() == 10 {
				return true, ""
			}
		}
		return false, fmt.Sprint(r.Schedulers)
	})
	for _, m := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"omegacell_scheduler_claims_total", map[string]string{"outcome": "accepted"}, 10},
		{"omegacell_scheduler_claims_total", map[string]string{"outcome": "!accepted"}, 0},
		{"omegacell_scheduler_transactions_total", map[string]string{"result": "accepted"}, 1},
		{"omegacell_scheduler_attempts_per_job", nil, 1},
		{"omegacell_scheduler_job_wait_seconds", map[string]string{"until": "first_attempt"}, 1},
		{"omegacell_scheduler_job_wait_seconds", map[string]string{"until": "placed"}, 1},
		{"omegacell_scheduler_decision_seconds", map[string]string{"scheduler": "batch"}, 1},
		{"omegacell_scheduler_snapshots_total", map[string]string{"reason": "start"}, 1},
	} {
		waitMetric(t, s.reg, m.name, m.labels, m.want)
	}
	if got := metric(t, s.reg, "omegacell_scheduler_busy_seconds_total", nil); got <= 0 {
		t.Errorf("busy_seconds_total = %v, want > 0", got)
	}
}

// thief is a job of another scheduler whose tasks a test commits by hand
// to win races against the scheduler under test.
type thief struct {
	c    *testCell
	job  *cellv1.Job
	next uint32
}

func newThief(c *testCell, count uint32, cpu, gpuMilli int64) *thief {
	c.register("thief")
	return &thief{c: c, job: c.submit(jobSpec("thief", "thief", 100, count, cpu, gib/4, gpuMilli))}
}

// take commits the thief's next task on machine, with devices for a
// whole-GPU request when it asks for GPUs.
func (th *thief) take(t testing.TB, machine string, devices []uint32) {
	r := th.job.Spec.Task.Resources
	claim := &cellv1.Claim{Task: &cellv1.TaskRef{JobId: th.job.Id, Index: th.next}, MachineId: machine, Resources: r}
	for _, d := range devices {
		claim.Devices = append(claim.Devices, &cellv1.DeviceShare{Device: d, Milli: 1000})
	}
	th.next++
	resp, err := th.c.state.Commit(context.Background(), &cellv1.CommitRequest{
		Scheduler: "thief", ConflictMode: cellv1.ConflictMode_CONFLICT_MODE_FINE, Claims: []*cellv1.Claim{claim},
	})
	if err != nil || resp.Accepted != 1 {
		t.Errorf("thief could not take %s: %v %v", machine, resp, err)
	}
}

func TestConflictRetriesOnlyTheConflictedTasks(t *testing.T) {
	c := newTestCell(t, cellstate.Options{})
	c.addMachine("m0", nil, 4000, 8*gib, 0)
	c.addMachine("m1", nil, 1000, 8*gib, 0)
	th := newThief(c, 1, 1000, 0)
	var onTarget []uint32
	p := &interfering{Policy: batch.New(), steal: func(call int, d policy.Decision) {
		if call != 1 {
			return
		}
		// The cell has room for five of the six tasks, four of them on
		// m0; a thief task there leaves room for three.
		for _, cl := range d.Claims {
			if cl.Machine == "m0" {
				onTarget = append(onTarget, cl.Task.Index)
			}
		}
		th.take(t, "m0", nil)
	}}
	s := startScheduler(t, c, Config{Name: "batch", Policy: p, Seed: 1})
	job := c.submit(jobSpec("work", "batch", 100, 6, 1000, gib, 0))
	eventually(t, 10*time.Second, "four tasks placed and the job parked", func() (bool, string) {
		r := c.getJob(job.Id)
		return r.Counts.Assigned == 4 && r.Job.UnschedulableReason != "", fmt.Sprintf("counts %v, reason %q", r.Counts, r.Job.UnschedulableReason)
	})
	c.checkInvariant()

	calls := p.calls()
	if len(calls) != 2 {
		t.Fatalf("policy calls = %v, want the first attempt and one retry", calls)
	}
	if len(calls[0]) != 6 || len(onTarget) != 4 {
		t.Fatalf("first attempt: tasks %v, claims on m0 %v; want 6 tasks, 4 claims on m0", calls[0], onTarget)
	}
	// The retry places the conflicted task alone, not the one the policy
	// could not place in the first attempt.
	if want := onTarget[3:]; !slices.Equal(calls[1], want) {
		t.Errorf("retry placed tasks %v, want only the conflicted %v", calls[1], want)
	}
	for _, m := range []struct {
		labels map[string]string
		want   float64
	}{
		{map[string]string{"outcome": "accepted"}, 4},
		{map[string]string{"outcome": "insufficient_cpu"}, 1},
		{map[string]string{"outcome": "!accepted"}, 1},
	} {
		if got := metric(t, s.reg, "omegacell_scheduler_claims_total", m.labels); got != m.want {
			t.Errorf("claims_total%v = %v, want %v", m.labels, got, m.want)
		}
	}
	if got := metric(t, s.reg, "omegacell_scheduler_transactions_total", map[string]string{"result": "partial"}); got != 1 {
		t.Errorf("partial transactions = %v, want 1", got)
	}
}

func TestGangIsNeverPartiallyPlacedUnderConflict(t *testing.T) {
	c := newTestCell(t, cellstate.Options{})
	for i := range 4 {
		c.addMachine(fmt.Sprintf("g%d", i), map[string]string{"rack": fmt.Sprintf("r%d", i/2)}, 32000, 64*gib, 4)
	}
	th := newThief(c, 1, 1000, 4000)
	p := &interfering{Policy: gpu.New(), steal: func(call int, d policy.Decision) {
		if call == 1 {
			// All four devices of one machine of the plan: its claims
			// conflict, and all-or-nothing aborts the others.
			th.take(t, d.Claims[0].Machine, []uint32{0, 1, 2, 3})
		}
	}}
	// Asking for incremental commits does not apply to a gang.
	s := startScheduler(t, c, Config{Name: "gpu", Policy: p, Seed: 1, CommitMode: txn.CommitIncremental})
	spec := jobSpec("train", "gpu", 100, 6, 1000, gib, 1000)
	spec.Gang = true
	job := c.submit(spec)
	c.waitPlaced(job.Id, 10*time.Second)
	end := c.checkInvariant()

	if n := len(p.calls()); n != 2 {
		t.Errorf("policy calls = %d, want 2 (one lost race, one retry)", n)
	}
	if got := metric(t, s.reg, "omegacell_scheduler_claims_total", map[string]string{"outcome": "aborted"}); got == 0 {
		t.Error("no claim was aborted: the race was not lost")
	}
	if got := metric(t, s.reg, "omegacell_scheduler_transactions_total", map[string]string{"result": "conflicted"}); got != 1 {
		t.Errorf("conflicted transactions = %v, want 1", got)
	}
	// Replay the cell's whole history: at no revision does the gang hold
	// some but not all of its tasks.
	replay(t, c, end.revision, func(rev uint64, v *view.View) {
		held := 0
		for _, tk := range v.Tasks() {
			if tk.Key.Job == job.Id && tk.State.HoldsResources() {
				held++
			}
		}
		if held != 0 && held != int(spec.Count) {
			t.Errorf("revision %d: gang holds %d of %d tasks", rev, held, spec.Count)
		}
	})
}

// replay follows the watch stream from revision 0 to last into a view,
// calling check after every revision.
func replay(t *testing.T, c *testCell, last uint64, check func(rev uint64, v *view.View)) {
	t.Helper()
	ctx, cancel := context.WithCancel(ctxT(t))
	defer cancel()
	stream, err := c.state.Watch(ctx, &cellv1.WatchRequest{})
	if err != nil {
		t.Fatal(err)
	}
	v := view.New()
	for v.Revision() < last {
		r, err := stream.Recv()
		if err != nil {
			t.Fatalf("replay at revision %d: %v", v.Revision(), err)
		}
		if err := v.ApplyWatchResponse(r); err != nil {
			t.Fatal(err)
		}
		if !r.ProgressNotify {
			check(r.Revision, v)
		}
	}
}

func TestServiceSpreadsReplicasEvenlyOverRacks(t *testing.T) {
	c := newTestCell(t, cellstate.Options{})
	for i := range 6 {
		c.addMachine(fmt.Sprintf("m%d", i), map[string]string{"rack": fmt.Sprintf("r%d", i%3)}, 8000, 16*gib, 0)
	}
	startScheduler(t, c, Config{Name: "service", Policy: service.New(), Seed: 1})
	spec := jobSpec("web", "service", 200, 9, 500, gib, 0)
	spec.Task.SpreadKey, spec.Task.MaxPerMachine = "rack", 2
	job := c.submit(spec)
	r := c.waitPlaced(job.Id, 10*time.Second)
	snap := c.checkInvariant()

	rackOf := make(map[string]string)
	for _, m := range snap.machines {
		rackOf[m.Id] = m.Labels["rack"]
	}
	perRack, perMachine := make(map[string]int), make(map[string]int)
	for _, tk := range r.Tasks {
		perRack[rackOf[tk.MachineId]]++
		perMachine[tk.MachineId]++
	}
	for _, rack := range []string{"r0", "r1", "r2"} {
		if perRack[rack] != 3 {
			t.Errorf("replicas per rack = %v, want 3 in each of r0, r1, r2", perRack)
			break
		}
	}
	for m, n := range perMachine {
		if n > 2 {
			t.Errorf("%d replicas on %s, more than max_per_machine 2", n, m)
		}
	}
}

func TestPreemptionFreesResourcesAndVictimsAreReplaced(t *testing.T) {
	c := newTestCell(t, cellstate.Options{})
	for i := range 4 {
		c.addMachine(fmt.Sprintf("m%d", i), nil, 4000, 8*gib, 0)
	}
	startScheduler(t, c, Config{Name: "batch", Policy: batch.New(), Seed: 1})
	svc := startScheduler(t, c, Config{Name: "service", Policy: service.New(), Seed: 2})
	filler := c.submit(jobSpec("filler", "batch", 10, 16, 1000, gib, 0))
	c.waitPlaced(filler.Id, 10*time.Second)

	web := c.submit(jobSpec("web", "service", 200, 2, 2000, gib, 0))
	c.waitPlaced(web.Id, 10*time.Second)
	c.checkInvariant()
	// Two 1-CPU victims per 2-CPU replica.
	waitMetric(t, svc.reg, "omegacell_scheduler_preemptions_total", nil, 4)
	// The victims are pending again under their own scheduler, which has
	// no room for them: the filler job is marked unschedulable.
	eventually(t, 10*time.Second, "victims pending and filler marked unschedulable", func() (bool, string) {
		r := c.getJob(filler.Id)
		return r.Counts.Pending == 4 && strings.Contains(r.Job.UnschedulableReason, "insufficient cpu"),
			fmt.Sprintf("counts %v, reason %q", r.Counts, r.Job.UnschedulableReason)
	})
	for _, tk := range c.getJob(filler.Id).Tasks {
		if tk.State == cellv1.TaskState_TASK_STATE_PENDING && tk.Attempt != 1 {
			t.Errorf("victim %d: attempt %d, want 1 (placed once, then preempted)", tk.Index, tk.Attempt)
		}
	}
	// A new machine is a change that could help: the victims are placed.
	c.addMachine("m4", nil, 4000, 8*gib, 0)
	r := c.waitPlaced(filler.Id, 10*time.Second)
	c.checkInvariant()
	for _, tk := range r.Tasks {
		if tk.Attempt == 2 && tk.MachineId != "m4" {
			t.Errorf("victim %d re-placed on %s, want m4 (the only machine with room)", tk.Index, tk.MachineId)
		}
	}
	eventually(t, 5*time.Second, "unschedulable mark cleared", func() (bool, string) {
		reason := c.getJob(filler.Id).Job.UnschedulableReason
		return reason == "", reason
	})
}

func TestFractionalGPUTasksShareDevices(t *testing.T) {
	c := newTestCell(t, cellstate.Options{})
	c.addMachine("g0", map[string]string{"rack": "r0"}, 32000, 64*gib, 2)
	startScheduler(t, c, Config{Name: "gpu", Policy: gpu.New(), Seed: 1})
	// Six 0.3-GPU tasks fill two devices to 900 milli each; a seventh
	// would exceed a device and stays pending.
	shares := c.submit(jobSpec("shares", "gpu", 100, 6, 1000, gib, 300))
	c.waitPlaced(shares.Id, 10*time.Second)
	extra := c.submit(jobSpec("extra", "gpu", 100, 1, 1000, gib, 300))
	eventually(t, 10*time.Second, "the seventh 0.3-GPU task marked unschedulable", func() (bool, string) {
		r := c.getJob(extra.Id)
		return r.Job.UnschedulableReason != "", fmt.Sprint(r.Counts)
	})
	// Two 0.1-GPU tasks top both devices up to exactly 1000.
	tops := c.submit(jobSpec("tops", "gpu", 100, 2, 1000, gib, 100))
	c.waitPlaced(tops.Id, 10*time.Second)
	snap := c.checkInvariant()

	if got := snap.machines[0].DeviceUsedMilli; !slices.Equal(got, []uint32{1000, 1000}) {
		t.Errorf("device_used_milli = %v, want [1000 1000]", got)
	}
	perDevice := make(map[uint32]int)
	used := make(map[uint32]uint32)
	for _, tk := range snap.tasks {
		if tk.MachineId == "" {
			continue
		}
		for _, d := range tk.Devices {
			perDevice[d.Device]++
			used[d.Device] += d.Milli
		}
	}
	for dev, milli := range used {
		if milli > 1000 {
			t.Errorf("device %d: tasks hold %d milli, more than 1000", dev, milli)
		}
		if perDevice[dev] != 4 {
			t.Errorf("device %d shared by %d tasks, want 4 (three 0.3 and one 0.1)", dev, perDevice[dev])
		}
	}
	if r := c.getJob(extra.Id); r.Counts.Pending != 1 {
		t.Errorf("extra job counts = %v, want its task pending", r.Counts)
	}
}

func TestUnschedulableJobIsMarkedAndRetriedWhenAMachineIsAdded(t *testing.T) {
	c := newTestCell(t, cellstate.Options{})
	c.addMachine("small0", nil, 2000, 4*gib, 0)
	c.addMachine("small1", nil, 2000, 4*gib, 0)
	s := startScheduler(t, c, Config{Name: "batch", Policy: batch.New(), Seed: 1})
	job := c.submit(jobSpec("big", "batch", 100, 1, 4000, gib, 0))
	eventually(t, 10*time.Second, "job marked unschedulable", func() (bool, string) {
		r := c.getJob(job.Id)
		return r.Job.UnschedulableReason != "", fmt.Sprint(r.Job)
	})
	r := c.getJob(job.Id)
	if want := "1 of 1 pending tasks unplaced: no machine can ever fit: 0/2 machines fit even when empty: 2 too little cpu (need 4000m, at most 2000m); and no lower-band work whose eviction makes room"; r.Job.UnschedulableReason != want {
		t.Errorf("reason = %q, want %q", r.Job.UnschedulableReason, want)
	}
	if r.Job.Attempts != 1 || r.Job.FirstAttemptUnixNano == 0 {
		t.Errorf("attempts %d, first attempt %d: want 1 attempt recorded with its time", r.Job.Attempts, r.Job.FirstAttemptUnixNano)
	}
	// A change that cannot help (another small machine) leaves it parked.
	c.addMachine("small2", nil, 2000, 4*gib, 0)
	c.addMachine("big0", nil, 8000, 16*gib, 0)
	r = c.waitPlaced(job.Id, 10*time.Second)
	if r.Tasks[0].MachineId != "big0" {
		t.Errorf("placed on %s, want big0", r.Tasks[0].MachineId)
	}
	eventually(t, 5*time.Second, "mark cleared", func() (bool, string) {
		reason := c.getJob(job.Id).Job.UnschedulableReason
		return reason == "", reason
	})
	if got := metric(t, s.reg, "omegacell_scheduler_jobs_unschedulable_total", nil); got != 1 {
		t.Errorf("jobs_unschedulable_total = %v, want 1", got)
	}
	if got := metric(t, s.reg, "omegacell_scheduler_decision_seconds", nil); got != 2 {
		t.Errorf("attempts = %v, want 2: parked, then woken once by big0 (small2 cannot help)", got)
	}
}

func TestNoProgressAfterMaxAttemptsParksTheJob(t *testing.T) {
	c := newTestCell(t, cellstate.Options{})
	for i := range 8 {
		c.addMachine(fmt.Sprintf("m%d", i), nil, 1000, 4*gib, 0)
	}
	th := newThief(c, 8, 1000, 0)
	var stealing atomic.Bool
	stealing.Store(true)
	p := &interfering{Policy: batch.New(), steal: func(call int, d policy.Decision) {
		if stealing.Load() && len(d.Claims) > 0 {
			th.take(t, d.Claims[0].Machine, nil)
		}
	}}
	startScheduler(t, c, Config{Name: "batch", Policy: p, Seed: 1, MaxAttempts: 3})
	job := c.submit(jobSpec("unlucky", "batch", 100, 1, 1000, gib, 0))
	const want = "no claim accepted in 3 attempts in a row; last conflict: insufficient_cpu on "
	eventually(t, 10*time.Second, "job parked after 3 lost races", func() (bool, string) {
		r := c.getJob(job.Id).Job
		return strings.HasPrefix(r.UnschedulableReason, want), r.UnschedulableReason
	})
	if n := len(p.calls()); n != 3 {
		t.Errorf("policy calls = %d, want 3", n)
	}
	if r := c.getJob(job.Id).Job; r.Attempts != 3 {
		t.Errorf("recorded attempts = %d, want 3", r.Attempts)
	}
	stealing.Store(false)
	c.addMachine("m8", nil, 1000, 4*gib, 0)
	c.waitPlaced(job.Id, 10*time.Second)
}

func TestWaitsForTheRestartDelay(t *testing.T) {
	c := newTestCell(t, cellstate.Options{})
	c.addMachine("m0", nil, 4000, 8*gib, 0)
	startScheduler(t, c, Config{Name: "service", Policy: service.New(), Seed: 1})
	job := c.submit(jobSpec("web", "service", 200, 1, 1000, gib, 0))
	first := c.waitPlaced(job.Id, 10*time.Second).Tasks[0]
	resp, err := c.agent.ReportTaskStates(ctxT(t), &cellv1.ReportTaskStatesRequest{MachineId: "m0", Updates: []*cellv1.TaskStateUpdate{{
		Task: &cellv1.TaskRef{JobId: job.Id}, Attempt: first.Attempt, State: cellv1.TaskState_TASK_STATE_FAILED, ExitCode: 1,
	}}})
	if err != nil || !resp.Results[0].Applied {
		t.Fatalf("report failure: %v %v", resp, err)
	}
	var notBefore int64
	for _, tk := range c.getJob(job.Id).Tasks {
		if tk.State == cellv1.TaskState_TASK_STATE_PENDING {
			notBefore = tk.NotBeforeUnixNano
		}
	}
	if notBefore == 0 {
		t.Fatal("the store set no restart delay on the failed service task")
	}
	again := c.waitPlaced(job.Id, 10*time.Second).Tasks[0]
	if again.Attempt != first.Attempt+1 || again.AssignTimeUnixNano < notBefore {
		t.Errorf("re-placed as attempt %d at %d, want attempt %d at or after not_before %d",
			again.Attempt, again.AssignTimeUnixNano, first.Attempt+1, notBefore)
	}
}

func TestReconnectsAfterServerRestart(t *testing.T) {
	c := newTestCell(t, cellstate.Options{})
	c.addMachine("m0", nil, 4000, 8*gib, 0)
	s := startScheduler(t, c, Config{Name: "batch", Policy: batch.New(), Seed: 1})
	c.waitPlaced(c.submit(jobSpec("before", "batch", 100, 2, 1000, gib, 0)).Id, 10*time.Second)

	c.stop()
	eventually(t, 10*time.Second, "the scheduler noticed the server is gone", func() (bool, string) {
		n := metric(t, s.reg, "omegacell_scheduler_watch_restarts_total", nil)
		return n >= 1, fmt.Sprint(n)
	})
	c.start()
	c.waitPlaced(c.submit(jobSpec("after", "batch", 100, 2, 1000, gib, 0)).Id, 10*time.Second)
	c.checkInvariant()
	// The restarted server is a new incarnation of the cell: the copy is
	// read again rather than trusted to continue (issue 11, bug 3).
	if got := metric(t, s.reg, "omegacell_scheduler_snapshots_total", map[string]string{"reason": "cell-changed"}); got != 1 {
		t.Errorf("snapshots after the restart = %v, want 1", got)
	}
}

func TestResnapshotsWhenTheWatchStartWasCompacted(t *testing.T) {
	c := newTestCell(t, cellstate.Options{LogRetention: 4})
	c.addMachine("old0", map[string]string{"pool": "old"}, 4000, 8*gib, 0)
	s := startScheduler(t, c, Config{Name: "batch", Policy: batch.New(), Seed: 1})
	c.waitPlaced(c.submit(jobSpec("before", "batch", 100, 1, 1000, gib, 0)).Id, 10*time.Second)

	// While the server is down, the cell moves on by more revisions than
	// its log keeps.
	c.stop()
	st, err := cellstate.Open(c.opts)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 12 {
		_, _, err := st.RegisterMachine(ctxT(t), &cellv1.RegisterMachineRequest{
			Id: fmt.Sprintf("new%d", i), Labels: map[string]string{"pool": "new"}, Capacity: &cellv1.Resources{CpuMilli: 4000, MemoryBytes: 8 * gib},
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	// The log is compacted only up to the newest checkpoint, which the
	// close above just wrote: one more start and write compacts it past
	// the scheduler's revision before the server serves again, so its
	// watch cannot resume (without this, whether it could depended on
	// whether it reconnected before or after the next write).
	st, err = cellstate.Open(c.opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.RegisterMachine(ctxT(t), &cellv1.RegisterMachineRequest{
		Id: "new12", Labels: map[string]string{"pool": "new"}, Capacity: &cellv1.Resources{CpuMilli: 4000, MemoryBytes: 8 * gib},
	}); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	c.start()

	spec := jobSpec("after", "batch", 100, 12, 4000, gib, 0)
	spec.Task.Constraints = []*cellv1.Constraint{{Key: "pool", Op: cellv1.ConstraintOp_CONSTRAINT_OP_IN, Values: []string{"new"}}}
	c.waitPlaced(c.submit(spec).Id, 10*time.Second)
	c.checkInvariant()
	if got := metric(t, s.reg, "omegacell_scheduler_snapshots_total", map[string]string{"reason": "compacted"}); got != 1 {
		t.Errorf("snapshots after compaction = %v, want 1", got)
	}
}

func TestRunRefusesABadConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"no server", Config{Name: "x", Policy: batch.New()}, "Config.Server: is empty"},
		{"bad name", Config{Server: "127.0.0.1:1", Name: "Bad_Name", Policy: batch.New()}, `Config.Name: "Bad_Name" is not a scheduler name`},
		{"no policy", Config{Server: "127.0.0.1:1", Name: "x"}, "Config.Policy: is nil"},
		{"bad conflict mode", Config{Server: "127.0.0.1:1", Name: "x", Policy: batch.New(), ConflictMode: 7}, "Config.ConflictMode: unknown mode 7"},
		{"bad backoff", Config{Server: "127.0.0.1:1", Name: "x", Policy: batch.New(), Backoff: Backoff{Initial: time.Second, Max: time.Millisecond}}, "Config.Backoff: Max 1ms is below Initial 1s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Run(context.Background(), tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Run error = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestRunReturnsWhenItsContextEndsBeforeTheServerIsUp(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	err := Run(ctx, Config{Server: "127.0.0.1:1", Credentials: credentials.Client{Insecure: true}, Name: "x", Policy: batch.New(), Logger: discardLogger()})
	if err != nil {
		t.Errorf("Run = %v, want nil when ctx ends", err)
	}
}

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// panicky panics for jobs named "boom" and is the batch policy otherwise.
type panicky struct{ policy.Policy }

func (p panicky) Place(job view.JobInfo, pending []*txn.Task, v *view.View, rng *rand.Rand) policy.Decision {
	if job.Name == "boom" {
		panic("boom: index out of range")
	}
	return p.Policy.Place(job, pending, v, rng)
}

func TestAPanickingPolicyFailsTheJobNotTheScheduler(t *testing.T) {
	c := newTestCell(t, cellstate.Options{})
	c.addMachine("m0", nil, 4000, 8*gib, 0)
	startScheduler(t, c, Config{Name: "batch", Policy: panicky{batch.New()}, Seed: 1})
	boom := c.submit(jobSpec("boom", "batch", 200, 1, 1000, gib, 0))
	eventually(t, 10*time.Second, "boom marked unschedulable", func() (bool, string) {
		reason := c.getJob(boom.Id).Job.UnschedulableReason
		return reason == "1 of 1 pending tasks unplaced: policy batch panicked: boom: index out of range", reason
	})
	// The scheduler goes on with other jobs.
	c.waitPlaced(c.submit(jobSpec("fine", "batch", 100, 2, 1000, gib, 0)).Id, 10*time.Second)
}

func TestStoppedJobsLeaveTheQueue(t *testing.T) {
	c := newTestCell(t, cellstate.Options{})
	c.addMachine("m0", nil, 2000, 8*gib, 0)
	s := startScheduler(t, c, Config{Name: "batch", Policy: batch.New(), Seed: 1, StatsInterval: 10 * time.Millisecond})
	big := c.submit(jobSpec("big", "batch", 100, 1, 4000, gib, 0))
	eventually(t, 10*time.Second, "big parked", func() (bool, string) {
		n := metric(t, s.reg, "omegacell_scheduler_queue_jobs", map[string]string{"state": "parked"})
		return n == 1, fmt.Sprint(n)
	})
	if _, err := c.jobs.StopJob(ctxT(t), &cellv1.StopJobRequest{IdOrName: big.Id}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "queue empty", func() (bool, string) {
		n := metric(t, s.reg, "omegacell_scheduler_queue_jobs", nil) + metric(t, s.reg, "omegacell_scheduler_queue_tasks", nil)
		return n == 0, fmt.Sprint(n)
	})
	// A machine added later wakes nothing: the stopped job is gone.
	c.addMachine("m1", nil, 8000, 8*gib, 0)
	c.waitPlaced(c.submit(jobSpec("next", "batch", 100, 1, 1000, gib, 0)).Id, 10*time.Second)
	if r := c.getJob(big.Id); r.Counts.Assigned != 0 {
		t.Errorf("stopped job placed: %v", r.Counts)
	}
}

// manualClock is a Clock the test moves by hand.
type manualClock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []clockWaiter
}

type clockWaiter struct {
	at time.Time
	ch chan time.Time
}

func (c *manualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *manualClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	if d <= 0 {
		ch <- c.now
		return ch
	}
	c.waiters = append(c.waiters, clockWaiter{at: c.now.Add(d), ch: ch})
	return ch
}

// advance moves the clock and fires the waiters that are due.
func (c *manualClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	kept := c.waiters[:0]
	for _, w := range c.waiters {
		if w.at.After(c.now) {
			kept = append(kept, w)
			continue
		}
		w.ch <- c.now
	}
	c.waiters = kept
}

func TestParkedJobsAreRetriedEveryParkedRetry(t *testing.T) {
	c := newTestCell(t, cellstate.Options{})
	c.addMachine("m0", nil, 2000, 8*gib, 0)
	clock := &manualClock{now: time.Now()}
	p := &interfering{Policy: batch.New()}
	startScheduler(t, c, Config{Name: "batch", Policy: p, Seed: 1, Clock: clock, ParkedRetry: 30 * time.Second})
	job := c.submit(jobSpec("big", "batch", 100, 1, 4000, gib, 0))
	eventually(t, 10*time.Second, "job parked", func() (bool, string) {
		reason := c.getJob(job.Id).Job.UnschedulableReason
		return reason != "", reason
	})
	// Nothing changes in the cell; only time passes.
	for range 28 {
		clock.advance(time.Second)
		time.Sleep(2 * time.Millisecond)
	}
	if n := len(p.calls()); n != 1 {
		t.Fatalf("policy calls after 28 s = %d, want 1 (retried before ParkedRetry)", n)
	}
	eventually(t, 10*time.Second, "retried once ParkedRetry passed", func() (bool, string) {
		clock.advance(time.Second)
		n := len(p.calls())
		return n >= 2, fmt.Sprint(n, " calls")
	})
}

func TestRunAgainInTheSameProcessKeepsCounting(t *testing.T) {
	c := newTestCell(t, cellstate.Options{})
	c.addMachine("m0", nil, 4000, 8*gib, 0)
	reg := prometheus.NewRegistry()
	first := startScheduler(t, c, Config{Name: "batch", Policy: batch.New(), Seed: 1, Registerer: reg})
	c.waitPlaced(c.submit(jobSpec("one", "batch", 100, 1, 1000, gib, 0)).Id, 10*time.Second)
	// The store shows the placement before the scheduler has read its
	// Commit answer; stopping it in between cancels the call, and the
	// claim is (rightly) not counted. Stop only once it was counted.
	waitMetric(t, reg, "omegacell_scheduler_claims_total", map[string]string{"outcome": "accepted"}, 1)
	first.stop()
	startScheduler(t, c, Config{Name: "batch", Policy: batch.New(), Seed: 1, Registerer: reg})
	c.waitPlaced(c.submit(jobSpec("two", "batch", 100, 1, 1000, gib, 0)).Id, 10*time.Second)
	waitMetric(t, reg, "omegacell_scheduler_claims_total", map[string]string{"outcome": "accepted"}, 2)
}

func TestRunRefusesMetricsThatClash(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewCounter(prometheus.CounterOpts{Name: "omegacell_scheduler_busyness", Help: "not a gauge",
		ConstLabels: prometheus.Labels{"scheduler": "x"}}))
	err := Run(context.Background(), Config{Server: "127.0.0.1:1", Credentials: credentials.Client{Insecure: true}, Name: "x", Policy: batch.New(), Registerer: reg})
	if err == nil || !strings.Contains(err.Error(), `sdk: metrics of scheduler "x"`) {
		t.Errorf("Run = %v, want a metrics registration error", err)
	}
}

// TestResnapshotsWhenTheServerLostItsData: the server comes back on an
// empty data directory (revision 0); the scheduler's watch from its old
// revision is refused, it reads a new snapshot and places new work.
func TestResnapshotsWhenTheServerLostItsData(t *testing.T) {
	c := newTestCell(t, cellstate.Options{})
	c.addMachine("m0", nil, 4000, 8*gib, 0)
	s := startScheduler(t, c, Config{Name: "batch", Policy: batch.New(), Seed: 1})
	c.waitPlaced(c.submit(jobSpec("before", "batch", 100, 3, 1000, gib, 0)).Id, 10*time.Second)

	c.stop()
	c.opts.Dir = t.TempDir()
	c.start()
	c.addMachine("fresh", nil, 4000, 8*gib, 0)
	c.waitPlaced(c.submit(jobSpec("after", "batch", 100, 2, 1000, gib, 0)).Id, 10*time.Second)
	c.checkInvariant()
	if got := metric(t, s.reg, "omegacell_scheduler_snapshots_total", nil); got < 2 {
		t.Errorf("snapshots = %v, want a second one after the reset", got)
	}
}

// Config.Ready is called once, with the revision of the first copy; a
// server restart (and the snapshot that follows it) does not call it again.
func TestReadyIsCalledOnceWithTheFirstCopy(t *testing.T) {
	c := newTestCell(t, cellstate.Options{})
	c.addMachine("m0", nil, 4000, 8*gib, 0)
	before := c.snapshot().revision
	revisions := make(chan uint64, 4)
	startScheduler(t, c, Config{Name: "batch", Policy: batch.New(), Seed: 1, Ready: func(rev uint64) { revisions <- rev }})
	select {
	case rev := <-revisions:
		if rev < before {
			t.Errorf("ready at revision %d, before the machine's registration at %d", rev, before)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Ready was not called within 10 s")
	}

	c.stop()
	c.start()
	job := c.submit(jobSpec("after-restart", "batch", 100, 2, 500, gib, 0))
	c.waitPlaced(job.Id, 15*time.Second)
	select {
	case rev := <-revisions:
		t.Errorf("Ready called again (revision %d) after a server restart", rev)
	default:
	}
}

// viewRecorder wraps a policy and records the machines of the view each
// placement was decided on. Test double only: real policies keep nothing.
type viewRecorder struct {
	policy.Policy
	mu   sync.Mutex
	seen [][]string
}

func (p *viewRecorder) Place(job view.JobInfo, pending []*txn.Task, v *view.View, rng *rand.Rand) policy.Decision {
	var ids []string
	for _, m := range v.Machines() {
		ids = append(ids, m.ID)
	}
	slices.Sort(ids)
	p.mu.Lock()
	p.seen = append(p.seen, ids)
	p.mu.Unlock()
	return p.Policy.Place(job, pending, v, rng)
}

func (p *viewRecorder) last() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.seen) == 0 {
		return nil
	}
	return p.seen[len(p.seen)-1]
}

// TestTwoCellsTakingTurnsOnOneAddress reproduces bug 3 of issue 11: cell
// B took over cell A's address, and the scheduler resnapshotted from B;
// then A came back at a higher revision than B's, and the scheduler
// resumed its watch from B's revision on A, mixing two cells' histories.
// Every answer now names its cell incarnation and the scheduler reads a
// new snapshot whenever it changes.
func TestTwoCellsTakingTurnsOnOneAddress(t *testing.T) {
	a := newTestCell(t, cellstate.Options{})
	a.addMachine("a-0", nil, 4000, 8*gib, 0)
	b := newTestCell(t, cellstate.Options{})
	b.addMachine("b-only", nil, 64000, 64*gib, 0)
	b.stop()
	rec := &viewRecorder{Policy: batch.New()}
	s := startScheduler(t, a, Config{Name: "batch", Policy: rec, Seed: 1})
	a.waitPlaced(a.submit(jobSpec("on-a", "batch", 100, 1, 1000, gib, 0)).Id, 10*time.Second)
	if got := rec.last(); !slices.Equal(got, []string{"a-0"}) {
		t.Fatalf("view of cell A holds machines %v", got)
	}

	// B takes over the address (a's client, dialing the address, now
	// talks to B).
	a.stop()
	b.addr = a.addr
	b.start()
	a.waitPlaced(a.submit(jobSpec("on-b", "batch", 100, 1, 1000, gib, 0)).Id, 10*time.Second)
	if got := rec.last(); !slices.Equal(got, []string{"b-only"}) {
		t.Fatalf("view after B took over holds machines %v", got)
	}
	bRev := b.store.Revision()

	// A moves on while it is away (beyond B's revision), then comes back.
	b.stop()
	st, err := cellstate.Open(a.opts)
	if err != nil {
		t.Fatal(err)
	}
	for i := range int(bRev) + 5 {
		if _, _, err := st.RegisterMachine(ctxT(t), &cellv1.RegisterMachineRequest{
			Id: fmt.Sprintf("a-%d", i+1), Capacity: &cellv1.Resources{CpuMilli: 4000, MemoryBytes: 8 * gib},
		}); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	a.start()
	if a.store.Revision() <= bRev {
		t.Fatalf("cell A at revision %d, not beyond B's %d: the test would not show the mix", a.store.Revision(), bRev)
	}
	a.waitPlaced(a.submit(jobSpec("on-a-again", "batch", 100, 1, 1000, gib, 0)).Id, 10*time.Second)
	got := rec.last()
	if slices.Contains(got, "b-only") || len(got) != int(bRev)+6 {
		t.Fatalf("view after A came back holds %d machines %v: want A's %d and none of B's", len(got), got, int(bRev)+6)
	}
	a.checkInvariant()
	if n := metric(t, s.reg, "omegacell_scheduler_snapshots_total", map[string]string{"reason": "cell-changed"}); n < 1 {
		t.Errorf("snapshots for a changed cell = %v, want at least 1", n)
	}
}
