package cellstate

import (
	"fmt"
	"sort"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/omegacell/omegacell/pbconv"
	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
	"github.com/omegacell/omegacell/proto/limits"
	"github.com/omegacell/omegacell/txn"
)

// Changing a running job (issue 13). SubmitJob on the name of a live job
// of the same tenant makes a new version of it (updateJob); RevertJob and
// ScaleJob make one too. Every version's spec is kept (the newest
// limits.MaxJobVersions, durable under jv/<job>/<version>, deleted with the
// job). A version that changes the task template replaces a service's
// replicas through a rollout (rollout.go); any version applies to tasks
// not started yet (pending tasks take its resources, constraints and
// priority; an agent starts an attempt with the template of the version
// stamped on the task when it was placed).

// jobSlots is how many task slots a job has (count, or more after a
// scale down or during a surge).
func jobSlots(pb *cellv1.Job) int {
	return int(max(pb.GetSpec().GetCount(), pb.GetTaskSlots()))
}

// jobVersion is the job's version (jobs from before versions: 1).
func jobVersion(pb *cellv1.Job) uint64 { return max(pb.GetVersion(), 1) }

func templateVersion(pb *cellv1.Job) uint64 { return max(pb.GetTemplateVersion(), 1) }

// recordVersion keeps a new version of a job and forgets the oldest
// beyond the bound; both are written with the operation's revision.
func (s *state) recordVersion(j *jobEntry, spec *cellv1.JobSpec, v uint64, cause string) {
	jv := &cellv1.JobVersion{Version: v, Spec: spec, SubmitTimeUnixNano: s.now, Cause: cause, TemplateVersion: templateVersion(j.job)}
	j.versions = append(j.versions, jv)
	id := j.job.Id
	s.changes.versions = append(s.changes.versions, versionWrite{job: id, v: jv})
	for len(j.versions) > limits.MaxJobVersions {
		s.changes.versionsGone = append(s.changes.versionsGone, versionKey(id, j.versions[0].Version))
		j.versions[0] = nil
		j.versions = j.versions[1:]
	}
}

func (j *jobEntry) version(v uint64) *cellv1.JobVersion {
	for _, jv := range j.versions {
		if jv.Version == v {
			return jv
		}
	}
	return nil
}

// checkUpdate says why spec cannot become a new version of the live job
// j (nil: it can).
func checkUpdate(j *jobEntry, spec *cellv1.JobSpec) error {
	old := j.job.GetSpec()
	switch {
	case j.job.State == cellv1.JobState_JOB_STATE_QUEUED:
		return status.Errorf(codes.FailedPrecondition, "spec.name: the live job %s waits for quota (%s); stop it to submit another version", spec.Name, j.job.QueuedReason)
	case old.GetTenant() != spec.GetTenant():
		return status.Errorf(codes.AlreadyExists, "spec.name: a live job named %q exists in tenant %q (%s); names are unique in the cell", spec.Name, old.GetTenant(), j.job.Id)
	case old.GetScheduler() != spec.GetScheduler():
		return status.Errorf(codes.FailedPrecondition, "spec.scheduler: the live job %s is owned by scheduler %q; a new version cannot move it to %q (stop it and submit again)", spec.Name, old.GetScheduler(), spec.GetScheduler())
	case jobKind(old) != jobKind(spec):
		return status.Errorf(codes.FailedPrecondition, "spec.kind: the live job %s is a %s; a new version cannot change its kind (stop it and submit again)", spec.Name, kindName(jobKind(old)))
	case old.GetGang() != spec.GetGang():
		return status.Errorf(codes.FailedPrecondition, "spec.gang: a new version of %s cannot change gang (stop it and submit again)", spec.Name)
	case spec.GetGang() && old.GetCount() != spec.GetCount():
		return status.Errorf(codes.FailedPrecondition, "spec.count: a gang's count cannot change while it lives (stop it and submit again)")
	}
	return nil
}

func jobKind(spec *cellv1.JobSpec) cellv1.JobKind {
	if k := spec.GetKind(); k == cellv1.JobKind_JOB_KIND_SERVICE || k == cellv1.JobKind_JOB_KIND_SYSTEM {
		return k
	}
	return cellv1.JobKind_JOB_KIND_BATCH
}

func kindName(k cellv1.JobKind) string {
	switch k {
	case cellv1.JobKind_JOB_KIND_SERVICE:
		return "service"
	case cellv1.JobKind_JOB_KIND_SYSTEM:
		return "system job"
	}
	return "batch job"
}

