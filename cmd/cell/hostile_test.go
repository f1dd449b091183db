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
	"google.golang.org/protobuf/proto"

	"github.com/omegacell/omegacell/cellserver"
	"github.com/omegacell/omegacell/cli"
	"github.com/omegacell/omegacell/internal/celltest"
	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
	"github.com/omegacell/omegacell/proto/cellclient"
	"github.com/omegacell/omegacell/proto/identity"
	"github.com/omegacell/omegacell/proto/limits"
)

// TestHostileLargestJobsCheckListAndScheduler: a dozen jobs, each task
// with as many arguments and environment variables of the longest legal
// size as the cell accepted, made every default Snapshot and ListJobs fail
// (69 MB > 64 MB): schedulers could not start and `cell check` failed
// (one such job already broke it: the CLI kept gRPC's 4 MB receive
// limit). Jobs are bounded to limits.MaxJobSpecBytes since, so it takes
// about 1,100 largest legal jobs to hold as much. Now `cell check`, `cell job list` and `cell machine list` (real
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
	cell := struct{ Addr, AdminDir string }{srv.Addr(), srv.AdminDir()}
	admin, err := srv.Client(identity.Identity{Role: identity.Admin})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	conn, err := cli.Dial(ctx, cell.Addr, admin)
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
	// As many jobs at the size bound as hold more than one message can
	// (the dozen 5 MB jobs made 69 MB; jobs are bounded since).
	const n = limits.MaxRequestBytes/limits.MaxJobSpecBytes*11/10 + 1
	room, total := limits.MaxJobSpecBytes, 0
	for i := 0; i < n; {
		spec := &cellv1.JobSpec{
			Name: fmt.Sprintf("big-%04d", i), Scheduler: "big", Priority: 100, Count: 1,
			Task: &cellv1.TaskTemplate{Command: "/bin/true", Resources: &cellv1.Resources{CpuMilli: 10, MemoryBytes: 1 << 20}},
		}
		for proto.Size(spec)+limits.MaxStringLen+8 <= room && len(spec.Task.Args) < limits.MaxArgs {
			spec.Task.Args = append(spec.Task.Args, strings.Repeat("a", limits.MaxStringLen))
		}
		if rest := room - proto.Size(spec) - 8; rest > 0 {
			spec.Task.Args = append(spec.Task.Args, strings.Repeat("b", rest))
		}
		_, err := jobs.SubmitJob(ctx, &cellv1.SubmitJobRequest{Spec: spec})
		switch {
		case err == nil:
			i++
			total += proto.Size(spec)
		case status.Code(err) == codes.InvalidArgument && i == 0 && room > limits.MaxJobSpecBytes/2:
			room -= 1 << 10 // the largest legal spec is a little smaller
		default:
			t.Fatalf("submit %s: %v", spec.Name, err)
		}
	}
	t.Logf("%d jobs of %d bytes, %d MB, submitted in %v", n, total/n, total>>20, time.Since(began).Round(time.Millisecond))

	run := func(args ...string) string {
		t.Helper()
		out, err := exec.CommandContext(ctx, cellBinary, append(args, "--server", cell.Addr, "--credentials", cell.AdminDir)...).CombinedOutput()
		if err != nil {
			t.Fatalf("cell %s: %v\n%s", strings.Join(args, " "), err, tail(string(out), 2000))
		}
		return string(out)
	}
	if out := run("check"); !strings.Contains(out, fmt.Sprintf("1 machines, %d jobs, %d tasks", n, n)) {
		t.Fatalf("cell check: %s", out)
	}
	listed := map[string]bool{}
	for _, line := range strings.Split(run("job", "list"), "\n") {
		if f := strings.Fields(line); len(f) > 0 {
			listed[f[0]] = true
		}
	}
	for i := range n {
		if !listed[fmt.Sprintf("big-%04d", i)] {
			t.Fatalf("cell job list lacks big-%04d (%d names listed)", i, len(listed))
		}
	}
	if out := run("machine", "list"); !strings.Contains(out, "m0") {
		t.Fatalf("cell machine list: %s", out)
	}

	t.Logf("check and lists in %v", time.Since(began).Round(time.Millisecond))

	// A scheduler started now reads the whole cell and places every job.
	schedCreds := (&celltest.Cell{Server: srv}).WriteCredentials(t, celltest.Identity(t, identity.Scheduler, "big"))
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		cmd := newSchedulerCommand()
		cmd.SetArgs([]string{"--policy", "batch", "--name", "big", "--server", cell.Addr, "--credentials", schedCreds})
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
