package main

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/omegacell/omegacell/cellserver"
	"github.com/omegacell/omegacell/internal/celltest"
	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
	"github.com/omegacell/omegacell/proto/identity"
)

func TestSchedulerCommandRefusesBadFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "--policy is required (batch, gpu, service)"},
		{[]string{"--policy", "fifo"}, `--policy: policy "fifo": unknown (known: batch, gpu, service)`},
		{[]string{"--policy", "batch", "--conflict", "medium"}, `--conflict: conflict mode "medium": want fine or coarse`},
		{[]string{"--policy", "batch", "--commit", "gang"}, `--commit: commit mode "gang": want incremental or all-or-nothing`},
		{[]string{"--policy", "batch", "--max-attempts", "0"}, "--max-attempts: 0 must be at least 1"},
		{[]string{"--policy", "batch", "--name", "Not_A_Name"}, `Config.Name: "Not_A_Name" is not a scheduler name`},
		{[]string{"--policy", "batch", "stray"}, `unknown command "stray"`},
		// -o belongs to `scheduler list`, not to the scheduler itself.
		{[]string{"--policy", "batch", "-o", "json"}, "unknown shorthand flag: 'o'"},
	} {
		cmd := newSchedulerCommand()
		cmd.SetArgs(tc.args)
		cmd.SetOut(io.Discard)
		cmd.SetErr(io.Discard)
		err := cmd.Execute()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("cell scheduler %v: error %v, want it to contain %q", tc.args, err, tc.want)
		}
	}
}

// TestSchedulerCommandPlacesJobsAndStopsOnCancel runs `cell scheduler`
// against a real store and gRPC server on loopback: it places a job, shows
// up in `cell scheduler list`, and returns cleanly when its context ends
// (what SIGINT and SIGTERM do through main's signal context).
func TestSchedulerCommandPlacesJobsAndStopsOnCancel(t *testing.T) {
	cell := celltest.Start(t)
	addr, conn := cell.Addr, cell.Conn
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := cellv1.NewMachineServiceClient(conn).RegisterMachine(ctx, &cellv1.RegisterMachineRequest{
		Id: "m0", Capacity: &cellv1.Resources{CpuMilli: 4000, MemoryBytes: 8 << 30},
	}); err != nil {
		t.Fatal(err)
	}

	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		cmd := newSchedulerCommand()
		creds := cell.WriteCredentials(t, celltest.Identity(t, identity.Scheduler, "team-a"))
		cmd.SetArgs([]string{"--policy", "batch", "--name", "team-a", "--server", addr, "--credentials", creds, "--seed", "7", "--conflict", "coarse"})
		done <- cmd.ExecuteContext(runCtx)
	}()
	jobs := cellv1.NewJobServiceClient(conn)
	var job *cellv1.Job
	for job == nil {
		// The job may only name the scheduler once it registered itself.
		r, err := jobs.SubmitJob(ctx, &cellv1.SubmitJobRequest{Spec: &cellv1.JobSpec{
			Name: "work", Scheduler: "team-a", Priority: 100, Count: 3,
			Task: &cellv1.TaskTemplate{Command: "/bin/true", Resources: &cellv1.Resources{CpuMilli: 1000, MemoryBytes: 1 << 30}},
		}})
		if err == nil {
			job = r.Job
		} else if ctx.Err() != nil {
			t.Fatalf("submit: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	for {
		r, err := jobs.GetJob(ctx, &cellv1.GetJobRequest{IdOrName: job.Id})
		if err != nil {
			t.Fatal(err)
		}
		if r.Counts.Assigned == 3 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}

	list := newSchedulerCommand()
	var out bytes.Buffer
	list.SetOut(&out)
	list.SetArgs([]string{"list", "--server", addr, "--credentials", cell.AdminDir})
	if err := list.ExecuteContext(ctx); err != nil {
		t.Fatalf("cell scheduler list: %v", err)
	}
	if !strings.Contains(out.String(), "team-a") {
		t.Errorf("cell scheduler list does not show team-a:\n%s", out.String())
	}

	stop()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("cell scheduler returned %v after its context ended, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("cell scheduler did not stop when its context ended")
	}
}

// The dev banner names the addresses the cell really serves on, and the
// next commands reach it: with a listen address other than the default
// they carry --server.
func TestDevBannerNamesTheRealAddresses(t *testing.T) {
	cell := celltest.Start(t) // port 0: not the default address
	var out bytes.Buffer
	printDevBanner(&out, devConfig{simulate: 3}, cell.Server)
	banner := out.String()
	for _, want := range []string{
		"gRPC API    " + cell.Addr,
		"NATS        " + cell.Server.NATSURL(),
		"metrics     off",
		"simulated   3 machines",
		"credentials " + cell.AdminDir + " (admin",
		"go run ./cmd/cell machine list --server " + cell.Addr + " --credentials " + cell.AdminDir + "\n",
		"go run ./cmd/cell job run examples/jobs/hello.yaml --wait --server " + cell.Addr + " --credentials " + cell.AdminDir + "\n",
	} {
		if !strings.Contains(banner, want) {
			t.Errorf("banner lacks %q:\n%s", want, banner)
		}
	}
}

// With the metrics port on, the dev banner names the web view's URL and
// the `cell ui` command that logs into it.
func TestDevBannerNamesTheWebView(t *testing.T) {
	cell := celltest.StartWith(t, func(c *cellserver.Config) { c.Metrics = "127.0.0.1:0" })
	var out bytes.Buffer
	printDevBanner(&out, devConfig{}, cell.Server)
	web := "http://" + cell.Server.MetricsAddr() + "/"
	if want := "web view    " + web + " (log in: go run ./cmd/cell ui --web " + web + " --credentials " + cell.AdminDir + " --open)"; !strings.Contains(out.String(), want) {
		t.Errorf("banner lacks %q:\n%s", want, out.String())
	}
}
