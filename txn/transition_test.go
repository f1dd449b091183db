package txn_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/omegacell/omegacell/txn"
)

func TestCanTransition(t *testing.T) {
	// The lifecycle, written out whole: from -> the states it may move to
	// outside placement (pending -> assigned happens only through Validate).
	legal := map[txn.TaskState][]txn.TaskState{
		txn.TaskPending:   {txn.TaskKilled},
		txn.TaskAssigned:  {txn.TaskRunning, txn.TaskSucceeded, txn.TaskFailed, txn.TaskKilled, txn.TaskLost, txn.TaskPending},
		txn.TaskRunning:   {txn.TaskSucceeded, txn.TaskFailed, txn.TaskKilled, txn.TaskLost, txn.TaskPending},
		txn.TaskSucceeded: {txn.TaskPending}, // a service task restarts
		txn.TaskFailed:    {txn.TaskPending, txn.TaskKilled},
		txn.TaskLost:      {txn.TaskPending, txn.TaskKilled},
		txn.TaskPreempted: {txn.TaskPending, txn.TaskKilled},
		txn.TaskKilled:    {txn.TaskPending}, // killed by its agent, restarted
	}
	for from := txn.TaskState(0); from <= txn.TaskKilled+1; from++ {
		for to := txn.TaskState(0); to <= txn.TaskKilled+1; to++ {
			want := false
			for _, s := range legal[from] {
				want = want || s == to
			}
			if got := txn.CanTransition(from, to); got != want {
				t.Errorf("CanTransition(%s, %s) = %v, want %v", from, to, got, want)
			}
		}
	}
}

// transitionCell has one GPU machine with
//   - run: running, whole GPU on device 0, attempt 2
//   - asg: assigned, half a GPU on device 1, attempt 1
//   - pend: pending; fail: failed (was placed once)
//   - ghost: running on a machine that does not exist
//   - over: running, claiming more than its machine has allocated
func transitionCell() *cell {
	c := newCell()
	c.addMachine("m1", nil, res(16, 64, 100, 2000))
	c.addTask("run", 0, 100, res(4, 8, 0, 1000))
	c.addTask("asg", 0, 100, res(2, 4, 0, 500))
	c.addTask("pend", 0, 100, res(1, 1, 0, 0))
	c.addTask("fail", 0, 100, res(1, 1, 0, 0))
	c.place(txn.TaskKey{Job: "run"}, "m1")
	c.setRunning(txn.TaskKey{Job: "run"})
	c.tasks[txn.TaskKey{Job: "run"}].Attempt = 2
	c.place(txn.TaskKey{Job: "asg"}, "m1")
	c.tasks[txn.TaskKey{Job: "fail"}].State = txn.TaskFailed
	c.tasks[txn.TaskKey{Job: "fail"}].Attempt = 1
	c.PutTask(&txn.Task{Key: txn.TaskKey{Job: "ghost"}, Scheduler: "batch", State: txn.TaskRunning, Machine: "gone", Resources: res(1, 1, 0, 0), Attempt: 1})
	c.PutTask(&txn.Task{Key: txn.TaskKey{Job: "over"}, Scheduler: "batch", State: txn.TaskRunning, Machine: "m1", Resources: res(64, 1, 0, 0), Attempt: 1})
	return c
}

