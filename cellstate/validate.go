package cellstate

import (
	"fmt"

	"github.com/google/uuid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/omegacell/omegacell/pbconv"
	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
	"github.com/omegacell/omegacell/proto/limits"
	"github.com/omegacell/omegacell/txn"
)

// Limits on requests are package limits'; these are the store's own.
const (
	MaxTasksPerJob        = limits.MaxTasksPerJob
	MaxRequestBytes       = limits.MaxRequestBytes
	defaultSnapshotChunk  = 4096
	maxSnapshotChunk      = 65536
	defaultProgressMillis = 1000
	minProgressMillis     = 10
)

// maxMachine is the most of each resource any machine has (or any task
// can ask for).
var maxMachine = txn.Resources{CPUMilli: limits.MaxCPUMilli, MemoryBytes: limits.MaxBytes, DiskBytes: limits.MaxBytes,
	GPUMilli: limits.MaxGPUsPerMachine * txn.MilliPerGPU}

func invalid(field, format string, args ...any) error {
	return status.Errorf(codes.InvalidArgument, "%s: %s", field, fmt.Sprintf(format, args...))
}

// validateJobSpec checks a submitted spec and returns a normalised copy
// (the kind defaulted from the scheduler).
func validateJobSpec(in *cellv1.JobSpec) (*cellv1.JobSpec, error) {
	if in == nil {
		return nil, invalid("spec", "is required")
	}
	spec := proto.Clone(in).(*cellv1.JobSpec)
	switch {
	case !limits.JobName.MatchString(spec.Name):
		return nil, invalid("spec.name", "%q must be 1-253 lowercase letters, digits, '-' or '.', starting and ending alphanumeric", spec.Name)
	case len(spec.Tenant) > 63:
		return nil, invalid("spec.tenant", "longer than 63 characters")
	case !limits.SchedulerName.MatchString(spec.Scheduler):
		return nil, invalid("spec.scheduler", "%q is not a scheduler name (lowercase letters, digits, '-', at most 63)", spec.Scheduler)
	case spec.Priority < 0 || spec.Priority > limits.MaxPriority:
		return nil, invalid("spec.priority", "%d is outside 0..%d", spec.Priority, limits.MaxPriority)
	case spec.Count == 0 || spec.Count > MaxTasksPerJob:
		return nil, invalid("spec.count", "%d is outside 1..%d", spec.Count, MaxTasksPerJob)
	case spec.RetryLimit > limits.MaxRetryLimit:
		return nil, invalid("spec.retry_limit", "%d exceeds %d", spec.RetryLimit, limits.MaxRetryLimit)
	case spec.Kind != cellv1.JobKind_JOB_KIND_UNSPECIFIED && spec.Kind != cellv1.JobKind_JOB_KIND_SERVICE && spec.Kind != cellv1.JobKind_JOB_KIND_BATCH:
		return nil, invalid("spec.kind", "unknown kind %d", spec.Kind)
	case spec.Task == nil:
		return nil, invalid("spec.task", "is required")
	}
	if spec.Kind == cellv1.JobKind_JOB_KIND_UNSPECIFIED {
		spec.Kind = cellv1.JobKind_JOB_KIND_BATCH
		if spec.Scheduler == "service" {
			spec.Kind = cellv1.JobKind_JOB_KIND_SERVICE
		}
	}
	return spec, validateTemplate(spec.Task, spec.Count)
}

