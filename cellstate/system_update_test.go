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

// daemonSpec is a system job on every machine.
func daemonSpec(name, cmd string, u *cellv1.UpdateStrategy) *cellv1.JobSpec {
	spec := webSpec(name, 1, cmd)
	spec.Kind, spec.Update = cellv1.JobKind_JOB_KIND_SYSTEM, u
	return spec
}

// TestSystemRollingUpdate: a new version of a system job replaces its
// tasks in place, at most maxUnavailable not ready at any step, and
// finishes with every machine on the new version.
func TestSystemRollingUpdate(t *testing.T) {
	for _, tc := range []struct {
		name    string
		update  *cellv1.UpdateStrategy
		unavail uint32
	}{
		{"default is one at a time", nil, 1},
		{"maxUnavailable 1", &cellv1.UpdateStrategy{MaxUnavailable: &cellv1.IntOrPercent{Value: 1}}, 1},
		{"maxUnavailable 2, maxSurge 0", &cellv1.UpdateStrategy{MaxSurge: &cellv1.IntOrPercent{}, MaxUnavailable: &cellv1.IntOrPercent{Value: 2}}, 2},
		{"maxUnavailable 40%", &cellv1.UpdateStrategy{MaxUnavailable: &cellv1.IntOrPercent{Value: 40, Percent: true}}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newTestCell(t, Options{})
			for i := 1; i <= 5; i++ {
				c.addMachine(fmt.Sprintf("m%d", i), nil, 4000, 4*gib, 0)
			}
			job := c.submit(daemonSpec("logs", "/bin/v1", tc.update))
			always := func(*cellv1.Task) bool { return true }
			if r := c.fakeAgents(job.Id, always); r.Counts.Ready != 5 || len(r.Tasks) != 5 {
				t.Fatalf("v1: %v, %d tasks", r.Counts, len(r.Tasks))
			}
			got := c.submit(daemonSpec("logs", "/bin/v2", tc.update))
			if got.Version != 2 || got.Rollout.GetState() != cellv1.RolloutState_ROLLOUT_STATE_RUNNING || got.Rollout.Desired != 5 {
				t.Fatalf("v2 submitted: %v", got)
			}
			reads, sawMin := 0, uint32(5)
			r := c.fakeAgentsWatching(job.Id, always, func(g *cellv1.GetJobResponse) {
				reads++
				if len(g.Tasks) != 5 {
					t.Fatalf("read %d: %d tasks, want 5 (no surge)", reads, len(g.Tasks))
				}
				notReady := uint32(0)
				for _, tk := range g.Tasks {
					if !tk.Ready {
						notReady++
					}
				}
				if notReady > tc.unavail {
					t.Fatalf("read %d: %d tasks not ready, maxUnavailable %d", reads, notReady, tc.unavail)
				}
				sawMin = min(sawMin, 5-notReady)
			})
			if ro := r.Job.Rollout; ro.State != cellv1.RolloutState_ROLLOUT_STATE_SUCCEEDED || ro.Updated != 5 || ro.Healthy != 5 || ro.Desired != 5 {
				t.Fatalf("rollout after %d reads: %v", reads, ro)
			}
			if sawMin != 5-tc.unavail || reads < int(5/tc.unavail) {
				t.Errorf("%d reads, fewest ready %d: the rollout did not go in waves of %d", reads, sawMin, tc.unavail)
			}
			seen := map[string]bool{}
			for _, tk := range r.Tasks {
				if tk.Version != 2 || !tk.Ready || tk.MachineId != tk.PinnedMachineId {
					t.Errorf("task %d: version %d ready %v on %s pinned to %s", tk.Index, tk.Version, tk.Ready, tk.MachineId, tk.PinnedMachineId)
				}
				seen[tk.PinnedMachineId] = true
			}
			if len(seen) != 5 {
				t.Errorf("tasks cover %v, want 5 machines", seen)
			}
			c.checkInvariant()
		})
	}
}