// liveSlots counts a job's slots that are not retired.
func (j *jobEntry) liveSlots() uint32 {
	return uint32(len(j.tasks)) - j.counts[txn.TaskKilled]
}

// updateJob makes spec the next version of the live job j. An identical
// spec changes nothing (and returns the job as it is).
func (s *state) updateJob(j *jobEntry, spec *cellv1.JobSpec, cause string) (any, error) {
	if err := checkUpdate(j, spec); err != nil {
		return nil, err
	}
	old := j.job
	system := jobKind(spec) == cellv1.JobKind_JOB_KIND_SYSTEM
	if system && spec.Count != uint32(len(j.tasks)) { // system.go: count is the tasks it has
		spec = proto.Clone(spec).(*cellv1.JobSpec)
		spec.Count = uint32(len(j.tasks))
	}
	if proto.Equal(old.GetSpec(), spec) {
		return old, nil
	}
	if live := j.liveSlots(); !system && spec.Count > live {
		if err := s.refusePending(spec.Count - live); err != nil {
			return nil, err
		}
	}
	v := jobVersion(old) + 1
	pb := proto.Clone(old).(*cellv1.Job)
	pb.Spec, pb.Version = spec, v
	pb.TemplateVersion = templateVersion(old)
	pb.Version = v
	templateChanged := !proto.Equal(old.GetSpec().GetTask(), spec.GetTask())
	if templateChanged {
		pb.TemplateVersion = v
		for i := len(j.versions) - 1; i >= 0; i-- { // a template kept from before keeps its number
			if jv := j.versions[i]; proto.Equal(jv.Spec.GetTask(), spec.GetTask()) && jv.TemplateVersion != 0 {
				pb.TemplateVersion = jv.TemplateVersion
				break
			}
		}
	}
	service := jobKind(spec) == cellv1.JobKind_JOB_KIND_SERVICE
	if (service || system) && templateChanged {
		from := templateVersion(old)
		if r := old.GetRollout(); r != nil && r.State != cellv1.RolloutState_ROLLOUT_STATE_SUCCEEDED && r.FromVersion != 0 {
			from = r.FromVersion // the last version that rolled out whole
		}
		pb.Rollout = &cellv1.Rollout{Version: v, FromVersion: from, State: cellv1.RolloutState_ROLLOUT_STATE_RUNNING,
			StartTimeUnixNano: s.now, Desired: desiredReplicas(j, spec)}
	}
	if spec.Task.GetMaxPerMachine() > 0 && j.perMachine == nil {
		j.perMachine = make(map[string]uint32)
		for _, t := range j.tasks {
			if t.t.State.HoldsResources() {
				j.perMachine[t.t.Machine]++
			}
		}
	}
	j.tmpl = spec.Task
	s.installJob(j, pb)
	s.recordVersion(j, spec, v, cause)
	// Tasks not started yet take the new version at once.
	place := newPlacement(spec)
	for _, t := range j.tasks {
		if t.t.State == txn.TaskPending {
			s.retarget(j, t.t.Key, place, "")
		}
	}
	switch {
	case service || system: // a system job's tasks follow its machines (system.go); only a rollout replaces them
		s.reconcile(j)
	case jobKind(spec) == cellv1.JobKind_JOB_KIND_BATCH:
		s.scaleBatch(j, place)
	}
	return j.job, nil
}

// placement is what a version gives the tasks it places.
type placement struct {
	res   txn.Resources
	cons  []txn.Constraint
	prio  int32
	perM  uint32
	sched string
}

func newPlacement(spec *cellv1.JobSpec) placement {
	return placement{res: pbconv.Resources(spec.Task.GetResources()), cons: txn.Compile(pbconv.Constraints(spec.Task.GetConstraints())),
		prio: spec.Priority, perM: spec.Task.GetMaxPerMachine(), sched: spec.Scheduler}
}

// retarget gives task k the job's current template version: a task that
// holds resources or ended goes back to pending (its agent stops the old
// attempt), a pending one is updated in place.
func (s *state) retarget(j *jobEntry, k txn.TaskKey, p placement, msg string) {
	t := s.task(k)
	if t.t.State == txn.TaskPending {
		nt := *t
		s.installTask(&nt)
	} else if s.transition(k, txn.TaskPending, msg) != nil {
		return
	}
	t = s.task(k)   // the version this operation installed
	s.unindex(j, t) // its counts, health and quota ledger change with it
	nt := t.t.Clone()
	nt.Resources, nt.Constraints, nt.Priority, nt.MaxPerMachine = p.res, p.cons, p.prio, p.perM
	t.t = nt
	t.version, t.versionTime = templateVersion(j.job), s.now
	t.notBefore, t.failures = 0, 0
	if msg != "" {
		t.message = msg
	}
	s.index(j, t)
}

