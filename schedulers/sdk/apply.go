package sdk

import (
	"time"

	"github.com/omegacell/omegacell/pbconv"
	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
	"github.com/omegacell/omegacell/schedulers/view"
	"github.com/omegacell/omegacell/txn"
)

// apply installs one event of the follower into the local copy and the
// queue. Only the loop calls it.
func (s *scheduler) apply(ev event) {
	switch {
	case ev.snapshot != nil:
		s.applySnapshot(ev.snapshot, ev.reason)
		s.live = true
	case ev.watch != nil:
		s.applyWatch(ev.watch)
		s.live = true
	case ev.down != nil:
		s.live = false
	}
	s.m.viewRevision.Set(float64(s.view.Revision()))
}

// applySnapshot replaces the copy with a snapshot. The queue keeps what it
// learned (attempts, marks) about jobs that are still live; parked jobs are
// tried again, since changes that could have helped them may have been
// missed.
func (s *scheduler) applySnapshot(chunks []*cellv1.SnapshotResponse, reason string) {
	s.view.Reset()
	clear(s.notBefore)
	clear(s.helpful)
	mine := make(map[string]*cellv1.Job)
	for _, c := range chunks {
		if err := s.view.ApplySnapshotChunk(c); err != nil {
			s.log.Error("snapshot chunk not applied; the copy may miss objects", "err", err)
		}
		for _, j := range c.GetJobs() {
			if j.GetSpec().GetScheduler() == s.cfg.Name {
				mine[j.GetId()] = j
			}
		}
		for _, t := range c.GetTasks() {
			if t.GetScheduler() == s.cfg.Name {
				s.noteTask(t)
			}
		}
	}
	for id := range s.q.jobs {
		if _, ok := mine[id]; !ok {
			s.q.remove(id)
		}
	}
	var finished []string
	for id, pb := range mine {
		if s.noteJob(pb) {
			finished = append(finished, id)
		} else {
			s.touched[id] = struct{}{}
		}
	}
	for _, j := range s.q.parked {
		s.unpark(j)
	}
	s.settleTouched()
	s.forget(finished)
	if reason == "start" {
		s.log.Info("scheduler ready", "policy", s.cfg.Policy.Name(), "revision", s.view.Revision(),
			"machines", len(s.view.Machines()), "jobs", len(s.q.jobs))
		if s.cfg.Ready != nil {
			s.cfg.Ready(s.view.Revision())
		}
	} else {
		s.log.Info("local copy replaced by a snapshot", "reason", reason, "revision", s.view.Revision())
	}
}

// applyWatch applies one watch response: every change, then the revision.
// Machine changes that could help a parked job are noted for wakeParked.
func (s *scheduler) applyWatch(r *cellv1.WatchResponse) {
	var finished []string
	for _, c := range r.GetChanges() {
		var old *txn.Machine
		if m := c.GetMachine(); m != nil {
			old = s.view.Machine(m.GetId())
		}
		if err := s.view.ApplyChange(c); err != nil {
			s.log.Error("change not applied; the copy may be wrong until the next snapshot", "revision", r.GetRevision(), "err", err)
			continue
		}
		switch o := c.GetObject().(type) {
		case *cellv1.Change_Machine:
			if helps(old, s.view.Machine(o.Machine.GetId())) {
				s.helpful[o.Machine.GetId()] = struct{}{}
			}
		case *cellv1.Change_Job:
			if o.Job.GetSpec().GetScheduler() == s.cfg.Name {
				if s.noteJob(o.Job) {
					finished = append(finished, o.Job.GetId())
				}
			} else if view.JobState(o.Job.GetState()).Finished() {
				finished = append(finished, o.Job.GetId())
			}
		case *cellv1.Change_Task:
			if o.Task.GetScheduler() == s.cfg.Name {
				s.noteTask(o.Task)
			}
		case *cellv1.Change_Deleted:
			s.q.remove(o.Deleted.GetJobId())
		}
	}
	s.view.SetRevision(r.GetRevision())
	s.settleTouched()
	s.forget(finished)
}

// noteJob records what the cell says about one of the scheduler's jobs
// and reports whether the job is finished (and so leaves the queue).
func (s *scheduler) noteJob(pb *cellv1.Job) (finished bool) {
	if view.JobState(pb.GetState()).Finished() {
		s.q.remove(pb.GetId())
		return true
	}
	info, ok := s.view.Job(pb.GetId())
	if !ok {
		return false
	}
	j, seen := s.q.jobs[info.ID]
	if !seen {
		j = s.q.get(info)
		// A job first seen after an earlier scheduler process placed or
		// tried it does not count towards this one's wait times.
		j.cellFirstAttempt = pb.GetFirstAttemptUnixNano()
		j.placed = pb.GetPlacedUnixNano() != 0
	}
	j.info = info
	j.marked, j.markedAttempts = pb.GetUnschedulableReason(), pb.GetAttempts()
	s.touched[info.ID] = struct{}{}
	return false
}

