package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/omegacell/omegacell/internal/celltest"
	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
	"github.com/omegacell/omegacell/proto/identity"
	"github.com/omegacell/omegacell/schedulers/policy/builtin"
	"github.com/omegacell/omegacell/schedulers/sdk"
)

// agentProcess is `cell agent` for machine m1 running as a child process
// of the test, on its own data directory.
type agentProcess struct {
	cmd  *exec.Cmd
	data string
}

func startAgentBinary(t *testing.T, cell *celltest.Cell, credDir, data string, extra ...string) *agentProcess {
	t.Helper()
	args := append([]string{"agent", "--server", cell.Addr, "--credentials", credDir, "--name", "m1", "--data", data,
		"--cgroup-root", "-", "--stop-grace", "300ms", "--usage-interval", "200ms", "--cpu", "4", "--memory", "8Gi",
		"--disk", "10Gi", "--gpus", "0", "--log-level", "warn"}, extra...)
	cmd := exec.Command(cellBinary, args...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &agentProcess{cmd: cmd, data: data}
	machines := cellv1.NewMachineServiceClient(cell.Conn)
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := machines.GetMachine(ctx, &cellv1.GetMachineRequest{Id: "m1"})
		cancel()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the agent did not register m1: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
		killTaskShims(t, data)
	})
	return p
}

