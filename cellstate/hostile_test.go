package cellstate

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
	"github.com/omegacell/omegacell/proto/limits"
)

// Hostile input (issue 11): every request below is one a careless or
// hostile client can send. Each is refused with InvalidArgument naming
// the field, the answer is short (values quoted to ~100 bytes), and the
// cell keeps serving: a normal submit and commit succeed right after, on
// the same connection.

// maxErrorBytes bounds an error message: a field, a sentence, a quoted
// value of at most limits.MaxQuoted bytes (escaped, up to 4x).
const maxErrorBytes = 4*limits.MaxQuoted + 300

func hostileSpec(edit func(*cellv1.JobSpec)) *cellv1.JobSpec {
	s := batchSpec("hostile", 1, 100, gib)
	edit(s)
	return s
}

func health(h *cellv1.HealthCheck) func(*cellv1.JobSpec) {
	return func(s *cellv1.JobSpec) { s.Task.HealthCheck = h }
}

func manyStrings(n int, s string) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = s
	}
	return out
}

func TestHostileRequests(t *testing.T) {
	c := newTestCell(t, Options{})
	c.addMachine("m1", map[string]string{"zone": "a"}, 1<<30, 1<<50, 0)
	pending := c.submit(batchSpec("target", 4, 100, gib))
	ctx := ctxT(t)
	submit := func(edit func(*cellv1.JobSpec)) func() error {
		return func() error {
			_, err := c.jobs.SubmitJob(ctx, &cellv1.SubmitJobRequest{Spec: hostileSpec(edit)})
			return err
		}
	}
	commit := func(edit func(*cellv1.CommitRequest)) func() error {
		return func() error {
			r := &cellv1.CommitRequest{Scheduler: "batch", Claims: []*cellv1.Claim{claim(pending.Id, 0, "m1", pending.Spec.Task.Resources)}}
			edit(r)
			_, err := c.state.Commit(ctx, r)
			return err
		}
	}
	watch := func(r *cellv1.WatchRequest) func() error {
		return func() error {
			s, err := c.state.Watch(ctx, r)
			if err != nil {
				return err
			}
			_, err = s.Recv()
			return err
		}
	}
	stats := func(st *cellv1.SchedulerStats) func() error {
		return func() error {
			_, err := cellv1.NewSchedulerServiceClient(c.conn).ReportSchedulerStats(ctx, &cellv1.ReportSchedulerStatsRequest{Name: "batch", Stats: st})
			return err
		}
	}
	huge := strings.Repeat("x", 20<<20)
	mb := strings.Repeat("y", 1<<20)

	tests := []struct {
		name  string
		call  func() error
		field string // the message starts with "<field>:"
	}{
		{"health_check.exec with 100,000 entries", submit(health(&cellv1.HealthCheck{Exec: manyStrings(100_000, "true")})), "spec.task.health_check.exec"},
		{"health_check.exec with a 20 MB entry", submit(health(&cellv1.HealthCheck{Exec: []string{"test", huge}})), "spec.task.health_check.exec[1]"},
		{"http_get_url of 1 MB", submit(health(&cellv1.HealthCheck{HttpGetUrl: "http://h/" + mb})), "spec.task.health_check.http_get_url"},
		{"http_get_url with scheme file", submit(health(&cellv1.HealthCheck{HttpGetUrl: "file:///etc/passwd"})), "spec.task.health_check.http_get_url"},
		{"http_get_url that is no URL", submit(health(&cellv1.HealthCheck{HttpGetUrl: "http://[::1"})), "spec.task.health_check.http_get_url"},
		{"health_check interval whose ms overflow", submit(health(&cellv1.HealthCheck{Exec: []string{"true"}, IntervalMs: math.MaxInt64})), "spec.task.health_check.interval_ms"},
		{"health_check failure threshold", submit(health(&cellv1.HealthCheck{Exec: []string{"true"}, FailureThreshold: math.MaxUint32})), "spec.task.health_check.failure_threshold"},
		{"constraint with 1,000,000 values", submit(func(s *cellv1.JobSpec) {
			s.Task.Constraints = []*cellv1.Constraint{{Key: "zone", Op: cellv1.ConstraintOp_CONSTRAINT_OP_IN, Values: manyStrings(1_000_000, "a")}}
		}), "spec.task.constraints[0].values"},
		{"constraint with a 1 MB key", submit(func(s *cellv1.JobSpec) {
			s.Task.Constraints = []*cellv1.Constraint{{Key: mb, Op: cellv1.ConstraintOp_CONSTRAINT_OP_EXISTS}}
		}), "spec.task.constraints[0].key"},
		{"constraint with a 1 MB value", submit(func(s *cellv1.JobSpec) {
			s.Task.Constraints = []*cellv1.Constraint{{Key: "zone", Op: cellv1.ConstraintOp_CONSTRAINT_OP_IN, Values: []string{mb}}}
		}), "spec.task.constraints[0].values[0]"},
		{"constraint operator 257", submit(func(s *cellv1.JobSpec) {
			s.Task.Constraints = []*cellv1.Constraint{{Key: "zone", Op: 257, Values: []string{"a"}}}
		}), "spec.task.constraints[0].op"},
		{"constraint operator -1", submit(func(s *cellv1.JobSpec) {
			s.Task.Constraints = []*cellv1.Constraint{{Key: "zone", Op: -1, Values: []string{"a"}}}
		}), "spec.task.constraints[0].op"},
		{"tenant ../Evil Tenant", submit(func(s *cellv1.JobSpec) { s.Tenant = "../Evil Tenant" }), "spec.tenant"},
		{"env name A=B", submit(func(s *cellv1.JobSpec) { s.Task.Env = map[string]string{"A=B": "x"} }), "spec.task.env"},
		{"env name A NUL B", submit(func(s *cellv1.JobSpec) { s.Task.Env = map[string]string{"A\x00B": "x"} }), "spec.task.env"},
		{"env value with NUL", submit(func(s *cellv1.JobSpec) { s.Task.Env = map[string]string{"A": "x\x00y"} }), "spec.task.env[A]"},
		{"NUL byte in the command", submit(func(s *cellv1.JobSpec) { s.Task.Command = "/bin/tr\x00ue" }), "spec.task.command"},
		{"NUL byte in an argument", submit(func(s *cellv1.JobSpec) { s.Task.Args = []string{"ok", "a\x00b"} }), "spec.task.args[1]"},
		{"spread_key that is no label", submit(func(s *cellv1.JobSpec) { s.Task.SpreadKey = "!! not a label" }), "spec.task.spread_key"},
		{"duration_ms whose ns overflow", submit(func(s *cellv1.JobSpec) { s.Task.DurationMs = math.MaxInt64 }), "spec.task.duration_ms"},
		{"unknown kind", submit(func(s *cellv1.JobSpec) { s.Kind = -3 }), "spec.kind"},
		{"20 MB job name", submit(func(s *cellv1.JobSpec) { s.Name = huge }), "spec.name"},
		{"spec over its byte budget", submit(func(s *cellv1.JobSpec) { s.Task.Args = manyStrings(100, strings.Repeat("a", 4000)) }), "spec"},
		{"commit_mode -1", commit(func(r *cellv1.CommitRequest) { r.CommitMode = -1 }), "commit_mode"},
		{"commit_mode 3", commit(func(r *cellv1.CommitRequest) { r.CommitMode = 3 }), "commit_mode"},
		{"conflict_mode -1", commit(func(r *cellv1.CommitRequest) { r.ConflictMode = -1 }), "conflict_mode"},
		{"claim with a 9 MB machine_id", commit(func(r *cellv1.CommitRequest) { r.Claims[0].MachineId = strings.Repeat("m", 9<<20) }), "claims[0].machine_id"},
		{"claim of task index beyond any job", commit(func(r *cellv1.CommitRequest) { r.Claims[0].Task.Index = math.MaxUint32 }), "claims[0].task.index"},
		{"claims of 257 jobs", commit(func(r *cellv1.CommitRequest) {
			for i := range 256 {
				r.Claims = append(r.Claims, claim(fmt.Sprintf("00000000-0000-4000-8000-%012d", i), 0, "m1", pending.Spec.Task.Resources))
			}
		}), "claims[256].task.job_id"},
		{"claim on device 1000", commit(func(r *cellv1.CommitRequest) {
			r.Claims[0].Devices = []*cellv1.DeviceShare{{Device: 1000, Milli: 1000}}
		}), "claims[0].devices[0].device"},
		{"busyness NaN", stats(&cellv1.SchedulerStats{Busyness: math.NaN()}), "stats.busyness"},
		{"conflict fraction +Inf", stats(&cellv1.SchedulerStats{ConflictFraction: math.Inf(1)}), "stats.conflict_fraction"},
		{"conflict fraction -Inf", stats(&cellv1.SchedulerStats{ConflictFraction: math.Inf(-1)}), "stats.conflict_fraction"},
		{"conflict fraction negative", stats(&cellv1.SchedulerStats{ConflictFraction: -0.5}), "stats.conflict_fraction"},
		{"report time negative", stats(&cellv1.SchedulerStats{ReportTimeUnixNano: -1}), "stats.report_time_unix_nano"},
		{"progress_interval_ms whose ms overflow", watch(&cellv1.WatchRequest{ProgressIntervalMs: math.MaxInt64}), "progress_interval_ms"},
		{"watch for a machine id that is none", watch(&cellv1.WatchRequest{MachineId: "../" + mb}), "machine_id"},
		{"snapshot chunk of 4 billion", func() error {
			s, err := c.state.Snapshot(ctx, &cellv1.SnapshotRequest{ChunkSize: math.MaxUint32})
			if err != nil {
				return err
			}
			_, err = s.Recv()
			return err
		}, "chunk_size"},
		{"register a machine with a NUL in a label", func() error {
			_, err := c.machines.RegisterMachine(ctx, &cellv1.RegisterMachineRequest{Id: "m2", Labels: map[string]string{"zone": "a\x00"}, Capacity: &cellv1.Resources{CpuMilli: 1000, MemoryBytes: gib}})
			return err
		}, "labels[zone]"},
		{"register a machine with a 9 MB id", func() error {
			_, err := c.machines.RegisterMachine(ctx, &cellv1.RegisterMachineRequest{Id: strings.Repeat("m", 9<<20), Capacity: &cellv1.Resources{CpuMilli: 1000, MemoryBytes: gib}})
			return err
		}, "id"},
		{"report with a 9 MB machine_id", func() error {
			_, err := c.agent.ReportTaskStates(ctx, &cellv1.ReportTaskStatesRequest{MachineId: strings.Repeat("m", 9<<20),
				Updates: []*cellv1.TaskStateUpdate{{Task: &cellv1.TaskRef{JobId: pending.Id}, State: cellv1.TaskState_TASK_STATE_RUNNING}}})
			return err
		}, "machine_id"},
		{"report of an unknown state", func() error {
			_, err := c.agent.ReportTaskStates(ctx, &cellv1.ReportTaskStatesRequest{MachineId: "m1",
				Updates: []*cellv1.TaskStateUpdate{{Task: &cellv1.TaskRef{JobId: pending.Id}, State: 99}}})
			return err
		}, "updates[0].state"},
		{"get a job by a 1 MB name", func() error {
			_, err := c.jobs.GetJob(ctx, &cellv1.GetJobRequest{IdOrName: mb})
			return err
		}, "id_or_name"},
		{"stop a job by a 1 MB name", func() error {
			_, err := c.jobs.StopJob(ctx, &cellv1.StopJobRequest{IdOrName: mb})
			return err
		}, "id_or_name"},
		{"list jobs of a scheduler that cannot exist", func() error {
			_, err := c.jobs.ListJobs(ctx, &cellv1.ListJobsRequest{Scheduler: mb})
			return err
		}, "scheduler"},
		{"register a scheduler with a 1 MB name", func() error {
			_, err := cellv1.NewSchedulerServiceClient(c.conn).RegisterScheduler(ctx, &cellv1.RegisterSchedulerRequest{Name: mb})
			return err
		}, "name"},
		{"scheduling status with a negative first attempt", func() error {
			_, err := c.jobs.SetJobSchedulingStatus(ctx, &cellv1.SetJobSchedulingStatusRequest{JobId: pending.Id, Scheduler: "batch", FirstAttemptUnixNano: -1})
			return err
		}, "first_attempt_unix_nano"},
		{"logs of an unknown stream", func() error {
			_, err := c.jobs.GetTaskLogs(ctx, &cellv1.GetTaskLogsRequest{Task: &cellv1.TaskRef{JobId: pending.Id}, Stream: 9})
			return err
		}, "stream"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			st := status.Convert(err)
			if st.Code() != codes.InvalidArgument {
				t.Fatalf("got %v %q, want InvalidArgument", st.Code(), limits.Quote(st.Message()))
			}
			if !strings.HasPrefix(st.Message(), tt.field+":") {
				t.Errorf("message %s does not start with the field %q", limits.Quote(st.Message()), tt.field)
			}
			if n := len(st.Message()); n > maxErrorBytes {
				t.Errorf("message of %d bytes (at most %d): %s", n, maxErrorBytes, limits.Quote(st.Message()))
			}
			c.keepsServing(t, fmt.Sprintf("after-%d", i))
		})
	}
}

