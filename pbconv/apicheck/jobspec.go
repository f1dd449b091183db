package apicheck

import (
	"sort"

	"google.golang.org/protobuf/proto"

	"github.com/omegacell/omegacell/pbconv"
	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
	"github.com/omegacell/omegacell/proto/limits"
	"github.com/omegacell/omegacell/txn"
)

// maxMachine is the most of each resource any machine has (or any task
// can ask for).
var maxMachine = txn.Resources{CPUMilli: limits.MaxCPUMilli, MemoryBytes: limits.MaxBytes, DiskBytes: limits.MaxBytes,
	GPUMilli: limits.MaxGPUsPerMachine * txn.MilliPerGPU}

// JobSpec checks a submitted spec, field by field, then its encoded size.
func JobSpec(spec *cellv1.JobSpec) error {
	if spec == nil {
		return fail("spec", "is required")
	}
	switch {
	case len(spec.Name) > limits.MaxJobNameLen:
		return fail("spec.name", "%s: longer than %d bytes", limits.Quote(spec.Name), limits.MaxJobNameLen)
	case !limits.JobName.MatchString(spec.Name):
		return fail("spec.name", "%s must be 1-253 lowercase letters, digits, '-' or '.', starting and ending alphanumeric", limits.Quote(spec.Name))
	case spec.Tenant != "" && !limits.TenantName.MatchString(spec.Tenant):
		return fail("spec.tenant", "%s is not a tenant name (1-63 lowercase letters, digits, '-', starting and ending alphanumeric)", limits.Quote(spec.Tenant))
	case !limits.SchedulerName.MatchString(spec.Scheduler):
		return fail("spec.scheduler", "%s is not a scheduler name (1-63 lowercase letters, digits, '-')", limits.Quote(spec.Scheduler))
	case spec.Priority < 0 || spec.Priority > limits.MaxPriority:
		return fail("spec.priority", "%d is outside 0..%d", spec.Priority, limits.MaxPriority)
	case spec.Count == 0 || spec.Count > limits.MaxTasksPerJob:
		return fail("spec.count", "%d is outside 1..%d", spec.Count, limits.MaxTasksPerJob)
	case spec.Gang && spec.Count > limits.MaxAtomicClaims:
		return fail("spec.count", "%d: a gang job has at most %d tasks (it is placed in one transaction)", spec.Count, limits.MaxAtomicClaims)
	case spec.RetryLimit > limits.MaxRetryLimit:
		return fail("spec.retry_limit", "%d exceeds %d", spec.RetryLimit, limits.MaxRetryLimit)
	case spec.Kind != cellv1.JobKind_JOB_KIND_UNSPECIFIED && spec.Kind != cellv1.JobKind_JOB_KIND_SERVICE && spec.Kind != cellv1.JobKind_JOB_KIND_BATCH &&
		spec.Kind != cellv1.JobKind_JOB_KIND_SYSTEM:
		return fail("spec.kind", "unknown kind %d", spec.Kind)
	case spec.Kind == cellv1.JobKind_JOB_KIND_SYSTEM && spec.Gang:
		return fail("spec.gang", "a system job runs one task per machine as machines come and go; it cannot be a gang")
	case spec.Kind == cellv1.JobKind_JOB_KIND_SYSTEM && spec.Task.GetMaxPerMachine() > 1:
		return fail("spec.task.max_per_machine", "a system job runs one task per machine, not %d", spec.Task.GetMaxPerMachine())
	case spec.Kind == cellv1.JobKind_JOB_KIND_SYSTEM && spec.Update.GetMaxSurge().GetValue() != 0:
		return fail("spec.update.max_surge", "a system job runs one task per machine, it cannot surge (want 0; tasks are replaced max_unavailable at a time)")
	case spec.Task == nil:
		return fail("spec.task", "is required")
	}
	if err := template("spec.task", spec.Task, spec.Count); err != nil {
		return err
	}
	if err := updateStrategy("spec.update", spec.Update); err != nil {
		return err
	}
	if err := jobLabels("spec.labels", spec.Labels); err != nil {
		return err
	}
	if err := disruption(spec.Disruption, spec.Count); err != nil {
		return err
	}
	if n := proto.Size(spec); n > limits.MaxJobSpecBytes {
		return fail("spec", "encodes to %d bytes, more than the %d a job may take", n, limits.MaxJobSpecBytes)
	}
	return nil
}