// killTaskShims kills what the agents on data left running: each attempt's
// shim kills its task's tree on SIGUSR1.
func killTaskShims(t *testing.T, data string) {
	files, _ := filepath.Glob(filepath.Join(data, "tasks", "*", "*", ".omegacell-pid"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		fields := strings.Fields(string(b))
		if err != nil || len(fields) != 4 {
			continue
		}
		shim, _ := strconv.Atoi(fields[2])
		if shim > 0 && syscall.Kill(shim, syscall.SIGUSR1) == nil {
			waitGone(t, shim)
		}
	}
}

// waitGone waits until pid no longer runs (gone or a zombie).
func waitGone(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return
		}
		if i := strings.LastIndexByte(string(b), ')'); i > 0 && len(b) > i+2 && b[i+2] == 'Z' {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("process %d still runs", pid)
}

// attemptPIDs reads the task pid of attempt 1 of each task from the
// agent's data directory.
func attemptPIDs(t *testing.T, data, job string, n int) []int {
	t.Helper()
	pids := make([]int, n)
	deadline := time.Now().Add(30 * time.Second)
	for i := range n {
		for {
			b, _ := os.ReadFile(filepath.Join(data, "tasks", job, fmt.Sprintf("%d.1", i), ".omegacell-pid"))
			if f := strings.Fields(string(b)); len(f) == 4 {
				if pids[i], _ = strconv.Atoi(f[0]); pids[i] > 0 { // 0: not started yet
					break
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("no pid file for task %d of %s", i, job)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return pids
}

// submitOnM1 submits a batch job of n tasks running script, with no
// retries, and places every task on m1 as the batch scheduler would.
func submitOnM1(t *testing.T, ctx context.Context, cell *celltest.Cell, name string, n uint32, script string) string {
	t.Helper()
	jobs := cellv1.NewJobServiceClient(cell.Conn)
	resources := &cellv1.Resources{CpuMilli: 100, MemoryBytes: 16 << 20}
	sub, err := jobs.SubmitJob(ctx, &cellv1.SubmitJobRequest{Spec: &cellv1.JobSpec{
		Name: name, Scheduler: "batch", Priority: 100, Count: n, Kind: cellv1.JobKind_JOB_KIND_BATCH,
		Task: &cellv1.TaskTemplate{Command: "/bin/sh", Args: []string{"-c", script}, Resources: resources},
	}})
	if err != nil {
		t.Fatal(err)
	}
	claims := make([]*cellv1.Claim, n)
	for i := range claims {
		claims[i] = &cellv1.Claim{Task: &cellv1.TaskRef{JobId: sub.Job.Id, Index: uint32(i)}, MachineId: "m1", Resources: resources}
	}
	r, err := cellv1.NewStateServiceClient(cell.Conn).Commit(ctx, &cellv1.CommitRequest{Scheduler: "batch", Claims: claims})
	if err != nil || r.Accepted != n {
		t.Fatalf("place: %v %v", r, err)
	}
	return sub.Job.Id
}

// jobTasks reads a job's tasks.
func jobTasks(t *testing.T, ctx context.Context, cell *celltest.Cell, job string) []*cellv1.Task {
	t.Helper()
	got, err := cellv1.NewJobServiceClient(cell.Conn).GetJob(ctx, &cellv1.GetJobRequest{IdOrName: job, IncludeTasks: true})
	if err != nil {
		t.Fatal(err)
	}
	return got.Tasks
}

// waitFor polls cond every 20 ms until it holds or ctx ends.
func waitFor(t *testing.T, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting until %s", what)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

var tickRE = regexp.MustCompile(`(?m)^tick (\d+)$`)

// checkTicks checks that out holds "tick 0", "tick 1", ... in order with
// no gap and no repeat, and returns how many.
func checkTicks(t *testing.T, out string) int {
	t.Helper()
	m := tickRE.FindAllStringSubmatch(out, -1)
	for i, s := range m {
		if s[1] != strconv.Itoa(i) {
			t.Fatalf("followed output has %q where tick %d belongs:\n%s", s[0], i, out)
		}
	}
	return len(m)
}

// An agent SIGTERMed or SIGKILLed and started again within the server's
// grace keeps every task's pid and attempt (no failure is charged), and
// `cell job logs -f` started before the restart goes on without a gap or
// a repeat.
func TestAgentRestartKeepsTasksAndLogsFollow(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		name := map[syscall.Signal]string{syscall.SIGTERM: "SIGTERM", syscall.SIGKILL: "SIGKILL"}[sig]
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			cell := celltest.Start(t)
			credDir := cell.WriteCredentials(t, celltest.Identity(t, identity.Agent, "m1"))
			data := t.TempDir()
			agent := startAgentBinary(t, cell, credDir, data)
			const n = 3
			job := submitOnM1(t, ctx, cell, "ticker", n, `i=0; while :; do echo tick $i; i=$((i+1)); sleep 0.05; done`)
			waitFor(t, ctx, "every task runs", func() bool {
				for _, tk := range jobTasks(t, ctx, cell, job) {
					if tk.State != cellv1.TaskState_TASK_STATE_RUNNING {
						return false
					}
				}
				return true
			})
			pids := attemptPIDs(t, data, job, n)

			var out, errOut syncBuffer
			followCtx, stopFollow := context.WithCancel(ctx)
			followed := make(chan error, 1)
			go func() {
				root := newRootCommand()
				root.SetArgs([]string{"job", "logs", "ticker", "--task", "0", "-f", "--server", cell.Addr, "--credentials", cell.AdminDir})
				root.SetOut(&out)
				root.SetErr(&errOut)
				followed <- root.ExecuteContext(followCtx)
			}()
			waitFor(t, ctx, "the follow prints ticks", func() bool { return checkTicks(t, out.String()) >= 5 })

			if err := agent.cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			_ = agent.cmd.Wait()
			atKill := checkTicks(t, out.String())
			began := time.Now()
			startAgentBinary(t, cell, credDir, data)
			// Past the ticks written while no agent ran, and more after.
			waitFor(t, ctx, "the follow goes on after the restart", func() bool {
				return checkTicks(t, out.String()) >= atKill+int(time.Since(began)/(50*time.Millisecond))/2+20
			})
			for i, tk := range jobTasks(t, ctx, cell, job) {
				if tk.State != cellv1.TaskState_TASK_STATE_RUNNING || tk.Attempt != 1 || tk.Failures != 0 {
					t.Fatalf("task %d after the agent's %s and restart: %v, want running attempt 1, no failure", i, name, tk)
				}
				if err := syscall.Kill(pids[i], 0); err != nil {
					t.Fatalf("task %d's process %d is gone: %v", i, pids[i], err)
				}
			}
			if got := attemptPIDs(t, data, job, n); fmt.Sprint(got) != fmt.Sprint(pids) {
				t.Fatalf("pids after the restart %v, want %v", got, pids)
			}
			stopFollow()
			if err := <-followed; err != nil {
				t.Fatalf("follow: %v\n%s", err, errOut.String())
			}
			runCellIn(t, ctx, "job", "stop", "ticker", "--server", cell.Addr, "--credentials", cell.AdminDir)
			for _, pid := range pids {
				waitGone(t, pid)
			}
		})
	}
}

// A task that runs `setsid` leaves its process group and session, not its
// tree: the agent counts the grandchild's CPU as the task's, and `cell job
// stop` kills it.
func TestJobStopKillsSetsidGrandchildAndCountsItsCPU(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cell := celltest.Start(t)
	credDir := cell.WriteCredentials(t, celltest.Identity(t, identity.Agent, "m1"))
	data := t.TempDir()
	startAgentBinary(t, cell, credDir, data)
	job := submitOnM1(t, ctx, cell, "escaper", 1, `setsid sh -c 'echo $$ > spinner.pid; while :; do :; done' & sleep 300`)
	pidFile := filepath.Join(data, "tasks", job, "0.1", "spinner.pid")
	var spinner int
	waitFor(t, ctx, "the setsid grandchild runs", func() bool {
		b, err := os.ReadFile(pidFile)
		spinner, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		return err == nil && spinner > 0
	})
	// The spinner is in a session of its own: a process-group kill would
	// miss it, and a process-group sum would not see its CPU.
	if sid, _ := syscall.Getpgid(spinner); sid != spinner {
		t.Fatalf("the spinner's process group is %d, want its own (%d)", sid, spinner)
	}
	waitFor(t, ctx, "the task's usage counts the spinner's CPU", func() bool {
		tk := jobTasks(t, ctx, cell, job)[0]
		return tk.GetUsage().GetCpuMilli() >= 200
	})
	runCellIn(t, ctx, "job", "stop", "escaper", "--server", cell.Addr, "--credentials", cell.AdminDir)
	waitGone(t, spinner)
}

// A drain of a machine holding every replica of a service (maxUnavailable
// 1) with real agents and the real service scheduler: sampled every
// 100 ms, never two replicas are down at once; the drain ends by its
// deadline with the replicas running elsewhere. A cordon then evicts
// nothing.
func TestDrainKeepsAServiceUp(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cell := celltest.Start(t)
	startAgentNamed(t, cell, "m1")
	schedCtx, stopSched := context.WithCancel(ctx)
	schedDone := make(chan error, 1)
	pol, err := builtin.Lookup("service")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		schedDone <- sdk.Run(schedCtx, sdk.Config{Server: cell.Addr, Credentials: cell.Credentials(t, celltest.Identity(t, identity.Scheduler, "service")),
			Name: "service", Policy: pol, Seed: 1, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	}()
	defer func() { stopSched(); <-schedDone }()

	jobs := cellv1.NewJobServiceClient(cell.Conn)
	const replicas = 3
	sub, err := jobs.SubmitJob(ctx, &cellv1.SubmitJobRequest{Spec: &cellv1.JobSpec{
		Name: "web", Scheduler: "service", Priority: 200, Count: replicas, Kind: cellv1.JobKind_JOB_KIND_SERVICE,
		Disruption: &cellv1.Disruption{MaxUnavailable: 1},
		Task:       &cellv1.TaskTemplate{Command: "sleep", Args: []string{"600"}, Resources: &cellv1.Resources{CpuMilli: 100, MemoryBytes: 16 << 20}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	down := func() (n int, on map[string]int) {
		on = map[string]int{}
		for _, tk := range jobTasks(t, ctx, cell, sub.Job.Id) {
			if tk.State != cellv1.TaskState_TASK_STATE_RUNNING {
				n++
			} else {
				on[tk.MachineId]++
			}
		}
		return n, on
	}
	waitFor(t, ctx, "every replica runs on m1", func() bool { n, on := down(); return n == 0 && on["m1"] == replicas })
	startAgentNamed(t, cell, "m2")

	const deadline = 90 * time.Second
	began := time.Now()
	drained := make(chan string, 1)
	go func() {
		drained <- runCellIn(t, ctx, "machine", "drain", "m1", "--deadline", deadline.String(), "--server", cell.Addr, "--credentials", cell.AdminDir)
	}()
	var out string
	most, samples := 0, 0
sample:
	for {
		select {
		case out = <-drained:
			break sample
		case <-time.After(100 * time.Millisecond):
		}
		n, _ := down()
		most, samples = max(most, n), samples+1
		if n > 1 {
			t.Fatalf("%d replicas down at once during the drain", n)
		}
	}
	took := time.Since(began)
	t.Logf("drain took %v; %d samples, at most %d replica down; its output:\n%s", took, samples, most, out)
	if took > deadline {
		t.Fatalf("the drain took %v, past its deadline %v", took, deadline)
	}
	if !strings.Contains(out, "evicted 3, 0 left") || strings.Contains(out, "forced") {
		t.Fatalf("drain output %q, want all 3 evicted within the budget", out)
	}
	waitFor(t, ctx, "every replica runs on m2", func() bool { n, on := down(); return n == 0 && on["m2"] == replicas })

	before := jobTasks(t, ctx, cell, sub.Job.Id)
	runCellIn(t, ctx, "machine", "cordon", "m2", "--server", cell.Addr, "--credentials", cell.AdminDir)
	// Nothing happens to the replicas: watch them for a few drain steps.
	for range 20 {
		time.Sleep(100 * time.Millisecond)
		for i, tk := range jobTasks(t, ctx, cell, sub.Job.Id) {
			if tk.State != cellv1.TaskState_TASK_STATE_RUNNING || tk.Attempt != before[i].Attempt || tk.MachineId != "m2" {
				t.Fatalf("replica %d after a cordon: %v", i, tk)
			}
		}
	}
	status := runCellIn(t, ctx, "machine", "status", "m2", "--server", cell.Addr, "--credentials", cell.AdminDir)
	if !strings.Contains(status, "State:") || !strings.Contains(status, "cordoned") || strings.Count(status, "\nweb ") != replicas {
		t.Fatalf("machine status of m2:\n%s", status)
	}
	runCellIn(t, ctx, "job", "stop", "web", "--server", cell.Addr, "--credentials", cell.AdminDir)
}

// startAgentNamed runs `cell agent` for machine name with a credential of
// its own and a data directory of its own.
func startAgentNamed(t *testing.T, cell *celltest.Cell, name string) *agentProcess {
	t.Helper()
	credDir := cell.WriteCredentials(t, celltest.Identity(t, identity.Agent, name))
	data := t.TempDir()
	args := []string{"agent", "--server", cell.Addr, "--credentials", credDir, "--name", name, "--data", data,
		"--cgroup-root", "-", "--stop-grace", "300ms", "--usage-interval", "200ms", "--cpu", "4", "--memory", "8Gi",
		"--disk", "10Gi", "--gpus", "0", "--log-level", "warn"}
	cmd := exec.Command(cellBinary, args...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		killTaskShims(t, data)
	})
	machines := cellv1.NewMachineServiceClient(cell.Conn)
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := machines.GetMachine(ctx, &cellv1.GetMachineRequest{Id: name})
		cancel()
		if err == nil {
			return &agentProcess{cmd: cmd, data: data}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the agent did not register %s: %v", name, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
