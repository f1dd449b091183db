package main

import (
	"strings"
	"testing"

	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
)

// daemonYAML is a system job of real processes, ready 300 ms after start.
func daemonYAML(version, readyFile, update string) string {
	return strings.Replace(webSpec(1, version, readyFile, update), "name: web\nkind: service\ncount: 1\n", "name: logs\nkind: system\n", 1)
}

// TestSystemRollingUpdateOnARealCell: from the cell binary, a system
// job's new version rolls out (`job run --wait` follows it, `job status`
// shows it), a version never ready is rolled back by itself, and a
// nonzero maxSurge is refused.
func TestSystemRollingUpdateOnARealCell(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a cell with real processes")
	}
	c := startDevCell(t)
	c.write(t, "logs-v1.yaml", daemonYAML("1", "ready", "{maxUnavailable: 1, healthyDeadline: 60s}"))
	c.write(t, "logs-v2.yaml", daemonYAML("2", "ready", "{maxUnavailable: 1, healthyDeadline: 60s}"))
	c.write(t, "logs-v3.yaml", daemonYAML("3", "never", "{healthyDeadline: 2s, autoRevert: true}"))
	c.write(t, "logs-surge.yaml", daemonYAML("2", "ready", "{maxSurge: 1}"))
	defer func() { // never leave processes behind
		c.run(t, "job", "stop", "logs")
		c.waitJob(t, "logs", "stopped", func(r *cellv1.GetJobResponse) bool {
			return r.Counts.Running+r.Counts.Assigned == 0
		})
	}()
	if out, code := c.run(t, "job", "run", "logs-surge.yaml"); code == 0 || !strings.Contains(out, "maxSurge") {
		t.Fatalf("maxSurge 1 on a system job: exit %d\n%s", code, out)
	}
	c.mustRun(t, "job", "run", "logs-v1.yaml")
	c.waitJob(t, "logs", "ready", func(r *cellv1.GetJobResponse) bool { return r.Counts.Ready == 1 })
	out := c.mustRun(t, "job", "run", "logs-v2.yaml", "--wait", "--timeout", "2m")
	if !strings.Contains(out, "version 2") {
		t.Errorf("job run --wait of version 2:\n%s", out)
	}
	r := c.job(t, "logs")
	if ro := r.Job.Rollout; ro.GetState() != cellv1.RolloutState_ROLLOUT_STATE_SUCCEEDED || ro.Version != 2 || r.Counts.Ready != 1 {
		t.Fatalf("rollout: %v, counts %v", ro, r.Counts)
	}
	if s := c.mustRun(t, "job", "status", "logs"); !strings.Contains(s, "version 2 rolled out") {
		t.Errorf("status:\n%s", s)
	}
	out, code := c.run(t, "job", "run", "logs-v3.yaml", "--wait", "--timeout", "2m")
	if code == 0 || !strings.Contains(out, "version 3 was rolled back") {
		t.Fatalf("job run logs-v3.yaml --wait: exit %d\n%s", code, out)
	}
	r = c.waitJob(t, "logs", "back on version 2's template", func(r *cellv1.GetJobResponse) bool {
		return r.Job.Rollout.GetState() == cellv1.RolloutState_ROLLOUT_STATE_SUCCEEDED && r.Counts.Ready == 1
	})
	if r.Job.Spec.Task.Env["VERSION"] != "2" || r.Job.Rollout.Reverts != 3 {
		t.Fatalf("after the revert: env %v, rollout %v", r.Job.Spec.Task.Env, r.Job.Rollout)
	}
}
