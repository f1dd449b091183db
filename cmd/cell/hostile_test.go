package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os/exec"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/omegacell/omegacell/cellclient"
	"github.com/omegacell/omegacell/cellserver"
	"github.com/omegacell/omegacell/cli"
	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
	"github.com/omegacell/omegacell/proto/limits"
)

// TestHostileLargestJobsCheckListAndScheduler: a dozen jobs, each task
// with as many arguments and environment variables of the longest legal
// size as the cell accepts, made every default Snapshot and ListJobs fail
// (69 MB > 64 MB): schedulers could not start and `cell check` failed
// (one such job already broke it: the CLI kept gRPC's 4 MB receive
// limit). Now `cell check`, `cell job list` and `cell machine list` (real
// child processes) and a scheduler started afterwards all work, and the
// scheduler places every job.
func TestHostileLargestJobsCheckListAndScheduler(t *testing.T) {
	// No agent heartbeats for the machine here: a grace long enough that
	// it stays ready however slowly the test runs (under -race on a busy
	// machine, submitting 60 MB takes tens of seconds).
	srv, err := cellserver.Start(cellserver.Config{
		DataDir: t.TempDir(), Listen: "127.0.0.1:0", NATSListen: "127.0.0.1:-1", NoSync: true, Grace: time.Hour,
	}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	cell := struct{ Addr string }{srv.Addr()}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	conn, err := cli.Dial(ctx, cell.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := cellv1.NewMachineServiceClient(conn).RegisterMachine(ctx, &cellv1.RegisterMachineRequest{
		Id: "m0", Capacity: &cellv1.Resources{CpuMilli: 64000, MemoryBytes: 64 << 30},
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := cellv1.NewSchedulerServiceClient(conn).RegisterScheduler(ctx, &cellv1.RegisterSchedulerRequest{Name: "big"}); err != nil {
		t.Fatal(err)
	}
	jobs := cellv1.NewJobServiceClient(conn)
	began := time.Now()
	const n = 12
	nArgs, nEnv, total := limits.MaxArgs, limits.MaxEnv, 0
	long := strings.Repeat("a", limits.MaxStringLen)
	for i := 0; i < n; {
		spec := &cellv1.JobSpec{
			Name: fmt.Sprintf("big-%02d", i), Scheduler: "big", Priority: 100, Count: 1,
			Task: &cellv1.TaskTemplate{Command: "/bin/true", Resources: &cellv1.Resources{CpuMilli: 10, MemoryBytes: 1 << 20}, Env: map[string]string{}},
		}
		for range nArgs {
			spec.Task.Args = append(spec.Task.Args, long)
		}
		for k := range nEnv {
			spec.Task.Env[fmt.Sprintf("V%0*d", limits.MaxEnvNameLen-1, k)] = long
		}
		_, err := jobs.SubmitJob(ctx, &cellv1.SubmitJobRequest{Spec: spec})
		switch {
		case err == nil:
			i++
			total += len(spec.Task.Args)*len(long) + len(spec.Task.Env)*(limits.MaxEnvNameLen+len(long))
		case status.Code(err) == codes.InvalidArgument && nArgs+nEnv > 2 && i == 0:
			// A bound on a job's total size: halve until it is legal.
			nArgs, nEnv = max(1, nArgs/2), max(1, nEnv/2)
		default:
			t.Fatalf("submit %s: %v", spec.Name, err)
		}
	}
	t.Logf("%d jobs, %d MB of args and env, submitted in %v", n, total>>20, time.Since(began).Round(time.Millisecond))

	run := func(args ...string) string {
		t.Helper()
		out, err := exec.CommandContext(ctx, cellBinary, append(args, "--server", cell.Addr)...).CombinedOutput()
		if err != nil {
			t.Fatalf("cell %s: %v\n%s", strings.Join(args, " "), err, tail(string(out), 2000))
		}
		return string(out)
	}
	if out := run("check"); !strings.Contains(out, fmt.Sprintf("1 machines, %d jobs, %d tasks", n, n)) {
		t.Fatalf("cell check: %s", out)
	}
	list := run("job", "list")
	for i := range n {
		if !strings.Contains(list, fmt.Sprintf("big-%02d", i)) {
			t.Fatalf("cell job list lacks big-%02d:\n%s", i, tail(list, 2000))
		}
	}
	if out := run("machine", "list"); !strings.Contains(out, "m0") {
		t.Fatalf("cell machine list: %s", out)
	}

	t.Logf("check and lists in %v", time.Since(began).Round(time.Millisecond))

	// A scheduler started now reads the whole cell and places every job.
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		cmd := newSchedulerCommand()
		cmd.SetArgs([]string{"--policy", "batch", "--name", "big", "--server", cell.Addr})
		done <- cmd.ExecuteContext(runCtx)
	}()
	defer func() {
		stop()
		<-done
	}()
	for {
		r, err := cellclient.ListJobs(ctx, jobs, &cellv1.ListJobsRequest{PageSize: 5})
		if err != nil {
			t.Fatal(err)
		}
		placed := 0
		for _, j := range r.Jobs {
			placed += int(j.Counts.Assigned)
		}
		if placed == n {
			t.Logf("all placed at %v", time.Since(began).Round(time.Millisecond))
			break
		}
		select {
		case err := <-done:
			t.Fatalf("scheduler ended: %v", err)
		case <-ctx.Done():
			t.Fatalf("%d of %d jobs placed", placed, n)
		case <-time.After(500 * time.Millisecond):
		}
	}
}
