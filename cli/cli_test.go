package cli

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/omegacell/omegacell/jobspec"
	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
	"github.com/omegacell/omegacell/proto/credentials"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// runCell runs `cell ARGS...` with the commands of this package mounted
// as cmd/cell mounts them, and returns stdout, stderr and the error.
func runCell(t *testing.T, dial Dialer, stdin string, args ...string) (string, string, error) {
	t.Helper()
	root := &cobra.Command{Use: "cell", SilenceUsage: true, SilenceErrors: true}
	root.AddCommand(JobCommand(dial), MachineCommand(dial), SchedulerCommand(dial))
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetIn(strings.NewReader(stdin))
	root.SetArgs(args)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err := root.ExecuteContext(ctx)
	return out.String(), errOut.String(), err
}

// transcript renders one run for a golden file.
func transcript(args []string, stdout, stderr string, err error) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "$ cell %s\n--- stdout\n%s--- stderr\n%s--- error\n", strings.Join(args, " "), stdout, stderr)
	if err != nil {
		b.WriteString(err.Error() + "\n")
	}
	return []byte(b.String())
}

func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("output differs from %s\ngot:\n%s\nwant:\n%s", path, got, want)
	}
}

// populatedCell is a small cell: three machines, three schedulers, and
// jobs in every interesting state.
func populatedCell() *fakeCell {
	f := &fakeCell{logs: map[string][]byte{}}
	f.machines = []*cellv1.Machine{
		{
			Id: "m-b1", Labels: map[string]string{"zone": "b", "rack": "r3"}, State: cellv1.MachineState_MACHINE_STATE_DOWN,
			Capacity:  &cellv1.Resources{CpuMilli: 16000, MemoryBytes: 64 << 30, DiskBytes: 1 << 40},
			Allocated: &cellv1.Resources{},
		},
		{
			Id: "m-a1", Labels: map[string]string{"zone": "a", "rack": "r1", "ssd": "true"}, State: cellv1.MachineState_MACHINE_STATE_READY,
			Capacity:  &cellv1.Resources{CpuMilli: 8000, MemoryBytes: 32 << 30, DiskBytes: 500 << 30},
			Allocated: &cellv1.Resources{CpuMilli: 2500, MemoryBytes: 4 << 30},
			Usage:     &cellv1.Usage{CpuMilli: 1234, MemoryBytes: 3328599654, SampleTimeUnixNano: at(30)},
		},
		{
			Id: "m-a2", Labels: map[string]string{"zone": "a", "rack": "r2", "gpu.model": "H100"}, State: cellv1.MachineState_MACHINE_STATE_READY,
			Capacity:        &cellv1.Resources{CpuMilli: 64000, MemoryBytes: 512 << 30, DiskBytes: 2 << 40, GpuMilli: 8000},
			Allocated:       &cellv1.Resources{CpuMilli: 16500, MemoryBytes: 96 << 30, GpuMilli: 4500},
			DeviceUsedMilli: []uint32{1000, 1000, 1000, 1000, 500, 0, 0, 0},
			Usage:           &cellv1.Usage{CpuMilli: 15000, MemoryBytes: 80 << 30},
		},
	}
	f.schedulers = []*cellv1.SchedulerInfo{
		{Name: "service", Builtin: true, Stats: &cellv1.SchedulerStats{Busyness: 0.02, ConflictFraction: 0, QueuedJobs: 0, ReportTimeUnixNano: at(60)}, ClaimsAccepted: 3},
		{Name: "batch", Builtin: true, PendingTasks: 2, Stats: &cellv1.SchedulerStats{Busyness: 0.125, ConflictFraction: 0.0312, QueuedJobs: 1, ReportTimeUnixNano: at(60)}, ClaimsAccepted: 1200, ClaimsConflicted: 37},
		{Name: "team-fair-share", PendingTasks: 0},
	}

	web := &cellv1.JobSpec{Name: "web", Scheduler: "service", Priority: 200, Count: 3, Kind: cellv1.JobKind_JOB_KIND_SERVICE,
		Task: &cellv1.TaskTemplate{Command: "/usr/bin/web", Args: []string{"--port", "8080"}, SpreadKey: "rack",
			Resources:   &cellv1.Resources{CpuMilli: 500, MemoryBytes: 512 << 20},
			Constraints: []*cellv1.Constraint{{Key: "zone", Op: cellv1.ConstraintOp_CONSTRAINT_OP_NOT_IN, Values: []string{"b"}}}}}
	var webTasks []*cellv1.Task
	for i := range 3 {
		webTasks = append(webTasks, &cellv1.Task{JobId: "11111111-0000-4000-8000-000000000001", Index: uint32(i), State: cellv1.TaskState_TASK_STATE_RUNNING,
			MachineId: fmt.Sprintf("m-a%d", i%2+1), Attempt: 1, StartTimeUnixNano: at(3)})
	}
	f.addJob(&cellv1.Job{Id: "11111111-0000-4000-8000-000000000001", Spec: web, State: cellv1.JobState_JOB_STATE_RUNNING,
		SubmitTimeUnixNano: at(1), PlacedUnixNano: at(2)}, webTasks...)

	train := &cellv1.JobSpec{Name: "train-llm", Tenant: "ml", Labels: map[string]string{"team": "llm"}, Scheduler: "gpu", Priority: 200, Count: 4, Gang: true, Kind: cellv1.JobKind_JOB_KIND_BATCH,
		Task: &cellv1.TaskTemplate{Command: "python3", Args: []string{"train.py"},
			Resources:   &cellv1.Resources{CpuMilli: 16000, MemoryBytes: 96 << 30, GpuMilli: 8000},
			Constraints: []*cellv1.Constraint{{Key: "gpu.model", Op: cellv1.ConstraintOp_CONSTRAINT_OP_IN, Values: []string{"H100"}}}}}
	var trainTasks []*cellv1.Task
	for i := range 4 {
		trainTasks = append(trainTasks, &cellv1.Task{JobId: "22222222-0000-4000-8000-000000000002", Index: uint32(i), State: cellv1.TaskState_TASK_STATE_PENDING})
	}
	f.addJob(&cellv1.Job{Id: "22222222-0000-4000-8000-000000000002", Spec: train, State: cellv1.JobState_JOB_STATE_PENDING,
		SubmitTimeUnixNano: at(5), UnschedulableReason: "gang of 4 needs 4 machines with 8 free H100 GPUs; 1 has", Attempts: 12}, trainTasks...)

	render := &cellv1.JobSpec{Name: "render", Scheduler: "batch", Priority: 100, Count: 25, RetryLimit: 1, Kind: cellv1.JobKind_JOB_KIND_BATCH,
		Task: &cellv1.TaskTemplate{Command: "render", Resources: &cellv1.Resources{CpuMilli: 250, MemoryBytes: 128 << 20}, DurationMs: 20000}}
	var renderTasks []*cellv1.Task
	for i := range 25 {
		task := &cellv1.Task{JobId: "33333333-0000-4000-8000-000000000003", Index: uint32(24 - i), Attempt: 1, MachineId: "m-a1", StartTimeUnixNano: at(10),
			Resources: render.Task.Resources}
		switch {
		case task.Index == 1:
			task.State, task.ExitCode, task.Failures, task.Attempt = cellv1.TaskState_TASK_STATE_FAILED, 2, 2, 2
			task.Message = "exit status 2:\nout of memory"
			ev := func(sec int, kind cellv1.TaskEventKind, attempt uint32, code int32, msg string) *cellv1.TaskEvent {
				return &cellv1.TaskEvent{TimeUnixNano: at(sec), Kind: kind, Attempt: attempt, MachineId: "m-a1", Scheduler: "batch", ExitCode: code, Message: msg}
			}
			task.Events = []*cellv1.TaskEvent{
				ev(9, cellv1.TaskEventKind_TASK_EVENT_KIND_PLACED, 1, 0, ""), ev(10, cellv1.TaskEventKind_TASK_EVENT_KIND_STARTED, 1, 0, ""),
				ev(40, cellv1.TaskEventKind_TASK_EVENT_KIND_FAILED, 1, 2, "exit status 2"),
				ev(41, cellv1.TaskEventKind_TASK_EVENT_KIND_PLACED, 2, 0, ""), ev(42, cellv1.TaskEventKind_TASK_EVENT_KIND_STARTED, 2, 0, ""),
				ev(70, cellv1.TaskEventKind_TASK_EVENT_KIND_FAILED, 2, 2, "exit status 2:\nout of memory"),
			}
		case task.Index < 20:
			task.State = cellv1.TaskState_TASK_STATE_SUCCEEDED
		case task.Index < 23:
			task.State = cellv1.TaskState_TASK_STATE_RUNNING
			task.Usage = &cellv1.Usage{CpuMilli: int64(180 + 20*(task.Index-20)), MemoryBytes: int64(90+task.Index) << 20}
		default:
			task.State, task.MachineId, task.Attempt, task.StartTimeUnixNano = cellv1.TaskState_TASK_STATE_PENDING, "", 0, 0
		}
		renderTasks = append(renderTasks, task)
	}
	f.addJob(&cellv1.Job{Id: "33333333-0000-4000-8000-000000000003", Spec: render, State: cellv1.JobState_JOB_STATE_RUNNING,
		SubmitTimeUnixNano: at(8), PlacedUnixNano: at(9)}, renderTasks...)
	f.logs[logKey(&cellv1.TaskRef{JobId: "33333333-0000-4000-8000-000000000003", Index: 1}, cellv1.LogStream_LOG_STREAM_STDERR)] = []byte("loading scene\nout of memory\n")
	f.logs[logKey(&cellv1.TaskRef{JobId: "33333333-0000-4000-8000-000000000003", Index: 0}, cellv1.LogStream_LOG_STREAM_STDOUT)] = []byte("frame 0 done\n")

	old := &cellv1.JobSpec{Name: "nightly-report", Scheduler: "batch", Priority: 0, Count: 1, Kind: cellv1.JobKind_JOB_KIND_BATCH,
		Task: &cellv1.TaskTemplate{Command: "report", Resources: &cellv1.Resources{CpuMilli: 1000}}}
	f.addJob(&cellv1.Job{Id: "44444444-0000-4000-8000-000000000004", Spec: old, State: cellv1.JobState_JOB_STATE_SUCCEEDED,
		SubmitTimeUnixNano: at(0), FinishTimeUnixNano: at(40)},
		&cellv1.Task{JobId: "44444444-0000-4000-8000-000000000004", State: cellv1.TaskState_TASK_STATE_SUCCEEDED, MachineId: "m-a1", Attempt: 1})
	return f
}

