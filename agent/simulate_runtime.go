package agent

import (
	"sync"
	"time"

	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
)

// simRuntime "runs" an attempt with no process: it ends successfully after
// the template's duration_ms, or runs until stopped when that is 0.
type simRuntime struct{}

type simHandle struct {
	mu     sync.Mutex
	timer  *time.Timer // nil when the attempt runs until stopped
	ended  bool
	exited func(exitResult)
}

func (simRuntime) start(spec taskSpec, exited func(exitResult)) (runHandle, error) {
	h := &simHandle{exited: exited}
	if d := spec.template.GetDurationMs(); d > 0 {
		h.timer = time.AfterFunc(time.Duration(d)*time.Millisecond, func() {
			h.end(exitResult{state: cellv1.TaskState_TASK_STATE_SUCCEEDED, message: "simulated run finished"})
		})
	}
	return h, nil
}

// A simulated machine keeps nothing across agent restarts.
func (simRuntime) resumable(attemptKey) bool { return false }
func (simRuntime) leftovers() []attemptKey   { return nil }
func (simRuntime) discard(attemptKey)        {}

func (h *simHandle) stop() {
	h.mu.Lock()
	if h.timer != nil {
		h.timer.Stop()
	}
	h.mu.Unlock()
	// The fleet holds its lock while it calls stop; report from elsewhere.
	go h.end(exitResult{state: cellv1.TaskState_TASK_STATE_KILLED, message: "simulated run stopped"})
}

// end reports the first ending only: a timer that fires while the attempt
// is being stopped is ignored.
func (h *simHandle) end(r exitResult) {
	h.mu.Lock()
	if h.ended {
		h.mu.Unlock()
		return
	}
	h.ended = true
	h.mu.Unlock()
	h.exited(r)
}