func template(f string, t *cellv1.TaskTemplate, count uint32) error {
	if t.Command == "" {
		return fail(f+".command", "is required")
	}
	if err := limits.CheckText(t.Command, limits.MaxStringLen); err != nil {
		return wrap(f+".command", err)
	}
	if len(t.Args) > limits.MaxArgs {
		return fail(f+".args", "%d arguments exceed %d", len(t.Args), limits.MaxArgs)
	}
	for i, a := range t.Args {
		if err := limits.CheckText(a, limits.MaxStringLen); err != nil {
			return wrap(at(f+".args", i), err)
		}
	}
	if err := env(f+".env", t.Env); err != nil {
		return err
	}
	if t.Resources == nil {
		return fail(f+".resources", "is required")
	}
	r := pbconv.Resources(t.Resources)
	if err := txn.ValidateRequest(r); err != nil {
		return fail(f+".resources", "%v", err)
	}
	if !r.LessOrEqual(maxMachine) {
		return fail(f+".resources", "%v is larger than any machine can be", r)
	}
	if err := constraints(f+".constraints", t.Constraints); err != nil {
		return err
	}
	if t.SpreadKey != "" && !limits.LabelKey.MatchString(t.SpreadKey) {
		return fail(f+".spread_key", "%s is not a label key (1-63 letters, digits, '-', '.', '_', '/', starting and ending alphanumeric)", limits.Quote(t.SpreadKey))
	}
	if t.MaxPerMachine > count {
		return fail(f+".max_per_machine", "%d exceeds the job's count %d", t.MaxPerMachine, count)
	}
	if t.DurationMs < 0 || t.DurationMs > limits.MaxDurationMillis {
		return fail(f+".duration_ms", "%d is outside 0..%d", t.DurationMs, int64(limits.MaxDurationMillis))
	}
	if t.HealthCheck != nil {
		if err := healthCheck(f+".health_check", t.HealthCheck); err != nil {
			return err
		}
	}
	if t.ReadinessCheck != nil {
		return healthCheck(f+".readiness_check", t.ReadinessCheck)
	}
	return nil
}

func env(f string, e map[string]string) error {
	if len(e) > limits.MaxEnv {
		return fail(f, "%d variables exceed %d", len(e), limits.MaxEnv)
	}
	// Sorted, so the same spec always gets the same error.
	names := make([]string, 0, len(e))
	for k := range e {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		if !limits.EnvName.MatchString(k) {
			return fail(f, "name %s: want 1-%d letters, digits and '_', not starting with a digit", limits.Quote(k), limits.MaxEnvNameLen)
		}
		if err := limits.CheckText(e[k], limits.MaxStringLen); err != nil {
			return wrap(f+"["+k+"]", err)
		}
	}
	return nil
}

func constraints(f string, cs []*cellv1.Constraint) error {
	if len(cs) > limits.MaxConstraints {
		return fail(f, "%d terms exceed %d", len(cs), limits.MaxConstraints)
	}
	for i, c := range cs {
		fi := at(f, i)
		switch {
		case c == nil:
			return fail(fi, "is empty")
		case !limits.LabelKey.MatchString(c.Key):
			return fail(fi+".key", "%s is not a label key (1-63 letters, digits, '-', '.', '_', '/', starting and ending alphanumeric)", limits.Quote(c.Key))
		case c.Op < cellv1.ConstraintOp_CONSTRAINT_OP_IN || c.Op > cellv1.ConstraintOp_CONSTRAINT_OP_DOES_NOT_EXIST:
			return fail(fi+".op", "unknown operator %d", int32(c.Op))
		case len(c.Values) > limits.MaxConstraintValues:
			return fail(fi+".values", "%d values exceed %d", len(c.Values), limits.MaxConstraintValues)
		}
		for k, v := range c.Values {
			if err := limits.CheckText(v, limits.MaxLabelValueLen); err != nil {
				return wrap(at(fi+".values", k), err)
			}
		}
		if err := pbconv.Constraints([]*cellv1.Constraint{c})[0].Validate(); err != nil {
			return fail(fi, "%v", err)
		}
	}
	return nil
}

func healthCheck(f string, h *cellv1.HealthCheck) error {
	switch {
	case len(h.Exec) == 0 && h.HttpGetUrl == "":
		return fail(f, "needs exec or http_get_url")
	case len(h.Exec) > 0 && h.HttpGetUrl != "":
		return fail(f, "takes exec or http_get_url, not both")
	case len(h.Exec) > limits.MaxHealthExec:
		return fail(f+".exec", "%d entries exceed %d", len(h.Exec), limits.MaxHealthExec)
	case h.IntervalMs < 0 || h.IntervalMs > limits.MaxHealthMillis:
		return fail(f+".interval_ms", "%d is outside 0..%d", h.IntervalMs, limits.MaxHealthMillis)
	case h.TimeoutMs < 0 || h.TimeoutMs > limits.MaxHealthMillis:
		return fail(f+".timeout_ms", "%d is outside 0..%d", h.TimeoutMs, limits.MaxHealthMillis)
	case h.FailureThreshold > limits.MaxFailureThreshold:
		return fail(f+".failure_threshold", "%d exceeds %d", h.FailureThreshold, limits.MaxFailureThreshold)
	}
	if h.HttpGetUrl != "" {
		return wrap(f+".http_get_url", limits.CheckHTTPURL(h.HttpGetUrl))
	}
	if h.Exec[0] == "" {
		return fail(at(f+".exec", 0), "the command to run is empty")
	}
	for i, a := range h.Exec {
		if err := limits.CheckText(a, limits.MaxStringLen); err != nil {
			return wrap(at(f+".exec", i), err)
		}
	}
	return nil
}

// jobLabels checks a job's labels as a machine's are checked.
func jobLabels(f string, labels map[string]string) error {
	if len(labels) > limits.MaxLabels {
		return fail(f, "%d labels exceed %d", len(labels), limits.MaxLabels)
	}
	for k, v := range labels {
		if !limits.LabelKey.MatchString(k) {
			return fail(f, "key %s: want 1-63 letters, digits, '-', '.', '_' or '/', starting and ending alphanumeric", limits.Quote(k))
		}
		if err := limits.CheckText(v, limits.MaxLabelValueLen); err != nil {
			return wrap(f+"["+k+"]", err)
		}
	}
	return nil
}