// progress builds a GetJob answer for a script.
func progress(job *cellv1.Job, state cellv1.JobState, c *cellv1.TaskCounts, finishedAfter int) *cellv1.GetJobResponse {
	j := proto.Clone(job).(*cellv1.Job)
	j.State = state
	if finishedAfter > 0 {
		j.FinishTimeUnixNano = j.GetSubmitTimeUnixNano() + int64(finishedAfter)*int64(time.Second)
	}
	return &cellv1.GetJobResponse{Job: j, Counts: c}
}

// scriptedCell answers GetJob for the example specs with progress scripts:
// the batch array completes, the GPU gang fails, the service comes up.
func scriptedCell() *fakeCell {
	f := &fakeCell{logs: map[string][]byte{}}
	pending, running := cellv1.JobState_JOB_STATE_PENDING, cellv1.JobState_JOB_STATE_RUNNING
	f.scripts = map[string]func(*cellv1.Job) []*cellv1.GetJobResponse{
		"render-frames": func(j *cellv1.Job) []*cellv1.GetJobResponse {
			return []*cellv1.GetJobResponse{
				progress(j, pending, &cellv1.TaskCounts{Pending: 200}, 0),
				progress(j, pending, &cellv1.TaskCounts{Pending: 200}, 0),
				progress(j, running, &cellv1.TaskCounts{Pending: 50, Assigned: 30, Running: 120}, 0),
				progress(j, running, &cellv1.TaskCounts{Running: 80, Succeeded: 119, Failed: 1}, 0),
				progress(j, cellv1.JobState_JOB_STATE_SUCCEEDED, &cellv1.TaskCounts{Succeeded: 200}, 47),
			}
		},
		"train-llm": func(j *cellv1.Job) []*cellv1.GetJobResponse {
			stuck := progress(j, pending, &cellv1.TaskCounts{Pending: 4}, 0)
			stuck.Job.UnschedulableReason = "gang of 4 needs 4 machines with 8 free H100 GPUs; 3 have"
			failed := progress(j, cellv1.JobState_JOB_STATE_FAILED, &cellv1.TaskCounts{Failed: 1, Killed: 3}, 200)
			failed.Job.Message = "task 2 failed 2 times (retry limit 1)"
			failed.Tasks = []*cellv1.Task{
				{JobId: j.GetId(), Index: 0, State: cellv1.TaskState_TASK_STATE_KILLED},
				{JobId: j.GetId(), Index: 2, State: cellv1.TaskState_TASK_STATE_FAILED, ExitCode: 1, Message: "exit status 1"},
			}
			return []*cellv1.GetJobResponse{
				stuck,
				progress(j, running, &cellv1.TaskCounts{Running: 4}, 0),
				progress(j, running, &cellv1.TaskCounts{Running: 3, Pending: 1, Lost: 0}, 0),
				failed,
			}
		},
		"web": func(j *cellv1.Job) []*cellv1.GetJobResponse {
			return []*cellv1.GetJobResponse{
				progress(j, pending, &cellv1.TaskCounts{Pending: 6}, 0),
				progress(j, running, &cellv1.TaskCounts{Assigned: 2, Running: 4, Ready: 3}, 0),
				progress(j, running, &cellv1.TaskCounts{Running: 6, Ready: 5}, 0),
				progress(j, running, &cellv1.TaskCounts{Running: 6, Ready: 6}, 0),
			}
		},
		"crashy": func(j *cellv1.Job) []*cellv1.GetJobResponse {
			return []*cellv1.GetJobResponse{
				progress(j, running, &cellv1.TaskCounts{Running: 2}, 0),
				progress(j, running, &cellv1.TaskCounts{Running: 1, Pending: 1, CrashLooping: 2}, 0),
			}
		},
		"hello": func(j *cellv1.Job) []*cellv1.GetJobResponse {
			return []*cellv1.GetJobResponse{progress(j, pending, &cellv1.TaskCounts{Pending: 1}, 0)}
		},
	}
	return f
}

