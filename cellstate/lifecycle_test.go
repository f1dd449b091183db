package cellstate

import (
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
	"github.com/omegacell/omegacell/proto/limits"
)

func (c *testCell) place(job *cellv1.Job, idx uint32, machine string) {
	c.t.Helper()
	r, err := c.state.Commit(ctxT(c.t), &cellv1.CommitRequest{Scheduler: job.Spec.Scheduler, Claims: []*cellv1.Claim{claim(job.Id, idx, machine, job.Spec.Task.Resources)}})
	if err != nil || r.Accepted != 1 {
		c.t.Fatalf("place %s/%d on %s: %v %v", job.Id, idx, machine, r, err)
	}
}

func (c *testCell) task(job string, idx uint32) *cellv1.Task {
	c.t.Helper()
	r, err := c.jobs.GetJob(ctxT(c.t), &cellv1.GetJobRequest{IdOrName: job, IncludeTasks: true})
	if err != nil {
		c.t.Fatal(err)
	}
	return r.Tasks[idx]
}

func (c *testCell) report(machine string, u *cellv1.TaskStateUpdate) *cellv1.UpdateResult {
	c.t.Helper()
	r, err := c.agent.ReportTaskStates(ctxT(c.t), &cellv1.ReportTaskStatesRequest{MachineId: machine, Updates: []*cellv1.TaskStateUpdate{u}})
	if err != nil {
		c.t.Fatal(err)
	}
	return r.Results[0]
}

func update(job string, idx, attempt uint32, st cellv1.TaskState, exit int32) *cellv1.TaskStateUpdate {
	return &cellv1.TaskStateUpdate{Task: &cellv1.TaskRef{JobId: job, Index: idx}, Attempt: attempt, State: st, ExitCode: exit}
}

func TestBatchRetryLimitThenJobFails(t *testing.T) {
	c := newTestCell(t, Options{})
	c.addMachine("m1", nil, 4000, 4*gib, 0)
	c.addMachine("m2", nil, 4000, 4*gib, 0)
	spec := batchSpec("flaky", 2, 1000, gib)
	spec.RetryLimit = 1
	job := c.submit(spec)
	c.place(job, 0, "m1")
	c.place(job, 1, "m2")

	// A stale agent (wrong machine, wrong attempt) changes nothing.
	if r := c.report("m2", update(job.Id, 0, 1, cellv1.TaskState_TASK_STATE_RUNNING, 0)); r.Applied {
		t.Fatal("update from the wrong machine applied")
	}
	if r := c.report("m1", update(job.Id, 0, 7, cellv1.TaskState_TASK_STATE_RUNNING, 0)); r.Applied || !strings.Contains(r.Reason, "stale attempt") {
		t.Fatalf("stale attempt: %v", r)
	}
	if r := c.report("m1", update(job.Id, 0, 1, cellv1.TaskState_TASK_STATE_RUNNING, 0)); !r.Applied {
		t.Fatalf("running: %v", r)
	}
	if r := c.report("m1", update(job.Id, 0, 1, cellv1.TaskState_TASK_STATE_FAILED, 3)); !r.Applied {
		t.Fatalf("failed: %v", r)
	}
	tk := c.task(job.Id, 0)
	if tk.State != cellv1.TaskState_TASK_STATE_PENDING || tk.Failures != 1 || tk.NotBeforeUnixNano == 0 || !strings.Contains(tk.Message, "exit code 3") {
		t.Fatalf("after the first failure (retry limit 1) the task should be pending again with backoff: %v", tk)
	}
	c.checkInvariant()
	// Second failure exceeds the retry limit: the job fails and its other
	// task is killed.
	c.place(job, 0, "m2")
	if r := c.report("m2", update(job.Id, 0, 2, cellv1.TaskState_TASK_STATE_FAILED, 4)); !r.Applied {
		t.Fatalf("second failure: %v", r)
	}
	got, _ := c.jobs.GetJob(ctxT(t), &cellv1.GetJobRequest{IdOrName: job.Id, IncludeTasks: true})
	if got.Job.State != cellv1.JobState_JOB_STATE_FAILED || !strings.Contains(got.Job.Message, "retry limit 1") {
		t.Fatalf("job after exceeding retries: %v %q", got.Job.State, got.Job.Message)
	}
	if got.Tasks[1].State != cellv1.TaskState_TASK_STATE_KILLED {
		t.Fatalf("sibling task %v, want killed", got.Tasks[1].State)
	}
	c.checkInvariant()
}