// keepsServing submits a one-task job and commits it: the cell still
// serves others, on the same connection.
func (c *testCell) keepsServing(t *testing.T, name string) {
	t.Helper()
	ctx := ctxT(t)
	r, err := c.jobs.SubmitJob(ctx, &cellv1.SubmitJobRequest{Spec: batchSpec(name, 1, 10, 1<<20)})
	if err != nil {
		t.Fatalf("the cell stopped serving: submit: %v", err)
	}
	resp, err := c.state.Commit(ctx, &cellv1.CommitRequest{Scheduler: "batch", Claims: []*cellv1.Claim{claim(r.Job.Id, 0, "m1", r.Job.Spec.Task.Resources)}})
	if err != nil || resp.Accepted != 1 {
		t.Fatalf("the cell stopped serving: commit: %v %v", resp, err)
	}
}

// TestHostilePartialGangCommit: bug 2 of issue 11. The store refuses an
// incremental (or any) commit of part of a gang job; the whole gang goes
// in one transaction.
func TestHostilePartialGangCommit(t *testing.T) {
	c := newTestCell(t, Options{})
	c.addMachine("m1", nil, 8000, 16*gib, 0)
	spec := batchSpec("gang", 4, 1000, gib)
	spec.Gang = true
	g := c.submit(spec)
	ctx := ctxT(t)
	res := g.Spec.Task.Resources
	for _, mode := range []cellv1.CommitMode{cellv1.CommitMode_COMMIT_MODE_UNSPECIFIED, cellv1.CommitMode_COMMIT_MODE_INCREMENTAL, cellv1.CommitMode_COMMIT_MODE_ALL_OR_NOTHING} {
		resp, err := c.state.Commit(ctx, &cellv1.CommitRequest{Scheduler: "batch", CommitMode: mode,
			Claims: []*cellv1.Claim{claim(g.Id, 0, "m1", res), claim(g.Id, 1, "m1", res)}})
		if err != nil {
			t.Fatal(err)
		}
		if resp.Accepted != 0 {
			t.Fatalf("%v: %d of a gang's 4 tasks accepted", mode, resp.Accepted)
		}
		for _, r := range resp.Results {
			if r.Outcome != cellv1.ClaimOutcome_CLAIM_OUTCOME_ABORTED || !strings.Contains(r.Detail, "gang") {
				t.Errorf("%v: outcome %v %q, want aborted naming the gang", mode, r.Outcome, r.Detail)
			}
		}
	}
	for i := range uint32(4) {
		if st := c.task(g.Id, i).State; st != cellv1.TaskState_TASK_STATE_PENDING {
			t.Fatalf("task %d is %v after refused partial commits", i, st)
		}
	}
	c.checkInvariant()
	// The whole gang in one incremental transaction is placed.
	var claims []*cellv1.Claim
	for i := range uint32(4) {
		claims = append(claims, claim(g.Id, i, "m1", res))
	}
	resp, err := c.state.Commit(ctx, &cellv1.CommitRequest{Scheduler: "batch", Claims: claims})
	if err != nil || resp.Accepted != 4 {
		t.Fatalf("whole gang: %v %v", resp, err)
	}
	c.checkInvariant()
}