// addSlot appends a new pending task to a job.
func (s *state) addSlot(j *jobEntry, p placement) {
	idx := uint32(len(j.tasks))
	j.tasks = append(j.tasks, nil)
	if j.slot != nil {
		j.slot = append(j.slot, 0)
	}
	s.installTask(&task{
		t: &txn.Task{Key: txn.TaskKey{Job: j.job.Id, Index: idx}, Scheduler: p.sched, Tenant: j.job.Spec.GetTenant(), Priority: p.prio,
			State: txn.TaskPending, Resources: p.res, Constraints: p.cons, MaxPerMachine: p.perM},
		submitTime: s.now, version: templateVersion(j.job), versionTime: s.now,
	})
}

// setSlots records the job's slot count when it exceeds its count.
func (s *state) setSlots(j *jobEntry) {
	n := uint32(len(j.tasks))
	if n == max(j.job.GetTaskSlots(), j.job.GetSpec().GetCount()) {
		return
	}
	pb := proto.Clone(j.job).(*cellv1.Job)
	pb.TaskSlots = n
	s.installJob(j, pb)
}

// scaleBatch keeps a batch job's count: more slots are appended, surplus
// tasks that have not finished are killed (the highest indexes first);
// retired slots below the count run again.
func (s *state) scaleBatch(j *jobEntry, p placement) {
	count := int(j.job.GetSpec().GetCount())
	for i := len(j.tasks) - 1; i >= count; i-- {
		t := j.tasks[i]
		if t.t.State != txn.TaskSucceeded && txn.CanTransition(t.t.State, txn.TaskKilled) {
			s.transition(t.t.Key, txn.TaskKilled, "retired: the job was scaled down")
		}
	}
	for i := 0; i < min(count, len(j.tasks)); i++ {
		if j.tasks[i].t.State == txn.TaskKilled {
			s.transition(j.tasks[i].t.Key, txn.TaskPending, "")
			s.retarget(j, j.tasks[i].t.Key, p, "scaled up")
		}
	}
	for len(j.tasks) < count {
		s.addSlot(j, p)
	}
	s.setSlots(j)
}

// rolling reports whether a job's rollout is in progress.
func rolling(pb *cellv1.Job) bool {
	return jobLive(pb) && pb.GetRollout().GetState() == cellv1.RolloutState_ROLLOUT_STATE_RUNNING
}

// noteRollout keeps the set of jobs whose rollout runs (for the clock).
func (s *state) noteRollout(pb *cellv1.Job) {
	if rolling(pb) {
		if s.rolling == nil {
			s.rolling = make(map[string]struct{})
		}
		s.rolling[pb.Id] = struct{}{}
		return
	}
	delete(s.rolling, pb.Id)
}

// desiredReplicas is how many replicas a rollout of spec wants: a
// service's count, a system job's tasks on machines it covers now.
func desiredReplicas(j *jobEntry, spec *cellv1.JobSpec) uint32 {
	if isSystemSpec(spec) {
		return j.liveSlots()
	}
	return spec.Count
}

// reconcile takes one step of a service's or system job's rollout, or
// keeps a service's count. A system job's count is its live tasks (one
// per eligible machine, kept by system.go), so its plan only replaces
// tasks in place, never surges nor retires.
func (s *state) reconcile(j *jobEntry) {
	kind := jobKind(j.job.Spec)
	if !jobLive(j.job) || kind == cellv1.JobKind_JOB_KIND_BATCH {
		return
	}
	isRolling := rolling(j.job)
	system := kind == cellv1.JobKind_JOB_KIND_SYSTEM
	if system && !isRolling {
		return
	}
	spec := j.job.Spec
	count := desiredReplicas(j, spec)
	st := resolveJobStrategy(spec, count)
	target := templateVersion(j.job)
	slots := make([]slotView, len(j.tasks))
	for i, t := range j.tasks {
		slots[i] = slotView{index: uint32(i), retired: t.t.State == txn.TaskKilled,
			current: max(t.version, 1) == target, healthy: s.healthy(t, target, st)}
	}
	plan := planReplicas(slots, count, st, isRolling)
	if system {
		plan = replicaPlan{replace: plan.replace}
	}
	if !plan.empty() {
		p := newPlacement(spec)
		why := fmt.Sprintf("replaced by version %d", jobVersion(j.job))
		for _, i := range plan.replace {
			s.retarget(j, j.tasks[i].t.Key, p, why)
		}
		for _, i := range plan.retire {
			k := j.tasks[i].t.Key
			if txn.CanTransition(j.tasks[i].t.State, txn.TaskKilled) {
				s.transition(k, txn.TaskKilled, "retired: surplus replica")
			}
		}
		for _, i := range plan.revive {
			k := j.tasks[i].t.Key
			if s.transition(k, txn.TaskPending, "") == nil {
				s.retarget(j, k, p, "new replica")
			}
		}
		for range plan.add {
			s.addSlot(j, p)
		}
		s.setSlots(j)
	}
	if isRolling {
		s.rolloutProgress(j, st, count)
	}
}

