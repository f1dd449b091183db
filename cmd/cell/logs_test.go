package main

import (
	"bytes"
	"context"
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
		Server: cell.Addr, Credentials: cell.Credentials(t, celltest.Identity(t, identity.Agent, "m1")), Name: "m1", DataDir: t.TempDir(), CPUMilli: 2000, MemoryBytes: 4 << 30, DiskBytes: 10 << 30,
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
