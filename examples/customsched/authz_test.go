package main

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/omegacell/omegacell/internal/celltest"
	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
	"github.com/omegacell/omegacell/proto/identity"
)

// TestAuthzCustomSchedulerIsRefusedForOthers: a third-party scheduler's
// credential (scheduler/lowest-id, which TestCustomSchedulerAgainstARealCell
// shows placing its own jobs) is refused for anyone else's: the binary run
// under another scheduler's name stops at registration, and the same
// credential from a plain gRPC client may not commit, give up on, or report
// for the built-in batch scheduler's job. The batch job stays pending.
func TestAuthzCustomSchedulerIsRefusedForOthers(t *testing.T) {
	cell := celltest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := cellv1.NewMachineServiceClient(cell.Conn).RegisterMachine(ctx, &cellv1.RegisterMachineRequest{
		Id: "m0", Capacity: &cellv1.Resources{CpuMilli: 2000, MemoryBytes: 8 << 30},
	}); err != nil {
		t.Fatal(err)
	}
	res := &cellv1.Resources{CpuMilli: 1000, MemoryBytes: 1 << 30}
	r, err := cellv1.NewJobServiceClient(cell.Conn).SubmitJob(ctx, &cellv1.SubmitJobRequest{Spec: &cellv1.JobSpec{
		Name: "theirs", Scheduler: "batch", Priority: 100, Count: 1,
		Task: &cellv1.TaskTemplate{Command: "/bin/true", Env: map[string]string{"TOKEN": "s3cr3t"}, Resources: res},
	}})
	if err != nil {
		t.Fatal(err)
	}
	theirs := r.Job.Id

	id := celltest.Identity(t, identity.Scheduler, "lowest-id")
	creds := cell.WriteCredentials(t, id)
	out, err := exec.CommandContext(ctx, binary, "--server", cell.Addr, "--name", "batch", "--credentials", creds).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "scheduler/lowest-id may not RegisterScheduler") {
		t.Errorf("customsched --name batch with lowest-id's credential: %v\n%s", err, out)
	}

	dial, err := cell.Credentials(t, id).DialOption(cell.Addr)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(cell.Addr, dial)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := cellv1.NewSchedulerServiceClient(conn).RegisterScheduler(ctx, &cellv1.RegisterSchedulerRequest{Name: "lowest-id"}); err != nil {
		t.Fatalf("registering its own name: %v", err)
	}
	claim := []*cellv1.Claim{{Task: &cellv1.TaskRef{JobId: theirs}, MachineId: "m0", Resources: res}}
	for _, c := range []struct {
		what, rule string
		call       func() error
	}{
		{"commit its claim as batch", "own-scheduler", func() error {
			_, err := cellv1.NewStateServiceClient(conn).Commit(ctx, &cellv1.CommitRequest{Scheduler: "batch", Claims: claim})
			return err
		}},
		{"commit its claim as itself", "job-scheduler", func() error {
			_, err := cellv1.NewStateServiceClient(conn).Commit(ctx, &cellv1.CommitRequest{Scheduler: "lowest-id", Claims: claim})
			return err
		}},
		{"mark it unschedulable", "job-scheduler", func() error {
			_, err := cellv1.NewJobServiceClient(conn).SetJobSchedulingStatus(ctx, &cellv1.SetJobSchedulingStatusRequest{
				JobId: theirs, Scheduler: "lowest-id", UnschedulableReason: "forged"})
			return err
		}},
		{"report batch's figures", "own-scheduler", func() error {
			_, err := cellv1.NewSchedulerServiceClient(conn).ReportSchedulerStats(ctx, &cellv1.ReportSchedulerStatsRequest{
				Name: "batch", Stats: &cellv1.SchedulerStats{Busyness: 1}})
			return err
		}},
	} {
		err := c.call()
		if st := status.Convert(err); st.Code() != codes.PermissionDenied || !strings.Contains(st.Message(), "(rule "+c.rule+")") {
			t.Errorf("%s: %v, want PermissionDenied by rule %s", c.what, err, c.rule)
		}
	}
	g, err := cellv1.NewJobServiceClient(conn).GetJob(ctx, &cellv1.GetJobRequest{IdOrName: theirs})
	if err != nil {
		t.Fatal(err)
	}
	if g.Job.State != cellv1.JobState_JOB_STATE_PENDING || g.Job.UnschedulableReason != "" || len(g.Job.Spec.Task.Env) != 0 {
		t.Errorf("batch's job as lowest-id sees it: %v", g.Job)
	}
}