// largestLegalSpec is a job spec at its byte budget with every field that
// is copied into each task at its largest: a 63-byte scheduler name, the
// highest priority and resources, 100,000 tasks.
func largestLegalSpec(t testing.TB, scheduler string) *cellv1.JobSpec {
	s := &cellv1.JobSpec{
		Name: strings.Repeat("n", limits.MaxJobNameLen), Tenant: strings.Repeat("t", limits.MaxSchedulerNameLen),
		Scheduler: scheduler, Priority: limits.MaxPriority, Count: limits.MaxTasksPerJob, RetryLimit: limits.MaxRetryLimit,
		Task: &cellv1.TaskTemplate{Command: strings.Repeat("c", limits.MaxStringLen),
			Resources: &cellv1.Resources{CpuMilli: 1, MemoryBytes: 1, DiskBytes: limits.MaxBytes}},
	}
	for limits.MaxJobSpecBytes-proto.Size(s) > limits.MaxStringLen+8 {
		s.Task.Args = append(s.Task.Args, strings.Repeat("a", limits.MaxStringLen))
	}
	last := min(limits.MaxJobSpecBytes-proto.Size(s)-5, limits.MaxStringLen)
	s.Task.Args = append(s.Task.Args, strings.Repeat("a", last))
	if n := proto.Size(s); n > limits.MaxJobSpecBytes || n < limits.MaxJobSpecBytes-16 {
		t.Fatalf("largest legal spec is %d bytes, want just under %d", n, limits.MaxJobSpecBytes)
	}
	return s
}

