package apicheck

import (
	"github.com/google/uuid"

	"github.com/omegacell/omegacell/pbconv"
	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
	"github.com/omegacell/omegacell/proto/limits"
	"github.com/omegacell/omegacell/txn"
)

// MaxSnapshotChunk bounds SnapshotRequest.chunk_size (objects per message).
const MaxSnapshotChunk = 65536

// TaskRef checks a reference to a task: a job UUID and an index a job can
// have.
func TaskRef(f string, r *cellv1.TaskRef) error {
	if r == nil {
		return fail(f, "is required")
	}
	if err := JobID(f+".job_id", r.JobId); err != nil {
		return err
	}
	if r.Index >= limits.MaxTasksPerJob {
		return fail(f+".index", "%d: a job has at most %d tasks", r.Index, limits.MaxTasksPerJob)
	}
	return nil
}

// JobID checks a job id (a UUID).
func JobID(f, id string) error {
	if len(id) > 36 {
		return fail(f, "%s is not a UUID", limits.Quote(id))
	}
	if _, err := uuid.Parse(id); err != nil {
		return fail(f, "%s is not a UUID", limits.Quote(id))
	}
	return nil
}

// IDOrName checks a job's id or name (GetJob, StopJob).
func IDOrName(f, s string) error {
	switch {
	case s == "":
		return fail(f, "is required")
	case len(s) > limits.MaxIDLen:
		return fail(f, "%s: longer than %d bytes", limits.Quote(s), limits.MaxIDLen)
	case !limits.JobName.MatchString(s):
		if _, err := uuid.Parse(s); err != nil {
			return fail(f, "%s is neither a job id nor a job name", limits.Quote(s))
		}
	}
	return nil
}

// MachineID checks a machine id; empty is allowed only where optional.
func MachineID(f, id string, optional bool) error {
	switch {
	case id == "" && optional:
		return nil
	case id == "":
		return fail(f, "is required")
	case !limits.MachineName.MatchString(id):
		return fail(f, "%s is not a machine id (1-253 letters, digits, '-', '.', '_', starting and ending alphanumeric)", limits.Quote(id))
	}
	return nil
}

// SchedulerName checks a scheduler's name.
func SchedulerName(f, name string) error {
	if !limits.SchedulerName.MatchString(name) {
		return fail(f, "%s is not a scheduler name (1-63 lowercase letters, digits, '-', starting and ending alphanumeric)", limits.Quote(name))
	}
	return nil
}

// Commit checks a transaction's shape; whether its claims fit is txn's.
func Commit(r *cellv1.CommitRequest) error {
	if err := SchedulerName("scheduler", r.Scheduler); err != nil {
		return err
	}
	switch {
	case len(r.Claims) == 0:
		return fail("claims", "a transaction needs at least one claim")
	case len(r.Claims) > limits.MaxClaimsPerCommit:
		return fail("claims", "%d claims exceed %d per transaction", len(r.Claims), limits.MaxClaimsPerCommit)
	case len(r.Preemptions) > limits.MaxAtomicClaims:
		return fail("preemptions", "%d exceed %d", len(r.Preemptions), limits.MaxAtomicClaims)
	case len(r.Claims) > limits.MaxAtomicClaims && r.CommitMode == cellv1.CommitMode_COMMIT_MODE_ALL_OR_NOTHING:
		return fail("claims", "%d claims exceed %d per all-or-nothing transaction", len(r.Claims), limits.MaxAtomicClaims)
	case len(r.Claims) > limits.MaxAtomicClaims && len(r.Preemptions) > 0:
		return fail("claims", "%d claims exceed %d per transaction with preemptions", len(r.Claims), limits.MaxAtomicClaims)
	case r.ConflictMode < 0 || r.ConflictMode > cellv1.ConflictMode_CONFLICT_MODE_COARSE:
		return fail("conflict_mode", "unknown mode %d", int32(r.ConflictMode))
	case r.CommitMode < 0 || r.CommitMode > cellv1.CommitMode_COMMIT_MODE_ALL_OR_NOTHING:
		return fail("commit_mode", "unknown mode %d", int32(r.CommitMode))
	}
	jobs := make(map[string]struct{})
	for i, c := range r.Claims {
		if err := claim(at("claims", i), c); err != nil {
			return err
		}
		if jobs[c.Task.JobId] = struct{}{}; len(jobs) > limits.MaxJobsPerCommit {
			return fail(at("claims", i)+".task.job_id", "a transaction claims tasks of at most %d jobs", limits.MaxJobsPerCommit)
		}
	}
	for i, p := range r.Preemptions {
		if err := TaskRef(at("preemptions", i), p); err != nil {
			return err
		}
	}
	return nil
}

