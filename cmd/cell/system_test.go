package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/omegacell/omegacell/agent"
	"github.com/omegacell/omegacell/internal/celltest"
	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
	"github.com/omegacell/omegacell/proto/identity"
)

// startAgent runs a real agent for machine name on cell until the test
// ends, and waits until it has synced.
func startAgent(t *testing.T, ctx context.Context, cell *celltest.Cell, name string) {
	t.Helper()
	a, err := agent.New(ctx, agent.Config{
		Server: cell.Addr, Credentials: cell.Credentials(t, celltest.Identity(t, identity.Agent, name)), Name: name, DataDir: t.TempDir(),
		CPUMilli: 2000, MemoryBytes: 4 << 30, DiskBytes: 10 << 30, CgroupRoot: "-", StopGrace: 300 * time.Millisecond,
		StopTasksOnExit: true, // a test leaves no task process behind
		Logger:          slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	agentCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- a.Run(agentCtx) }()
	t.Cleanup(func() {
		stop()
		<-done
	})
	select {
	case <-a.Synced():
	case <-ctx.Done():
		t.Fatalf("agent %s did not sync", name)
	}
}

// TestSystemJobFollowsMachinesEndToEnd runs a real cell: the server, the
// service scheduler (`cell scheduler`), real agents running real
// processes. A system job submitted with `cell job run` runs on both
// machines; a machine that registers later runs its task within 5 s; a
// drained machine's task is stopped and not placed anywhere else; `cell
// job status` shows the events.
func TestSystemJobFollowsMachinesEndToEnd(t *testing.T) {
	cell := celltest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	startAgent(t, ctx, cell, "m1")
	startAgent(t, ctx, cell, "m2")

	schedCtx, stopSched := context.WithCancel(ctx)
	schedDone := make(chan error, 1)
	go func() {
		cmd := newSchedulerCommand()
		creds := cell.WriteCredentials(t, celltest.Identity(t, identity.Scheduler, "service"))
		cmd.SetArgs([]string{"--policy", "service", "--name", "service", "--server", cell.Addr, "--credentials", creds})
		cmd.SetErr(io.Discard)
		schedDone <- cmd.ExecuteContext(schedCtx)
	}()
	defer func() {
		stopSched()
		<-schedDone
	}()

	cli := []string{"--server", cell.Addr, "--credentials", cell.AdminDir}
	out := runCellIn(t, ctx, append([]string{"job", "run", "../../examples/jobs/node-exporter.yaml"}, cli...)...)
	if !strings.Contains(out, "job node-exporter submitted") {
		t.Fatalf("job run: %s", out)
	}
	jobs := cellv1.NewJobServiceClient(cell.Conn)
	running := func() map[string]bool {
		r, err := jobs.GetJob(ctx, &cellv1.GetJobRequest{IdOrName: "node-exporter", IncludeTasks: true})
		if err != nil {
			t.Fatal(err)
		}
		on := map[string]bool{}
		for _, tk := range r.Tasks {
			if tk.State == cellv1.TaskState_TASK_STATE_RUNNING {
				if tk.MachineId != tk.PinnedMachineId {
					t.Fatalf("task %d runs on %s, pinned to %s", tk.Index, tk.MachineId, tk.PinnedMachineId)
				}
				on[tk.MachineId] = true
			}
		}
		return on
	}
	waitFor := func(what string, within time.Duration, want map[string]bool) {
		t.Helper()
		deadline := time.Now().Add(within)
		for {
			got := running()
			if fmt.Sprint(got) == fmt.Sprint(want) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: running on %v after %v, want %v", what, got, within, want)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitFor("at submit", 30*time.Second, map[string]bool{"m1": true, "m2": true})

	// A machine joins: covered within 5 s (from its registration, which
	// startAgent waits for, to its task running).
	joined := time.Now()
	startAgent(t, ctx, cell, "m3")
	waitFor("m3 joined", 5*time.Second-time.Since(joined), map[string]bool{"m1": true, "m2": true, "m3": true})
	t.Logf("m3 covered %v after its agent started", time.Since(joined))

	// A machine is drained: the job leaves it and goes nowhere else.
	runCellIn(t, ctx, append([]string{"machine", "drain", "m2"}, cli...)...)
	waitFor("m2 drained", 10*time.Second, map[string]bool{"m1": true, "m3": true})
	time.Sleep(time.Second) // a wrong re-placement would show up by now
	waitFor("still off m2", 0, map[string]bool{"m1": true, "m3": true})

	status := runCellIn(t, ctx, append([]string{"job", "status", "node-exporter"}, cli...)...)
	for _, want := range []string{"Kind:", "system", "Events:", "placed on m3 by scheduler service", "system job leaves machine m2: it is draining"} {
		if !strings.Contains(status, want) {
			t.Errorf("job status lacks %q:\n%s", want, status)
		}
	}
}
