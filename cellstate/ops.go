package cellstate

import (
	"fmt"
	"maps"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/omegacell/omegacell/pbconv"
	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
	"github.com/omegacell/omegacell/txn"
)

// Commit, SubmitJob and StopJob are in bulk.go; killing a finished
// job's tasks is in slice.go.

// transition applies txn.Transition and installs the result. The
// transitions the store makes itself are legal by construction; an error
// here means the bookkeeping is broken, which the operation reports.
func (s *state) transition(k txn.TaskKey, to txn.TaskState, msg string) error {
	return s.transitionInto(k, to, msg, nil)
}

// transitionInto is transition making the new version from slab (nil: one
// allocation per version).
func (s *state) transitionInto(k txn.TaskKey, to txn.TaskState, msg string, slab *versionSlab) error {
	nt, tt := slab.next()
	t, nm, err := txn.TransitionInto(s, k, to, tt)
	if err != nil {
		slab.unused()
		return err
	}
	if nm != nil {
		s.PutMachine(nm)
	}
	s.putTaskInto(t, msg, nt)
	s.annotateTask(k, msg, "")
	return nil
}

func (s *state) lookupJob(idOrName string) (*jobEntry, error) {
	if j := s.jobs[idOrName]; j != nil {
		return j, nil
	}
	if id, ok := s.jobByName[idOrName]; ok {
		return s.jobs[id], nil
	}
	if _, err := uuid.Parse(idOrName); err == nil {
		return nil, status.Errorf(codes.NotFound, "job %s does not exist", idOrName)
	}
	return nil, status.Errorf(codes.NotFound, "no job is named %q", idOrName)
}

type setJobStatusOp struct {
	req *cellv1.SetJobSchedulingStatusRequest
}

func (o setJobStatusOp) run(s *state) (any, error) {
	j := s.jobs[o.req.JobId]
	if j == nil {
		return nil, status.Errorf(codes.NotFound, "job_id: job %s does not exist", o.req.JobId)
	}
	if j.job.Spec.Scheduler != o.req.Scheduler {
		return nil, status.Errorf(codes.PermissionDenied, "scheduler: job %s belongs to scheduler %q", o.req.JobId, j.job.Spec.Scheduler)
	}
	old := j.job
	if old.UnschedulableReason == o.req.UnschedulableReason && old.Attempts == o.req.Attempts &&
		(old.FirstAttemptUnixNano != 0 || o.req.FirstAttemptUnixNano == 0) {
		return nil, nil // nothing changes
	}
	pb := proto.Clone(old).(*cellv1.Job)
	pb.UnschedulableReason = o.req.UnschedulableReason
	pb.Attempts = o.req.Attempts
	if pb.FirstAttemptUnixNano == 0 {
		pb.FirstAttemptUnixNano = o.req.FirstAttemptUnixNano
	}
	s.installJob(j, pb)
	return nil, nil
}

// refreshJobs recomputes the state of every job whose tasks changed in
// the current operation, and applies the job-level rules: a batch job
// succeeds when all its tasks did; a job is placed when none is pending.
func (s *state) refreshJobs() {
	s.driveRollouts() // may change tasks of the touched jobs (update.go)
	for id := range s.changes.touchedJobs {
		j := s.jobs[id]
		old := j.job
		if !jobLive(old) {
			continue
		}
		c := &j.counts
		next := cellv1.JobState_JOB_STATE_PENDING
		switch {
		case c[txn.TaskSucceeded] > 0 && int(c[txn.TaskSucceeded]+c[txn.TaskKilled]) == len(j.tasks) && !isSystem(j):
			// All succeeded but the slots a scale down retired.
			next = cellv1.JobState_JOB_STATE_SUCCEEDED
		case c[txn.TaskAssigned]+c[txn.TaskRunning]+c[txn.TaskSucceeded] > 0:
			next = cellv1.JobState_JOB_STATE_RUNNING
		}
		placed := old.PlacedUnixNano
		if placed == 0 && c[txn.TaskPending] == 0 && next != cellv1.JobState_JOB_STATE_PENDING {
			placed = s.now
		}
		if next == old.State && placed == old.PlacedUnixNano {
			continue
		}
		pb := proto.Clone(old).(*cellv1.Job)
		pb.State, pb.PlacedUnixNano = next, placed
		if next == cellv1.JobState_JOB_STATE_SUCCEEDED {
			pb.FinishTimeUnixNano = s.now
		}
		if next != cellv1.JobState_JOB_STATE_PENDING {
			pb.UnschedulableReason = ""
		}
		s.installJob(j, pb)
	}
}

// ---------------------------------------------------------------- agents