// TestCommands runs each command against a fake cell on loopback and
// compares stdout, stderr and the error with a golden transcript.
func TestCommands(t *testing.T) {
	const poll = "--poll-interval=1ms"
	cases := []struct {
		name  string
		cell  func() *fakeCell
		stdin string
		args  []string
		check func(t *testing.T, f *fakeCell)
	}{
		{name: "job-run", cell: scriptedCell, args: []string{"job", "run", "../examples/jobs/gpu-gang.yaml"},
			check: submittedAsParsed("../examples/jobs/gpu-gang.yaml")},
		{name: "job-run-json", cell: scriptedCell, args: []string{"job", "run", "-o", "json", "../examples/jobs/service.yaml"},
			check: submittedAsParsed("../examples/jobs/service.yaml")},
		{name: "job-run-stdin", cell: scriptedCell, stdin: "name: hello\ntask: {command: echo, resources: {cpu: 100m}}\n",
			args: []string{"job", "run", "-"}},
		{name: "job-run-bad-spec", cell: scriptedCell, args: []string{"job", "run", "testdata/bad-spec.yaml"},
			check: func(t *testing.T, f *fakeCell) {
				if len(f.submitted) != 0 {
					t.Errorf("a bad spec was submitted: %v", f.submitted)
				}
			}},
		{name: "job-run-bad-stdin", cell: scriptedCell, stdin: "name: hello\ntask: {command: echo, resources: {cpu: 1, mem: 1Gi}}\n",
			args: []string{"job", "run", "-"}},
		{name: "job-run-wait-succeeds", cell: scriptedCell, args: []string{"job", "run", "--wait", poll, "../examples/jobs/batch-array.yaml"}},
		{name: "job-run-wait-fails", cell: scriptedCell, args: []string{"job", "run", "--wait", poll, "../examples/jobs/gpu-gang.yaml"}},
		{name: "job-run-wait-service", cell: scriptedCell, args: []string{"job", "run", "-w", poll, "../examples/jobs/service.yaml"}},
		{name: "job-run-wait-server-restart", cell: func() *fakeCell { f := scriptedCell(); f.unavailable = 3; return f },
			args: []string{"job", "run", "--wait", poll, "../examples/jobs/service.yaml"}},
		{name: "job-run-wait-crash-loop", cell: scriptedCell, stdin: "name: crashy\nkind: service\ncount: 2\ntask: {command: \"false\", resources: {cpu: 100m}}\n",
			args: []string{"job", "run", "--wait", poll, "-"}},
		{name: "job-run-wait-yaml", cell: scriptedCell, args: []string{"job", "run", "--wait", poll, "-o", "yaml", "../examples/jobs/batch-array.yaml"}},
		{name: "job-run-wait-timeout", cell: scriptedCell, stdin: "name: hello\ntask: {command: echo, resources: {cpu: 100m}}\n",
			args: []string{"job", "run", "--wait", poll, "--timeout", "50ms", "-"}},
		{name: "job-status", cell: populatedCell, args: []string{"job", "status", "render"}},
		{name: "job-status-all-tasks", cell: populatedCell, args: []string{"job", "status", "--all-tasks", "33333333-0000-4000-8000-000000000003"}},
		{name: "job-status-unschedulable", cell: populatedCell, args: []string{"job", "status", "train-llm"}},
		{name: "job-status-yaml", cell: populatedCell, args: []string{"job", "status", "web", "-o", "yaml"}},
		{name: "job-status-not-found", cell: populatedCell, args: []string{"job", "status", "nope"}},
		{name: "job-list", cell: populatedCell, args: []string{"job", "list"}},
		{name: "job-list-all", cell: populatedCell, args: []string{"job", "list", "--all"}},
		{name: "job-list-scheduler", cell: populatedCell, args: []string{"job", "list", "-a", "--scheduler", "batch"}},
		{name: "job-list-json", cell: populatedCell, args: []string{"job", "list", "-o", "json", "--scheduler", "gpu"}},
		{name: "job-list-empty", cell: scriptedCell, args: []string{"job", "list"}},
		{name: "job-list-state", cell: populatedCell, args: []string{"job", "list", "--state", "pending,failed"}},
		{name: "job-list-tenant-label-wide", cell: populatedCell, args: []string{"job", "list", "--tenant", "ml", "-l", "team=llm", "-o", "wide"}},
		{name: "job-list-bad-state", cell: populatedCell, args: []string{"job", "list", "--state", "sleeping"}},
		{name: "job-stop", cell: populatedCell, args: []string{"job", "stop", "train-llm"}},
		{name: "job-logs", cell: populatedCell, args: []string{"job", "logs", "render"}},
		{name: "job-logs-stderr", cell: populatedCell, args: []string{"job", "logs", "render", "--task", "1", "--stderr", "--tail", "64Ki"},
			check: func(t *testing.T, f *fakeCell) {
				want := &cellv1.GetTaskLogsRequest{Task: &cellv1.TaskRef{JobId: "33333333-0000-4000-8000-000000000003", Index: 1},
					Stream: cellv1.LogStream_LOG_STREAM_STDERR, TailBytes: 64 << 10}
				if len(f.logRequests) != 1 || !proto.Equal(f.logRequests[0], want) {
					t.Errorf("log requests %v, want [%v]", f.logRequests, want)
				}
			}},
		{name: "job-logs-follow", cell: populatedCell, args: []string{"job", "logs", "render", "-f"}},
		{name: "job-logs-follow-json", cell: populatedCell, args: []string{"job", "logs", "render", "-f", "-o", "json"}},
		{name: "job-logs-bad-task", cell: populatedCell, args: []string{"job", "logs", "render", "--task", "25"}},
		{name: "job-logs-bad-tail", cell: populatedCell, args: []string{"job", "logs", "render", "--tail", "1MB"}},
		{name: "job-logs-none", cell: populatedCell, args: []string{"job", "logs", "web", "--task", "2"}},
		{name: "machine-list", cell: populatedCell, args: []string{"machine", "list"}},
		{name: "machine-list-json", cell: populatedCell, args: []string{"machine", "list", "-o", "json"}},
		{name: "machine-list-empty", cell: scriptedCell, args: []string{"machine", "list"}},
		{name: "machine-drain", cell: populatedCell, args: []string{"machine", "drain", "m-a1", "--deadline", "10m", "--ignore-batch"},
			check: func(t *testing.T, f *fakeCell) {
				if len(f.drains) != 1 || f.drains[0].GetId() != "m-a1" || f.drains[0].GetAction() != cellv1.DrainAction_DRAIN_ACTION_DRAIN ||
					f.drains[0].GetDeadlineMs() != 600_000 || !f.drains[0].GetIgnoreBatch() {
					t.Errorf("drain requests %v", f.drains)
				}
			}},
		{name: "machine-drain-undo", cell: populatedCell, args: []string{"machine", "drain", "--undo", "m-a2"},
			check: func(t *testing.T, f *fakeCell) {
				if len(f.drains) != 1 || f.drains[0].GetAction() != cellv1.DrainAction_DRAIN_ACTION_UNCORDON {
					t.Errorf("drain requests %v", f.drains)
				}
			}},
		{name: "machine-cordon", cell: populatedCell, args: []string{"machine", "cordon", "m-a2"},
			check: func(t *testing.T, f *fakeCell) {
				if len(f.drains) != 1 || f.drains[0].GetAction() != cellv1.DrainAction_DRAIN_ACTION_CORDON {
					t.Errorf("cordon requests %v", f.drains)
				}
			}},
		{name: "machine-uncordon", cell: populatedCell, args: []string{"machine", "uncordon", "m-a2"},
			check: func(t *testing.T, f *fakeCell) {
				if len(f.drains) != 1 || f.drains[0].GetAction() != cellv1.DrainAction_DRAIN_ACTION_UNCORDON {
					t.Errorf("uncordon requests %v", f.drains)
				}
			}},
		{name: "machine-status", cell: populatedCell, args: []string{"machine", "status", "m-a1"}},
		{name: "machine-status-gpu", cell: populatedCell, args: []string{"machine", "status", "m-a2"}},
		{name: "machine-drain-unknown", cell: populatedCell, args: []string{"machine", "drain", "m-zz"}},
		{name: "scheduler-list", cell: populatedCell, args: []string{"scheduler", "list"}},
		{name: "output-unknown", cell: populatedCell, args: []string{"machine", "list", "-o", "xml"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := c.cell()
			dial := startFakeCell(t, f)
			stdout, stderr, err := runCell(t, dial, c.stdin, c.args...)
			checkGolden(t, c.name, transcript(c.args, stdout, stderr, err))
			if c.check != nil {
				c.check(t, f)
			}
		})
	}
}

