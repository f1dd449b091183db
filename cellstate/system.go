package cellstate

import (
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/omegacell/omegacell/pbconv"
	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
	"github.com/omegacell/omegacell/proto/limits"
	"github.com/omegacell/omegacell/txn"
)

// System jobs (issue 13; Kubernetes' DaemonSet, Nomad's system jobs): one
// task on every machine that is ready and satisfies the job's
// constraints.
//
// The store keeps the per-machine task set, because it is the one place
// that sees every machine change: in the same operation (so the same
// commit round and revision) as a machine registers, changes labels, is
// cordoned or drained (drain.go's setDrain), goes down or comes back, [state.reconcileMachine] adds a task
// pinned to a newly eligible machine, sends the killed task of a machine
// that is eligible again back to pending, and kills the task of a machine
// that no longer is. Each task is pinned to its machine (Task.pinned
// machine id, txn.Task.Pin): txn.Validate refuses a claim elsewhere, and
// the job's own scheduler (the service scheduler by default) places it
// like any other task — every built-in policy claims a pinned task on its
// machine directly (policy.PlacePinned), so covering N machines costs
// O(N). A task's index never changes; the job's spec.count is kept equal
// to its number of tasks (machines it ever covered), at most
// limits.MaxTasksPerJob. Tasks restart as a service's do.

// systemSpec is a submitted system job's spec with count set to the
// machines it covers now.
func (s *state) systemSpec(spec *cellv1.JobSpec) *cellv1.JobSpec {
	j := &jobEntry{job: &cellv1.Job{Spec: spec}, cons: txn.Compile(pbconv.Constraints(spec.GetTask().GetConstraints()))}
	n := 0
	for _, m := range s.machines {
		if systemEligible(j, m) {
			n++
		}
	}
	out := proto.Clone(spec).(*cellv1.JobSpec)
	out.Count = uint32(min(n, limits.MaxTasksPerJob))
	return out
}

// isSystem reports whether a job is a system job.
func isSystem(j *jobEntry) bool { return j.job.GetSpec().GetKind() == cellv1.JobKind_JOB_KIND_SYSTEM }

// systemEligible reports whether a system job wants a task on m.
func systemEligible(j *jobEntry, m *machine) bool {
	if m == nil || m.m.State != txn.MachineReady {
		return false
	}
	_, unmet := txn.FirstUnmet(j.cons, m.m.Labels)
	return !unmet
}

// createSystemTasks creates an admitted system job's tasks: one per
// eligible machine, in machine id order.
func (s *state) createSystemTasks(j *jobEntry) {
	j.cons = txn.Compile(pbconv.Constraints(j.tmpl.GetConstraints()))
	j.byMachine = make(map[string]uint32)
	s.systemJobs[j.job.Id] = j
	for _, id := range s.sortedMachineIDs() {
		if systemEligible(j, s.machines[id]) {
			s.addSystemTask(j, id)
		}
	}
	s.syncSystemCount(j)
}

// addSystemTask appends a pending task pinned to machine id.
func (s *state) addSystemTask(j *jobEntry, id string) bool {
	if len(j.tasks) >= limits.MaxTasksPerJob {
		return false
	}
	spec := j.job.GetSpec()
	idx := uint32(len(j.tasks))
	j.tasks = append(j.tasks, nil)
	if j.slot != nil {
		j.slot = append(j.slot, 0)
	}
	t := &task{
		t: &txn.Task{
			Key: txn.TaskKey{Job: j.job.Id, Index: idx}, Scheduler: spec.Scheduler, Tenant: spec.Tenant, Priority: spec.Priority,
			State: txn.TaskPending, Resources: pbconv.Resources(spec.GetTask().GetResources()), Constraints: j.cons,
			MaxPerMachine: spec.GetTask().GetMaxPerMachine(), Pin: id,
		},
		submitTime: s.now, version: templateVersion(j.job), versionTime: s.now,
	}
	s.installTask(t)
	j.byMachine[id] = idx
	return true
}

// syncSystemCount keeps spec.count equal to the job's number of tasks.
func (s *state) syncSystemCount(j *jobEntry) {
	if j.job.GetSpec().GetCount() == uint32(len(j.tasks)) {
		return
	}
	pb := proto.Clone(j.job).(*cellv1.Job)
	pb.Spec.Count = uint32(len(j.tasks))
	s.installJob(j, pb)
}

// reconcileMachine brings every live system job in line with machine id
// after a change to it (called by the operations that change a machine's
// state or labels).
func (s *state) reconcileMachine(id string) {
	for jid, j := range s.systemJobs {
		if !jobLive(j.job) {
			delete(s.systemJobs, jid)
			continue
		}
		if j.byMachine == nil { // queued: no tasks yet
			continue
		}
		m := s.machines[id]
		idx, has := j.byMachine[id]
		switch eligible := systemEligible(j, m); {
		case eligible && !has:
			if s.addSystemTask(j, id) {
				s.syncSystemCount(j)
			}
		case eligible && j.tasks[idx].t.State == txn.TaskKilled:
			s.requeue(txn.TaskKey{Job: jid, Index: idx}, fmt.Sprintf("machine %s is eligible again", id), 0)
		case !eligible && has && !j.tasks[idx].t.State.Terminal():
			s.transition(txn.TaskKey{Job: jid, Index: idx}, txn.TaskKilled, fmt.Sprintf("system job leaves machine %s: %s", id, whyIneligible(j, m)))
		}
	}
}

func whyIneligible(j *jobEntry, m *machine) string {
	switch {
	case m == nil:
		return "it left the cell"
	case m.m.State != txn.MachineReady:
		return "it is " + m.m.State.String()
	}
	if c, unmet := txn.FirstUnmet(j.cons, m.m.Labels); unmet {
		return "its labels no longer match " + c.String()
	}
	return "it is not eligible"
}

// recoverSystemJob rebuilds a recovered system job's bookkeeping.
func (s *state) recoverSystemJob(j *jobEntry) {
	if !isSystem(j) || !jobLive(j.job) || j.job.State == cellv1.JobState_JOB_STATE_QUEUED {
		return
	}
	j.cons = txn.Compile(pbconv.Constraints(j.tmpl.GetConstraints()))
	j.byMachine = make(map[string]uint32, len(j.tasks))
	for i, t := range j.tasks {
		j.byMachine[t.t.Pin] = uint32(i)
	}
	s.systemJobs[j.job.Id] = j
}
