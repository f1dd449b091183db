package cellstate

import (
	"fmt"
	"strings"
	"testing"

	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
)

// eventLine writes an event without its time, for comparison.
func eventLine(e *cellv1.TaskEvent) string {
	kind := strings.TrimPrefix(e.Kind.String(), "TASK_EVENT_KIND_")
	s := fmt.Sprintf("%d %s", e.Attempt, kind)
	if e.MachineId != "" {
		s += " on " + e.MachineId
	}
	if e.Scheduler != "" {
		s += " by " + e.Scheduler
	}
	if e.ExitCode != 0 {
		s += fmt.Sprintf(" code %d", e.ExitCode)
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

func eventLines(t *cellv1.Task) []string {
	var out []string
	for i, e := range t.Events {
		if e.TimeUnixNano == 0 || (i > 0 && e.TimeUnixNano < t.Events[i-1].TimeUnixNano) {
			out = append(out, fmt.Sprintf("BAD TIME %d", e.TimeUnixNano))
		}
		out = append(out, eventLine(e))
	}
	return out
}

func TestTaskEventsAcrossAttemptsAndRestart(t *testing.T) {
	c := newTestCell(t, Options{})
	c.addMachine("m1", nil, 4000, 4*gib, 0)
	c.addMachine("m2", nil, 4000, 4*gib, 0)
	spec := batchSpec("flaky", 2, 1000, gib)
	spec.RetryLimit = 2
	job := c.submit(spec)

	// Attempt 1: placed, started, failed with 3.
	c.place(job, 0, "m1")
	c.report("m1", update(job.Id, 0, 1, cellv1.TaskState_TASK_STATE_RUNNING, 0))
	c.report("m1", update(job.Id, 0, 1, cellv1.TaskState_TASK_STATE_FAILED, 3))
	// Attempt 2: placed on m2, lost when m2 is drained.
	c.place(job, 0, "m2")
	c.report("m2", update(job.Id, 0, 2, cellv1.TaskState_TASK_STATE_RUNNING, 0))
	if _, err := c.machines.DrainMachine(ctxT(t), &cellv1.DrainMachineRequest{Id: "m2", Drain: true}); err != nil {
		t.Fatal(err)
	}
	// Attempts 3 and 4 fail: the third failure is past the retry limit.
	// Only the last three attempts keep their events.
	for _, a := range []uint32{3, 4} {
		c.place(job, 0, "m1")
		c.report("m1", update(job.Id, 0, a, cellv1.TaskState_TASK_STATE_FAILED, int32(a)))
	}
	want := []string{
		"2 PLACED on m2 by batch", "2 STARTED on m2", "2 EVICTED on m2: machine drained",
		"3 PLACED on m1 by batch", "3 FAILED on m1 code 3",
		"4 PLACED on m1 by batch", "4 FAILED on m1 code 4",
	}
	check := func(when string) {
		t.Helper()
		tk := c.task(job.Id, 0)
		if got := eventLines(tk); strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("%s: events:\n%s\nwant:\n%s", when, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	}
	// The job failed (3 failures > retry limit 2): the failed task reads
	// failed with its exit code, not killed, and is counted failed.
	got, _ := c.jobs.GetJob(ctxT(t), &cellv1.GetJobRequest{IdOrName: job.Id, IncludeTasks: true})
	if got.Job.State != cellv1.JobState_JOB_STATE_FAILED {
		t.Fatalf("job %v, want failed", got.Job.State)
	}
	if tk := got.Tasks[0]; tk.State != cellv1.TaskState_TASK_STATE_FAILED || tk.ExitCode != 4 {
		t.Errorf("failed task reads %v exit %d, want failed exit 4", tk.State, tk.ExitCode)
	}
	if got.Counts.Failed != 1 || got.Counts.Killed != 1 {
		t.Errorf("counts %v, want 1 failed (task 0) and 1 killed (task 1, never placed)", got.Counts)
	}
	check("live")
	c.restart(Options{})
	check("after a restart")
}

func TestTaskEventsDrainPreemptStop(t *testing.T) {
	c := newTestCell(t, Options{})
	c.addMachine("m1", nil, 2000, 4*gib, 0)
	c.addMachine("m2", nil, 2000, 4*gib, 0)
	low := c.submit(batchSpec("low", 1, 2000, gib))
	c.place(low, 0, "m1")
	c.report("m1", update(low.Id, 0, 1, cellv1.TaskState_TASK_STATE_RUNNING, 0))
	if _, err := c.machines.DrainMachine(ctxT(t), &cellv1.DrainMachineRequest{Id: "m1", Drain: true}); err != nil {
		t.Fatal(err)
	}
	c.place(low, 0, "m2")
	hiSpec := batchSpec("high", 1, 2000, gib)
	hiSpec.Scheduler, hiSpec.Priority = "service", 200
	hi := c.submit(hiSpec)
	r, err := c.state.Commit(ctxT(t), &cellv1.CommitRequest{Scheduler: "service",
		Claims:      []*cellv1.Claim{claim(hi.Id, 0, "m2", hi.Spec.Task.Resources)},
		Preemptions: []*cellv1.TaskRef{{JobId: low.Id, Index: 0}}})
	if err != nil || r.Accepted != 1 {
		t.Fatalf("preempting commit: %v %v", r, err)
	}
	if _, err := c.jobs.StopJob(ctxT(t), &cellv1.StopJobRequest{IdOrName: "low"}); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"1 PLACED on m1 by batch", "1 STARTED on m1", "1 EVICTED on m1: machine drained",
		"2 PLACED on m2 by batch", "2 PREEMPTED on m2: preempted by job high",
		"2 KILLED: job stopped by admin",
	}
	if got := eventLines(c.task(low.Id, 0)); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestExplainAndInfeasibleWarning(t *testing.T) {
	c := newTestCell(t, Options{})
	for i := range 3 {
		c.addMachine(fmt.Sprintf("m%d", i), map[string]string{"zone": "earth"}, 4000, 4*gib, 8)
	}
	for _, tc := range []struct {
		name string
		edit func(*cellv1.JobSpec)
		want string
	}{
		{"mars", func(s *cellv1.JobSpec) {
			s.Task.Constraints = []*cellv1.Constraint{{Key: "zone", Op: cellv1.ConstraintOp_CONSTRAINT_OP_IN, Values: []string{"mars"}}}
		}, "3 didn't match zone = mars (they have zone: earth)"},
		{"sixteen", func(s *cellv1.JobSpec) { s.Task.Resources.GpuMilli = 16000 }, "3 have fewer than 16 GPUs (at most 8)"},
		{"fits", func(*cellv1.JobSpec) {}, ""},
	} {
		spec := batchSpec(tc.name, 1, 1000, gib)
		tc.edit(spec)
		r, err := c.jobs.SubmitJob(ctxT(t), &cellv1.SubmitJobRequest{Spec: spec, WarnInfeasible: true})
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(r.Warnings, "\n"); (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
			t.Errorf("%s: warnings %q, want one with %q", tc.name, got, tc.want)
		}
		g, err := c.jobs.GetJob(ctxT(t), &cellv1.GetJobRequest{IdOrName: tc.name, Explain: true})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(g.Explanation, tc.want) || !strings.HasPrefix(g.Explanation, "1 pending: ") {
			t.Errorf("%s: explanation %q, want %q", tc.name, g.Explanation, tc.want)
		}
	}
}

func TestSystemJobFollowsMachines(t *testing.T) {
	c := newTestCell(t, Options{})
	c.addMachine("m1", map[string]string{"role": "node"}, 4000, 4*gib, 0)
	c.addMachine("m2", map[string]string{"role": "gateway"}, 4000, 4*gib, 0)
	spec := batchSpec("logs", 1, 100, gib)
	spec.Scheduler, spec.Kind = "service", cellv1.JobKind_JOB_KIND_SYSTEM
	spec.Task.Constraints = []*cellv1.Constraint{{Key: "role", Op: cellv1.ConstraintOp_CONSTRAINT_OP_IN, Values: []string{"node"}}}
	job := c.submit(spec)
	pins := func() map[string]cellv1.TaskState {
		t.Helper()
		r, err := c.jobs.GetJob(ctxT(t), &cellv1.GetJobRequest{IdOrName: job.Id, IncludeTasks: true})
		if err != nil {
			t.Fatal(err)
		}
		if int(r.Job.Spec.Count) != len(r.Tasks) {
			t.Errorf("spec.count %d, %d tasks", r.Job.Spec.Count, len(r.Tasks))
		}
		out := map[string]cellv1.TaskState{}
		for _, tk := range r.Tasks {
			out[tk.PinnedMachineId] = tk.State
		}
		return out
	}
	const pending, killed = cellv1.TaskState_TASK_STATE_PENDING, cellv1.TaskState_TASK_STATE_KILLED
	check := func(when string, want map[string]cellv1.TaskState) {
		t.Helper()
		if got := pins(); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s: tasks by machine %v, want %v", when, got, want)
		}
	}
	check("at submit", map[string]cellv1.TaskState{"m1": pending})
	// A claim on another machine than the pinned one is refused.
	r, err := c.state.Commit(ctxT(t), &cellv1.CommitRequest{Scheduler: "service", Claims: []*cellv1.Claim{claim(job.Id, 0, "m2", spec.Task.Resources)}})
	if err != nil || r.Accepted != 0 {
		t.Fatalf("claim off the pinned machine: %v %v", r, err)
	}
	c.place(job, 0, "m1")
	c.addMachine("m3", map[string]string{"role": "node"}, 4000, 4*gib, 0)
	check("m3 joins", map[string]cellv1.TaskState{"m1": cellv1.TaskState_TASK_STATE_ASSIGNED, "m3": pending})
	c.addMachine("m2", map[string]string{"role": "node"}, 4000, 4*gib, 0) // relabelled
	check("m2 relabelled", map[string]cellv1.TaskState{"m1": cellv1.TaskState_TASK_STATE_ASSIGNED, "m2": pending, "m3": pending})
	if _, err := c.machines.DrainMachine(ctxT(t), &cellv1.DrainMachineRequest{Id: "m1", Drain: true}); err != nil {
		t.Fatal(err)
	}
	check("m1 drained", map[string]cellv1.TaskState{"m1": killed, "m2": pending, "m3": pending})
	c.restart(Options{})
	check("after a restart", map[string]cellv1.TaskState{"m1": killed, "m2": pending, "m3": pending})
	if _, err := c.machines.DrainMachine(ctxT(t), &cellv1.DrainMachineRequest{Id: "m1", Drain: false}); err != nil {
		t.Fatal(err)
	}
	check("m1 back", map[string]cellv1.TaskState{"m1": pending, "m2": pending, "m3": pending})
	got, _ := c.jobs.GetJob(ctxT(t), &cellv1.GetJobRequest{IdOrName: job.Id})
	if got.Job.State == cellv1.JobState_JOB_STATE_SUCCEEDED {
		t.Error("a system job succeeded")
	}
	c.checkInvariant()
}