func claim(f string, c *cellv1.Claim) error {
	if c == nil {
		return fail(f, "is empty")
	}
	if err := TaskRef(f+".task", c.Task); err != nil {
		return err
	}
	if err := MachineID(f+".machine_id", c.MachineId, false); err != nil {
		return err
	}
	rs := c.Resources
	if rs == nil || rs.CpuMilli < 0 || rs.MemoryBytes < 0 || rs.DiskBytes < 0 || rs.GpuMilli < 0 {
		return fail(f+".resources", "are required and must not be negative")
	}
	if r := pbconv.Resources(rs); !r.LessOrEqual(maxMachine) {
		return fail(f+".resources", "%v is larger than any machine can be", r)
	}
	if len(c.Devices) > limits.MaxGPUsPerMachine {
		return fail(f+".devices", "%d shares exceed %d", len(c.Devices), limits.MaxGPUsPerMachine)
	}
	for k, d := range c.Devices {
		switch {
		case d == nil:
			return fail(at(f+".devices", k), "is empty")
		case d.Device >= limits.MaxGPUsPerMachine:
			return fail(at(f+".devices", k)+".device", "%d: a machine has at most %d devices", d.Device, limits.MaxGPUsPerMachine)
		case d.Milli == 0 || d.Milli > txn.MilliPerGPU:
			return fail(at(f+".devices", k)+".milli", "%d is outside 1..%d", d.Milli, txn.MilliPerGPU)
		}
	}
	return nil
}

// RegisterMachine checks a machine's registration.
func RegisterMachine(r *cellv1.RegisterMachineRequest) error {
	if err := MachineID("id", r.Id, false); err != nil {
		return err
	}
	if r.Capacity == nil {
		return fail("capacity", "is required")
	}
	c := pbconv.Resources(r.Capacity)
	if err := txn.ValidateCapacity(c); err != nil {
		return fail("capacity", "%v", err)
	}
	if !c.LessOrEqual(maxMachine) {
		return fail("capacity", "%v is beyond any machine", c)
	}
	if len(r.Labels) > limits.MaxLabels {
		return fail("labels", "%d labels exceed %d", len(r.Labels), limits.MaxLabels)
	}
	for k, v := range r.Labels {
		if !limits.LabelKey.MatchString(k) {
			return fail("labels", "key %s: want 1-63 letters, digits, '-', '.', '_' or '/', starting and ending alphanumeric", limits.Quote(k))
		}
		if err := limits.CheckText(v, limits.MaxLabelValueLen); err != nil {
			return wrap("labels["+k+"]", err)
		}
	}
	if r.GpuMemoryBytes < 0 || r.GpuMemoryBytes > limits.MaxBytes {
		return fail("gpu_memory_bytes", "%d is outside 0..%d", r.GpuMemoryBytes, int64(limits.MaxBytes))
	}
	return nil
}

// ReportTaskStates checks an agent's report.
func ReportTaskStates(r *cellv1.ReportTaskStatesRequest) error {
	if err := MachineID("machine_id", r.MachineId, false); err != nil {
		return err
	}
	if len(r.Updates) == 0 || len(r.Updates) > limits.MaxUpdatesPerReport {
		return fail("updates", "%d updates: need 1..%d", len(r.Updates), limits.MaxUpdatesPerReport)
	}
	for i, u := range r.Updates {
		f := at("updates", i)
		if u == nil {
			return fail(f, "is empty")
		}
		if err := TaskRef(f+".task", u.Task); err != nil {
			return err
		}
		switch u.State {
		case cellv1.TaskState_TASK_STATE_RUNNING, cellv1.TaskState_TASK_STATE_SUCCEEDED, cellv1.TaskState_TASK_STATE_FAILED, cellv1.TaskState_TASK_STATE_KILLED:
		default:
			return fail(f+".state", "%d: an agent reports running, succeeded, failed or killed", int32(u.State))
		}
		if u.Ready && u.State != cellv1.TaskState_TASK_STATE_RUNNING {
			return fail(f+".ready", "only a running attempt is ready")
		}
		if len(u.Message) > limits.MaxUpdateMessageLen {
			return fail(f+".message", "%d bytes, at most %d are allowed", len(u.Message), limits.MaxUpdateMessageLen)
		}
	}
	return nil
}

