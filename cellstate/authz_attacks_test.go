package cellstate

import (
	"cmp"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/omegacell/omegacell/cellstate/authz"
	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
	"github.com/omegacell/omegacell/proto/identity"
)

// authzScene is a small shared cell: tenant team-a (alice, allowed the
// production band) runs a production job a-prod on node-1 (agent/node-1),
// placed by scheduler/batch; tenant team-b (mallory) has a pending batch
// job; scheduler/rogue is registered; agent/node-2 has an empty machine.
type authzScene struct {
	c                                      *authzCell
	admin, alice, mallory, batch, rogue    *client
	agent1, agent2, evil, fleet, anonymous *client
	prod, bjob                             *cellv1.Job
}

func newAuthzScene(t *testing.T) *authzScene {
	c := newAuthzCell(t)
	s := &authzScene{c: c,
		admin:     c.as(&adminIdentity),
		alice:     c.as(mustID(t, identity.User, "alice", "team-a")),
		mallory:   c.as(mustID(t, identity.User, "mallory", "team-b")),
		batch:     c.as(mustID(t, identity.Scheduler, "batch")),
		rogue:     c.as(mustID(t, identity.Scheduler, "rogue")),
		agent1:    c.as(mustID(t, identity.Agent, "node-1")),
		agent2:    c.as(mustID(t, identity.Agent, "node-2")),
		evil:      c.as(mustID(t, identity.Agent, "evil")),
		fleet:     c.as(mustFleet(t, "node")), // speaks for node-<digits>
		anonymous: c.as(nil),
	}
	ctx := ctxT(t)
	must := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	_, err := s.admin.tenants.CreateTenant(ctx, &cellv1.CreateTenantRequest{Tenant: &cellv1.Tenant{Name: "team-a", MaxBand: cellv1.PriorityBand_PRIORITY_BAND_PRODUCTION}})
	must("tenant policy", err)
	for _, a := range []struct {
		cl *client
		id string
	}{{s.agent1, "node-1"}, {s.agent2, "node-2"}} {
		_, err := a.cl.machines.RegisterMachine(ctx, &cellv1.RegisterMachineRequest{Id: a.id, Capacity: &cellv1.Resources{CpuMilli: 4000, MemoryBytes: 4 * gib}})
		must("register "+a.id, err)
	}
	prod := &cellv1.JobSpec{Name: "a-prod", Tenant: "team-a", Scheduler: "batch", Priority: 200, Count: 2,
		Task: &cellv1.TaskTemplate{Command: "/bin/serve", Args: []string{"--token", "hunter2"}, Env: map[string]string{"SECRET": "s3cr3t"},
			Resources:   &cellv1.Resources{CpuMilli: 2000, MemoryBytes: gib},
			HealthCheck: &cellv1.HealthCheck{HttpGetUrl: "http://localhost/health?token=s3cr3t", IntervalMs: 1000}}}
	r, err := s.alice.jobs.SubmitJob(ctx, &cellv1.SubmitJobRequest{Spec: prod})
	must("submit a-prod", err)
	s.prod = r.Job
	res := prod.Task.Resources
	cr, err := s.batch.state.Commit(ctx, &cellv1.CommitRequest{Scheduler: "batch", Claims: []*cellv1.Claim{
		claim(s.prod.Id, 0, "node-1", res), claim(s.prod.Id, 1, "node-1", res)}})
	if err != nil || cr.Accepted != 2 {
		t.Fatalf("place a-prod: %v %v", cr, err)
	}
	rr, err := s.agent1.agent.ReportTaskStates(ctx, &cellv1.ReportTaskStatesRequest{MachineId: "node-1",
		Updates: []*cellv1.TaskStateUpdate{update(s.prod.Id, 0, 1, cellv1.TaskState_TASK_STATE_RUNNING, 0)}})
	if err != nil || !rr.Results[0].Applied {
		t.Fatalf("agent report: %v %v", rr, err)
	}
	_, err = s.rogue.schedulers.RegisterScheduler(ctx, &cellv1.RegisterSchedulerRequest{Name: "rogue"})
	must("register rogue", err)
	b := batchSpec("b-job", 1, 2000, gib)
	b.Tenant, b.Priority = "team-b", 199
	r, err = s.mallory.jobs.SubmitJob(ctx, &cellv1.SubmitJobRequest{Spec: b})
	must("submit b-job", err)
	s.bjob = r.Job
	_, err = s.batch.schedulers.ReportSchedulerStats(ctx, &cellv1.ReportSchedulerStatsRequest{Name: "batch", Stats: &cellv1.SchedulerStats{Busyness: 0.25}})
	must("batch stats", err)
	return s
}