// healthy: the replica runs, is ready, and (for the target version) has
// been ready for min_healthy_time.
func (s *state) healthy(t *task, target uint64, st strategy) bool {
	if t.t.State != txn.TaskRunning || !t.ready {
		return false
	}
	return max(t.version, 1) != target || s.now-t.readyTime >= st.minHealthy
}

// rolloutProgress counts a rollout's replicas, and ends it: succeeded
// when every replica is current and healthy, failed when one current
// replica stayed unhealthy past the deadline (then, with auto_revert, the
// previous version is submitted again).
func (s *state) rolloutProgress(j *jobEntry, st strategy, desired uint32) {
	r := proto.Clone(j.job.Rollout).(*cellv1.Rollout)
	target := templateVersion(j.job)
	var updated, healthy, old uint32
	late := -1
	for i, t := range j.tasks {
		if t.t.State == txn.TaskKilled {
			continue
		}
		if max(t.version, 1) != target {
			old++
			continue
		}
		updated++
		if s.healthy(t, target, st) {
			healthy++
		} else if late < 0 && s.now-t.versionTime > st.deadline {
			late = i
		}
	}
	r.Updated, r.Healthy, r.Desired = updated, healthy, desired
	switch {
	case old == 0 && healthy == r.Desired && updated == r.Desired:
		r.State, r.EndTimeUnixNano = cellv1.RolloutState_ROLLOUT_STATE_SUCCEEDED, s.now
	case late >= 0:
		t := j.tasks[late]
		r.State, r.EndTimeUnixNano = cellv1.RolloutState_ROLLOUT_STATE_FAILED, s.now
		r.Message = fmt.Sprintf("task %d was not healthy %v after it got version %d (%s)", late,
			time.Duration(st.deadline), r.Version, taskHealthText(t))
	}
	if proto.Equal(r, j.job.Rollout) {
		return
	}
	pb := proto.Clone(j.job).(*cellv1.Job)
	pb.Rollout = r
	s.installJob(j, pb)
	if r.State == cellv1.RolloutState_ROLLOUT_STATE_FAILED && st.autoRevert {
		s.autoRevert(j, r)
	}
}

func taskHealthText(t *task) string {
	switch {
	case t.t.State == txn.TaskRunning && !t.ready:
		return "running, not ready"
	case t.message != "":
		return t.t.State.String() + ": " + t.message
	}
	return t.t.State.String()
}

// autoRevert submits the version a failed rollout replaced again.
func (s *state) autoRevert(j *jobEntry, failed *cellv1.Rollout) {
	prev := j.version(failed.FromVersion)
	if prev == nil {
		s.setRolloutMessage(j, fmt.Sprintf("%s; version %d is no longer kept, nothing to revert to", failed.Message, failed.FromVersion))
		return
	}
	spec := proto.Clone(prev.Spec).(*cellv1.JobSpec)
	spec.Count = j.job.Spec.Count // revert the template, keep the scale
	if _, err := s.updateJob(j, spec, fmt.Sprintf("auto-revert of version %d", failed.Version)); err != nil {
		s.setRolloutMessage(j, fmt.Sprintf("%s; revert failed: %v", failed.Message, err))
		return
	}
	if r := j.job.GetRollout(); r != nil && r.Version == j.job.Version {
		pb := proto.Clone(j.job).(*cellv1.Job)
		pb.Rollout.Reverts = failed.Version
		pb.Rollout.Message = fmt.Sprintf("version %d failed: %s; rolling back to version %d's template", failed.Version, failed.Message, failed.FromVersion)
		s.installJob(j, pb)
	}
}

func (s *state) setRolloutMessage(j *jobEntry, msg string) {
	pb := proto.Clone(j.job).(*cellv1.Job)
	pb.Rollout.Message = msg
	s.installJob(j, pb)
}

