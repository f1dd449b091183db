package cellstate

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
)

func TestPlanReplicas(t *testing.T) {
	s := func(idx uint32, current, healthy bool) slotView {
		return slotView{index: idx, current: current, healthy: healthy}
	}
	retired := func(idx uint32) slotView { return slotView{index: idx, retired: true} }
	oneAtATime := strategy{unavailable: 1}
	for _, tc := range []struct {
		name    string
		slots   []slotView
		count   uint32
		st      strategy
		rolling bool
		want    replicaPlan
	}{
		{"steady", []slotView{s(0, true, true), s(1, true, true)}, 2, oneAtATime, false, replicaPlan{}},
		{"scale up appends", []slotView{s(0, true, true)}, 3, oneAtATime, false, replicaPlan{add: 2}},
		{"scale up reuses retired slots first", []slotView{s(0, true, true), retired(1), retired(2)}, 3, oneAtATime, false,
			replicaPlan{revive: []uint32{1, 2}}},
		{"scale down stops the highest indexes", []slotView{s(0, true, true), s(1, true, false), s(2, true, true), s(3, true, true)}, 2, oneAtATime, false,
			replicaPlan{retire: []uint32{3, 2}}},
		{"unavailable 1: one old replaced", []slotView{s(0, false, true), s(1, false, true), s(2, false, true)}, 3, oneAtATime, true,
			replicaPlan{replace: []uint32{2}}},
		{"unavailable 1: wait while the new one is not healthy", []slotView{s(0, false, true), s(1, false, true), s(2, true, false)}, 3, oneAtATime, true,
			replicaPlan{}},
		{"unavailable 1: next once healthy", []slotView{s(0, false, true), s(1, false, true), s(2, true, true)}, 3, oneAtATime, true,
			replicaPlan{replace: []uint32{1}}},
		{"unhealthy old replicas go first and cost nothing", []slotView{s(0, false, true), s(1, false, false), s(2, false, true)}, 3, oneAtATime, true,
			replicaPlan{replace: []uint32{1}}},
		{"surge 1: a new replica first, then an old retired", []slotView{s(0, false, true), s(1, false, true)}, 2, strategy{surge: 1}, true,
			replicaPlan{add: 1}},
		{"surge 1: old retired once the new one is healthy", []slotView{s(0, false, true), s(1, false, true), s(2, true, true)}, 2, strategy{surge: 1}, true,
			replicaPlan{replace: []uint32{1}}},
		{"surge done: surplus old retired", []slotView{s(0, false, true), s(1, true, true), s(2, true, true)}, 2, strategy{surge: 1}, true,
			replicaPlan{retire: []uint32{0}}},
		{"not rolling: old versions count as current", []slotView{s(0, false, true), s(1, false, true)}, 2, oneAtATime, false, replicaPlan{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := planReplicas(tc.slots, tc.count, tc.st, tc.rolling)
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestResolveStrategy(t *testing.T) {
	for _, tc := range []struct {
		u                  *cellv1.UpdateStrategy
		count              uint32
		surge, unavailable uint32
	}{
		{nil, 6, 2, 1}, // 25% of 6: surge rounds up, unavailable down
		{nil, 2, 1, 0},
		{&cellv1.UpdateStrategy{MaxSurge: &cellv1.IntOrPercent{}, MaxUnavailable: &cellv1.IntOrPercent{Value: 1}}, 6, 0, 1},
		{&cellv1.UpdateStrategy{MaxSurge: &cellv1.IntOrPercent{}, MaxUnavailable: &cellv1.IntOrPercent{}}, 6, 0, 1}, // never stuck
	} {
		st := resolveStrategy(tc.u, tc.count)
		if st.surge != tc.surge || st.unavailable != tc.unavailable || st.deadline != int64(defaultHealthyDeadline) {
			t.Errorf("resolveStrategy(%v, %d) = %+v, want surge %d unavailable %d", tc.u, tc.count, st, tc.surge, tc.unavailable)
		}
	}
}

func webSpec(name string, count uint32, cmd string) *cellv1.JobSpec {
	return &cellv1.JobSpec{
		Name: name, Scheduler: "service", Priority: 100, Count: count, Kind: cellv1.JobKind_JOB_KIND_SERVICE,
		Task: &cellv1.TaskTemplate{Command: cmd, Resources: &cellv1.Resources{CpuMilli: 100, MemoryBytes: 1 << 20}},
	}
}

// fakeAgents plays the schedulers and agents of a test cell: it places
// every pending task on m1 (a pinned one on its machine) and reports
// every assigned task running (and ready when ready says so).
func (c *testCell) fakeAgents(jobID string, ready func(*cellv1.Task) bool) *cellv1.GetJobResponse {
	return c.fakeAgentsWatching(jobID, ready, func(*cellv1.GetJobResponse) {})
}

// fakeAgentsWatching is fakeAgents calling each with every state it reads.
func (c *testCell) fakeAgentsWatching(jobID string, ready func(*cellv1.Task) bool, each func(*cellv1.GetJobResponse)) *cellv1.GetJobResponse {
	c.t.Helper()
	for range 200 {
		r, err := c.jobs.GetJob(ctxT(c.t), &cellv1.GetJobRequest{IdOrName: jobID, IncludeTasks: true})
		if err != nil {
			c.t.Fatal(err)
		}
		each(r)
		changed := false
		for _, tk := range r.Tasks {
			m := "m1" // a system job's task runs on its pinned machine
			if tk.PinnedMachineId != "" {
				m = tk.PinnedMachineId
			}
			switch {
			case tk.State == cellv1.TaskState_TASK_STATE_PENDING:
				c.place(r.Job, tk.Index, m)
				changed = true
			case tk.State == cellv1.TaskState_TASK_STATE_ASSIGNED:
				u := update(jobID, tk.Index, tk.Attempt, cellv1.TaskState_TASK_STATE_RUNNING, 0)
				u.Ready = ready(tk)
				c.report(m, u)
				changed = true
			case tk.State == cellv1.TaskState_TASK_STATE_RUNNING && !tk.Ready && ready(tk) && r.Job.Spec.Task.ReadinessCheck != nil:
				u := update(jobID, tk.Index, tk.Attempt, cellv1.TaskState_TASK_STATE_RUNNING, 0)
				u.Ready = true
				c.report(m, u)
				changed = true
			}
		}
		if !changed {
			return r
		}
	}
	c.t.Fatal("tasks keep changing")
	return nil
}

func TestRollingUpdateKeepsReplicasReady(t *testing.T) {
	c := newTestCell(t, Options{})
	c.addMachine("m1", nil, 64000, 64*gib, 0)
	spec := webSpec("web", 6, "/bin/v1")
	spec.Update = &cellv1.UpdateStrategy{MaxSurge: &cellv1.IntOrPercent{}, MaxUnavailable: &cellv1.IntOrPercent{Value: 1}}
	job := c.submit(spec)
	always := func(*cellv1.Task) bool { return true }
	r := c.fakeAgents(job.Id, always)
	if r.Counts.Ready != 6 || r.Job.Version != 1 {
		t.Fatalf("v1: %v version %d", r.Counts, r.Job.Version)
	}
	v2 := webSpec("web", 6, "/bin/v2")
	v2.Update = spec.Update
	if got := c.submit(v2); got.Id != job.Id || got.Version != 2 || got.Rollout.GetState() != cellv1.RolloutState_ROLLOUT_STATE_RUNNING {
		t.Fatalf("resubmitting a live job's name: %v", got)
	}
	// The store replaces one replica at a time, the fake agents make each
	// ready, and never fewer than 5 are ready.
	reads := 0
	r = c.fakeAgentsWatching(job.Id, always, func(g *cellv1.GetJobResponse) {
		reads++
		if g.Counts.Ready < 5 {
			t.Fatalf("read %d: %d ready", reads, g.Counts.Ready)
		}
	})
	if r.Job.Rollout.State != cellv1.RolloutState_ROLLOUT_STATE_SUCCEEDED || reads < 6 {
		t.Fatalf("rollout after %d reads: %v", reads, r.Job.Rollout)
	}
	r = c.fakeAgents(job.Id, always)
	for _, tk := range r.Tasks {
		if tk.Version != 2 || !tk.Ready {
			t.Errorf("task %d: version %d ready %v", tk.Index, tk.Version, tk.Ready)
		}
	}
	if len(r.Tasks) != 6 || r.Job.Rollout.Updated != 6 || r.Job.Rollout.Healthy != 6 {
		t.Errorf("after the rollout: %d tasks, %v", len(r.Tasks), r.Job.Rollout)
	}
	c.checkInvariant()
}

func TestRolloutFailsAndRevertsAutomatically(t *testing.T) {
	c := newTestCell(t, Options{})
	c.addMachine("m1", nil, 64000, 64*gib, 0)
	probe := &cellv1.HealthCheck{Exec: []string{"/bin/ready"}}
	spec := webSpec("api", 3, "/bin/v1")
	spec.Task.ReadinessCheck = probe
	spec.Update = &cellv1.UpdateStrategy{HealthyDeadlineMs: 300, AutoRevert: true}
	job := c.submit(spec)
	// Version 2's replicas never pass their readiness check.
	readyUnlessV2 := func(tk *cellv1.Task) bool { return tk.Version != 2 }
	c.fakeAgents(job.Id, readyUnlessV2)
	v2 := webSpec("api", 3, "/bin/v2-broken")
	v2.Task.ReadinessCheck, v2.Update = probe, spec.Update
	c.submit(v2)
	deadline := time.Now().Add(20 * time.Second)
	for {
		r := c.fakeAgents(job.Id, readyUnlessV2)
		ro := r.Job.Rollout
		if r.Job.Version == 3 && ro.State == cellv1.RolloutState_ROLLOUT_STATE_SUCCEEDED {
			if ro.Reverts != 2 || !strings.Contains(ro.Message, "version 2 failed") || r.Job.Spec.Task.Command != "/bin/v1" {
				t.Fatalf("revert: %v, command %s", ro, r.Job.Spec.Task.Command)
			}
			if r.Counts.Ready != 3 {
				t.Fatalf("after the revert %d ready", r.Counts.Ready)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no automatic revert: version %d, %v", r.Job.Version, ro)
		}
		time.Sleep(50 * time.Millisecond)
	}
	h, err := cellv1.NewJobVersionServiceClient(c.conn).ListJobVersions(ctxT(t), &cellv1.ListJobVersionsRequest{IdOrName: "api"})
	if err != nil || len(h.Versions) != 3 || h.Versions[0].Cause != "auto-revert of version 2" {
		t.Fatalf("history: %v %v", h, err)
	}
}

func TestScaleHistoryRevertAndRestart(t *testing.T) {
	c := newTestCell(t, Options{})
	c.addMachine("m1", nil, 64000, 64*gib, 0)
	vs := cellv1.NewJobVersionServiceClient(c.conn)
	job := c.submit(webSpec("web", 3, "/bin/v1"))
	always := func(*cellv1.Task) bool { return true }
	c.fakeAgents(job.Id, always)

	if _, err := vs.ScaleJob(ctxT(t), &cellv1.ScaleJobRequest{IdOrName: "web", Count: 5}); err != nil {
		t.Fatal(err)
	}
	r := c.fakeAgents(job.Id, always)
	if r.Counts.Ready != 5 || len(r.Tasks) != 5 {
		t.Fatalf("scaled up: %v, %d slots", r.Counts, len(r.Tasks))
	}
	if _, err := vs.ScaleJob(ctxT(t), &cellv1.ScaleJobRequest{IdOrName: "web", Count: 2}); err != nil {
		t.Fatal(err)
	}
	r = c.fakeAgents(job.Id, always)
	if r.Counts.Ready != 2 || r.Counts.Retired != 3 || r.Counts.Killed != 0 || r.Job.TaskSlots != 5 {
		t.Fatalf("scaled down: %v, slots %d", r.Counts, r.Job.TaskSlots)
	}
	for _, tk := range r.Tasks[2:] {
		if tk.State != cellv1.TaskState_TASK_STATE_KILLED {
			t.Errorf("task %d should be stopped (the highest indexes go): %v", tk.Index, tk.State)
		}
	}
	// The change survives a restart, versions too.
	c.restart(Options{})
	vs = cellv1.NewJobVersionServiceClient(c.conn)
	h, err := vs.ListJobVersions(ctxT(t), &cellv1.ListJobVersionsRequest{IdOrName: "web"})
	if err != nil || h.Current != 3 || len(h.Versions) != 3 || h.Versions[0].Spec.Count != 2 || h.Versions[2].Spec.Count != 3 {
		t.Fatalf("history after restart: %v %v", h, err)
	}
	if _, err := vs.RevertJob(ctxT(t), &cellv1.RevertJobRequest{IdOrName: "web", Version: 1}); err != nil {
		t.Fatal(err)
	}
	r = c.fakeAgents(job.Id, always)
	if r.Counts.Ready != 3 || r.Job.Version != 4 || r.Job.TaskSlots != 5 {
		t.Fatalf("reverted to version 1 (count 3): %v version %d", r.Counts, r.Job.Version)
	}
	if _, err := vs.RevertJob(ctxT(t), &cellv1.RevertJobRequest{IdOrName: "web", Version: 9}); status.Code(err) != codes.NotFound {
		t.Fatalf("revert to a version never made: %v", err)
	}
	// Only the newest ten are kept.
	for n := uint32(1); n <= 12; n++ {
		if _, err := vs.ScaleJob(ctxT(t), &cellv1.ScaleJobRequest{IdOrName: "web", Count: 1 + n%2}); err != nil {
			t.Fatal(err)
		}
	}
	c.restart(Options{})
	h, err = cellv1.NewJobVersionServiceClient(c.conn).ListJobVersions(ctxT(t), &cellv1.ListJobVersionsRequest{IdOrName: "web"})
	if err != nil || len(h.Versions) != 10 || h.Versions[0].Version != 16 || h.Versions[9].Version != 7 {
		t.Fatalf("kept versions: %d, newest %d", len(h.Versions), h.Versions[0].GetVersion())
	}
	c.checkInvariant()
}

func TestUpdateRefusals(t *testing.T) {
	c := newTestCell(t, Options{})
	c.submit(webSpec("web", 2, "/bin/v1"))
	batch := batchSpec("web", 2, 100, 1<<20)
	if _, err := c.jobs.SubmitJob(ctxT(t), &cellv1.SubmitJobRequest{Spec: batch}); status.Code(err) != codes.FailedPrecondition ||
		!strings.Contains(err.Error(), "spec.scheduler") {
		t.Errorf("changing the scheduler: %v", err)
	}
	withUpdate := batchSpec("b", 1, 100, 1<<20)
	withUpdate.Update = &cellv1.UpdateStrategy{AutoRevert: true}
	if _, err := c.jobs.SubmitJob(ctxT(t), &cellv1.SubmitJobRequest{Spec: withUpdate}); status.Code(err) != codes.InvalidArgument ||
		!strings.Contains(err.Error(), "spec.update") {
		t.Errorf("update on a batch job: %v", err)
	}
	same, err := c.jobs.SubmitJob(ctxT(t), &cellv1.SubmitJobRequest{Spec: webSpec("web", 2, "/bin/v1")})
	if err != nil || same.Revision != 0 || same.Job.Version != 1 {
		t.Errorf("an identical spec changes nothing: %v %v", same, err)
	}
	// Batch: a new version applies to tasks not started yet.
	b := c.submit(batchSpec("crunch", 2, 100, 1<<20))
	c.addMachine("m1", nil, 64000, 64*gib, 0)
	c.place(b, 0, "m1")
	nb := batchSpec("crunch", 3, 200, 1<<20)
	if got := c.submit(nb); got.Version != 2 || got.Rollout != nil {
		t.Fatalf("batch update: %v", got)
	}
	r, _ := c.jobs.GetJob(ctxT(t), &cellv1.GetJobRequest{IdOrName: "crunch", IncludeTasks: true})
	if cpu := r.Tasks[0].Resources.CpuMilli; cpu != 100 || r.Tasks[0].Version != 1 {
		t.Errorf("the started task keeps version 1: cpu %d version %d", cpu, r.Tasks[0].Version)
	}
	for _, tk := range r.Tasks[1:] {
		if tk.Resources.CpuMilli != 200 || tk.Version != 2 || tk.State != cellv1.TaskState_TASK_STATE_PENDING {
			t.Errorf("task %d not started takes version 2: %v", tk.Index, tk)
		}
	}
}

func TestPlanJobCounts(t *testing.T) {
	c := newTestCell(t, Options{})
	c.addMachine("m1", map[string]string{"zone": "a"}, 4000, 4*gib, 0)
	vs := cellv1.NewJobVersionServiceClient(c.conn)
	plan := func(spec *cellv1.JobSpec) *cellv1.PlanJobResponse {
		t.Helper()
		p, err := vs.PlanJob(ctxT(t), &cellv1.PlanJobRequest{Spec: spec})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	if p := plan(webSpec("web", 3, "/bin/v1")); p.Exists || p.Create != 3 || !p.Feasibility.Now || !p.Feasibility.Ever {
		t.Errorf("a new job: %v", p)
	}
	job := c.submit(webSpec("web", 3, "/bin/v1"))
	c.fakeAgents(job.Id, func(*cellv1.Task) bool { return true })
	if p := plan(webSpec("web", 3, "/bin/v1")); !p.Exists || len(p.Diff) != 0 {
		t.Errorf("no change: %v", p)
	}
	p := plan(webSpec("web", 5, "/bin/v2"))
	if p.Create != 2 || p.Replace != 3 || len(p.Diff) != 2 || p.Diff[0].Path != "count" || p.Diff[1].Path != "task.command" {
		t.Errorf("count and command: %v", p)
	}
	huge := webSpec("web", 1, "/bin/v1")
	huge.Task.Resources.CpuMilli = 64000
	if p := plan(huge); p.Feasibility.Ever || !strings.Contains(p.Feasibility.Reason, "too little cpu") || p.Stop != 2 {
		t.Errorf("infeasible scale-down: %v", p)
	}
	mars := webSpec("web", 3, "/bin/v1")
	mars.Task.Constraints = []*cellv1.Constraint{{Key: "zone", Op: cellv1.ConstraintOp_CONSTRAINT_OP_IN, Values: []string{"mars"}}}
	if p := plan(mars); p.Feasibility.Ever || !strings.Contains(p.Feasibility.Reason, "zone") {
		t.Errorf("zone = mars: %v", p.Feasibility)
	}
	r, _ := c.jobs.GetJob(ctxT(t), &cellv1.GetJobRequest{IdOrName: "web"})
	if r.Job.Version != 1 {
		t.Error("plan changed the job")
	}
}
