package cli

import (
	"strings"
	"testing"

	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
)

// TestWaitSystemRollout: --wait follows a system job's rollout as a
// service's, and says what the rollout does.
func TestWaitSystemRollout(t *testing.T) {
	sys := func(r *cellv1.Rollout) *cellv1.Job {
		return &cellv1.Job{Spec: &cellv1.JobSpec{Name: "logs", Count: 5, Kind: cellv1.JobKind_JOB_KIND_SYSTEM},
			State: cellv1.JobState_JOB_STATE_RUNNING, Version: 2, Rollout: r}
	}
	running := &cellv1.Rollout{Version: 2, State: cellv1.RolloutState_ROLLOUT_STATE_RUNNING, Desired: 4, Updated: 2, Healthy: 1}
	for _, tc := range []struct {
		name     string
		job      *cellv1.Job
		counts   *cellv1.TaskCounts
		done     bool
		failure  string
		progress string
	}{
		{"rolling", sys(running), &cellv1.TaskCounts{Running: 4, Ready: 3, Killed: 1}, false, "", "version 2 rolling out: 2/4 updated, 1 healthy"},
		{"rolled out, machines it left do not count", sys(&cellv1.Rollout{Version: 2, State: cellv1.RolloutState_ROLLOUT_STATE_SUCCEEDED}),
			&cellv1.TaskCounts{Running: 4, Ready: 4, Killed: 1}, true, "", ""},
		{"rolled out, one not ready yet", sys(&cellv1.Rollout{Version: 2, State: cellv1.RolloutState_ROLLOUT_STATE_SUCCEEDED}),
			&cellv1.TaskCounts{Running: 4, Ready: 3, Killed: 1}, false, "", ""},
		{"failed", sys(&cellv1.Rollout{Version: 2, State: cellv1.RolloutState_ROLLOUT_STATE_FAILED, Message: "task 4 was not healthy"}),
			&cellv1.TaskCounts{Running: 5, Ready: 4}, true, "rollout version 2 failed: task 4 was not healthy", ""},
		{"no rollout: a system job keeps going", sys(nil), &cellv1.TaskCounts{Running: 5, Ready: 5}, false, "", ""},
	} {
		resp := &cellv1.GetJobResponse{Job: tc.job, Counts: tc.counts}
		done, failure := finished(resp)
		if done != tc.done || failure != tc.failure {
			t.Errorf("%s: finished = %v %q, want %v %q", tc.name, done, failure, tc.done, tc.failure)
		}
		if p := progressText(resp); !strings.Contains(p, tc.progress) {
			t.Errorf("%s: progress %q, want %q in it", tc.name, p, tc.progress)
		}
	}
}
