package cellstate

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
)

const gib = 1 << 30

func TestCommitStopAndRecover(t *testing.T) {
	c := newTestCell(t, Options{})
	c.addMachine("m1", map[string]string{"rack": "r1"}, 4000, 8*gib, 0)
	c.addMachine("m2", map[string]string{"rack": "r2"}, 4000, 8*gib, 0)
	job := c.submit(batchSpec("work", 3, 2000, gib))
	res := job.Spec.Task.Resources

	resp, err := c.state.Commit(ctxT(t), &cellv1.CommitRequest{
		Scheduler: "batch",
		Claims: []*cellv1.Claim{
			claim(job.Id, 0, "m1", res),
			claim(job.Id, 1, "m1", res),
			claim(job.Id, 2, "m1", res), // m1 is full after two
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Accepted != 2 || resp.Results[2].Outcome != cellv1.ClaimOutcome_CLAIM_OUTCOME_INSUFFICIENT_CPU {
		t.Fatalf("got accepted=%d results=%v, want 2 accepted and the third insufficient cpu", resp.Accepted, resp.Results)
	}
	if !strings.Contains(resp.Results[2].Detail, "m1") {
		t.Errorf("detail %q should name the machine", resp.Results[2].Detail)
	}
	got, err := c.jobs.GetJob(ctxT(t), &cellv1.GetJobRequest{IdOrName: "work", IncludeTasks: true})
	if err != nil {
		t.Fatal(err)
	}
	if got.Counts.Assigned != 2 || got.Counts.Pending != 1 || got.Job.State != cellv1.JobState_JOB_STATE_RUNNING {
		t.Fatalf("counts %v state %v", got.Counts, got.Job.State)
	}
	if a := got.Tasks[0].Attempt; a != 1 {
		t.Errorf("attempt after first placement = %d, want 1", a)
	}
	c.checkInvariant()

	before := snapshotOf(t, c)
	c.restart(Options{})
	after := snapshotOf(t, c)
	if !proto.Equal(before, after) {
		t.Fatalf("state changed across restart:\nbefore %v\nafter  %v", before, after)
	}
	c.checkInvariant()

	if _, err := c.jobs.StopJob(ctxT(t), &cellv1.StopJobRequest{IdOrName: job.Id}); err != nil {
		t.Fatal(err)
	}
	m, err := c.machines.GetMachine(ctxT(t), &cellv1.GetMachineRequest{Id: "m1"})
	if err != nil {
		t.Fatal(err)
	}
	if m.Machine.Allocated.CpuMilli != 0 || len(m.Tasks) != 0 {
		t.Fatalf("stopping the job left %v allocated and %d tasks on m1", m.Machine.Allocated, len(m.Tasks))
	}
	got, _ = c.jobs.GetJob(ctxT(t), &cellv1.GetJobRequest{IdOrName: job.Id})
	if got.Job.State != cellv1.JobState_JOB_STATE_STOPPED || got.Counts.Killed != 3 {
		t.Fatalf("after stop: state %v counts %v", got.Job.State, got.Counts)
	}
	c.checkInvariant()
}

// snapshotOf reads the whole cell through the API into one message.
func snapshotOf(t testing.TB, c *testCell) *cellv1.SnapshotResponse {
	t.Helper()
	stream, err := c.state.Snapshot(ctxT(t), &cellv1.SnapshotRequest{ChunkSize: 7})
	if err != nil {
		t.Fatal(err)
	}
	all := &cellv1.SnapshotResponse{}
	for {
		r, err := stream.Recv()
		if err != nil {
			t.Fatalf("snapshot: %v", err)
		}
		all.Revision = r.Revision
		all.Machines = append(all.Machines, r.Machines...)
		all.Jobs = append(all.Jobs, r.Jobs...)
		all.Tasks = append(all.Tasks, r.Tasks...)
		if r.Last {
			break
		}
	}
	sortSnapshot(all)
	return all
}

func TestRequestValidation(t *testing.T) {
	c := newTestCell(t, Options{})
	c.addMachine("m1", nil, 4000, 8*gib, 2)
	job := c.submit(batchSpec("ok", 2, 100, gib))
	ctx := ctxT(t)
	res := job.Spec.Task.Resources
	spec := func(edit func(*cellv1.JobSpec)) *cellv1.JobSpec {
		s := batchSpec("j", 1, 100, gib)
		edit(s)
		return s
	}
	tests := []struct {
		name  string
		call  func() error
		code  codes.Code
		field string
	}{
		{"no spec", func() error { _, err := c.jobs.SubmitJob(ctx, &cellv1.SubmitJobRequest{}); return err }, codes.InvalidArgument, "spec"},
		{"bad name", func() error {
			_, err := c.jobs.SubmitJob(ctx, &cellv1.SubmitJobRequest{Spec: spec(func(s *cellv1.JobSpec) { s.Name = "Bad Name" })})
			return err
		}, codes.InvalidArgument, "spec.name"},
		{"zero count", func() error {
			_, err := c.jobs.SubmitJob(ctx, &cellv1.SubmitJobRequest{Spec: spec(func(s *cellv1.JobSpec) { s.Count = 0 })})
			return err
		}, codes.InvalidArgument, "spec.count"},
		{"absurd count", func() error {
			_, err := c.jobs.SubmitJob(ctx, &cellv1.SubmitJobRequest{Spec: spec(func(s *cellv1.JobSpec) { s.Count = 1 << 30 })})
			return err
		}, codes.InvalidArgument, "spec.count"},
		{"negative cpu", func() error {
			_, err := c.jobs.SubmitJob(ctx, &cellv1.SubmitJobRequest{Spec: spec(func(s *cellv1.JobSpec) { s.Task.Resources.CpuMilli = -1 })})
			return err
		}, codes.InvalidArgument, "resources.cpu_milli"},
		{"empty resources", func() error {
			_, err := c.jobs.SubmitJob(ctx, &cellv1.SubmitJobRequest{Spec: spec(func(s *cellv1.JobSpec) { s.Task.Resources = &cellv1.Resources{} })})
			return err
		}, codes.InvalidArgument, "resources"},
		{"gpu 1.5", func() error {
			_, err := c.jobs.SubmitJob(ctx, &cellv1.SubmitJobRequest{Spec: spec(func(s *cellv1.JobSpec) { s.Task.Resources.GpuMilli = 1500 })})
			return err
		}, codes.InvalidArgument, "gpu_milli"},
		{"unknown scheduler", func() error {
			_, err := c.jobs.SubmitJob(ctx, &cellv1.SubmitJobRequest{Spec: spec(func(s *cellv1.JobSpec) { s.Scheduler = "nobody" })})
			return err
		}, codes.InvalidArgument, "spec.scheduler"},
		{"no command", func() error {
			_, err := c.jobs.SubmitJob(ctx, &cellv1.SubmitJobRequest{Spec: spec(func(s *cellv1.JobSpec) { s.Task.Command = "" })})
			return err
		}, codes.InvalidArgument, "spec.task.command"},
		{"bad constraint", func() error {
			_, err := c.jobs.SubmitJob(ctx, &cellv1.SubmitJobRequest{Spec: spec(func(s *cellv1.JobSpec) {
				s.Task.Constraints = []*cellv1.Constraint{{Key: "rack", Op: cellv1.ConstraintOp_CONSTRAINT_OP_IN}}
			})})
			return err
		}, codes.InvalidArgument, "spec.task.constraints[0]"},
		{"live name of another tenant", func() error { // the same tenant's is a new version (issue 13)
			_, err := c.jobs.SubmitJob(ctx, &cellv1.SubmitJobRequest{Spec: spec(func(s *cellv1.JobSpec) { s.Name, s.Tenant = "ok", "other" })})
			return err
		}, codes.AlreadyExists, "spec.name"},
		{"get unknown job", func() error {
			_, err := c.jobs.GetJob(ctx, &cellv1.GetJobRequest{IdOrName: "00000000-0000-0000-0000-000000000000"})
			return err
		}, codes.NotFound, "does not exist"},
		{"commit no claims", func() error {
			_, err := c.state.Commit(ctx, &cellv1.CommitRequest{Scheduler: "batch"})
			return err
		}, codes.InvalidArgument, "claims"},
		{"commit malformed uuid", func() error {
			_, err := c.state.Commit(ctx, &cellv1.CommitRequest{Scheduler: "batch", Claims: []*cellv1.Claim{claim("not-a-uuid", 0, "m1", res)}})
			return err
		}, codes.InvalidArgument, "claims[0].task.job_id"},
		{"commit no machine", func() error {
			_, err := c.state.Commit(ctx, &cellv1.CommitRequest{Scheduler: "batch", Claims: []*cellv1.Claim{claim(job.Id, 0, "", res)}})
			return err
		}, codes.InvalidArgument, "claims[0].machine_id"},
		{"commit bad device milli", func() error {
			cl := claim(job.Id, 0, "m1", res)
			cl.Devices = []*cellv1.DeviceShare{{Device: 0, Milli: 2000}}
			_, err := c.state.Commit(ctx, &cellv1.CommitRequest{Scheduler: "batch", Claims: []*cellv1.Claim{cl}})
			return err
		}, codes.InvalidArgument, "claims[0].devices[0].milli"},
		{"commit unregistered scheduler", func() error {
			_, err := c.state.Commit(ctx, &cellv1.CommitRequest{Scheduler: "ghost", Claims: []*cellv1.Claim{claim(job.Id, 0, "m1", res)}})
			return err
		}, codes.InvalidArgument, "scheduler"},
		{"register no capacity", func() error {
			_, err := c.machines.RegisterMachine(ctx, &cellv1.RegisterMachineRequest{Id: "m9"})
			return err
		}, codes.InvalidArgument, "capacity"},
		{"register fractional gpus", func() error {
			_, err := c.machines.RegisterMachine(ctx, &cellv1.RegisterMachineRequest{Id: "m9", Capacity: &cellv1.Resources{CpuMilli: 1, MemoryBytes: 1, GpuMilli: 500}})
			return err
		}, codes.InvalidArgument, "capacity.gpu_milli"},
		{"register bad id", func() error {
			_, err := c.machines.RegisterMachine(ctx, &cellv1.RegisterMachineRequest{Id: "has space", Capacity: &cellv1.Resources{CpuMilli: 1, MemoryBytes: 1}})
			return err
		}, codes.InvalidArgument, "id"},
		{"drain unknown", func() error {
			_, err := c.machines.DrainMachine(ctx, &cellv1.DrainMachineRequest{Id: "nope", Drain: true})
			return err
		}, codes.NotFound, "nope"},
		{"report bad state", func() error {
			_, err := c.agent.ReportTaskStates(ctx, &cellv1.ReportTaskStatesRequest{MachineId: "m1", Updates: []*cellv1.TaskStateUpdate{
				{Task: &cellv1.TaskRef{JobId: job.Id}, State: cellv1.TaskState_TASK_STATE_ASSIGNED}}})
			return err
		}, codes.InvalidArgument, "updates[0].state"},
		{"report unknown machine", func() error {
			_, err := c.agent.ReportTaskStates(ctx, &cellv1.ReportTaskStatesRequest{MachineId: "ghost", Updates: []*cellv1.TaskStateUpdate{
				{Task: &cellv1.TaskRef{JobId: job.Id}, State: cellv1.TaskState_TASK_STATE_RUNNING}}})
			return err
		}, codes.NotFound, "machine_id"},
		{"logs negative offset", func() error {
			off := int64(-1)
			_, err := c.jobs.GetTaskLogs(ctx, &cellv1.GetTaskLogsRequest{Task: &cellv1.TaskRef{JobId: job.Id}, Offset: &off})
			return err
		}, codes.InvalidArgument, "offset"},
		{"logs unknown task index", func() error {
			_, err := c.jobs.GetTaskLogs(ctx, &cellv1.GetTaskLogsRequest{Task: &cellv1.TaskRef{JobId: job.Id, Index: 9}})
			return err
		}, codes.NotFound, "task.index"},
		{"logs of a task never placed", func() error {
			_, err := c.jobs.GetTaskLogs(ctx, &cellv1.GetTaskLogsRequest{Task: &cellv1.TaskRef{JobId: job.Id}})
			return err
		}, codes.FailedPrecondition, "has not run anywhere yet"},
		{"watch tiny progress", func() error {
			s, err := c.state.Watch(ctx, &cellv1.WatchRequest{ProgressIntervalMs: 1})
			if err == nil {
				_, err = s.Recv()
			}
			return err
		}, codes.InvalidArgument, "progress_interval_ms"},
	}
	before := snapshotOf(t, c)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			st, _ := status.FromError(err)
			if st.Code() != tc.code || !strings.Contains(st.Message(), tc.field) {
				t.Fatalf("got %v (%v), want code %v naming %q", st.Code(), err, tc.code, tc.field)
			}
		})
	}
	if after := snapshotOf(t, c); !proto.Equal(before, after) {
		t.Fatalf("refused requests changed the cell")
	}
}

