package load

import (
	"fmt"

	"github.com/omegacell/omegacell/cellstate"
	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
)

// expectedJob is a job the benchmark submitted, as the verifier checks it.
type expectedJob struct {
	name  string
	id    string // empty: the observer never saw it
	tasks uint32
}

// Verification is the end-of-run check of omegacell's invariant on a
// snapshot read through the API.
type Verification struct {
	Revision uint64 `json:"revision"`
	Machines int    `json:"machines"`
	Jobs     int    `json:"jobs"`
	Tasks    int    `json:"tasks"`
	// Checked counts the benchmark's tasks verified placed exactly once.
	Checked  int      `json:"checked_tasks"`
	OK       bool     `json:"ok"`
	Problems []string `json:"problems,omitempty"`
}

// verify checks the cell (cellstate.CheckSnapshot: no machine over
// capacity, allocations equal to the tasks held, no task twice) and that
// every task of every job the benchmark submitted was placed exactly once:
// present, assigned, running or succeeded on a machine, at attempt 1.
func verify(snap *cellSnapshot, jobs []expectedJob) Verification {
	v := Verification{Revision: snap.revision, Machines: len(snap.machines), Jobs: len(snap.jobs), Tasks: len(snap.tasks)}
	var problems int
	add := func(format string, args ...any) {
		problems++
		if len(v.Problems) < maxProblems {
			v.Problems = append(v.Problems, fmt.Sprintf(format, args...))
		}
	}
	if err := cellstate.CheckSnapshot(snap.machines, snap.jobs, snap.tasks); err != nil {
		add("invariant: %v", err)
	}
	byJob := make(map[string][]*cellv1.Task, len(jobs))
	want := make(map[string]bool, len(jobs))
	for _, j := range jobs {
		if j.id != "" {
			want[j.id] = true
		}
	}
	for _, t := range snap.tasks {
		if want[t.JobId] {
			byJob[t.JobId] = append(byJob[t.JobId], t)
		}
	}
	for _, j := range jobs {
		if j.id == "" {
			add("job %s: never seen on the watch", j.name)
			continue
		}
		seen := make([]bool, j.tasks)
		for _, t := range byJob[j.id] {
			switch {
			case t.Index >= j.tasks:
				add("job %s: task %d beyond its %d tasks", j.name, t.Index, j.tasks)
				continue
			case seen[t.Index]:
				add("job %s: task %d appears twice", j.name, t.Index)
				continue
			}
			seen[t.Index] = true
			switch {
			case !placedState(t.State):
				add("job %s: task %d is %s (%s)", j.name, t.Index, t.State, t.Message)
			case t.MachineId == "":
				add("job %s: task %d is %s on no machine", j.name, t.Index, t.State)
			case t.Attempt != 1:
				add("job %s: task %d is at attempt %d: placed more than once", j.name, t.Index, t.Attempt)
			default:
				v.Checked++
			}
		}
		for i, ok := range seen {
			if !ok {
				add("job %s: task %d is missing from the cell", j.name, i)
			}
		}
	}
	if problems > len(v.Problems) {
		v.Problems = append(v.Problems, fmt.Sprintf("... and %d more problems", problems-len(v.Problems)))
	}
	v.OK = problems == 0
	return v
}

func placedState(s cellv1.TaskState) bool {
	return s == cellv1.TaskState_TASK_STATE_ASSIGNED || s == cellv1.TaskState_TASK_STATE_RUNNING ||
		s == cellv1.TaskState_TASK_STATE_SUCCEEDED
}