// TestHostileLargestJobFitsTheWire: the largest legal job (100,000 tasks,
// a spec at its byte budget) is one revision that an unfiltered watch
// receives, under half of the server's send limit; one byte more of spec
// is refused.
func TestHostileLargestJobFitsTheWire(t *testing.T) {
	c := newTestCell(t, Options{})
	c.addMachine("m1", nil, 1<<30, 1<<50, 0)
	ctx := ctxT(t)
	sched := strings.Repeat("s", limits.MaxSchedulerNameLen)
	if _, err := cellv1.NewSchedulerServiceClient(c.conn).RegisterScheduler(ctx, &cellv1.RegisterSchedulerRequest{Name: sched}); err != nil {
		t.Fatal(err)
	}
	over := largestLegalSpec(t, sched)
	over.Task.Args[len(over.Task.Args)-1] += strings.Repeat("a", 16)
	if _, err := c.jobs.SubmitJob(ctx, &cellv1.SubmitJobRequest{Spec: over}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("a spec over its budget: %v, want InvalidArgument", err)
	}
	w, err := c.state.Watch(ctx, &cellv1.WatchRequest{StartRevision: c.store.Revision()})
	if err != nil {
		t.Fatal(err)
	}
	job := c.submit(largestLegalSpec(t, sched))
	var changes, size int
	for changes < limits.MaxTasksPerJob+1 {
		r, err := w.Recv()
		if err != nil {
			t.Fatalf("watch after %d changes: %v", changes, err)
		}
		if r.ProgressNotify {
			continue
		}
		changes += len(r.Changes)
		size += proto.Size(r)
	}
	t.Logf("largest single-job revision: %d changes, %d bytes (%.1f MiB; limit %d MiB)", changes, size, float64(size)/(1<<20), limits.MaxRequestBytes>>20)
	if size > limits.MaxRequestBytes/2 {
		t.Errorf("the submit revision of the largest legal job is %d bytes, more than half of the %d the server may send", size, limits.MaxRequestBytes)
	}
	if got := c.task(job.Id, limits.MaxTasksPerJob-1); got.State != cellv1.TaskState_TASK_STATE_PENDING {
		t.Errorf("last task: %v", got)
	}
	c.keepsServing(t, "after-largest")
}
