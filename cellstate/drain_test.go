package cellstate

import (
	"testing"
	"time"

	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
)

func serviceSpec(name string, count, maxUnavailable uint32) *cellv1.JobSpec {
	spec := &cellv1.JobSpec{
		Name: name, Scheduler: "service", Priority: 200, Count: count, Kind: cellv1.JobKind_JOB_KIND_SERVICE,
		Task: &cellv1.TaskTemplate{Command: "/bin/sleep", Args: []string{"600"}, Resources: &cellv1.Resources{CpuMilli: 1000, MemoryBytes: gib}},
	}
	if maxUnavailable > 0 {
		spec.Disruption = &cellv1.Disruption{MaxUnavailable: maxUnavailable}
	}
	return spec
}

// run places task idx of job on machine and reports it running, as a
// scheduler and the machine's agent would.
func (c *testCell) run(job *cellv1.Job, idx uint32, machine string) {
	c.t.Helper()
	r, err := c.state.Commit(ctxT(c.t), &cellv1.CommitRequest{Scheduler: job.Spec.Scheduler, Claims: []*cellv1.Claim{claim(job.Id, idx, machine, job.Spec.Task.Resources)}})
	if err != nil || r.Accepted != 1 {
		c.t.Fatalf("place %s/%d on %s: %v %v", job.Spec.Name, idx, machine, r, err)
	}
	tk := c.task(job.Id, idx)
	rr, err := c.agent.ReportTaskStates(ctxT(c.t), &cellv1.ReportTaskStatesRequest{MachineId: machine, Updates: []*cellv1.TaskStateUpdate{{
		Task: &cellv1.TaskRef{JobId: job.Id, Index: idx}, Attempt: tk.Attempt, State: cellv1.TaskState_TASK_STATE_RUNNING,
	}}})
	if err != nil || !rr.Results[0].Applied {
		c.t.Fatalf("report %s/%d running: %v %v", job.Spec.Name, idx, rr, err)
	}
}

func (c *testCell) machine(id string) *cellv1.Machine {
	c.t.Helper()
	r, err := c.machines.GetMachine(ctxT(c.t), &cellv1.GetMachineRequest{Id: id})
	if err != nil {
		c.t.Fatal(err)
	}
	return r.Machine
}

func (c *testCell) drain(req *cellv1.DrainMachineRequest) *cellv1.Machine {
	c.t.Helper()
	r, err := c.machines.DrainMachine(ctxT(c.t), req)
	if err != nil {
		c.t.Fatalf("drain %v: %v", req, err)
	}
	return r.Machine
}

// A drain of a machine holding every replica of two services evicts them
// one at a time per job (maxUnavailable 1 by default, 2 when asked), each
// next eviction waiting until the replacement runs elsewhere; it ends when
// the machine is empty, well before its deadline.
func TestDrainHonoursDisruptionBudgets(t *testing.T) {
	c := newTestCell(t, Options{})
	c.addMachine("m1", nil, 8000, 8*gib, 0)
	c.addMachine("m2", nil, 8000, 8*gib, 0)
	web := c.submit(serviceSpec("web", 3, 0))
	api := c.submit(serviceSpec("api", 4, 2))
	for _, j := range []*cellv1.Job{web, api} {
		for i := range j.Spec.Count {
			c.run(j, i, "m1")
		}
	}
	c.drain(&cellv1.DrainMachineRequest{Id: "m1", Action: cellv1.DrainAction_DRAIN_ACTION_DRAIN, DeadlineMs: 60_000})
	budget := map[*cellv1.Job]int{web: 1, api: 2}
	deadline := time.Now().Add(60 * time.Second)
	for {
		m := c.machine("m1")
		if m.Drain.GetDoneUnixNano() != 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("drain not done: %v", m.Drain)
		}
		for j, most := range budget {
			var down []uint32
			for i := range j.Spec.Count {
				if c.task(j.Id, i).State != cellv1.TaskState_TASK_STATE_RUNNING {
					down = append(down, i)
				}
			}
			if len(down) > most {
				t.Fatalf("%d replicas of %s down at once (%v), budget %d", len(down), j.Spec.Name, down, most)
			}
			// The "scheduler" replaces one evicted replica per round,
			// slower than the controller steps.
			if len(down) > 0 {
				c.run(j, down[0], "m2")
			}
		}
		time.Sleep(150 * time.Millisecond)
	}
	m := c.machine("m1")
	if m.State != cellv1.MachineState_MACHINE_STATE_DRAINING || m.Drain.Evicted != 7 || m.Drain.Forced != 0 || m.Drain.Remaining != 0 {
		t.Fatalf("m1 after its drain: %v", m)
	}
	c.checkInvariant()
}