func TestBatchJobSucceedsAndServiceRestarts(t *testing.T) {
	c := newTestCell(t, Options{})
	c.addMachine("m1", nil, 4000, 4*gib, 0)
	job := c.submit(batchSpec("ok", 1, 1000, gib))
	c.place(job, 0, "m1")
	c.report("m1", update(job.Id, 0, 1, cellv1.TaskState_TASK_STATE_RUNNING, 0))
	c.report("m1", update(job.Id, 0, 1, cellv1.TaskState_TASK_STATE_SUCCEEDED, 0))
	got, _ := c.jobs.GetJob(ctxT(t), &cellv1.GetJobRequest{IdOrName: job.Id})
	if got.Job.State != cellv1.JobState_JOB_STATE_SUCCEEDED || got.Job.FinishTimeUnixNano == 0 {
		t.Fatalf("batch job: %v", got.Job)
	}

	svcSpec := batchSpec("web", 1, 1000, gib)
	svcSpec.Scheduler = "service"
	svc := c.submit(svcSpec)
	if svc.Spec.Kind != cellv1.JobKind_JOB_KIND_SERVICE {
		t.Fatalf("kind defaulted to %v for the service scheduler", svc.Spec.Kind)
	}
	c.place(svc, 0, "m1")
	c.report("m1", update(svc.Id, 0, 1, cellv1.TaskState_TASK_STATE_SUCCEEDED, 0))
	tk := c.task(svc.Id, 0)
	if tk.State != cellv1.TaskState_TASK_STATE_PENDING || tk.NotBeforeUnixNano == 0 {
		t.Fatalf("a service task that exited must be placed again: %v", tk)
	}
	c.place(svc, 0, "m1")
	if a := c.task(svc.Id, 0).Attempt; a != 2 {
		t.Fatalf("attempt %d after the second placement, want 2", a)
	}
	c.checkInvariant()
}

func TestDrainEvicts(t *testing.T) {
	c := newTestCell(t, Options{})
	c.addMachine("m1", nil, 4000, 4*gib, 0)
	job := c.submit(batchSpec("j", 1, 1000, gib))
	c.place(job, 0, "m1")
	if _, err := c.machines.DrainMachine(ctxT(t), &cellv1.DrainMachineRequest{Id: "m1", Drain: true}); err != nil {
		t.Fatal(err)
	}
	if tk := c.task(job.Id, 0); tk.State != cellv1.TaskState_TASK_STATE_PENDING {
		t.Fatalf("task on a drained machine: %v", tk.State)
	}
	r, err := c.state.Commit(ctxT(t), &cellv1.CommitRequest{Scheduler: "batch", Claims: []*cellv1.Claim{claim(job.Id, 0, "m1", job.Spec.Task.Resources)}})
	if err != nil || r.Results[0].Outcome != cellv1.ClaimOutcome_CLAIM_OUTCOME_MACHINE_DRAINING {
		t.Fatalf("claim on a draining machine: %v %v", r, err)
	}
	c.checkInvariant()
}

