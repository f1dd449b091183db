package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
)

// TestFailoverKeepsQueuedJobsAndDrains: what the leader's store keeps
// between operations, not only their results, survives a failover. A
// tenant's job waits queued behind its quota and a machine is draining
// (set up through the cell binary's commands, on every server's
// address); the leader is SIGKILLed. The new leader keeps the job queued
// with its reason and admits it as soon as quota frees (the job ahead of
// it stopped), and the drain goes on where it was: it waits on the
// service's disruption budget, then evicts everything at its deadline and
// is done. Every server ends with the same state.
func TestFailoverKeepsQueuedJobsAndDrains(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the failover suite runs three servers")
	}
	rs := startReplicaSet(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cli := func(args ...string) string {
		return runCellIn(t, ctx, append(args, "--server", rs.addrs(), "--credentials", rs.adminDir)...)
	}
	machines := cellv1.NewMachineServiceClient(rs.all)
	jobs := cellv1.NewJobServiceClient(rs.all)
	for _, id := range []string{"m00", "m01", "m02"} {
		if _, err := machines.RegisterMachine(ctx, &cellv1.RegisterMachineRequest{
			Id: id, Capacity: &cellv1.Resources{CpuMilli: 4000, MemoryBytes: 8 << 30},
		}); err != nil {
			t.Fatalf("register %s: %v", id, err)
		}
	}

	// Tenant ml may use one core in batch: its second one-core job waits.
	cli("tenant", "create", "ml")
	cli("tenant", "set-quota", "ml", "--band", "batch", "--cpu", "1", "--memory", "2Gi")
	submit := func(spec *cellv1.JobSpec) *cellv1.Job {
		t.Helper()
		r, err := jobs.SubmitJob(ctx, &cellv1.SubmitJobRequest{Spec: spec})
		if err != nil {
			t.Fatalf("submit %s: %v", spec.Name, err)
		}
		return r.Job
	}
	batch := func(name string) *cellv1.JobSpec {
		return &cellv1.JobSpec{Name: name, Tenant: "ml", Scheduler: "batch", Priority: 100, Count: 1, Kind: cellv1.JobKind_JOB_KIND_BATCH,
			Task: &cellv1.TaskTemplate{Command: "x", Resources: &cellv1.Resources{CpuMilli: 1000, MemoryBytes: 1 << 30}}}
	}
	first := submit(batch("first"))
	second := submit(batch("second"))
	const reason = "tenant ml: batch CPU quota 1000m, admitted 1000m, job needs 1000m"
	if first.State == cellv1.JobState_JOB_STATE_QUEUED || second.State != cellv1.JobState_JOB_STATE_QUEUED || second.QueuedReason != reason {
		t.Fatalf("before the kill: first %v, second %v %q (want queued %q)", first.State, second.State, second.QueuedReason, reason)
	}

	// A service with both replicas on m01: draining m01 may take one at a
	// time, and neither runs (no agent), so the drain waits on the budget
	// until its deadline.
	web := submit(&cellv1.JobSpec{Name: "web", Scheduler: "batch", Priority: 100, Count: 2, Kind: cellv1.JobKind_JOB_KIND_SERVICE,
		Task: &cellv1.TaskTemplate{Command: "x", Resources: &cellv1.Resources{CpuMilli: 100, MemoryBytes: 1 << 20}}})
	commit := &cellv1.CommitRequest{Scheduler: "batch"}
	for i := range uint32(2) {
		commit.Claims = append(commit.Claims, &cellv1.Claim{Task: &cellv1.TaskRef{JobId: web.Id, Index: i}, MachineId: "m01", Resources: web.Spec.Task.Resources})
	}
	if r, err := cellv1.NewStateServiceClient(rs.all).Commit(ctx, commit); err != nil || len(r.Results) != 2 ||
		r.Results[0].Outcome != cellv1.ClaimOutcome_CLAIM_OUTCOME_ACCEPTED || r.Results[1].Outcome != cellv1.ClaimOutcome_CLAIM_OUTCOME_ACCEPTED {
		t.Fatalf("placing web on m01: %v %v", r, err)
	}
	const drainFor = 20 * time.Second
	drainStart := time.Now()
	if out := cli("machine", "drain", "m01", "--deadline", drainFor.String(), "--detach"); !strings.Contains(out, "machine m01 is") {
		t.Fatalf("cell machine drain m01: %q", out)
	}
	drain := func(conn cellv1.MachineServiceClient) *cellv1.MachineDrain {
		t.Helper()
		r, err := conn.GetMachine(ctx, &cellv1.GetMachineRequest{Id: "m01"})
		if err != nil {
			t.Fatalf("get m01: %v", err)
		}
		return r.Machine.GetDrain()
	}
	waitFor(t, ctx, "the drain to wait on web's budget", func() bool {
		d := drain(machines)
		return d.GetDraining() && strings.Contains(d.GetWaiting(), "job web") && d.GetDoneUnixNano() == 0
	})

	old := rs.leader(30 * time.Second)
	old.kill()
	if _, err := probeCommit(rs.all, "after-kill", 30*time.Second, nil); err != nil {
		rs.dump(20)
		t.Fatal(err)
	}
	newLeader := rs.leader(30 * time.Second)
	t.Logf("killed %s; %s leads", old.name, newLeader.name)

	// The new leader keeps the queue: second is still queued, for the same
	// reason; the drain is still waiting, not done and not forgotten.
	getJob := func(id string) *cellv1.GetJobResponse {
		t.Helper()
		r, err := jobs.GetJob(ctx, &cellv1.GetJobRequest{IdOrName: id, IncludeTasks: true})
		if err != nil {
			t.Fatalf("get job %s: %v", id, err)
		}
		return r
	}
	if r := getJob(second.Id); r.Job.State != cellv1.JobState_JOB_STATE_QUEUED || r.Job.QueuedReason != reason || len(r.Tasks) != 0 {
		t.Fatalf("after the failover, second is %v %q with %d tasks (want queued %q, no tasks)", r.Job.State, r.Job.QueuedReason, len(r.Tasks), reason)
	}
	if status := cli("job", "status", "second"); !strings.Contains(status, "queued") || !strings.Contains(status, reason) {
		t.Errorf("cell job status second after the failover does not show it queued with the reason:\n%s", status)
	}
	if d := drain(machines); !d.GetDraining() || d.GetDoneUnixNano() != 0 || time.Since(drainStart) >= drainFor {
		t.Fatalf("after the failover the drain is %v (want draining, not done; %v of its %v passed)", d, time.Since(drainStart).Round(time.Millisecond), drainFor)
	}

	// Quota frees: the new leader admits second at once.
	cli("job", "stop", "first")
	waitFor(t, ctx, "second to be admitted", func() bool {
		r := getJob(second.Id)
		return r.Job.State != cellv1.JobState_JOB_STATE_QUEUED && len(r.Tasks) == 1
	})
	if r := getJob(second.Id); !strings.HasPrefix(r.Job.Message, "admitted after") {
		t.Errorf("second after admission: %v %q", r.Job.State, r.Job.Message)
	}

	// The drain completes on the new leader at its deadline: both web
	// replicas evicted from m01, back to pending.
	waitFor(t, ctx, "the drain to end at its deadline", func() bool { return drain(machines).GetDoneUnixNano() != 0 })
	if d := drain(machines); d.GetForced() != 2 || d.GetRemaining() != 0 || d.GetDoneUnixNano() < d.GetDeadlineUnixNano() {
		t.Fatalf("drain at the end: %v (want 2 forced at the deadline, none remaining)", d)
	}
	for _, tk := range getJob(web.Id).Tasks {
		if tk.MachineId == "m01" || tk.State != cellv1.TaskState_TASK_STATE_PENDING {
			t.Errorf("web/%d after the drain: %v on %q (want pending, off m01)", tk.Index, tk.State, tk.MachineId)
		}
	}

	// Every server, the killed one restarted, ends with the same state.
	rs.start(old)
	rs.waitReady(old)
	want, err := revision(ctx, rs.all)
	if err != nil {
		t.Fatal(err)
	}
	for _, nd := range rs.nodes {
		waitFor(t, ctx, nd.name+" to reach revision "+fmt.Sprint(want), func() bool {
			got, err := revision(ctx, nd.conn)
			return err == nil && got >= want
		})
		mc := cellv1.NewMachineServiceClient(nd.conn)
		if d := drain(mc); d.GetDoneUnixNano() == 0 || d.GetForced() != 2 {
			t.Errorf("%s: drain of m01 is %v", nd.name, d)
		}
		r, err := cellv1.NewJobServiceClient(nd.conn).GetJob(ctx, &cellv1.GetJobRequest{IdOrName: second.Id, IncludeTasks: true})
		if err != nil || r.Job.State == cellv1.JobState_JOB_STATE_QUEUED || len(r.Tasks) != 1 {
			t.Errorf("%s: second is %v, %v", nd.name, r, err)
		}
	}
}