func TestDuplicateJobNameAllowedAfterFinish(t *testing.T) {
	c := newTestCell(t, Options{})
	j := c.submit(batchSpec("again", 1, 100, gib))
	if _, err := c.jobs.StopJob(ctxT(t), &cellv1.StopJobRequest{IdOrName: "again"}); err != nil {
		t.Fatal(err)
	}
	j2 := c.submit(batchSpec("again", 1, 100, gib))
	if j2.Id == j.Id {
		t.Fatal("same id reused")
	}
	got, err := c.jobs.GetJob(ctxT(t), &cellv1.GetJobRequest{IdOrName: "again"})
	if err != nil || got.Job.Id != j2.Id {
		t.Fatalf("name resolves to %v (%v), want the newest job %s", got.GetJob().GetId(), err, j2.Id)
	}
	// A finished job is still found by name (its logs, its status), also
	// after a restart.
	if _, err := c.jobs.StopJob(ctxT(t), &cellv1.StopJobRequest{IdOrName: "again"}); err != nil {
		t.Fatal(err)
	}
	c.restart(Options{})
	got, err = c.jobs.GetJob(ctxT(t), &cellv1.GetJobRequest{IdOrName: "again"})
	if err != nil || got.Job.Id != j2.Id || got.Job.State != cellv1.JobState_JOB_STATE_STOPPED {
		t.Fatalf("finished job by name after restart: %v (%v), want stopped %s", got.GetJob(), err, j2.Id)
	}
}