func validateTemplate(t *cellv1.TaskTemplate, count uint32) error {
	if len(t.Command) == 0 || len(t.Command) > limits.MaxStringLen {
		return invalid("spec.task.command", "must be 1..%d characters", limits.MaxStringLen)
	}
	if len(t.Args) > limits.MaxArgs {
		return invalid("spec.task.args", "%d arguments exceed %d", len(t.Args), limits.MaxArgs)
	}
	for i, a := range t.Args {
		if len(a) > limits.MaxStringLen {
			return invalid(fmt.Sprintf("spec.task.args[%d]", i), "longer than %d characters", limits.MaxStringLen)
		}
	}
	if len(t.Env) > limits.MaxEnv {
		return invalid("spec.task.env", "%d variables exceed %d", len(t.Env), limits.MaxEnv)
	}
	for k, v := range t.Env {
		if k == "" || len(k) > limits.MaxEnvNameLen || len(v) > limits.MaxStringLen {
			return invalid("spec.task.env", "variable %q: name must be 1..255 characters, value at most %d", k, limits.MaxStringLen)
		}
	}
	if t.Resources == nil {
		return invalid("spec.task.resources", "is required")
	}
	r := pbconv.Resources(t.Resources)
	if err := txn.ValidateRequest(r); err != nil {
		return invalid("spec.task", "%v", err)
	}
	if !r.LessOrEqual(maxMachine) {
		return invalid("spec.task.resources", "%v is larger than any machine can be", r)
	}
	if len(t.Constraints) > limits.MaxConstraints {
		return invalid("spec.task.constraints", "%d terms exceed %d", len(t.Constraints), limits.MaxConstraints)
	}
	for i, c := range pbconv.Constraints(t.Constraints) {
		if err := c.Validate(); err != nil {
			return invalid(fmt.Sprintf("spec.task.constraints[%d]", i), "%v", err)
		}
	}
	if len(t.SpreadKey) > 63 {
		return invalid("spec.task.spread_key", "longer than 63 characters")
	}
	if t.MaxPerMachine > count {
		return invalid("spec.task.max_per_machine", "%d exceeds the job's count %d", t.MaxPerMachine, count)
	}
	if t.DurationMs < 0 {
		return invalid("spec.task.duration_ms", "%d is negative", t.DurationMs)
	}
	if h := t.HealthCheck; h != nil {
		switch {
		case len(h.Exec) == 0 && h.HttpGetUrl == "":
			return invalid("spec.task.health_check", "needs exec or http_get_url")
		case len(h.Exec) > 0 && h.HttpGetUrl != "":
			return invalid("spec.task.health_check", "takes exec or http_get_url, not both")
		case h.IntervalMs < 0 || h.TimeoutMs < 0:
			return invalid("spec.task.health_check", "interval_ms and timeout_ms must not be negative")
		}
	}
	return nil
}

func validateTaskRef(field string, r *cellv1.TaskRef) error {
	if r == nil {
		return invalid(field, "is required")
	}
	if _, err := uuid.Parse(r.JobId); err != nil {
		return invalid(field+".job_id", "%q is not a UUID", r.JobId)
	}
	return nil
}

