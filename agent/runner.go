package agent

import (
	"errors"

	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
)

// runner runs the attempts of a fleet's machines: real child processes
// (processRuntime) or timers standing in for them (simRuntime).
type runner interface {
	// start begins one attempt. exited is called exactly once when the
	// attempt has ended, from another goroutine and never before start
	// has returned. An error means nothing was started (and exited is never
	// called); errAttemptStarted means this attempt already ran on this
	// machine, under this agent or an earlier one.
	start(spec taskSpec, exited func(exitResult)) (runHandle, error)
	// resumable reports whether an earlier agent on this machine started
	// attempt k and left it for this one to adopt: start then resumes it
	// (or reports how it ended while no agent watched).
	resumable(k attemptKey) bool
	// leftovers lists the attempts an earlier agent left that were not
	// resumed; discard stops one the server no longer holds here. Neither
	// blocks.
	leftovers() []attemptKey
	discard(k attemptKey)
}

// runHandle is a started attempt.
type runHandle interface {
	// stop asks the attempt to end (SIGTERM, a grace period, then SIGKILL
	// for a process). It returns at once; exited reports the end.
	stop()
}

// taskSpec is what a runtime needs to start an attempt.
type taskSpec struct {
	machine string
	// task is the server's view of the task: attempt, resources, devices.
	task     *cellv1.Task
	template *cellv1.TaskTemplate
	// ready, when set, hears the attempt's readiness check (issue 13):
	// called from the runtime's goroutines, never during start.
	ready func(bool)
}

func (s taskSpec) key() attemptKey {
	return attemptKey{taskKey{job: s.task.GetJobId(), index: s.task.GetIndex()}, s.task.GetAttempt()}
}

// errAttemptStarted refuses to start an attempt a second time.
var errAttemptStarted = errors.New("this attempt was already started on this machine by an earlier agent; an attempt never runs twice")