// TestLivenessOverNATS runs a real embedded NATS server: heartbeats keep a
// machine up, silence marks it down and its task lost (back to pending),
// and a machine that heartbeats again is ready again.
func TestLivenessOverNATS(t *testing.T) {
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoSigs: true, NoLog: true})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(5 * time.Second) {
		t.Fatal("nats not ready")
	}
	t.Cleanup(ns.Shutdown)
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)

	c := newTestCell(t, Options{})
	live, err := StartLiveness(c.store, LivenessOptions{Conn: nc, Grace: time.Second, CheckEvery: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(live.Close)
	c.addMachine("alive", nil, 4000, 4*gib, 0)
	c.addMachine("silent", nil, 4000, 4*gib, 0)
	job := c.submit(batchSpec("j", 1, 1000, gib))
	c.place(job, 0, "silent")

	beat := func(ids ...string) {
		for _, id := range ids {
			b := &cellv1.HeartbeatBatch{Heartbeats: []*cellv1.Heartbeat{{MachineId: id, Usage: &cellv1.Usage{CpuMilli: 250, MemoryBytes: 1 << 20}}}}
			data, _ := proto.Marshal(b)
			subject, _ := limits.HeartbeatSubject(DefaultSubjectPrefix, id)
			if err := nc.Publish(subject, data); err != nil {
				t.Fatal(err)
			}
		}
	}
	garbage, _ := limits.HeartbeatSubject(DefaultSubjectPrefix, "alive")
	nc.Publish(garbage, []byte("garbage")) // refused, harmless
	state := func(id string) cellv1.MachineState {
		m, err := c.store.GetMachine(id)
		if err != nil {
			t.Fatal(err)
		}
		return m.Machine.State
	}
	deadline := time.Now().Add(10 * time.Second)
	for state("silent") != cellv1.MachineState_MACHINE_STATE_DOWN {
		if time.Now().After(deadline) {
			t.Fatal("silent machine never marked down")
		}
		beat("alive")
		time.Sleep(50 * time.Millisecond)
	}
	if st := state("alive"); st != cellv1.MachineState_MACHINE_STATE_READY {
		t.Fatalf("heartbeating machine is %v", st)
	}
	tk := c.task(job.Id, 0)
	if tk.State != cellv1.TaskState_TASK_STATE_PENDING || !strings.Contains(tk.Message, "lost") {
		t.Fatalf("task of the down machine: %v %q", tk.State, tk.Message)
	}
	c.checkInvariant()
	m := &cellv1.Machine{Id: "alive"}
	live.fill(m)
	if m.Usage.GetCpuMilli() != 250 || m.LastHeartbeatUnixNano == 0 {
		t.Fatalf("usage not recorded: %v", m)
	}
	for state("silent") != cellv1.MachineState_MACHINE_STATE_READY {
		if time.Now().After(deadline) {
			t.Fatal("machine that heartbeats again never marked ready")
		}
		beat("alive", "silent")
		time.Sleep(50 * time.Millisecond)
	}
}

func TestReRegistrationWithoutChangeKeepsSeq(t *testing.T) {
	c := newTestCell(t, Options{})
	m := c.addMachine("m1", map[string]string{"rack": "r1"}, 4000, 4*gib, 0)
	rev := c.store.Revision()
	again := c.addMachine("m1", map[string]string{"rack": "r1"}, 4000, 4*gib, 0)
	if again.Seq != m.Seq || c.store.Revision() != rev {
		t.Fatalf("unchanged re-registration moved seq %d -> %d, revision %d -> %d", m.Seq, again.Seq, rev, c.store.Revision())
	}
	changed := c.addMachine("m1", map[string]string{"rack": "r2"}, 4000, 4*gib, 0)
	if changed.Seq == m.Seq || changed.Labels["rack"] != "r2" {
		t.Fatalf("changed labels not applied: %v", changed)
	}
}

// TestFilteredWatchGetsProgressInBusyCell: an agent's filtered watch gets
// progress notifications even while other machines' changes stream by.
func TestFilteredWatchGetsProgressInBusyCell(t *testing.T) {
	c := newTestCell(t, Options{})
	c.addMachine("quiet", nil, 4000, 4*gib, 0)
	c.addMachine("busy", nil, 1<<20, 1<<40, 0)
	stream, err := c.state.Watch(ctxT(t), &cellv1.WatchRequest{StartRevision: c.store.Revision(), MachineId: "quiet", ProgressIntervalMs: 100})
	if err != nil {
		t.Fatal(err)
	}
	job := c.submit(batchSpec("churn", 2000, 1, 1))
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := uint32(0); i < 2000; i++ {
			select {
			case <-ctxT(t).Done():
				return
			default:
			}
			c.state.Commit(ctxT(t), &cellv1.CommitRequest{Scheduler: "batch", Claims: []*cellv1.Claim{claim(job.Id, i, "busy", job.Spec.Task.Resources)}})
			if i%50 == 0 {
				time.Sleep(5 * time.Millisecond)
			}
		}
	}()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		r, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if r.ProgressNotify {
			<-done
			return
		}
		t.Fatalf("filtered watch got changes of another machine: %v", r)
	}
	t.Fatal("no progress notification while other machines were busy")
}
