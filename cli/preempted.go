package cli

import cellv1 "github.com/omegacell/omegacell/proto/cell/v1"

// taskStateText is a task's state in `job status`: a task a preemption
// sent back to its scheduler reads "preempted" until it is placed again
// (its message names the preempting job, issue 12).
func taskStateText(t *cellv1.Task) string {
	if t.GetState() == cellv1.TaskState_TASK_STATE_PENDING && t.GetPreemptedByJobId() != "" {
		return "preempted, pending"
	}
	return taskStateName(t.GetState())
}
