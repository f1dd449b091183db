package cellstate

import (
	"strings"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
	"github.com/omegacell/omegacell/txn"
)

// Task events (issue 13): what happened to a task, with times, for `cell
// job status` as `kubectl describe` shows a pod's.
//
// Where they are kept, and why the commit path pays nothing for them: the
// events of a task's current attempt are its own fields, which the store
// keeps anyway (assign time, machine and scheduler: placed; start time:
// started; finish time, state, exit code and message: how it ended), so
// [currentEvents] derives them when a task is read. Only when an attempt
// is over and the task goes back to pending (restarted, retried, evicted,
// preempted, lost) does the store write that attempt's events into the
// task ([task.events], Task field 150), durable with the task's record,
// keeping the last keptAttempts ended attempts. A claim, the hot path,
// writes no event and no extra byte.

const (
	// keptAttempts is how many ended attempts keep their events; with
	// the current one a task shows at most keptAttempts+1 attempts.
	keptAttempts = 2
	// maxEventsPerAttempt bounds one attempt's events (derived ones are
	// at most 4: placed, started, ready, ended).
	maxEventsPerAttempt = 16
	// maxEventMessage bounds an event's message in bytes.
	maxEventMessage = 256
)

// endedAttemptEvents are the events of t's attempt that ends now (at
// time now, for why when t still held resources: drained, preempted).
func endedAttemptEvents(t *task, now int64, why string) []*cellv1.TaskEvent {
	evs := currentEvents(t)
	if t.t.State.HoldsResources() {
		evs = append(evs, &cellv1.TaskEvent{TimeUnixNano: now, Kind: cellv1.TaskEventKind_TASK_EVENT_KIND_EVICTED,
			Attempt: t.t.Attempt, MachineId: t.lastMachine, Message: clip(why)})
	}
	return evs
}

// currentEvents derives the events of t's current attempt from its fields.
func currentEvents(t *task) []*cellv1.TaskEvent {
	var evs []*cellv1.TaskEvent
	a := t.t.Attempt
	if t.assignTime != 0 {
		evs = append(evs, &cellv1.TaskEvent{TimeUnixNano: t.assignTime, Kind: cellv1.TaskEventKind_TASK_EVENT_KIND_PLACED,
			Attempt: a, MachineId: t.lastMachine, Scheduler: t.t.Scheduler})
	}
	if t.startTime != 0 {
		evs = append(evs, &cellv1.TaskEvent{TimeUnixNano: t.startTime, Kind: cellv1.TaskEventKind_TASK_EVENT_KIND_STARTED,
			Attempt: a, MachineId: t.lastMachine})
	}
	if t.t.State.Terminal() && t.finishTime != 0 {
		e := &cellv1.TaskEvent{TimeUnixNano: t.finishTime, Attempt: a, ExitCode: t.exitCode, Message: clip(t.message)}
		if t.assignTime != 0 {
			e.MachineId = t.lastMachine
		}
		switch t.t.State {
		case txn.TaskSucceeded:
			e.Kind = cellv1.TaskEventKind_TASK_EVENT_KIND_SUCCEEDED
		case txn.TaskFailed:
			e.Kind = cellv1.TaskEventKind_TASK_EVENT_KIND_FAILED
		case txn.TaskLost:
			e.Kind = cellv1.TaskEventKind_TASK_EVENT_KIND_LOST
		case txn.TaskPreempted:
			e.Kind = cellv1.TaskEventKind_TASK_EVENT_KIND_PREEMPTED
		default:
			e.Kind = cellv1.TaskEventKind_TASK_EVENT_KIND_KILLED
		}
		evs = append(evs, e)
	}
	return evs
}

// archive returns the stored events after adding those of an ended
// attempt: a new slice (versions are immutable), the oldest attempts
// dropped beyond keptAttempts.
func archive(old []*cellv1.TaskEvent, ended []*cellv1.TaskEvent) []*cellv1.TaskEvent {
	if len(ended) == 0 {
		return old
	}
	if len(ended) > maxEventsPerAttempt {
		ended = ended[len(ended)-maxEventsPerAttempt:]
	}
	attempts := 1
	from := len(old)
	for i := len(old) - 1; i >= 0; i-- {
		if i == len(old)-1 || old[i].Attempt != old[i+1].Attempt {
			if attempts == keptAttempts {
				break
			}
			attempts++
		}
		from = i
	}
	out := make([]*cellv1.TaskEvent, 0, len(old)-from+len(ended))
	out = append(out, old[from:]...)
	return append(out, ended...)
}

// taskEvents is every event of t for a reader: the stored ones, then the
// current attempt's.
func taskEvents(t *task) []*cellv1.TaskEvent {
	cur := currentEvents(t)
	if len(cur) == 0 {
		return t.events
	}
	return append(append(make([]*cellv1.TaskEvent, 0, len(t.events)+len(cur)), t.events...), cur...)
}

// markPreempted rewrites the last stored event of a victim that the
// current operation evicted as preempted by job.
func (s *state) markPreempted(k txn.TaskKey, byJob string) {
	t := s.task(k)
	if t == nil || t.modRev != s.changes.rev || len(t.events) == 0 {
		return
	}
	last := t.events[len(t.events)-1]
	if last.Kind != cellv1.TaskEventKind_TASK_EVENT_KIND_EVICTED {
		return
	}
	last.Kind = cellv1.TaskEventKind_TASK_EVENT_KIND_PREEMPTED
	last.Message = clip("preempted by job " + byJob)
}

func clip(s string) string {
	if len(s) <= maxEventMessage {
		return s
	}
	return strings.ToValidUTF8(s[:maxEventMessage], "")
}

// appendEvents encodes stored events as Task field 150.
func appendEvents(b []byte, evs []*cellv1.TaskEvent) []byte {
	for _, e := range evs {
		b = protowire.AppendTag(b, 150, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(proto.Size(e)))
		b, _ = proto.MarshalOptions{Deterministic: true}.MarshalAppend(b, e)
	}
	return b
}