// RegisterScheduler checks a scheduler's registration.
func RegisterScheduler(r *cellv1.RegisterSchedulerRequest) error {
	return SchedulerName("name", r.Name)
}

// ReportSchedulerStats checks a scheduler's figures: busyness is a finite
// number in 0..1, the conflict fraction a finite number in
// 0..limits.MaxRatio, times not negative.
func ReportSchedulerStats(r *cellv1.ReportSchedulerStatsRequest) error {
	if err := SchedulerName("name", r.Name); err != nil {
		return err
	}
	s := r.Stats
	if s == nil {
		return fail("stats", "is required")
	}
	if err := limits.CheckFraction(s.Busyness); err != nil {
		return wrap("stats.busyness", err)
	}
	if err := limits.CheckRatio(s.ConflictFraction); err != nil {
		return wrap("stats.conflict_fraction", err)
	}
	if s.ReportTimeUnixNano < 0 {
		return fail("stats.report_time_unix_nano", "%d is negative", s.ReportTimeUnixNano)
	}
	return nil
}

// Watch checks a watch request.
func Watch(r *cellv1.WatchRequest) error {
	if p := r.ProgressIntervalMs; p != 0 && (p < limits.MinWatchProgressMillis || p > limits.MaxWatchProgressMillis) {
		return fail("progress_interval_ms", "%d is outside %d..%d (0: the default)", p, limits.MinWatchProgressMillis, limits.MaxWatchProgressMillis)
	}
	return MachineID("machine_id", r.MachineId, true)
}

// Snapshot checks a snapshot request.
func Snapshot(r *cellv1.SnapshotRequest) error {
	if r.ChunkSize > MaxSnapshotChunk {
		return fail("chunk_size", "%d exceeds %d", r.ChunkSize, MaxSnapshotChunk)
	}
	return nil
}

// ListJobs checks a job listing's filter.
func ListJobs(r *cellv1.ListJobsRequest) error {
	if r.Scheduler == "" {
		return nil
	}
	return SchedulerName("scheduler", r.Scheduler)
}

// SetJobSchedulingStatus checks a scheduler's note on a job.
func SetJobSchedulingStatus(r *cellv1.SetJobSchedulingStatusRequest) error {
	if err := JobID("job_id", r.JobId); err != nil {
		return err
	}
	if err := SchedulerName("scheduler", r.Scheduler); err != nil {
		return err
	}
	if len(r.UnschedulableReason) > limits.MaxStringLen {
		return fail("unschedulable_reason", "%d bytes, at most %d are allowed", len(r.UnschedulableReason), limits.MaxStringLen)
	}
	if r.FirstAttemptUnixNano < 0 {
		return fail("first_attempt_unix_nano", "%d is negative", r.FirstAttemptUnixNano)
	}
	return nil
}

// GetTaskLogs checks a log read.
func GetTaskLogs(r *cellv1.GetTaskLogsRequest) error {
	if err := TaskRef("task", r.Task); err != nil {
		return err
	}
	switch {
	case r.Stream < 0 || r.Stream > cellv1.LogStream_LOG_STREAM_STDERR:
		return fail("stream", "unknown stream %d", int32(r.Stream))
	case r.TailBytes < 0:
		return fail("tail_bytes", "%d is negative", r.TailBytes)
	case r.Offset != nil && r.GetOffset() < 0:
		return fail("offset", "%d is negative", r.GetOffset())
	}
	return nil
}