func TestTransition(t *testing.T) {
	tests := []struct {
		name    string
		task    string
		to      txn.TaskState
		wantErr string
		// wantAllocated is m1's allocation after the transition; nil means
		// m1 does not change.
		wantAllocated *txn.Resources
		wantTask      string // State, Machine, Devices and Attempt
	}{
		{name: "running succeeds and frees its machine", task: "run", to: txn.TaskSucceeded,
			wantAllocated: &txn.Resources{CPUMilli: 2000, MemoryBytes: 4 * gib, GPUMilli: 500}, wantTask: "succeeded m1 [] 2"},
		{name: "running is requeued and forgets its machine", task: "run", to: txn.TaskPending,
			wantAllocated: &txn.Resources{CPUMilli: 2000, MemoryBytes: 4 * gib, GPUMilli: 500}, wantTask: "pending  [] 2"},
		{name: "running is lost", task: "run", to: txn.TaskLost,
			wantAllocated: &txn.Resources{CPUMilli: 2000, MemoryBytes: 4 * gib, GPUMilli: 500}, wantTask: "lost m1 [] 2"},
		{name: "assigned starts running on the same machine", task: "asg", to: txn.TaskRunning, wantTask: "running m1 [{1 500}] 1"},
		{name: "assigned fails", task: "asg", to: txn.TaskFailed,
			wantAllocated: &txn.Resources{CPUMilli: 4000, MemoryBytes: 8 * gib, GPUMilli: 1000}, wantTask: "failed m1 [] 1"},
		{name: "failed is requeued", task: "fail", to: txn.TaskPending, wantTask: "pending  [] 1"},
		{name: "pending is killed", task: "pend", to: txn.TaskKilled, wantTask: "killed  [] 0"},
		{name: "unknown task", task: "nope", to: txn.TaskKilled, wantErr: "task nope/0 does not exist"},
		{name: "pending cannot run", task: "pend", to: txn.TaskRunning, wantErr: "pending -> running is not allowed"},
		{name: "pending cannot be assigned outside Validate", task: "pend", to: txn.TaskAssigned, wantErr: "pending -> assigned is not allowed"},
		{name: "running cannot go back to assigned", task: "run", to: txn.TaskAssigned, wantErr: "running -> assigned is not allowed"},
		{name: "failed cannot succeed", task: "fail", to: txn.TaskSucceeded, wantErr: "failed -> succeeded is not allowed"},
		{name: "machine gone", task: "ghost", to: txn.TaskFailed, wantErr: "machine gone does not exist"},
		{name: "release beyond allocation", task: "over", to: txn.TaskFailed, wantErr: "exceeds its allocation"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := transitionCell()
			before := c.clone()
			k := txn.TaskKey{Job: tt.task}
			nt, nm, err := txn.Transition(c, k, tt.to)
			if d := before.diff(c); d != "" {
				t.Fatalf("Transition mutated its input:\n%s", d)
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || nt != nil || nm != nil {
					t.Fatalf("Transition = %v, %v, %v; want only an error containing %q", nt, nm, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Transition: %v", err)
			}
			if got := fmt.Sprintf("%s %s %v %d", nt.State, nt.Machine, nt.Devices, nt.Attempt); got != tt.wantTask {
				t.Errorf("task = %q, want %q", got, tt.wantTask)
			}
			switch {
			case tt.wantAllocated == nil && nm != nil:
				t.Errorf("machine changed to %+v, want unchanged", nm)
			case tt.wantAllocated != nil && nm == nil:
				t.Errorf("machine unchanged, want allocated %v", *tt.wantAllocated)
			case nm != nil:
				if nm.Allocated != *tt.wantAllocated || nm.Seq != before.machines["m1"].Seq+1 {
					t.Errorf("machine allocated %v seq %d, want %v seq %d", nm.Allocated, nm.Seq, *tt.wantAllocated, before.machines["m1"].Seq+1)
				}
			}
			c.install(nt, nm)
			if bad := checkInvariant(withoutBrokenTasks(c)); len(bad) > 0 {
				t.Errorf("invariant broken after installing the transition:\n%s", strings.Join(bad, "\n"))
			}
		})
	}
}

// withoutBrokenTasks drops transitionCell's deliberately inconsistent tasks.
func withoutBrokenTasks(c *cell) *cell {
	c = c.clone()
	delete(c.tasks, txn.TaskKey{Job: "ghost"})
	delete(c.tasks, txn.TaskKey{Job: "over"})
	return c
}

func TestValidateAgentUpdate(t *testing.T) {
	run := txn.TaskKey{Job: "run"}
	asg := txn.TaskKey{Job: "asg"}
	tests := []struct {
		name    string
		u       txn.AgentUpdate
		wantErr string
		want    txn.TaskState
	}{
		{"running task succeeds", txn.AgentUpdate{Task: run, Machine: "m1", Attempt: 2, State: txn.TaskSucceeded}, "", txn.TaskSucceeded},
		{"running task fails", txn.AgentUpdate{Task: run, Machine: "m1", Attempt: 2, State: txn.TaskFailed}, "", txn.TaskFailed},
		{"running task killed", txn.AgentUpdate{Task: run, Machine: "m1", Attempt: 2, State: txn.TaskKilled}, "", txn.TaskKilled},
		{"assigned task starts", txn.AgentUpdate{Task: asg, Machine: "m1", Attempt: 1, State: txn.TaskRunning}, "", txn.TaskRunning},
		{"assigned task finishes at once", txn.AgentUpdate{Task: asg, Machine: "m1", Attempt: 1, State: txn.TaskSucceeded}, "", txn.TaskSucceeded},
		{"stale attempt", txn.AgentUpdate{Task: run, Machine: "m1", Attempt: 1, State: txn.TaskFailed}, "stale attempt 1, current is 2", 0},
		{"future attempt", txn.AgentUpdate{Task: run, Machine: "m1", Attempt: 3, State: txn.TaskFailed}, "stale attempt 3", 0},
		{"wrong machine", txn.AgentUpdate{Task: run, Machine: "m2", Attempt: 2, State: txn.TaskSucceeded}, "not placed on machine m2", 0},
		{"pending task", txn.AgentUpdate{Task: txn.TaskKey{Job: "pend"}, Machine: "", Attempt: 0, State: txn.TaskRunning}, "not placed on machine", 0},
		{"failed task reported again", txn.AgentUpdate{Task: txn.TaskKey{Job: "fail"}, Machine: "", Attempt: 1, State: txn.TaskFailed}, "not placed on machine", 0},
		{"unknown task", txn.AgentUpdate{Task: txn.TaskKey{Job: "nope"}, Machine: "m1", Attempt: 1, State: txn.TaskRunning}, "does not exist", 0},
		{"running reported twice", txn.AgentUpdate{Task: run, Machine: "m1", Attempt: 2, State: txn.TaskRunning}, "already running", 0},
		{"agent may not requeue", txn.AgentUpdate{Task: run, Machine: "m1", Attempt: 2, State: txn.TaskPending}, "state: an agent may report", 0},
		{"agent may not declare lost", txn.AgentUpdate{Task: run, Machine: "m1", Attempt: 2, State: txn.TaskLost}, "not lost", 0},
		{"agent may not assign", txn.AgentUpdate{Task: run, Machine: "m1", Attempt: 2, State: txn.TaskAssigned}, "not assigned", 0},
		{"agent may not preempt", txn.AgentUpdate{Task: run, Machine: "m1", Attempt: 2, State: txn.TaskPreempted}, "not preempted", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := transitionCell()
			before := c.clone()
			nt, nm, err := txn.ValidateAgentUpdate(c, tt.u)
			if d := before.diff(c); d != "" {
				t.Fatalf("ValidateAgentUpdate mutated its input:\n%s", d)
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || nt != nil || nm != nil {
					t.Fatalf("ValidateAgentUpdate = %v, %v, %v; want only an error containing %q", nt, nm, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ValidateAgentUpdate: %v", err)
			}
			if nt.State != tt.want || nt.Attempt != tt.u.Attempt {
				t.Errorf("task became %s attempt %d, want %s attempt %d", nt.State, nt.Attempt, tt.want, tt.u.Attempt)
			}
			if tt.want.HoldsResources() != (nm == nil) {
				t.Errorf("machine change %v does not match the task leaving its machine (%s)", nm != nil, tt.want)
			}
		})
	}
}