// submittedAsParsed checks that `job run FILE` sent exactly what jobspec
// parses from FILE.
func submittedAsParsed(file string) func(*testing.T, *fakeCell) {
	return func(t *testing.T, f *fakeCell) {
		want, err := jobspec.ParseFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if len(f.submitted) != 1 || !proto.Equal(f.submitted[0], want) {
			t.Errorf("submitted %v, want %v", f.submitted, want)
		}
	}
}

// TestUnreachableServer checks the one-line error for a cell that is not
// running: the status code, and a hint about --server and CELL_ADDR.
func TestUnreachableServer(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close() // nothing listens here now
	dial := func(ctx context.Context) (*grpc.ClientConn, error) {
		return Dial(ctx, addr, credentials.Client{Insecure: true})
	}
	_, _, err = runCell(t, dial, "", "machine", "list")
	if err == nil {
		t.Fatal("machine list succeeded without a server")
	}
	msg := err.Error()
	for _, want := range []string{"machine list: Unavailable: ", addr, "is the cell server running? point --server or CELL_ADDR at it"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q lacks %q", msg, want)
		}
	}
	if strings.Contains(msg, "\n") {
		t.Errorf("error is not one line: %q", msg)
	}
	if status.Code(err) != codes.Unavailable {
		t.Errorf("status.Code = %v, want Unavailable", status.Code(err))
	}
}