type agentUpdatesOp struct {
	machine string
	updates []*cellv1.TaskStateUpdate
}

func (o agentUpdatesOp) run(s *state) (any, error) {
	if s.machines[o.machine] == nil {
		return nil, status.Errorf(codes.NotFound, "machine_id: machine %q is not registered", o.machine)
	}
	results := make([]*cellv1.UpdateResult, len(o.updates))
	for i, u := range o.updates {
		results[i] = &cellv1.UpdateResult{Applied: true}
		if err := s.agentUpdate(o.machine, u); err != nil {
			results[i] = &cellv1.UpdateResult{Reason: err.Error()}
		}
	}
	return results, nil
}

func (s *state) agentUpdate(machineID string, u *cellv1.TaskStateUpdate) error {
	k := pbconv.TaskKey(u.Task)
	if done, err := s.readinessUpdate(machineID, u); done {
		return err
	}
	nt, nm, err := txn.ValidateAgentUpdate(s, txn.AgentUpdate{Task: k, Machine: machineID, Attempt: u.Attempt, State: txn.TaskState(u.State)})
	if err != nil {
		return err
	}
	if nm != nil {
		s.PutMachine(nm)
	}
	s.PutTask(nt)
	t := s.task(k)
	t.exitCode, t.message = u.ExitCode, u.Message
	if nt.State == txn.TaskRunning {
		s.markReady(t, u.Ready)
		return nil
	}
	s.afterExit(s.jobs[k.Job], t)
	return nil
}

// Restart backoff: 1 s doubling per failure, at most 1 min.
const (
	restartBackoffBase = time.Second
	restartBackoffMax  = time.Minute
)

func restartBackoff(failures uint32) time.Duration {
	d := restartBackoffBase
	for i := uint32(1); i < failures && d < restartBackoffMax; i++ {
		d *= 2
	}
	return min(d, restartBackoffMax)
}

// afterExit keeps the desired state after a task ended on its own (a
// version installed by the current operation): a service task is placed
// again with backoff whatever its exit; a failed batch task is retried up
// to the job's retry limit, then the job fails.
func (s *state) afterExit(j *jobEntry, t *task) {
	if !jobLive(j.job) {
		return
	}
	service := j.job.Spec.Kind == cellv1.JobKind_JOB_KIND_SERVICE || j.job.Spec.Kind == cellv1.JobKind_JOB_KIND_SYSTEM
	failed := t.t.State != txn.TaskSucceeded
	if !service && !failed {
		return
	}
	if failed {
		s.countFailure(j, t, service)
	}
	if !service && t.failures > j.job.Spec.RetryLimit {
		s.failJob(j, fmt.Sprintf("task %d failed %d times (retry limit %d): %s", t.t.Key.Index, t.failures, j.job.Spec.RetryLimit, exitDescription(t)))
		return
	}
	msg := fmt.Sprintf("%s; placed again", exitDescription(t))
	s.requeue(t.t.Key, msg, restartBackoff(max(t.failures, 1)))
}

// requeue sends a task that ended (failed, lost, killed by its agent) back
// to pending under its own scheduler, not before the backoff has passed.
func (s *state) requeue(k txn.TaskKey, msg string, backoff time.Duration) {
	if s.transition(k, txn.TaskPending, msg) != nil {
		return
	}
	t := s.task(k)
	t.notBefore = s.now + int64(backoff)
}

func exitDescription(t *task) string {
	switch t.t.State {
	case txn.TaskSucceeded:
		return "exited 0"
	case txn.TaskFailed:
		if t.message != "" {
			return fmt.Sprintf("failed with exit code %d (%s)", t.exitCode, t.message)
		}
		return fmt.Sprintf("failed with exit code %d", t.exitCode)
	}
	return t.t.State.String()
}

func (s *state) failJob(j *jobEntry, why string) {
	s.killTasks(j, "job failed: "+why)
	pb := proto.Clone(j.job).(*cellv1.Job)
	pb.State = cellv1.JobState_JOB_STATE_FAILED
	pb.FinishTimeUnixNano = s.now
	pb.Message = why
	s.installJob(j, pb)
}

// ---------------------------------------------------------------- machines

type registerMachineOp struct {
	req *cellv1.RegisterMachineRequest
	by  string // the agent identity registering ("": keep the registrant)
}

