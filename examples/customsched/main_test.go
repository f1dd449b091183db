package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/omegacell/omegacell/internal/celltest"
	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
	"github.com/omegacell/omegacell/proto/identity"
)

// binary is the customsched binary, built once by TestMain as a user
// would build it.
var binary string

func TestMain(m *testing.M) {
	path, cleanup, err := celltest.Build(".", "customsched")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = path
	code := m.Run()
	cleanup()
	os.Exit(code)
}

// TestCustomSchedulerAgainstARealCell runs the built binary against a real
// store and gRPC server on loopback: jobs naming it are placed by its
// policy, one that cannot fit is marked unschedulable, and SIGTERM stops
// it cleanly.
func TestCustomSchedulerAgainstARealCell(t *testing.T) {
	cell := celltest.Start(t)
	addr, conn := cell.Addr, cell.Conn
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, id := range []string{"m2", "m0", "m1"} {
		if _, err := cellv1.NewMachineServiceClient(conn).RegisterMachine(ctx, &cellv1.RegisterMachineRequest{
			Id: id, Capacity: &cellv1.Resources{CpuMilli: 2000, MemoryBytes: 8 << 30},
		}); err != nil {
			t.Fatal(err)
		}
	}

	creds := cell.WriteCredentials(t, celltest.Identity(t, identity.Scheduler, "lowest-id"))
	cmd := exec.Command(binary, "--server", addr, "--name", "lowest-id", "--credentials", creds)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan struct{})
	logc := make(chan string, 1)
	go func() {
		var log strings.Builder
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			log.WriteString(sc.Text() + "\n")
			if strings.Contains(sc.Text(), `msg="scheduler ready"`) {
				close(ready)
			}
		}
		io.Copy(io.Discard, stderr)
		logc <- log.String()
	}()
	exited := false
	defer func() {
		if !exited {
			cmd.Process.Kill()
			cmd.Wait()
		}
	}()
	select {
	case <-ready:
	case <-time.After(20 * time.Second):
		t.Fatal("customsched did not become ready")
	}

	jobs := cellv1.NewJobServiceClient(conn)
	submit := func(name string, count uint32, cpu int64) string {
		r, err := jobs.SubmitJob(ctx, &cellv1.SubmitJobRequest{Spec: &cellv1.JobSpec{
			Name: name, Scheduler: "lowest-id", Priority: 100, Count: count,
			Task: &cellv1.TaskTemplate{Command: "/bin/true", Resources: &cellv1.Resources{CpuMilli: cpu, MemoryBytes: 1 << 30}},
		}})
		if err != nil {
			t.Fatalf("submit %s: %v", name, err)
		}
		return r.Job.Id
	}
	fill := submit("fill", 3, 1000)
	huge := submit("huge", 1, 4000)
	var machines []string
	for {
		r, err := jobs.GetJob(ctx, &cellv1.GetJobRequest{IdOrName: fill, IncludeTasks: true})
		if err != nil {
			t.Fatal(err)
		}
		if r.Counts.Assigned == 3 {
			for _, tk := range r.Tasks {
				machines = append(machines, tk.MachineId)
			}
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if want := []string{"m0", "m0", "m1"}; !slices.Equal(machines, want) {
		t.Errorf("fill placed on %v, want %v (lowest ids first)", machines, want)
	}
	for {
		r, err := jobs.GetJob(ctx, &cellv1.GetJobRequest{IdOrName: huge})
		if err != nil {
			t.Fatal(err)
		}
		if r.Job.UnschedulableReason != "" {
			if !strings.Contains(r.Job.UnschedulableReason, "insufficient_cpu") {
				t.Errorf("huge: reason %q, want insufficient_cpu", r.Job.UnschedulableReason)
			}
			break
		}
		time.Sleep(10 * time.Millisecond)
	}

	cmd.Process.Signal(syscall.SIGTERM)
	log := <-logc
	err = cmd.Wait()
	exited = true
	if err != nil {
		t.Errorf("customsched exited with %v after SIGTERM, want 0\n%s", err, log)
	}
}