// TestServerFlag checks the --server default ($CELL_ADDR, then
// DefaultAddress) and that an explicit flag wins.
func TestServerFlag(t *testing.T) {
	f := populatedCell()
	real := startFakeCell(t, f)
	conn, err := real(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	addr := conn.Target()
	conn.Close()

	t.Setenv(AddressEnv, "")
	if got := DefaultServerAddress(); got != DefaultAddress {
		t.Errorf("without %s: %q, want %q", AddressEnv, got, DefaultAddress)
	}
	t.Setenv(AddressEnv, addr)
	if got := DefaultServerAddress(); got != addr {
		t.Errorf("with %s=%s: %q", AddressEnv, addr, got)
	}
	// A nil dialer gives the command its own --server flag, defaulting to
	// $CELL_ADDR (here: the fake cell).
	root := &cobra.Command{Use: "cell", SilenceUsage: true, SilenceErrors: true}
	root.AddCommand(MachineCommand(nil))
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetArgs([]string{"machine", "list", "-o", "json", "--insecure"})
	if err := root.Execute(); err != nil {
		t.Fatalf("via $%s: %v", AddressEnv, err)
	}
	if !strings.Contains(out.String(), `"m-a1"`) {
		t.Errorf("machine list via $%s printed %q", AddressEnv, out.String())
	}
	// An explicit --server wins over $CELL_ADDR.
	root = &cobra.Command{Use: "cell", SilenceUsage: true, SilenceErrors: true}
	root.AddCommand(MachineCommand(nil))
	root.SetOut(&out)
	root.SetArgs([]string{"machine", "list", "--server", ""})
	if err := root.Execute(); err == nil || !strings.Contains(err.Error(), "--server is empty") {
		t.Errorf("--server '': got %v", err)
	}
}

// TestProgressLineOnTerminal checks the in-place rendering used on a
// terminal: carriage return, erase line, the time waited, and a final
// newline.
func TestProgressLineOnTerminal(t *testing.T) {
	var buf bytes.Buffer
	p := &progressLine{w: &buf, terminal: true, start: time.Now()}
	p.show("web  pending  pending 6")
	p.show("web  running  running 6")
	p.finish()
	p.finish()
	got := buf.String()
	want := regexp.MustCompile(`^\r\x1b\[Kweb  pending  pending 6  \[\d+s\]\r\x1b\[Kweb  running  running 6  \[\d+s\]\n$`)
	if !want.MatchString(got) {
		t.Fatalf("terminal progress %q does not match %v", got, want)
	}
}
