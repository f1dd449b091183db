package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	grpccreds "google.golang.org/grpc/credentials"

	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
	"github.com/omegacell/omegacell/proto/credentials"
)

// devRun is one `cell dev` process on a data directory.
type devRun struct {
	cmd    *exec.Cmd
	exited chan error
	addr   string
}

func startDev(t *testing.T, data string, extra ...string) *devRun {
	t.Helper()
	args := append([]string{"dev", "--simulate", "0", "--listen", "127.0.0.1:0", "--metrics", "", "--nats-listen", "127.0.0.1:-1",
		"--data", data}, extra...)
	cmd := exec.Command(cellBinary, args...)
	logPath := filepath.Join(t.TempDir(), "dev.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { logf.Close() })
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	d := &devRun{cmd: cmd, exited: make(chan error, 1)}
	go func() { d.exited <- cmd.Wait() }()
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = cmd.Process.Kill()
			<-d.exited
		}
		if t.Failed() {
			out, _ := os.ReadFile(logPath)
			t.Logf("cell dev output:\n%s", tail(string(out), 3000))
		}
	})
	d.addr = bannerAddress(t, logPath, d.exited, &stopped)
	waitForMachines(t, d.addr, filepath.Join(data, "pki", "admin"), 1)
	return d
}

// interrupt sends Ctrl-C and waits for a clean exit.
func (d *devRun) interrupt(t *testing.T) {
	t.Helper()
	_ = d.cmd.Process.Signal(syscall.SIGINT)
	select {
	case err := <-d.exited:
		d.exited <- err // for the cleanup
		if err != nil {
			t.Fatalf("cell dev did not exit cleanly on SIGINT: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("cell dev did not stop within 60 s of SIGINT")
	}
}

// Ctrl-C stops `cell dev` and leaves the local agent's tasks running; the
// next `cell dev` on the same data directory picks them up (same pids, same
// attempts). With --stop-tasks-on-exit, Ctrl-C stops them.
func TestDevCtrlCLeavesTasksForTheNextRun(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	data := filepath.Join(t.TempDir(), "cell-data")
	t.Cleanup(func() { killTaskShims(t, filepath.Join(data, "agent")) })
	admin := filepath.Join(data, "pki", "admin")
	spec := filepath.Join(t.TempDir(), "ticker.yaml")
	if err := os.WriteFile(spec, []byte(`name: ticker
kind: service
count: 2
task:
  command: /bin/sh
  args: ["-c", "while :; do echo tick; sleep 0.1; done"]
  resources: {cpu: 100m, memory: 16Mi}
  constraints: ["zone = local"]
`), 0o644); err != nil {
		t.Fatal(err)
	}

	first := startDev(t, data)
	runCellIn(t, ctx, "job", "run", spec, "--server", first.addr, "--credentials", admin)
	job := waitRunning(t, ctx, first.addr, admin, "ticker", 2)
	pids := attemptPIDs(t, filepath.Join(data, "agent"), job.Job.Id, 2)
	first.interrupt(t)
	for _, pid := range pids {
		if err := syscall.Kill(pid, 0); err != nil {
			t.Fatalf("task process %d did not survive Ctrl-C: %v", pid, err)
		}
	}

	second := startDev(t, data)
	got := waitRunning(t, ctx, second.addr, admin, "ticker", 2)
	for i, tk := range got.Tasks {
		if tk.Attempt != 1 || tk.Failures != 0 {
			t.Fatalf("task %d after the restart: %v, want attempt 1 and no failure", i, tk)
		}
	}
	if again := attemptPIDs(t, filepath.Join(data, "agent"), job.Job.Id, 2); again[0] != pids[0] || again[1] != pids[1] {
		t.Fatalf("pids after the restart %v, want %v", again, pids)
	}
	second.interrupt(t)

	third := startDev(t, data, "--stop-tasks-on-exit")
	waitRunning(t, ctx, third.addr, admin, "ticker", 2)
	third.interrupt(t)
	for _, pid := range pids {
		waitGone(t, pid)
	}
}

// waitRunning waits until every one of the n tasks of job name runs (by the
// server's account) and returns the job with its tasks.
func waitRunning(t *testing.T, ctx context.Context, addr, adminDir, name string, n int) *cellv1.GetJobResponse {
	t.Helper()
	bundle, err := credentials.Load(adminDir)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(grpccreds.NewTLS(bundle.ClientTLS(credentials.ServerName(addr)))))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	jobs := cellv1.NewJobServiceClient(conn)
	var resp *cellv1.GetJobResponse
	waitFor(t, ctx, name+" runs", func() bool {
		resp, err = jobs.GetJob(ctx, &cellv1.GetJobRequest{IdOrName: name, IncludeTasks: true})
		if err != nil || len(resp.Tasks) != n {
			return false
		}
		for _, tk := range resp.Tasks {
			if tk.State != cellv1.TaskState_TASK_STATE_RUNNING {
				return false
			}
		}
		return true
	})
	return resp
}
