package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/omegacell/omegacell/agent"
	"github.com/omegacell/omegacell/internal/celltest"
	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
	"github.com/omegacell/omegacell/proto/identity"
)

// syncBuffer is a bytes.Buffer safe to read while a command writes it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// `cell job logs -f` against a real cell and a real agent: it waits while
// the task is not placed, prints its output as it is written, and returns
// when the task has ended.
func TestJobLogsFollowsARunningTask(t *testing.T) {
	cell := celltest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	a, err := agent.New(ctx, agent.Config{
		StopTasksOnExit: true,
		Server:          cell.Addr, Credentials: cell.Credentials(t, celltest.Identity(t, identity.Agent, "m1")), Name: "m1", DataDir: t.TempDir(), CPUMilli: 2000, MemoryBytes: 4 << 30, DiskBytes: 10 << 30,
		GPUs: 0, CgroupRoot: "-", StopGrace: 300 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	agentCtx, stopAgent := context.WithCancel(ctx)
	agentDone := make(chan error, 1)
	go func() { agentDone <- a.Run(agentCtx) }()
	defer func() {
		stopAgent()
		<-agentDone
	}()
	select {
	case <-a.Synced():
	case <-ctx.Done():
		t.Fatal("the agent did not sync")
	}

	jobs := cellv1.NewJobServiceClient(cell.Conn)
	resources := &cellv1.Resources{CpuMilli: 100, MemoryBytes: 16 << 20}
	sub, err := jobs.SubmitJob(ctx, &cellv1.SubmitJobRequest{Spec: &cellv1.JobSpec{
		Name: "talker", Scheduler: "batch", Priority: 100, Count: 1, Kind: cellv1.JobKind_JOB_KIND_BATCH,
		Task: &cellv1.TaskTemplate{Command: "/bin/sh", Args: []string{"-c", "echo one; sleep 1; echo two"}, Resources: resources},
	}})
	if err != nil {
		t.Fatal(err)
	}

	var out, errOut syncBuffer
	followed := make(chan error, 1)
	go func() {
		root := newRootCommand()
		root.SetArgs([]string{"job", "logs", "talker", "-f", "--server", cell.Addr, "--credentials", cell.AdminDir})
		root.SetOut(&out)
		root.SetErr(&errOut)
		followed <- root.ExecuteContext(ctx)
	}()
	// It waits for the task to run somewhere...
	for !strings.Contains(errOut.String(), "has not run anywhere yet") {
		select {
		case err := <-followed:
			t.Fatalf("follow ended before the task was placed: %v\n%s", err, errOut.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	// ...which it now does, as the batch scheduler would place it.
	r, err := cellv1.NewStateServiceClient(cell.Conn).Commit(ctx, &cellv1.CommitRequest{Scheduler: "batch", Claims: []*cellv1.Claim{{
		Task: &cellv1.TaskRef{JobId: sub.Job.Id}, MachineId: "m1", Resources: resources,
	}}})
	if err != nil || r.Accepted != 1 {
		t.Fatalf("place: %v %v", r, err)
	}
	select {
	case err := <-followed:
		if err != nil {
			t.Fatalf("follow: %v\n%s", err, errOut.String())
		}
	case <-ctx.Done():
		t.Fatalf("follow did not end with the task; so far %q", out.String())
	}
	if out.String() != "one\ntwo\n" {
		t.Errorf("followed output %q, want %q", out.String(), "one\ntwo\n")
	}
	got, err := jobs.GetJob(ctx, &cellv1.GetJobRequest{IdOrName: sub.Job.Id, IncludeTasks: true})
	if err != nil || got.Tasks[0].State != cellv1.TaskState_TASK_STATE_SUCCEEDED {
		t.Errorf("the task is %v (%v); follow should end only once it has", got.GetTasks(), err)
	}
}

// cellWithAgent starts a cell and a real agent for machine m1 on it, and
// returns the cell once the agent has synced.
func cellWithAgent(t *testing.T, ctx context.Context) *celltest.Cell {
	t.Helper()
	cell := celltest.Start(t)
	a, err := agent.New(ctx, agent.Config{
		StopTasksOnExit: true,
		Server:          cell.Addr, Credentials: cell.Credentials(t, celltest.Identity(t, identity.Agent, "m1")), Name: "m1", DataDir: t.TempDir(), CPUMilli: 2000, MemoryBytes: 4 << 30, DiskBytes: 10 << 30,
		GPUs: 0, CgroupRoot: "-", StopGrace: 300 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	agentCtx, stopAgent := context.WithCancel(ctx)
	agentDone := make(chan error, 1)
	go func() { agentDone <- a.Run(agentCtx) }()
	t.Cleanup(func() {
		stopAgent()
		<-agentDone
	})
	select {
	case <-a.Synced():
	case <-ctx.Done():
		t.Fatal("the agent did not sync")
	}
	return cell
}

// placeOnM1 commits task 0 of job on m1, as the batch scheduler would.
func placeOnM1(t *testing.T, ctx context.Context, cell *celltest.Cell, job string, resources *cellv1.Resources) {
	t.Helper()
	r, err := cellv1.NewStateServiceClient(cell.Conn).Commit(ctx, &cellv1.CommitRequest{Scheduler: "batch", Claims: []*cellv1.Claim{{
		Task: &cellv1.TaskRef{JobId: job}, MachineId: "m1", Resources: resources,
	}}})
	if err != nil || r.Accepted != 1 {
		t.Fatalf("place: %v %v", r, err)
	}
}

// waitTask waits until task 0 of job is in state.
func waitTask(t *testing.T, ctx context.Context, cell *celltest.Cell, job string, state cellv1.TaskState) {
	t.Helper()
	jobs := cellv1.NewJobServiceClient(cell.Conn)
	for {
		got, err := jobs.GetJob(ctx, &cellv1.GetJobRequest{IdOrName: job, IncludeTasks: true})
		if err == nil && got.Tasks[0].State == state {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("task 0 of %s never became %v: %v %v", job, state, got.GetTasks(), err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// runCellIn runs the cell binary's command in-process and returns stdout.
func runCellIn(t *testing.T, ctx context.Context, args ...string) string {
	t.Helper()
	var out, errOut syncBuffer
	root := newRootCommand()
	root.SetArgs(args)
	root.SetOut(&out)
	root.SetErr(&errOut)
	if err := root.ExecuteContext(ctx); err != nil {
		t.Fatalf("cell %s: %v\n%s", strings.Join(args, " "), err, errOut.String())
	}
	return out.String()
}

// A log far larger than one NATS reply (64 KiB) comes back whole and in
// order: the server pages through the agent's output for the tail and for
// reads from an offset, and the CLI prints the same bytes the process
// wrote.
func TestHostileLargeLogIsPaged(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cell := cellWithAgent(t, ctx)
	jobs := cellv1.NewJobServiceClient(cell.Conn)
	resources := &cellv1.Resources{CpuMilli: 100, MemoryBytes: 16 << 20}
	sub, err := jobs.SubmitJob(ctx, &cellv1.SubmitJobRequest{Spec: &cellv1.JobSpec{
		Name: "big", Scheduler: "batch", Priority: 100, Count: 1, Kind: cellv1.JobKind_JOB_KIND_BATCH,
		Task: &cellv1.TaskTemplate{Command: "seq", Args: []string{"1", "500000"}, Resources: resources},
	}})
	if err != nil {
		t.Fatal(err)
	}
	placeOnM1(t, ctx, cell, sub.Job.Id, resources)
	waitTask(t, ctx, cell, sub.Job.Id, cellv1.TaskState_TASK_STATE_SUCCEEDED)
	var b strings.Builder
	for i := 1; i <= 500000; i++ {
		fmt.Fprintf(&b, "%d\n", i)
	}
	want := b.String() // 3,388,895 bytes
	tail := func(n int) string { return want[max(len(want)-n, 0):] }

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"job", "logs", "big"}, tail(1 << 20)}, // the default tail
		{[]string{"job", "logs", "big", "--tail", "100"}, tail(100)},
		{[]string{"job", "logs", "big", "--tail", "65537"}, tail(65537)}, // one byte past a page
		{[]string{"job", "logs", "big", "--tail", "8Mi"}, want},          // capped at 4 MiB - 64 KiB: all of it
	} {
		got := runCellIn(t, ctx, append(c.args, "--server", cell.Addr, "--credentials", cell.AdminDir)...)
		if got != c.want {
			t.Fatalf("cell %s: %d bytes, want the last %d bytes of the output", strings.Join(c.args, " "), len(got), len(c.want))
		}
	}
	// From offset 0, in reads of 1 MiB and of odd sizes.
	for _, step := range []int64{0, 100_000} {
		var got []byte
		for {
			off := int64(len(got))
			resp, err := jobs.GetTaskLogs(ctx, &cellv1.GetTaskLogsRequest{Task: &cellv1.TaskRef{JobId: sub.Job.Id}, Offset: &off, TailBytes: step})
			if err != nil {
				t.Fatalf("read at %d: %v", off, err)
			}
			if resp.Offset != off || resp.Size != int64(len(want)) || resp.Attempt != 1 || resp.TaskState != cellv1.TaskState_TASK_STATE_SUCCEEDED {
				t.Fatalf("read at %d: offset %d size %d attempt %d state %v", off, resp.Offset, resp.Size, resp.Attempt, resp.TaskState)
			}
			if len(resp.Data) == 0 {
				break
			}
			got = append(got, resp.Data...)
		}
		if string(got) != want {
			t.Fatalf("reading from offset 0 in steps of %d: %d bytes, want %d identical", step, len(got), len(want))
		}
	}
}

// `cell job logs -f` follows a task across attempts: the first attempt's
// output, a line naming the second attempt, and the second's output.
func TestJobLogsFollowsAcrossAttempts(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cell := cellWithAgent(t, ctx)
	jobs := cellv1.NewJobServiceClient(cell.Conn)
	resources := &cellv1.Resources{CpuMilli: 100, MemoryBytes: 16 << 20}
	sub, err := jobs.SubmitJob(ctx, &cellv1.SubmitJobRequest{Spec: &cellv1.JobSpec{
		Name: "flaky", Scheduler: "batch", Priority: 100, Count: 1, Kind: cellv1.JobKind_JOB_KIND_BATCH, RetryLimit: 1,
		Task: &cellv1.TaskTemplate{Command: "/bin/sh", Resources: resources, Args: []string{"-c",
			`echo "attempt $OMEGACELL_TASK_ATTEMPT"; sleep 0.5; [ "$OMEGACELL_TASK_ATTEMPT" -gt 1 ] && echo done`}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	var out, errOut syncBuffer
	followed := make(chan error, 1)
	go func() {
		root := newRootCommand()
		root.SetArgs([]string{"job", "logs", "flaky", "-f", "--server", cell.Addr, "--credentials", cell.AdminDir})
		root.SetOut(&out)
		root.SetErr(&errOut)
		followed <- root.ExecuteContext(ctx)
	}()
	placeOnM1(t, ctx, cell, sub.Job.Id, resources)
	// The first attempt fails; the store queues the task again, and it is
	// placed again as a scheduler would.
	waitTask(t, ctx, cell, sub.Job.Id, cellv1.TaskState_TASK_STATE_PENDING)
	placeOnM1(t, ctx, cell, sub.Job.Id, resources)
	select {
	case err := <-followed:
		if err != nil {
			t.Fatalf("follow: %v\n%s", err, errOut.String())
		}
	case <-ctx.Done():
		t.Fatalf("follow did not end with the task; so far %q", out.String())
	}
	if out.String() != "attempt 1\nattempt 2\ndone\n" || !strings.Contains(errOut.String(), "--- attempt 2 ---") {
		t.Fatalf("followed %q (stderr %q); want both attempts' output and a line naming attempt 2", out.String(), errOut.String())
	}
}
