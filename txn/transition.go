package txn

import "fmt"

// legal[from] lists the states a task may move to outside of placement
// (placement, pending -> assigned, happens only through Validate). Ended
// tasks may go back to pending: the store restarts service tasks whatever
// their exit, and retries failed or lost batch tasks.
var legal = map[TaskState][]TaskState{
	TaskPending:   {TaskKilled},
	TaskAssigned:  {TaskRunning, TaskSucceeded, TaskFailed, TaskKilled, TaskLost, TaskPending},
	TaskRunning:   {TaskSucceeded, TaskFailed, TaskKilled, TaskLost, TaskPending},
	TaskSucceeded: {TaskPending},
	TaskFailed:    {TaskPending, TaskKilled},
	TaskLost:      {TaskPending, TaskKilled},
	TaskPreempted: {TaskPending, TaskKilled},
	TaskKilled:    {TaskPending},
}

// CanTransition reports whether a task may move from one state to another.
func CanTransition(from, to TaskState) bool {
	for _, s := range legal[from] {
		if s == to {
			return true
		}
	}
	return false
}

// Transition moves task k to state to. If the task leaves a
// resource-holding state its resources are released from its machine. It
// returns the new task and, when the machine changed, the new machine
// (Seq bumped); the caller installs both. Moving back to pending clears the
// machine so the task can be placed again.
func Transition(s State, k TaskKey, to TaskState) (*Task, *Machine, error) {
	return TransitionInto(s, k, to, nil)
}

// TransitionInto is Transition writing the new task into dst (nil: a new
// one), so that a caller making many versions at once can allocate them
// together.
func TransitionInto(s State, k TaskKey, to TaskState, dst *Task) (*Task, *Machine, error) {
	t := s.Task(k)
	if t == nil {
		return nil, nil, fmt.Errorf("task %s does not exist", k)
	}
	if !CanTransition(t.State, to) {
		return nil, nil, fmt.Errorf("task %s: %s -> %s is not allowed", k, t.State, to)
	}
	nt := t.CloneInto(dst)
	nt.State = to
	var nm *Machine
	if t.State.HoldsResources() && !to.HoldsResources() {
		m := s.Machine(t.Machine)
		if m == nil {
			return nil, nil, fmt.Errorf("task %s: its machine %s does not exist", k, t.Machine)
		}
		nm = m.Clone()
		if err := Release(nm, t.Resources, t.Devices); err != nil {
			return nil, nil, err
		}
		nm.Seq++
		nt.Devices = nil
	}
	if to == TaskPending {
		nt.Machine = ""
	}
	return nt, nm, nil
}

// AgentUpdate is a task state change reported by the agent of a machine.
type AgentUpdate struct {
	Task    TaskKey
	Machine string
	Attempt uint32
	State   TaskState // running, succeeded, failed or killed
}

// ValidateAgentUpdate fences an agent's report — the task must still be
// placed on that machine as that attempt, so a stale agent can never change
// a task that moved on — and returns the transition to install.
func ValidateAgentUpdate(s State, u AgentUpdate) (*Task, *Machine, error) {
	switch u.State {
	case TaskRunning, TaskSucceeded, TaskFailed, TaskKilled:
	default:
		return nil, nil, fmt.Errorf("state: an agent may report running, succeeded, failed or killed, not %s", u.State)
	}
	t := s.Task(u.Task)
	switch {
	case t == nil:
		return nil, nil, fmt.Errorf("task %s does not exist", u.Task)
	case t.Machine != u.Machine || !t.State.HoldsResources():
		return nil, nil, fmt.Errorf("task %s is not placed on machine %s (state %s, machine %q)", u.Task, u.Machine, t.State, t.Machine)
	case t.Attempt != u.Attempt:
		return nil, nil, fmt.Errorf("task %s: stale attempt %d, current is %d", u.Task, u.Attempt, t.Attempt)
	case t.State == u.State:
		return nil, nil, fmt.Errorf("task %s is already %s", u.Task, u.State)
	}
	return Transition(s, u.Task, u.State)
}