func validateCommit(r *cellv1.CommitRequest) error {
	switch {
	case !limits.SchedulerName.MatchString(r.Scheduler):
		return invalid("scheduler", "%q is not a scheduler name", r.Scheduler)
	case len(r.Claims) == 0:
		return invalid("claims", "a transaction needs at least one claim")
	case len(r.Claims) > limits.MaxClaimsPerCommit:
		return invalid("claims", "%d claims exceed %d per transaction", len(r.Claims), limits.MaxClaimsPerCommit)
	case len(r.Preemptions) > limits.MaxClaimsPerCommit:
		return invalid("preemptions", "%d exceed %d", len(r.Preemptions), limits.MaxClaimsPerCommit)
	case r.ConflictMode > cellv1.ConflictMode_CONFLICT_MODE_COARSE:
		return invalid("conflict_mode", "unknown mode %d", r.ConflictMode)
	case r.CommitMode > cellv1.CommitMode_COMMIT_MODE_ALL_OR_NOTHING:
		return invalid("commit_mode", "unknown mode %d", r.CommitMode)
	}
	for i, c := range r.Claims {
		if c == nil {
			return invalid(fmt.Sprintf("claims[%d]", i), "is empty")
		}
		if err := validateTaskRef(fmt.Sprintf("claims[%d].task", i), c.Task); err != nil {
			return err
		}
		if c.MachineId == "" {
			return invalid(fmt.Sprintf("claims[%d].machine_id", i), "is required")
		}
		if rs := c.Resources; rs == nil || rs.CpuMilli < 0 || rs.MemoryBytes < 0 || rs.DiskBytes < 0 || rs.GpuMilli < 0 {
			return invalid(fmt.Sprintf("claims[%d].resources", i), "are required and must not be negative")
		}
		if len(c.Devices) > limits.MaxGPUsPerMachine {
			return invalid(fmt.Sprintf("claims[%d].devices", i), "%d shares exceed %d", len(c.Devices), limits.MaxGPUsPerMachine)
		}
		for k, d := range c.Devices {
			if d.GetMilli() == 0 || d.GetMilli() > txn.MilliPerGPU {
				return invalid(fmt.Sprintf("claims[%d].devices[%d].milli", i, k), "%d is outside 1..1000", d.GetMilli())
			}
		}
	}
	for i, p := range r.Preemptions {
		if err := validateTaskRef(fmt.Sprintf("preemptions[%d]", i), p); err != nil {
			return err
		}
	}
	return nil
}

func validateRegisterMachine(r *cellv1.RegisterMachineRequest) error {
	if !limits.MachineName.MatchString(r.Id) {
		return invalid("id", "%q must be 1-253 letters, digits, '-', '.' or '_'", r.Id)
	}
	if r.Capacity == nil {
		return invalid("capacity", "is required")
	}
	c := pbconv.Resources(r.Capacity)
	if err := txn.ValidateCapacity(c); err != nil {
		return invalid("capacity", "%v", err)
	}
	if !c.LessOrEqual(maxMachine) {
		return invalid("capacity", "%v is beyond any machine", c)
	}
	if len(r.Labels) > limits.MaxLabels {
		return invalid("labels", "%d labels exceed %d", len(r.Labels), limits.MaxLabels)
	}
	for k, v := range r.Labels {
		if !limits.LabelKey.MatchString(k) || len(v) > limits.MaxLabelValueLen {
			return invalid("labels", "label %q=%q: key must be 1-63 letters, digits, '-', '.', '_' or '/', value at most 253", k, v)
		}
	}
	if r.GpuMemoryBytes < 0 {
		return invalid("gpu_memory_bytes", "%d is negative", r.GpuMemoryBytes)
	}
	if len(r.LogAddress) > 253 {
		return invalid("log_address", "longer than 253 characters")
	}
	return nil
}

func validateReport(r *cellv1.ReportTaskStatesRequest) error {
	if r.MachineId == "" {
		return invalid("machine_id", "is required")
	}
	if len(r.Updates) == 0 || len(r.Updates) > limits.MaxUpdatesPerReport {
		return invalid("updates", "%d updates: need 1..%d", len(r.Updates), limits.MaxUpdatesPerReport)
	}
	for i, u := range r.Updates {
		if u == nil {
			return invalid(fmt.Sprintf("updates[%d]", i), "is empty")
		}
		if err := validateTaskRef(fmt.Sprintf("updates[%d].task", i), u.Task); err != nil {
			return err
		}
		switch u.State {
		case cellv1.TaskState_TASK_STATE_RUNNING, cellv1.TaskState_TASK_STATE_SUCCEEDED, cellv1.TaskState_TASK_STATE_FAILED, cellv1.TaskState_TASK_STATE_KILLED:
		default:
			return invalid(fmt.Sprintf("updates[%d].state", i), "%s: an agent reports running, succeeded, failed or killed", u.State)
		}
		if len(u.Message) > limits.MaxStringLen {
			return invalid(fmt.Sprintf("updates[%d].message", i), "longer than %d characters", limits.MaxStringLen)
		}
	}
	return nil
}