// noteTask records a task's restart delay and that its job may have
// pending work.
func (s *scheduler) noteTask(pb *cellv1.Task) {
	k := pbconv.TaskKey(&cellv1.TaskRef{JobId: pb.GetJobId(), Index: pb.GetIndex()})
	if pb.GetState() == cellv1.TaskState_TASK_STATE_PENDING && pb.GetNotBeforeUnixNano() != 0 {
		s.notBefore[k] = pb.GetNotBeforeUnixNano()
	} else {
		delete(s.notBefore, k)
	}
	if pb.GetState() == cellv1.TaskState_TASK_STATE_PENDING {
		s.touched[pb.GetJobId()] = struct{}{}
	}
}

// settleTouched queues the touched jobs that are idle and have pending
// tasks. Jobs already ready, waiting or parked keep their place.
func (s *scheduler) settleTouched() {
	for id := range s.touched {
		delete(s.touched, id)
		j := s.q.jobs[id]
		if j == nil {
			info, ok := s.view.Job(id)
			if !ok || info.Scheduler != s.cfg.Name || info.State.Finished() {
				continue
			}
			j = s.q.get(info)
		}
		if j.state == jobIdle && len(s.view.Pending(id)) > 0 {
			s.q.setReady(j)
		}
	}
}

// forget drops finished jobs from the copy once none of their tasks holds
// resources, so a long-running scheduler's copy does not grow with every
// job the cell ever ran.
func (s *scheduler) forget(ids []string) {
	for _, id := range ids {
		if s.view.JobPlacement(id).Machines() == 0 {
			s.view.RemoveJob(id)
		}
	}
}

// helps reports whether a machine's change from old to m could let a
// parked job fit: it is new or newly ready, gained capacity or labels, or
// freed resources.
func helps(old, m *txn.Machine) bool {
	switch {
	case m == nil || m.State != txn.MachineReady:
		return false
	case old == nil || old.State != txn.MachineReady:
		return true
	}
	// Capacity grew, or the allocation shrank, in some resource.
	if !m.Capacity.LessOrEqual(old.Capacity) || !old.Allocated.LessOrEqual(m.Allocated) || !sameLabels(old.Labels, m.Labels) {
		return true
	}
	for i := range min(len(old.DeviceUsed), len(m.DeviceUsed)) {
		if m.DeviceUsed[i] < old.DeviceUsed[i] {
			return true
		}
	}
	return false
}

func sameLabels(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// maxHelpfulChecked bounds the machines checked per parked job; past it,
// every parked job is simply tried again.
const maxHelpfulChecked = 64

// wakeParked tries parked jobs again: those a helpful machine change could
// fit (the machine is ready, meets the job's constraints and has room for
// one of its tasks), and each at its retry time (Config.ParkedRetry after
// it was parked, or sooner when a task of it leaves its restart delay).
func (s *scheduler) wakeParked(now time.Time) {
	if len(s.q.parked) == 0 {
		clear(s.helpful)
		return
	}
	if len(s.helpful) > 0 {
		var ms []*txn.Machine
		if len(s.helpful) <= maxHelpfulChecked {
			for id := range s.helpful {
				if m := s.view.Machine(id); m != nil && m.State == txn.MachineReady {
					ms = append(ms, m)
				}
			}
		}
		all := len(s.helpful) > maxHelpfulChecked
		for _, j := range s.q.parked {
			if all || anyFits(j.info, ms) {
				s.unpark(j)
			}
		}
		clear(s.helpful)
	}
	if now.Before(s.parkedCheckAt) {
		return
	}
	s.parkedCheckAt = time.Time{}
	for _, j := range s.q.parked {
		if !now.Before(j.retryAt) {
			s.unpark(j)
		} else if s.parkedCheckAt.IsZero() || j.retryAt.Before(s.parkedCheckAt) {
			s.parkedCheckAt = j.retryAt
		}
	}
}

// anyFits reports whether one task of job fits on one of ms.
func anyFits(job view.JobInfo, ms []*txn.Machine) bool {
	for _, m := range ms {
		if _, unmet := txn.FirstUnmet(job.Constraints, m.Labels); unmet {
			continue
		}
		if txn.FitsAnywhere(m, job.Resources) {
			return true
		}
	}
	return false
}

// unpark makes a parked job ready with a fresh budget of attempts. Its
// unschedulable mark stays until its tasks are placed.
func (s *scheduler) unpark(j *job) {
	j.noProgress, j.retry = 0, nil
	s.q.setReady(j)
}