func machineName(i int) string { return fmt.Sprintf("m%03d", i) }

// A second store on the same directory, in another process, is refused
// with a message that says why, and the first is unharmed. The first
// store runs in a child process (this test binary, re-run).
func TestSecondOpenOfADirectoryIsRefused(t *testing.T) {
	if dir := os.Getenv("CELLSTATE_TEST_HOLD_DIR"); dir != "" {
		st, err := Open(Options{Dir: dir})
		if err != nil {
			fmt.Println("open:", err)
			os.Exit(1)
		}
		fmt.Println("ready")
		_, _ = io.Copy(io.Discard, os.Stdin) // hold it until the parent closes stdin
		st.Close()
		os.Exit(0)
	}
	dir := t.TempDir()
	child := exec.Command(os.Args[0], "-test.run=^TestSecondOpenOfADirectoryIsRefused$")
	child.Env = append(os.Environ(), "CELLSTATE_TEST_HOLD_DIR="+dir)
	stdin, err := child.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		stdin.Close()
		if err := child.Wait(); err != nil {
			t.Errorf("the child holding the store: %v", err)
		}
	}()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || line != "ready\n" {
		t.Fatalf("child: %q, %v", line, err)
	}

	second, err := Open(Options{Dir: dir})
	if err == nil {
		second.Close()
		t.Fatal("a second store opened a directory another process holds")
	}
	if !strings.Contains(err.Error(), "is in use by another process") {
		t.Errorf("error %q does not say the directory is in use", err)
	}
}