// driveRollouts re-plans every touched job whose rollout runs.
func (s *state) driveRollouts() {
	if len(s.rolling) == 0 {
		return
	}
	var ids []string
	for id := range s.changes.touchedJobs {
		if _, ok := s.rolling[id]; ok {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	for _, id := range ids {
		s.reconcile(s.jobs[id])
	}
}

// rolloutTickOp re-plans every running rollout (deadlines and
// min_healthy_time pass without any change of state).
type rolloutTickOp struct{}

func (rolloutTickOp) run(s *state) (any, error) {
	ids := make([]string, 0, len(s.rolling))
	for id := range s.rolling {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		if j := s.jobs[id]; j != nil {
			s.reconcile(j)
		}
	}
	return nil, nil
}

// rolloutLoop is the rollout clock: a tick every rolloutTick while some
// rollout runs. Started and awaited by gcLoop; stops with it.
func (s *Store) rolloutLoop(done chan<- struct{}) {
	defer close(done)
	s.stepWhileDue(s.gcStop, rolloutTick, 10*time.Second, "rollout tick",
		func(st *state) bool { return len(st.rolling) > 0 }, rolloutTickOp{})
}

// ---------------------------------------------------------- readiness

// hasReadiness reports whether a job's replicas wait for a readiness
// check (without one a replica is ready once it runs).
func hasReadiness(j *jobEntry) bool { return j.tmpl.GetReadinessCheck() != nil }

// stampTask sets the issue-13 fields of a task version whose state
// changes: placement stamps the template version it will run; starting
// makes it ready unless a readiness check decides; leaving running makes
// it not ready (readyTime stays, for the crash-loop reset).
func (s *state) stampTask(nt, old *task) {
	if nt.t.State == old.t.State {
		return
	}
	j := s.jobs[nt.t.Key.Job]
	switch nt.t.State {
	case txn.TaskAssigned:
		if v := templateVersion(j.job); nt.version != v {
			nt.version, nt.versionTime = v, s.now
		}
		nt.ready, nt.readyTime = false, 0
	case txn.TaskRunning:
		if !hasReadiness(j) {
			nt.ready, nt.readyTime = true, s.now
		}
	default:
		nt.ready = false
	}
}

// readinessUpdate applies an agent's report that a running attempt
// became ready or not; done is false when u is not such a report.
func (s *state) readinessUpdate(machineID string, u *cellv1.TaskStateUpdate) (done bool, err error) {
	if u.State != cellv1.TaskState_TASK_STATE_RUNNING {
		return false, nil
	}
	k := pbconv.TaskKey(u.Task)
	t := s.task(k)
	if t == nil || t.t.State != txn.TaskRunning || t.t.Machine != machineID || t.t.Attempt != u.Attempt {
		return false, nil // ValidateAgentUpdate says why
	}
	j := s.jobs[k.Job]
	if !hasReadiness(j) || t.ready == u.Ready {
		return true, nil
	}
	nt := *t
	nt.ready = u.Ready
	if u.Ready {
		nt.readyTime = s.now
	}
	s.installTask(&nt)
	return true, nil
}

// markReady sets the readiness an agent reported with RUNNING on the
// version this operation installed.
func (s *state) markReady(t *task, ready bool) {
	j := s.jobs[t.t.Key.Job]
	if !ready || !hasReadiness(j) {
		return
	}
	j.countHealth(t, -1)
	t.ready, t.readyTime = true, s.now
	j.countHealth(t, 1)
}

// countFailure counts a failed attempt (restarting the count of one that
// had been ready for crashLoopReset).
func (s *state) countFailure(j *jobEntry, t *task, service bool) {
	j.countHealth(t, -1)
	if service && t.readyTime != 0 && s.now-t.readyTime >= int64(crashLoopReset) {
		t.failures = 0
	}
	t.failures++
	j.countHealth(t, 1)
}

// countHealth adds d to the job's ready and crash-looping counts for t.
func (j *jobEntry) countHealth(t *task, d int) {
	if t.ready && t.t.State == txn.TaskRunning {
		j.readyCount += uint32(d)
	}
	if crashLooping(j, t) {
		j.crashLooping += uint32(d)
	}
}

func crashLooping(j *jobEntry, t *task) bool {
	return t.failures >= crashLoopFailures && !t.ready && t.t.State != txn.TaskKilled &&
		j.job.GetSpec().GetKind() == cellv1.JobKind_JOB_KIND_SERVICE
}

// recoveredSlots is how many task slots a recovered job has (a queued
// job none yet).
func recoveredSlots(pb *cellv1.Job) int {
	if recoveredTasks(pb) == 0 {
		return 0
	}
	return jobSlots(pb)
}