// cellState is everything an attack could change, as admin reads it.
type cellState struct {
	snap       *cellv1.SnapshotResponse
	schedulers *cellv1.ListSchedulersResponse
	tenants    *cellv1.ListTenantsResponse
}

func (s *authzScene) state(t *testing.T) cellState {
	t.Helper()
	snap, err := readSnapshot(t, s.admin)
	if err != nil {
		t.Fatal(err)
	}
	ls, err := s.admin.schedulers.ListSchedulers(ctxT(t), &cellv1.ListSchedulersRequest{})
	if err != nil {
		t.Fatal(err)
	}
	tp, err := s.admin.tenants.ListTenants(ctxT(t), &cellv1.ListTenantsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(snap.Machines, func(a, b *cellv1.Machine) int { return strings.Compare(a.Id, b.Id) })
	slices.SortFunc(snap.Jobs, func(a, b *cellv1.Job) int { return strings.Compare(a.Id, b.Id) })
	slices.SortFunc(snap.Tasks, func(a, b *cellv1.Task) int {
		return cmp.Or(strings.Compare(a.JobId, b.JobId), cmp.Compare(a.Index, b.Index))
	})
	return cellState{snap, ls, tp}
}

// assertUnchanged compares the cell with before; a legitimate scheduler's
// own conflict counters may move (schedulersMove).
func (s *authzScene) assertUnchanged(t *testing.T, before cellState, schedulersMove ...bool) {
	t.Helper()
	after := s.state(t)
	if len(schedulersMove) > 0 {
		after.schedulers = before.schedulers
	}
	if after.snap.Revision != before.snap.Revision {
		t.Errorf("revision moved %d → %d", before.snap.Revision, after.snap.Revision)
	}
	for _, x := range []struct {
		what string
		a, b proto.Message
	}{{"snapshot", before.snap, after.snap}, {"schedulers", before.schedulers, after.schedulers}, {"tenants", before.tenants, after.tenants}} {
		if !proto.Equal(x.a, x.b) {
			t.Errorf("%s changed:\nbefore %.2000v\nafter  %.2000v", x.what, x.a, x.b)
		}
	}
}

// watchErr opens a watch and returns the error of its first message.
func watchErr(t *testing.T, cl *client, r *cellv1.WatchRequest) error {
	stream, err := cl.state.Watch(ctxT(t), r)
	if err != nil {
		return err
	}
	_, err = stream.Recv()
	return err
}

func snapshotErr(t *testing.T, cl *client) error {
	_, err := readSnapshot(t, cl)
	return err
}

// TestAuthzAttacks replays the attacks of issue 10 (items 1-10; 11, on
// NATS, belongs with the NATS authentication), each as the attacker
// would: a plain gRPC client with its own identity. Each must be refused,
// name the identity and the rule, be counted, and leave the cell as it was.
func TestAuthzAttacks(t *testing.T) {
	s := newAuthzScene(t)
	p, b := s.prod.Id, s.bjob.Id
	res := &cellv1.Resources{CpuMilli: 2000, MemoryBytes: gib}
	huge := &cellv1.Resources{CpuMilli: 500_000_000, MemoryBytes: 4 * gib}
	cases := []struct {
		name     string
		who      *client
		identity string // as refusals name it
		method   string
		rule     string // "": refused before any handler (no credential)
		call     func(cl *client) error
	}{
		{"1 register a fake machine as a user", s.mallory, "user/mallory", "RegisterMachine", "role", func(cl *client) error {
			_, err := cl.machines.RegisterMachine(ctxT(t), &cellv1.RegisterMachineRequest{Id: "fake-1", Capacity: res})
			return err
		}},
		{"1 register a fake machine without credential", s.anonymous, "", "RegisterMachine", "", func(cl *client) error {
			_, err := cl.machines.RegisterMachine(ctxT(t), &cellv1.RegisterMachineRequest{Id: "fake-1", Capacity: res})
			return err
		}},
		{"1 watch another machine's assignments", s.evil, "agent/evil", "Watch", "own-machine", func(cl *client) error {
			return watchErr(t, cl, &cellv1.WatchRequest{MachineId: "node-1"})
		}},
		{"1 read a job with no task on one's machine", s.evil, "agent/evil", "GetJob", "task-on-machine", func(cl *client) error {
			_, err := cl.jobs.GetJob(ctxT(t), &cellv1.GetJobRequest{IdOrName: "a-prod"})
			return err
		}},
		{"2 read every tenant's jobs through Snapshot as a user", s.mallory, "user/mallory", "Snapshot", "role", func(cl *client) error {
			return snapshotErr(t, cl)
		}},
		{"2 read another tenant's job", s.mallory, "user/mallory", "GetJob", "tenant", func(cl *client) error {
			_, err := cl.jobs.GetJob(ctxT(t), &cellv1.GetJobRequest{IdOrName: p, IncludeTasks: true})
			return err
		}},
		{"2 follow every change as a user", s.mallory, "user/mallory", "Watch", "role", func(cl *client) error {
			return watchErr(t, cl, &cellv1.WatchRequest{})
		}},
		{"2 read another tenant's task logs", s.mallory, "user/mallory", "GetTaskLogs", "tenant", func(cl *client) error {
			_, err := cl.jobs.GetTaskLogs(ctxT(t), &cellv1.GetTaskLogsRequest{Task: &cellv1.TaskRef{JobId: p}})
			return err
		}},
		{"3 report another machine's task succeeded", s.evil, "agent/evil", "ReportTaskStates", "own-machine", func(cl *client) error {
			_, err := cl.agent.ReportTaskStates(ctxT(t), &cellv1.ReportTaskStatesRequest{MachineId: "node-1",
				Updates: []*cellv1.TaskStateUpdate{update(p, 0, 1, cellv1.TaskState_TASK_STATE_SUCCEEDED, 0)}})
			return err
		}},
		{"3 report a task's state as a scheduler", s.rogue, "scheduler/rogue", "ReportTaskStates", "role", func(cl *client) error {
			_, err := cl.agent.ReportTaskStates(ctxT(t), &cellv1.ReportTaskStatesRequest{MachineId: "node-1",
				Updates: []*cellv1.TaskStateUpdate{update(p, 0, 1, cellv1.TaskState_TASK_STATE_FAILED, 1)}})
			return err
		}},
		{"4 commit under another scheduler's name", s.rogue, "scheduler/rogue", "Commit", "own-scheduler", func(cl *client) error {
			_, err := cl.state.Commit(ctxT(t), &cellv1.CommitRequest{Scheduler: "batch", Claims: []*cellv1.Claim{claim(b, 0, "node-2", res)}})
			return err
		}},
		{"4 commit another scheduler's job under one's own name", s.rogue, "scheduler/rogue", "Commit", "job-scheduler", func(cl *client) error {
			_, err := cl.state.Commit(ctxT(t), &cellv1.CommitRequest{Scheduler: "rogue", Claims: []*cellv1.Claim{claim(b, 0, "node-2", res)}})
			return err
		}},
		{"4 set a job's status under another scheduler's name", s.rogue, "scheduler/rogue", "SetJobSchedulingStatus", "own-scheduler", func(cl *client) error {
			_, err := cl.jobs.SetJobSchedulingStatus(ctxT(t), &cellv1.SetJobSchedulingStatusRequest{JobId: b, Scheduler: "batch", UnschedulableReason: "forged"})
			return err
		}},
		{"4 set the status of another scheduler's job", s.rogue, "scheduler/rogue", "SetJobSchedulingStatus", "job-scheduler", func(cl *client) error {
			_, err := cl.jobs.SetJobSchedulingStatus(ctxT(t), &cellv1.SetJobSchedulingStatusRequest{JobId: b, Scheduler: "rogue", UnschedulableReason: "forged"})
			return err
		}},
		{"4 commit as a user", s.mallory, "user/mallory", "Commit", "role", func(cl *client) error {
			_, err := cl.state.Commit(ctxT(t), &cellv1.CommitRequest{Scheduler: "batch", Claims: []*cellv1.Claim{claim(b, 0, "node-2", res)}})
			return err
		}},
		{"5 submit above the tenant's band to preempt", s.mallory, "user/mallory", "SubmitJob", "tenant-max-band", func(cl *client) error {
			spec := batchSpec("b-prod", 1, 2000, gib)
			spec.Tenant, spec.Priority = "team-b", 300
			_, err := cl.jobs.SubmitJob(ctxT(t), &cellv1.SubmitJobRequest{Spec: spec})
			return err
		}},
		{"5 submit into another tenant that may use production", s.mallory, "user/mallory", "SubmitJob", "tenant", func(cl *client) error {
			spec := batchSpec("b-prod", 1, 2000, gib)
			spec.Tenant, spec.Priority = "team-a", 300
			_, err := cl.jobs.SubmitJob(ctxT(t), &cellv1.SubmitJobRequest{Spec: spec})
			return err
		}},
		{"5 raise one's own tenant's band", s.mallory, "user/mallory", "UpdateTenant", "role", func(cl *client) error {
			_, err := cl.tenants.UpdateTenant(ctxT(t), &cellv1.UpdateTenantRequest{Tenant: &cellv1.Tenant{Name: "team-b", MaxBand: cellv1.PriorityBand_PRIORITY_BAND_PRODUCTION}})
			return err
		}},
		{"6 drain a machine as a user", s.mallory, "user/mallory", "DrainMachine", "role", func(cl *client) error {
			_, err := cl.machines.DrainMachine(ctxT(t), &cellv1.DrainMachineRequest{Id: "node-1", Drain: true})
			return err
		}},
		{"6 drain a machine as its agent", s.agent1, "agent/node-1", "DrainMachine", "role", func(cl *client) error {
			_, err := cl.machines.DrainMachine(ctxT(t), &cellv1.DrainMachineRequest{Id: "node-1", Drain: true})
			return err
		}},
		{"6 drain a machine as a scheduler", s.rogue, "scheduler/rogue", "DrainMachine", "role", func(cl *client) error {
			_, err := cl.machines.DrainMachine(ctxT(t), &cellv1.DrainMachineRequest{Id: "node-2", Drain: true})
			return err
		}},
		{"7 re-register another identity's machine", s.fleet, "agent/node", "RegisterMachine", "machine-registrant", func(cl *client) error {
			_, err := cl.machines.RegisterMachine(ctxT(t), &cellv1.RegisterMachineRequest{Id: "node-1", Capacity: res})
			return err
		}},
		{"7 register another agent's machine", s.evil, "agent/evil", "RegisterMachine", "own-machine", func(cl *client) error {
			_, err := cl.machines.RegisterMachine(ctxT(t), &cellv1.RegisterMachineRequest{Id: "node-1", Capacity: res})
			return err
		}},
		{"8 overstate another machine's capacity", s.evil, "agent/evil", "RegisterMachine", "own-machine", func(cl *client) error {
			_, err := cl.machines.RegisterMachine(ctxT(t), &cellv1.RegisterMachineRequest{Id: "node-2", Capacity: huge})
			return err
		}},
		{"8 overstate a machine registered by another identity", s.fleet, "agent/node", "RegisterMachine", "machine-registrant", func(cl *client) error {
			_, err := cl.machines.RegisterMachine(ctxT(t), &cellv1.RegisterMachineRequest{Id: "node-2", Capacity: huge})
			return err
		}},
		{"9 stop another tenant's job", s.mallory, "user/mallory", "StopJob", "tenant", func(cl *client) error {
			_, err := cl.jobs.StopJob(ctxT(t), &cellv1.StopJobRequest{IdOrName: "a-prod"})
			return err
		}},
		{"9 stop a job as a scheduler", s.rogue, "scheduler/rogue", "StopJob", "role", func(cl *client) error {
			_, err := cl.jobs.StopJob(ctxT(t), &cellv1.StopJobRequest{IdOrName: p})
			return err
		}},
		{"10 overwrite a built-in scheduler's figures", s.rogue, "scheduler/rogue", "ReportSchedulerStats", "own-scheduler", func(cl *client) error {
			_, err := cl.schedulers.ReportSchedulerStats(ctxT(t), &cellv1.ReportSchedulerStatsRequest{Name: "batch", Stats: &cellv1.SchedulerStats{Busyness: 1}})
			return err
		}},
		{"10 report figures as a user", s.mallory, "user/mallory", "ReportSchedulerStats", "role", func(cl *client) error {
			_, err := cl.schedulers.ReportSchedulerStats(ctxT(t), &cellv1.ReportSchedulerStatsRequest{Name: "batch", Stats: &cellv1.SchedulerStats{Busyness: 1}})
			return err
		}},
		{"10 register as another scheduler", s.rogue, "scheduler/rogue", "RegisterScheduler", "own-scheduler", func(cl *client) error {
			_, err := cl.schedulers.RegisterScheduler(ctxT(t), &cellv1.RegisterSchedulerRequest{Name: "batch2"})
			return err
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := s.state(t)
			counted := s.c.deniedCount(tc.method, tc.rule)
			err := tc.call(tc.who)
			st := status.Convert(err)
			switch {
			case err == nil:
				t.Fatal("the attack succeeded")
			case tc.rule == "":
				// The TLS handshake refuses a client without a
				// certificate of the cell: no call reaches the server.
				if c := st.Code(); c != codes.Unavailable && c != codes.Unauthenticated {
					t.Fatalf("got %v, want the connection refused", err)
				}
				s.assertUnchanged(t, before)
				return
			case st.Code() != codes.PermissionDenied || !strings.Contains(st.Message(), tc.identity+" may not "+tc.method) ||
				!strings.Contains(st.Message(), "(rule "+tc.rule+")"):
				t.Fatalf("got %v, want PermissionDenied naming %s, %s and rule %s", err, tc.identity, tc.method, tc.rule)
			}
			if got := s.c.deniedCount(tc.method, tc.rule); got != counted+1 {
				t.Errorf("omegacell_auth_denied_total{method=%q,reason=%q} went %v → %v, want +1", tc.method, tc.rule, counted, got)
			}
			s.assertUnchanged(t, before)
		})
	}
}

// TestAuthzStoreFences covers the attacks that pass the table and are
// refused by the state: an agent reporting for a task not on its machine
// (3), and a legitimate scheduler trying to preempt a production task of
// another tenant for a batch job (5). Nothing changes.
func TestAuthzStoreFences(t *testing.T) {
	s := newAuthzScene(t)
	before := s.state(t)
	rr, err := s.agent2.agent.ReportTaskStates(ctxT(t), &cellv1.ReportTaskStatesRequest{MachineId: "node-2",
		Updates: []*cellv1.TaskStateUpdate{update(s.prod.Id, 0, 1, cellv1.TaskState_TASK_STATE_SUCCEEDED, 0)}})
	if err != nil || rr.Results[0].Applied || !strings.Contains(rr.Results[0].Reason, "not placed on machine node-2") {
		t.Fatalf("agent of node-2 reporting node-1's task: %v %v", rr, err)
	}
	res := &cellv1.Resources{CpuMilli: 2000, MemoryBytes: gib}
	for _, victim := range []uint32{0, 1} {
		cr, err := s.batch.state.Commit(ctxT(t), &cellv1.CommitRequest{Scheduler: "batch",
			Claims:      []*cellv1.Claim{claim(s.bjob.Id, 0, "node-1", res)},
			Preemptions: []*cellv1.TaskRef{{JobId: s.prod.Id, Index: victim}}})
		if err != nil || cr.Accepted != 0 || len(cr.Preempted) != 0 || len(cr.PreemptionErrors) == 0 {
			t.Fatalf("batch job preempting a production task: %v %v", cr, err)
		}
	}
	s.assertUnchanged(t, before, true)
}

// TestAuthzOwnersSeeTheirs checks what each role is shown: the owning
// tenant and the agent running a task see the job whole; schedulers and a
// simulated fleet see it redacted; agents see only their machines; users
// only their tenants.
func TestAuthzOwnersSeeTheirs(t *testing.T) {
	s := newAuthzScene(t)
	secret := func(j *cellv1.Job) bool {
		tt := j.GetSpec().GetTask()
		return tt.GetCommand() != "" || len(tt.GetArgs()) > 0 || len(tt.GetEnv()) > 0 || tt.GetHealthCheck().GetHttpGetUrl() != ""
	}
	getJob := func(cl *client) *cellv1.Job {
		t.Helper()
		r, err := cl.jobs.GetJob(ctxT(t), &cellv1.GetJobRequest{IdOrName: "a-prod"})
		if err != nil {
			t.Fatal(err)
		}
		return r.Job
	}
	for _, x := range []struct {
		name string
		cl   *client
		full bool
	}{{"admin", s.admin, true}, {"owning user", s.alice, true}, {"agent running it", s.agent1, true},
		{"scheduler", s.batch, false}, {"other scheduler", s.rogue, false}, {"fleet", s.fleet, false}} {
		j := getJob(x.cl)
		if secret(j) != x.full {
			t.Errorf("%s: GetJob shows command/args/env %v, want %v: %v", x.name, secret(j), x.full, j.Spec.Task)
		}
		if j.Spec.Task.Resources.GetCpuMilli() != 2000 || j.Spec.Priority != 200 || j.Spec.Task.HealthCheck.GetIntervalMs() != 1000 {
			t.Errorf("%s: lost what schedulers need: %v", x.name, j.Spec)
		}
	}

	snap, err := readSnapshot(t, s.rogue)
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Machines) != 2 || len(snap.Jobs) != 2 || len(snap.Tasks) != 3 {
		t.Errorf("scheduler snapshot: %d machines %d jobs %d tasks, want 2 2 3", len(snap.Machines), len(snap.Jobs), len(snap.Tasks))
	}
	for _, j := range snap.Jobs {
		if secret(j) {
			t.Errorf("scheduler snapshot shows %s's secrets", j.Spec.Name)
		}
	}
	snap, err = readSnapshot(t, s.agent2)
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Machines) != 1 || snap.Machines[0].Id != "node-2" || len(snap.Tasks) != 0 || len(snap.Jobs) != 0 {
		t.Errorf("agent/node-2 snapshot: %v", snap)
	}
	if snap.Machines[0].RegisteredBy != "agent/node-2" {
		t.Errorf("registered_by = %q", snap.Machines[0].RegisteredBy)
	}

	for _, x := range []struct {
		cl   *client
		want []string
		full bool
	}{{s.mallory, []string{"b-job"}, true}, {s.alice, []string{"a-prod"}, true}, {s.batch, []string{"b-job", "a-prod"}, false}} {
		r, err := x.cl.jobs.ListJobs(ctxT(t), &cellv1.ListJobsRequest{})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, j := range r.Jobs {
			got = append(got, j.Job.Spec.Name)
			if j.Job.Spec.Name == "a-prod" && secret(j.Job) != x.full {
				t.Errorf("ListJobs: a-prod secrets shown %v, want %v", secret(j.Job), x.full)
			}
		}
		if strings.Join(got, ",") != strings.Join(x.want, ",") {
			t.Errorf("ListJobs = %v, want %v", got, x.want)
		}
	}

	// A scheduler's watch carries the job redacted; an agent's watch is
	// forced to its machine even when it asks for none.
	stream, err := s.rogue.state.Watch(ctxT(t), &cellv1.WatchRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var jobs int
	for jobs < 2 {
		r, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		for _, ch := range r.Changes {
			if j := ch.GetJob(); j != nil {
				jobs++
				if secret(j) {
					t.Fatalf("scheduler watch shows %s's secrets at revision %d", j.Spec.Name, r.Revision)
				}
			}
		}
	}
	astream, err := s.agent2.state.Watch(ctxT(t), &cellv1.WatchRequest{ProgressIntervalMs: 100})
	if err != nil {
		t.Fatal(err)
	}
	for {
		r, err := astream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if r.ProgressNotify {
			break
		}
		for _, ch := range r.Changes {
			if ch.GetMachine().GetId() != "node-2" {
				t.Fatalf("agent/node-2's watch got %v", ch)
			}
		}
	}

	// A fleet speaking for every machine follows the whole cell (the
	// shared encoding), jobs redacted.
	fstream, err := s.fleet.state.Watch(ctxT(t), &cellv1.WatchRequest{ProgressIntervalMs: 100})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for {
		r, err := fstream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if r.ProgressNotify {
			break
		}
		for _, ch := range r.Changes {
			switch {
			case ch.GetJob() != nil:
				seen[ch.GetJob().Spec.Name] = true
				if secret(ch.GetJob()) {
					t.Fatalf("fleet watch shows %s's secrets", ch.GetJob().Spec.Name)
				}
			case ch.GetMachine() != nil:
				seen[ch.GetMachine().Id] = true
			case ch.GetTask() != nil:
				seen["task"] = true
			}
		}
	}
	if !seen["a-prod"] || !seen["b-job"] || !seen["node-1"] || !seen["node-2"] || !seen["task"] {
		t.Errorf("fleet watch saw %v", seen)
	}

	tp, err := s.mallory.tenants.ListTenants(ctxT(t), &cellv1.ListTenantsRequest{})
	if err != nil || len(tp.Tenants) != 0 {
		t.Errorf("mallory sees tenants %v %v", tp, err)
	}
	tp, err = s.alice.tenants.ListTenants(ctxT(t), &cellv1.ListTenantsRequest{})
	if err != nil || len(tp.Tenants) != 1 || tp.Tenants[0].MaxBand != cellv1.PriorityBand_PRIORITY_BAND_PRODUCTION {
		t.Errorf("alice sees tenants %v %v", tp, err)
	}
	if _, err := s.mallory.tenants.GetTenant(ctxT(t), &cellv1.GetTenantRequest{Name: "team-a"}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("mallory gets team-a: %v", err)
	}
	if got, err := s.alice.tenants.GetTenant(ctxT(t), &cellv1.GetTenantRequest{Name: "team-a"}); err != nil || got.Tenant.GetName() != "team-a" {
		t.Errorf("alice gets team-a: %v %v", got, err)
	}
}