// TestSystemRolloutFailsAndReverts: a system job's version whose tasks
// never become ready stops after the first wave and is rolled back.
func TestSystemRolloutFailsAndReverts(t *testing.T) {
	c := newTestCell(t, Options{})
	for i := 1; i <= 5; i++ {
		c.addMachine(fmt.Sprintf("m%d", i), nil, 4000, 4*gib, 0)
	}
	probe := &cellv1.HealthCheck{Exec: []string{"/bin/ready"}}
	u := &cellv1.UpdateStrategy{HealthyDeadlineMs: 300, AutoRevert: true}
	spec := daemonSpec("logs", "/bin/v1", u)
	spec.Task.ReadinessCheck = probe
	job := c.submit(spec)
	readyUnlessV2 := func(tk *cellv1.Task) bool { return tk.Version != 2 }
	c.fakeAgents(job.Id, readyUnlessV2)
	v2 := daemonSpec("logs", "/bin/v2-broken", u)
	v2.Task.ReadinessCheck = probe
	c.submit(v2)
	deadline := time.Now().Add(20 * time.Second)
	for {
		r := c.fakeAgents(job.Id, readyUnlessV2)
		v2Tasks := 0
		for _, tk := range r.Tasks {
			if tk.Version == 2 {
				v2Tasks++
			}
		}
		if v2Tasks > 1 {
			t.Fatalf("%d tasks took the broken version; maxUnavailable 1 allows one", v2Tasks)
		}
		ro := r.Job.Rollout
		if r.Job.Version == 3 && ro.State == cellv1.RolloutState_ROLLOUT_STATE_SUCCEEDED {
			if ro.Reverts != 2 || !strings.Contains(ro.Message, "version 2 failed") || r.Job.Spec.Task.Command != "/bin/v1" {
				t.Fatalf("revert: %v, command %s", ro, r.Job.Spec.Task.Command)
			}
			if r.Counts.Ready != 5 || v2Tasks != 0 {
				t.Fatalf("after the revert %d ready, %d on version 2", r.Counts.Ready, v2Tasks)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no automatic revert: version %d, %v", r.Job.Version, ro)
		}
		time.Sleep(50 * time.Millisecond)
	}
	c.checkInvariant()
}

// TestSystemUpdateRefusesSurge: a system job has one task per machine;
// a nonzero maxSurge is refused naming the field.
func TestSystemUpdateRefusesSurge(t *testing.T) {
	c := newTestCell(t, Options{})
	c.addMachine("m1", nil, 4000, 4*gib, 0)
	for _, tc := range []struct {
		surge *cellv1.IntOrPercent
		want  codes.Code
	}{
		{&cellv1.IntOrPercent{Value: 1}, codes.InvalidArgument},
		{&cellv1.IntOrPercent{Value: 25, Percent: true}, codes.InvalidArgument},
		{&cellv1.IntOrPercent{}, codes.OK},
		{nil, codes.OK},
	} {
		spec := daemonSpec("d", "/bin/v1", &cellv1.UpdateStrategy{MaxSurge: tc.surge})
		_, err := c.jobs.SubmitJob(ctxT(t), &cellv1.SubmitJobRequest{Spec: spec})
		if status.Code(err) != tc.want || (err != nil && !strings.Contains(err.Error(), "spec.update.max_surge")) {
			t.Errorf("maxSurge %v: %v, want %v naming spec.update.max_surge", tc.surge, err, tc.want)
		}
	}
}

// TestSystemPlanJob: planning a system job's new version counts its tasks
// on machines it covers now, whatever count the spec says.
func TestSystemPlanJob(t *testing.T) {
	c := newTestCell(t, Options{})
	for i := 1; i <= 3; i++ {
		c.addMachine(fmt.Sprintf("m%d", i), nil, 4000, 4*gib, 0)
	}
	job := c.submit(daemonSpec("logs", "/bin/v1", nil))
	c.fakeAgents(job.Id, func(*cellv1.Task) bool { return true })
	if _, err := c.machines.DrainMachine(ctxT(t), &cellv1.DrainMachineRequest{Id: "m3", Drain: true}); err != nil {
		t.Fatal(err)
	}
	vs := cellv1.NewJobVersionServiceClient(c.conn)
	for _, tc := range []struct {
		cmd              string
		replace, inPlace uint32
		diff             int
	}{
		{"/bin/v1", 0, 0, 0},
		{"/bin/v2", 2, 0, 1},
	} {
		p, err := vs.PlanJob(ctxT(t), &cellv1.PlanJobRequest{Spec: daemonSpec("logs", tc.cmd, nil)})
		if err != nil {
			t.Fatal(err)
		}
		if p.Replace != tc.replace || p.InPlace != tc.inPlace || p.Create != 0 || p.Stop != 0 || len(p.Diff) != tc.diff {
			t.Errorf("%s: %v", tc.cmd, p)
		}
	}
	// Resubmitting the same spec changes nothing (count is the tasks').
	same, err := c.jobs.SubmitJob(ctxT(t), &cellv1.SubmitJobRequest{Spec: daemonSpec("logs", "/bin/v1", nil)})
	if err != nil || same.Job.Version != 1 {
		t.Errorf("same spec: %v %v", same, err)
	}
	got := c.submit(daemonSpec("logs", "/bin/v2", nil))
	if got.Rollout.GetDesired() != 2 || got.Spec.Count != 3 {
		t.Errorf("v2 on 2 of 3 machines: count %d, %v", got.Spec.Count, got.Rollout)
	}
	r := c.fakeAgents(job.Id, func(*cellv1.Task) bool { return true })
	if ro := r.Job.Rollout; ro.State != cellv1.RolloutState_ROLLOUT_STATE_SUCCEEDED || ro.Updated != 2 {
		t.Errorf("rollout with a drained machine: %v", ro)
	}
	c.checkInvariant()
}

// TestSystemRolloutResumesAfterRestart: the rollout is durable state; a
// restarted store carries it on in waves.
func TestSystemRolloutResumesAfterRestart(t *testing.T) {
	c := newTestCell(t, Options{})
	for i := 1; i <= 4; i++ {
		c.addMachine(fmt.Sprintf("m%d", i), nil, 4000, 4*gib, 0)
	}
	always := func(*cellv1.Task) bool { return true }
	job := c.submit(daemonSpec("logs", "/bin/v1", nil))
	c.fakeAgents(job.Id, always)
	c.submit(daemonSpec("logs", "/bin/v2", nil))
	c.restart(Options{})
	r := c.fakeAgentsWatching(job.Id, always, func(g *cellv1.GetJobResponse) {
		if g.Counts.Ready < 3 {
			t.Fatalf("after the restart %d of 4 ready", g.Counts.Ready)
		}
	})
	if ro := r.Job.Rollout; ro.State != cellv1.RolloutState_ROLLOUT_STATE_SUCCEEDED || ro.Updated != 4 {
		t.Fatalf("rollout after a restart: %v", ro)
	}
	c.checkInvariant()
}