// At the deadline a drain evicts what its budgets still protect.
func TestDrainDeadlineEvictsTheRest(t *testing.T) {
	c := newTestCell(t, Options{})
	c.addMachine("m1", nil, 8000, 8*gib, 0)
	web := c.submit(serviceSpec("web", 2, 0))
	c.run(web, 0, "m1")
	c.run(web, 1, "m1")
	began := time.Now()
	m := c.drain(&cellv1.DrainMachineRequest{Id: "m1", Action: cellv1.DrainAction_DRAIN_ACTION_DRAIN, DeadlineMs: 500})
	if m.Drain.Evicted != 1 || m.Drain.Waiting == "" {
		t.Fatalf("drain's first step: %v, want one eviction and a budget to wait on", m.Drain)
	}
	for c.machine("m1").Drain.GetDoneUnixNano() == 0 {
		if time.Since(began) > 30*time.Second {
			t.Fatal("the drain did not end at its deadline")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if d := c.machine("m1").Drain; d.Forced != 1 || d.Remaining != 0 || d.DoneUnixNano < d.DeadlineUnixNano {
		t.Fatalf("drain at its deadline: %v", d)
	}
	for i := range uint32(2) {
		if st := c.task(web.Id, i).State; st != cellv1.TaskState_TASK_STATE_PENDING {
			t.Fatalf("task %d after the drain: %v", i, st)
		}
	}
	c.checkInvariant()
}

// A cordon evicts nothing and refuses new placements; it survives the
// machine going down and coming back, and a server restart; uncordon makes
// the machine ready again.
func TestCordonEvictsNothing(t *testing.T) {
	c := newTestCell(t, Options{})
	c.addMachine("m1", nil, 8000, 8*gib, 0)
	job := c.submit(batchSpec("j", 2, 1000, gib))
	c.run(job, 0, "m1")
	m := c.drain(&cellv1.DrainMachineRequest{Id: "m1", Action: cellv1.DrainAction_DRAIN_ACTION_CORDON})
	if m.State != cellv1.MachineState_MACHINE_STATE_DRAINING || m.Drain == nil || m.Drain.Draining {
		t.Fatalf("cordoned machine: %v", m)
	}
	if n := len(c.store.st.draining); n != 0 {
		t.Fatalf("a cordon gives the drain controller %d machines to drain", n)
	}
	if st := c.task(job.Id, 0).State; st != cellv1.TaskState_TASK_STATE_RUNNING {
		t.Fatalf("task on a cordoned machine: %v", st)
	}
	r, err := c.state.Commit(ctxT(t), &cellv1.CommitRequest{Scheduler: "batch", Claims: []*cellv1.Claim{claim(job.Id, 1, "m1", job.Spec.Task.Resources)}})
	if err != nil || r.Results[0].Outcome != cellv1.ClaimOutcome_CLAIM_OUTCOME_MACHINE_DRAINING {
		t.Fatalf("claim on a cordoned machine: %v %v", r, err)
	}
	if _, err := c.store.markDown(ctxT(t), []string{"m1"}); err != nil {
		t.Fatal(err)
	}
	if err := c.store.markUp(ctxT(t), []string{"m1"}); err != nil {
		t.Fatal(err)
	}
	c.restart(Options{})
	if m := c.machine("m1"); m.State != cellv1.MachineState_MACHINE_STATE_DRAINING || m.Drain == nil {
		t.Fatalf("cordoned machine after down, up and a restart: %v", m)
	}
	m = c.drain(&cellv1.DrainMachineRequest{Id: "m1", Action: cellv1.DrainAction_DRAIN_ACTION_UNCORDON})
	if m.State != cellv1.MachineState_MACHINE_STATE_READY || m.Drain != nil {
		t.Fatalf("uncordoned machine: %v", m)
	}
	c.run(job, 1, "m1")
	c.checkInvariant()
}

// A drain is state: after a server restart it goes on where it was.
// --ignore-batch leaves batch tasks to finish.
func TestDrainResumesAfterRestartAndIgnoresBatch(t *testing.T) {
	c := newTestCell(t, Options{})
	c.addMachine("m1", nil, 8000, 8*gib, 0)
	c.addMachine("m2", nil, 8000, 8*gib, 0)
	web := c.submit(serviceSpec("web", 2, 0))
	batch := c.submit(batchSpec("b", 1, 1000, gib))
	c.run(web, 0, "m1")
	c.run(web, 1, "m1")
	c.run(batch, 0, "m1")
	m := c.drain(&cellv1.DrainMachineRequest{Id: "m1", Action: cellv1.DrainAction_DRAIN_ACTION_DRAIN, DeadlineMs: 600_000, IgnoreBatch: true})
	if m.Drain.Evicted != 1 {
		t.Fatalf("first step: %v", m.Drain)
	}
	c.restart(Options{})
	for i := range uint32(2) {
		if c.task(web.Id, i).State == cellv1.TaskState_TASK_STATE_PENDING {
			c.run(web, i, "m2")
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		pending := -1
		for i := range uint32(2) {
			if c.task(web.Id, i).State == cellv1.TaskState_TASK_STATE_PENDING {
				pending = int(i)
			}
		}
		if pending >= 0 {
			c.run(web, uint32(pending), "m2")
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the drain did not go on after the restart")
		}
		time.Sleep(20 * time.Millisecond)
	}
	d := c.machine("m1").Drain
	if d.Evicted != 2 || d.Remaining != 1 || d.DoneUnixNano == 0 {
		t.Fatalf("drain after the restart: %v, want both replicas evicted and done with the batch task left", d)
	}
	if st := c.task(batch.Id, 0).State; st != cellv1.TaskState_TASK_STATE_RUNNING {
		t.Fatalf("batch task under --ignore-batch: %v", st)
	}
	c.checkInvariant()
}