// TestAuthzTenantPolicyIsDurable: a policy survives a restart and keeps
// deciding the band a tenant's users may submit at.
func TestAuthzTenantPolicyIsDurable(t *testing.T) {
	c := newTestCell(t, Options{})
	if _, _, err := c.store.CreateTenant(ctxT(t), &cellv1.Tenant{Name: "team-a", MaxBand: cellv1.PriorityBand_PRIORITY_BAND_PRODUCTION}); err != nil {
		t.Fatal(err)
	}
	c.submit(batchSpec("after-policy", 1, 100, gib)) // a revision after the policy's
	c.restart(Options{})
	got, _ := c.store.Tenants()
	if len(got) != 1 || got[0].Name != "team-a" || got[0].MaxBand != cellv1.PriorityBand_PRIORITY_BAND_PRODUCTION || got[0].ModRevision != 1 {
		t.Fatalf("after restart: %v", got)
	}
	if b := c.store.tenantMaxBand("team-a"); b.String() != "production" {
		t.Errorf("team-a's band %s", b)
	}
	if b := c.store.tenantMaxBand("team-z"); b.String() != "batch" {
		t.Errorf("default band %s", b)
	}
}

// TestAuthzRegistrantIsDurable: after a restart a machine still refuses
// every agent identity but the one that registered it; admin (by "")
// keeps the registrant.
func TestAuthzRegistrantIsDurable(t *testing.T) {
	c := newTestCell(t, Options{})
	req := &cellv1.RegisterMachineRequest{Id: "node-1", Capacity: &cellv1.Resources{CpuMilli: 1000, MemoryBytes: gib}}
	if _, _, err := c.store.RegisterMachineAs(ctxT(t), req, "agent/node-1"); err != nil {
		t.Fatal(err)
	}
	c.restart(Options{})
	bigger := &cellv1.RegisterMachineRequest{Id: "node-1", Capacity: &cellv1.Resources{CpuMilli: 500_000_000, MemoryBytes: gib}}
	_, _, err := c.store.RegisterMachineAs(ctxT(t), bigger, "agent/node")
	if d, ok := err.(*authz.Denial); !ok || d.Rule != authz.RuleRegistrant {
		t.Fatalf("another identity re-registered: %v", err)
	}
	m, _, err := c.store.RegisterMachineAs(ctxT(t), req, "")
	if err != nil || m.RegisteredBy != "agent/node-1" {
		t.Fatalf("admin's registration: %v %v", m, err)
	}
}
