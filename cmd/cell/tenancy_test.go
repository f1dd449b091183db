package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/omegacell/omegacell/internal/celltest"
	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
	"github.com/omegacell/omegacell/proto/identity"
)

// TestTenantQuotaEndToEnd runs issue 12's admission on a real cell (mutual
// TLS, a real agent running real processes on a 2-core machine, the
// built-in batch policy as `cell scheduler`), driven through the cell
// binary's commands:
//   - tenant ml gets a batch quota of 1 core that may borrow 1 more;
//   - its first job runs within the quota, its second borrows the idle
//     core (visible in `cell tenant status`), its third does not fit the
//     quota plus borrow limit and waits queued with the reason (`cell job
//     status`, `cell job list`);
//   - when the first two end, the third is admitted and runs.
func TestTenantQuotaEndToEnd(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cell := cellWithAgent(t, ctx) // m1: 2 cores, 4 GiB
	admin := []string{"--server", cell.Addr, "--credentials", cell.AdminDir}
	cli := func(args ...string) string { return runCellIn(t, ctx, append(args, admin...)...) }

	sched, stopSched := context.WithCancel(ctx)
	schedDone := make(chan error, 1)
	go func() {
		cmd := newSchedulerCommand()
		creds := cell.WriteCredentials(t, celltest.Identity(t, identity.Scheduler, "batch"))
		cmd.SetArgs([]string{"--policy", "batch", "--name", "batch", "--server", cell.Addr, "--credentials", creds, "--seed", "12"})
		schedDone <- cmd.ExecuteContext(sched)
	}()
	defer func() {
		stopSched()
		<-schedDone
	}()

	cli("tenant", "create", "ml", "--weight", "2")
	cli("tenant", "set-quota", "ml", "--band", "batch", "--cpu", "1", "--memory", "2Gi", "--borrow-cpu", "1", "--borrow-memory", "1Gi")

	release := filepath.Join(t.TempDir(), "release")
	jobs := cellv1.NewJobServiceClient(cell.Conn)
	submit := func(name string) *cellv1.Job {
		r, err := jobs.SubmitJob(ctx, &cellv1.SubmitJobRequest{Spec: &cellv1.JobSpec{
			Name: name, Tenant: "ml", Scheduler: "batch", Priority: 100, Count: 1, Kind: cellv1.JobKind_JOB_KIND_BATCH,
			Task: &cellv1.TaskTemplate{Command: "/bin/sh", Args: []string{"-c", "while [ ! -e " + release + " ]; do sleep 0.05; done"},
				Resources: &cellv1.Resources{CpuMilli: 1000, MemoryBytes: 1 << 30}},
		}})
		if err != nil {
			t.Fatalf("submit %s: %v", name, err)
		}
		return r.Job
	}
	first, second := submit("first"), submit("second")
	waitTask(t, ctx, cell, first.Id, cellv1.TaskState_TASK_STATE_RUNNING)
	waitTask(t, ctx, cell, second.Id, cellv1.TaskState_TASK_STATE_RUNNING)

	third := submit("third")
	const reason = "tenant ml: batch CPU quota 1000m (+1000m borrowable), admitted 2000m, job needs 1000m"
	if third.State != cellv1.JobState_JOB_STATE_QUEUED || third.QueuedReason != reason {
		t.Fatalf("third: %v %q", third.State, third.QueuedReason)
	}
	status := cli("job", "status", "third")
	if !strings.Contains(status, "queued") || !strings.Contains(status, reason) {
		t.Errorf("cell job status third does not show it queued with the reason:\n%s", status)
	}
	if list := cli("job", "list"); !strings.Contains(list, "queued: tenant ml: batch CPU quota") {
		t.Errorf("cell job list does not show the queued job:\n%s", list)
	}
	ts := cli("tenant", "status", "ml")
	for _, want := range []string{
		"tenant ml: weight 2, may submit up to batch",
		"cell capacity: cpu 2, memory 4Gi, gpu 0",
		// quota | in use | admitted | borrowed | pending | queued | share
		"cpu 2, memory 2Gi, gpu 0  cpu 2, memory 2Gi, gpu 0  cpu 1, memory 0, gpu 0  0        1 jobs, 1 tasks  100.0%",
	} {
		if !strings.Contains(ts, want) {
			t.Errorf("cell tenant status ml lacks %q:\n%s", want, ts)
		}
	}

	// The first two end: the third is admitted and runs.
	if err := os.WriteFile(release, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	waitTask(t, ctx, cell, first.Id, cellv1.TaskState_TASK_STATE_SUCCEEDED)
	waitTask(t, ctx, cell, second.Id, cellv1.TaskState_TASK_STATE_SUCCEEDED)
	// Admitted in the revision that ended the second: it has its task now.
	if r, err := jobs.GetJob(ctx, &cellv1.GetJobRequest{IdOrName: third.Id, IncludeTasks: true}); err != nil || len(r.Tasks) != 1 {
		t.Fatalf("third after the others ended: %v %v", r, err)
	}
	waitTask(t, ctx, cell, third.Id, cellv1.TaskState_TASK_STATE_SUCCEEDED)
	got, err := jobs.GetJob(ctx, &cellv1.GetJobRequest{IdOrName: third.Id})
	if err != nil || got.Job.State != cellv1.JobState_JOB_STATE_SUCCEEDED || !strings.HasPrefix(got.Job.Message, "admitted after") {
		t.Fatalf("third at the end: %v %v", got, err)
	}
}
