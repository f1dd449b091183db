package main

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/omegacell/omegacell/agent"
	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
	"github.com/omegacell/omegacell/proto/credentials"
	"github.com/omegacell/omegacell/proto/identity"
)

// freeAddr returns a loopback address that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func eventually(t *testing.T, what string, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for: %s", within, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestServerSIGKILLKeepsTasksRunning: a task runs as a real process under
// a real agent; the `cell server` child process is SIGKILLed and started
// again on the same data and address. The task's process never stops, the
// agent resyncs (heartbeats and reports reach the new server), and the
// server can still control the task (stopping the job kills the process).
func TestServerSIGKILLKeepsTasksRunning(t *testing.T) {
	dir := t.TempDir()
	addr := freeAddr(t)
	srv := startChildServer(t, filepath.Join(dir, "cell"), "--listen", addr, "--grace", "5s")

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	m1, err := identity.New(identity.Agent, "m1")
	if err != nil {
		t.Fatal(err)
	}
	bundle, _, _, _, err := credentials.Request(ctx, srv.conn, m1, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	a, err := agent.New(ctx, agent.Config{
		StopTasksOnExit: true,
		Server:          addr, Credentials: credentials.Client{Bundle: bundle}, Name: "m1", DataDir: filepath.Join(dir, "agent"), GPUs: 0, CgroupRoot: "-",
		StopGrace: time.Second, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	agentDone := make(chan error, 1)
	go func() { agentDone <- a.Run(ctx) }()
	defer func() { cancel(); <-agentDone }()

	jobs := func() cellv1.JobServiceClient { return cellv1.NewJobServiceClient(srv.conn) }
	eventually(t, "the agent registers", 20*time.Second, func() bool {
		r, err := cellv1.NewMachineServiceClient(srv.conn).GetMachine(ctx, &cellv1.GetMachineRequest{Id: "m1"})
		return err == nil && r.Machine.State == cellv1.MachineState_MACHINE_STATE_READY
	})
	pidFile := filepath.Join(dir, "task.pid")
	job, err := jobs().SubmitJob(ctx, &cellv1.SubmitJobRequest{Spec: &cellv1.JobSpec{
		Name: "long", Scheduler: "batch", Count: 1,
		Task: &cellv1.TaskTemplate{Command: "/bin/sh", Args: []string{"-c", "echo $$ > " + pidFile + "; exec sleep 300"},
			Resources: &cellv1.Resources{CpuMilli: 100, MemoryBytes: 1 << 20}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	r, err := cellv1.NewStateServiceClient(srv.conn).Commit(ctx, &cellv1.CommitRequest{Scheduler: "batch", Claims: []*cellv1.Claim{{
		Task: &cellv1.TaskRef{JobId: job.Job.Id}, MachineId: "m1", Resources: job.Job.Spec.Task.Resources}}})
	if err != nil || r.Accepted != 1 {
		t.Fatalf("placing the task: %v %v", r, err)
	}
	taskState := func() *cellv1.Task {
		g, err := jobs().GetJob(ctx, &cellv1.GetJobRequest{IdOrName: job.Job.Id, IncludeTasks: true})
		if err != nil {
			return nil
		}
		return g.Tasks[0]
	}
	eventually(t, "the task runs", 20*time.Second, func() bool {
		tk := taskState()
		return tk != nil && tk.State == cellv1.TaskState_TASK_STATE_RUNNING
	})
	var pid int
	eventually(t, "the task writes its pid", 10*time.Second, func() bool {
		b, err := os.ReadFile(pidFile)
		pid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		return err == nil && pid > 0
	})
	alive := func() bool { return syscall.Kill(pid, 0) == nil }

	srv.cmd.Process.Signal(syscall.SIGKILL)
	srv.cmd.Wait()
	srv.conn.Close()
	time.Sleep(2 * time.Second) // the agent notices; the task must not
	if !alive() {
		t.Fatal("the task's process died when the server was killed")
	}
	srv = startChildServer(t, filepath.Join(dir, "cell"), "--listen", addr, "--grace", "5s")
	eventually(t, "the agent heartbeats to the restarted server", 20*time.Second, func() bool {
		r, err := cellv1.NewMachineServiceClient(srv.conn).GetMachine(ctx, &cellv1.GetMachineRequest{Id: "m1"})
		return err == nil && r.Machine.LastHeartbeatUnixNano > 0 && r.Machine.State == cellv1.MachineState_MACHINE_STATE_READY
	})
	// Past the grace period the machine is still up and the task is still
	// the same running attempt.
	time.Sleep(6 * time.Second)
	tk := taskState()
	if tk == nil || tk.State != cellv1.TaskState_TASK_STATE_RUNNING || tk.Attempt != 1 || !alive() {
		t.Fatalf("after the restart: task %v, process alive %v; want the same attempt running", tk, alive())
	}
	if _, err := jobs().StopJob(ctx, &cellv1.StopJobRequest{IdOrName: job.Job.Id}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "stopping the job kills the process through the resynced agent", 20*time.Second, func() bool { return !alive() })
}