func (o registerMachineOp) run(s *state) (any, error) {
	r := o.req
	capacity := pbconv.Resources(r.Capacity)
	old := s.machines[r.Id]
	if err := checkRegistrant(old, r.Id, o.by); err != nil {
		return nil, err
	}
	by := o.by
	if old != nil && by == "" {
		by = old.registeredBy
	}
	var m *txn.Machine
	if old == nil {
		m = txn.NewMachine(r.Id, r.Labels, capacity)
	} else {
		if !old.m.Allocated.LessOrEqual(capacity) || int(capacity.GPUMilli/txn.MilliPerGPU) < usedDevices(old.m) {
			return nil, status.Errorf(codes.FailedPrecondition, "capacity: machine %s has %v allocated, more than the new capacity %v", r.Id, old.m.Allocated, capacity)
		}
		if old.m.Capacity == capacity && maps.Equal(old.m.Labels, r.Labels) && old.m.State != txn.MachineDown &&
			old.gpuMemoryBytes == r.GpuMemoryBytes && old.registeredBy == by {
			// An agent re-registers on every reconnect: no change, no new
			// Seq (which would be a spurious coarse-grained conflict).
			return old, nil
		}
		m = old.m.Clone()
		m.Labels, m.Capacity = r.Labels, capacity
		used := make([]uint32, capacity.GPUMilli/txn.MilliPerGPU)
		copy(used, m.DeviceUsed)
		m.DeviceUsed = used
		if m.State == txn.MachineDown {
			m.State = txn.MachineReady
			if old.drain != nil {
				m.State = txn.MachineDraining // still cordoned
			}
		}
		m.Seq++
	}
	nm := newMachineRecord(m, r.GpuMemoryBytes)
	nm.registeredBy = by
	if old != nil {
		nm.drain = old.drain
	}
	s.installMachine(nm)
	s.reconcileMachine(r.Id) // system.go
	return nm, nil
}

// usedDevices is one past the highest device index in use.
func usedDevices(m *txn.Machine) int {
	n := 0
	for i, u := range m.DeviceUsed {
		if u > 0 {
			n = i + 1
		}
	}
	return n
}

// evictAll moves every task holding resources on a machine to state `to`
// (and then back to pending), e.g. drained or lost.
func (s *state) evictAll(machineID string, to txn.TaskState, why string, backoff time.Duration) {
	for _, k := range s.tasksOn(machineID) {
		if to == txn.TaskPending {
			s.requeue(k, why, backoff)
			continue
		}
		if s.transition(k, to, why) == nil {
			s.requeue(k, why, backoff)
		}
	}
}

// markDownOp marks machines whose heartbeats stopped as down; their tasks
// become lost and go back to their schedulers.
type markDownOp struct{ ids []string }

func (o markDownOp) run(s *state) (any, error) {
	var downed []string
	for _, id := range o.ids {
		old := s.machines[id]
		if old == nil || old.m.State == txn.MachineDown {
			continue
		}
		m := old.m.Clone()
		m.State = txn.MachineDown
		m.Seq++
		s.PutMachine(m)
		s.evictAll(id, txn.TaskLost, fmt.Sprintf("lost: machine %s stopped heartbeating", id), 0)
		s.reconcileMachine(id) // system.go
		downed = append(downed, id)
	}
	return downed, nil
}

// markUpOp returns down machines that heartbeat again to ready.
type markUpOp struct{ ids []string }

func (o markUpOp) run(s *state) (any, error) {
	for _, id := range o.ids {
		old := s.machines[id]
		if old == nil || old.m.State != txn.MachineDown {
			continue
		}
		m := old.m.Clone()
		m.State = txn.MachineReady
		if old.drain != nil {
			m.State = txn.MachineDraining // still cordoned
		}
		m.Seq++
		s.PutMachine(m)
		s.reconcileMachine(id) // system.go
	}
	return nil, nil
}

// ---------------------------------------------------------------- schedulers

type registerSchedulerOp struct{ name string }

func (o registerSchedulerOp) run(s *state) (any, error) {
	if s.schedulers[o.name] {
		s.seen.touch(o.name, s.now)
		return nil, nil
	}
	if err := s.refuseScheduler(); err != nil {
		return nil, err
	}
	s.seen.touch(o.name, s.now)
	s.schedulers[o.name] = true
	s.changes.schedulers = append(s.changes.schedulers, o.name)
	return nil, nil
}

func (s *state) schedulerNames() string {
	return joinSorted(s.schedulers)
}

func jobStateName(st cellv1.JobState) string {
	switch st {
	case cellv1.JobState_JOB_STATE_PENDING:
		return "pending"
	case cellv1.JobState_JOB_STATE_RUNNING:
		return "running"
	case cellv1.JobState_JOB_STATE_SUCCEEDED:
		return "succeeded"
	case cellv1.JobState_JOB_STATE_FAILED:
		return "failed"
	case cellv1.JobState_JOB_STATE_STOPPED:
		return "stopped"
	case cellv1.JobState_JOB_STATE_QUEUED:
		return "queued"
	}
	return st.String()
}
