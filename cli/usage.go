package cli

import (
	"fmt"

	"github.com/omegacell/omegacell/jobspec"
	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
)

// Usage where users look (issue 14): what each task uses against what it
// requested, from the agent's latest sample ("-" before the first, or for a
// task that does not run).

// taskCPU is "used/requested" CPU of a task: "250m/1".
func taskCPU(t *cellv1.Task) string {
	if t.GetResources() == nil {
		return "-"
	}
	req := jobspec.FormatCPU(t.GetResources().GetCpuMilli())
	if t.GetUsage() == nil {
		return "-/" + req
	}
	return jobspec.FormatCPU(t.GetUsage().GetCpuMilli()) + "/" + req
}

// taskMemory is "used/requested" memory of a task: "12Mi/16Mi".
func taskMemory(t *cellv1.Task) string {
	if t.GetResources() == nil {
		return "-"
	}
	req := jobspec.HumanBytes(t.GetResources().GetMemoryBytes())
	if t.GetUsage() == nil {
		return "-/" + req
	}
	return jobspec.HumanBytes(t.GetUsage().GetMemoryBytes()) + "/" + req
}

// disruptionText says what a drain may take down of a job at once.
func disruptionText(spec *cellv1.JobSpec) string {
	n := spec.GetDisruption().GetMaxUnavailable()
	switch {
	case n > 0:
		return fmt.Sprintf("a drain takes down at most %d task(s) at once", n)
	case spec.GetKind() == cellv1.JobKind_JOB_KIND_SERVICE:
		return "a drain takes down at most 1 task at once (the default for a service)"
	}
	return ""
}
