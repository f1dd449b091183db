package cellstate

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/omegacell/omegacell/pbconv"
	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
	"github.com/omegacell/omegacell/txn"
)

// Replication (issue 15). In cluster mode a Store is a replica of a cell
// whose change log is a replicated stream (package replication owns the
// stream, the lease and the cluster; this file is the store's side):
//
//   - As leader, the commit loop runs as in single-server mode, and between
//     building a round and writing it to Pebble it hands the round's
//     revisions to the Replicator, which appends them to the stream fenced
//     on the revision before the round (the stream's sequence is the
//     revision). Only when the quorum acknowledged them is the round
//     written locally, answered and published. If the append fails the
//     round's in-memory changes exist nowhere else: the store fails (as on
//     a failed Pebble write) and the server restarts as a follower.
//   - As follower, the commit loop takes only applyOps: revisions read
//     from the stream, installed exactly as the leader made them (same
//     revision, same objects), group-committed to Pebble and published to
//     watchers like any round. Every other operation (a client's write,
//     the collector, the liveness check) is refused with a NotLeaderError
//     naming the leader.
//
// Single-server mode has no replica: the commit loop's two calls are a nil
// check each.

// Replicator makes a leader's revisions durable on a quorum of replicas.
type Replicator interface {
	// Append appends revs (consecutive, the first one after the stream's
	// last) and returns once a quorum has them; an error means they may
	// not be acknowledged (fenced, timed out, no quorum).
	Append(revs []*cellv1.ReplicatedRevision) error
}

// Role is a store's part in a replicated cell.
type Role int32

const (
	// RoleFollower applies the leader's revisions and refuses writes.
	RoleFollower Role = iota
	// RoleLeader runs the commit loop and appends every round.
	RoleLeader
)

// replica is a Store's replication state (nil in single-server mode).
type replica struct {
	role       atomic.Int32
	repl       Replicator
	leader     atomic.Pointer[string] // the leader's gRPC address, as last known
	leaderFrom atomic.Int64           // when this store last became leader (unix ns)
	fenced     func(error)            // told when an append fails
}

// ReasonNotLeader is the google.rpc.ErrorInfo reason (domain omegacell) of
// a write sent to a follower; metadata "leader" is the leader's gRPC
// address when one is known.
const ReasonNotLeader = "NOT_LEADER"

// NotLeaderError refuses a write on a follower.
type NotLeaderError struct{ Leader string }

func (e *NotLeaderError) Error() string {
	if e.Leader == "" {
		return "cellstate: this server is a follower and no leader is known yet (election in progress); retry"
	}
	return "cellstate: this server is a follower; writes go to the leader at " + e.Leader
}

// GRPCStatus is Unavailable with ErrorInfo NOT_LEADER: nothing was done,
// and the client may send the call again, to the leader.
func (e *NotLeaderError) GRPCStatus() *status.Status {
	st := status.New(codes.Unavailable, e.Error())
	info := &errdetails.ErrorInfo{Reason: ReasonNotLeader, Domain: "omegacell"}
	if e.Leader != "" {
		info.Metadata = map[string]string{"leader": e.Leader}
	}
	if d, err := st.WithDetails(info); err == nil {
		return d
	}
	return st
}

// EnableReplication makes s a replica, starting as follower. Call it right
// after Open, before anything is served. fenced is told when an append
// failed: the store then refuses everything until Reload.
func (s *Store) EnableReplication(r Replicator, fenced func(error)) {
	rp := &replica{repl: r, fenced: fenced}
	empty := ""
	rp.leader.Store(&empty)
	s.repl.Store(rp)
}

// SetRole switches between follower and leader. A store becomes leader
// only once it applied the whole stream (the caller's duty); its next
// round appends after its revision. Becoming leader rebuilds what only
// a leader's commit loop keeps (the quota queues of queued jobs, the
// stopped jobs whose tasks are still being killed): a follower installs
// the leader's objects and never needed them.
func (s *Store) SetRole(r Role) {
	rp := s.repl.Load()
	if rp == nil {
		return
	}
	changed := Role(rp.role.Load()) != r
	if changed && r == RoleLeader {
		rp.leaderFrom.Store(time.Now().UnixNano())
	}
	rp.role.Store(int32(r))
	if changed {
		s.rebuildLeaderState()
	}
}

// rebuildOp rebuilds, in the commit loop (which owns them), what only a
// leader's loop keeps: the quota queues and the reaper's list (a
// follower's reaper list is empty: it kills nothing itself).
type rebuildOp struct{ leader bool }

func (o rebuildOp) run(st *state) (any, error) {
	st.queues, st.queuedTasks, st.reaping = newState().queues, 0, nil
	if o.leader {
		st.recoverQueues()
		st.recoverReaping()
	}
	return nil, nil
}

func (s *Store) rebuildLeaderState() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, _, err := s.do(ctx, rebuildOp{leader: s.IsLeader()}); err != nil {
		s.log.Warn("rebuilding the leader's queues", "err", err)
	}
}

// SetLeaderAddress records where the leader serves (for NotLeaderError).
func (s *Store) SetLeaderAddress(addr string) {
	if rp := s.repl.Load(); rp != nil {
		rp.leader.Store(&addr)
	}
}

// IsLeader reports whether the store commits (always true without
// replication).
func (s *Store) IsLeader() bool {
	rp := s.repl.Load()
	return rp == nil || Role(rp.role.Load()) == RoleLeader
}

// leaderSince is when the store last became leader (zero without
// replication): liveness gives every machine a fresh grace from then.
func (s *Store) leaderSince() time.Time {
	if rp := s.repl.Load(); rp != nil {
		return time.Unix(0, rp.leaderFrom.Load())
	}
	return time.Time{}
}

// leading is the role a round runs in: it is read once per round, so a
// round admitted as leader is appended even if the store steps down
// meanwhile (the append's fence decides), and a follower's round is
// never appended.
func (rp *replica) leading() bool {
	return rp == nil || Role(rp.role.Load()) == RoleLeader
}

// admit decides whether the loop may run op in the round's role.
func (rp *replica) admit(op operation, leader bool) error {
	if rp == nil {
		return nil
	}
	if _, ok := op.(rebuildOp); ok {
		return nil
	}
	_, apply := op.(*applyOp)
	switch {
	case leader && apply:
		return errors.New("cellstate: the leader does not apply replicated revisions")
	case !leader && !apply:
		return &NotLeaderError{Leader: *rp.leader.Load()}
	}
	return nil
}

// append hands a leader's round to the Replicator (followers' rounds came
// from the stream).
func (rp *replica) append(entries []*encodedEntry, leader bool) error {
	if rp == nil || !leader {
		return nil
	}
	revs := make([]*cellv1.ReplicatedRevision, len(entries))
	for i, e := range entries {
		revs[i] = &cellv1.ReplicatedRevision{Revision: e.rev, Watch: e.data,
			Schedulers: e.cs.schedulers, SchedulersGone: e.cs.schedulersGone}
	}
	if err := rp.repl.Append(revs); err != nil {
		rp.role.Store(int32(RoleFollower))
		err = fmt.Errorf("cellstate: replicating revisions %d-%d: %w", entries[0].rev, entries[len(entries)-1].rev, err)
		if rp.fenced != nil {
			go rp.fenced(err)
		}
		return err
	}
	return nil
}

// applyOp installs one revision the leader committed.
type applyOp struct{ r *cellv1.ReplicatedRevision }

// Apply queues revisions read from the stream (in order) on a follower and
// waits until they are applied and durable locally.
func (s *Store) Apply(ctx context.Context, revs []*cellv1.ReplicatedRevision) error {
	reqs := make([]*request, 0, len(revs))
	for _, r := range revs {
		req := &request{op: &applyOp{r}, done: make(chan struct{}), queued: time.Now()}
		select {
		case s.reqs <- req:
		case <-s.stop:
			return ErrClosed
		case <-ctx.Done():
			return ctx.Err()
		}
		reqs = append(reqs, req)
	}
	for _, req := range reqs {
		<-req.done
		if req.err != nil {
			return req.err
		}
	}
	return nil
}

func (o *applyOp) run(s *state) (any, error) {
	rev := s.changes.rev
	if o.r.Revision != rev {
		return nil, fmt.Errorf("cellstate: replicated revision %d does not follow %d", o.r.Revision, rev-1)
	}
	w := &cellv1.WatchResponse{}
	if err := proto.Unmarshal(o.r.Watch, w); err != nil {
		return nil, fmt.Errorf("cellstate: replicated revision %d: %w", rev, err)
	}
	if w.Revision != rev {
		return nil, fmt.Errorf("cellstate: replicated revision %d carries revision %d", rev, w.Revision)
	}
	// Check everything first: an operation that fails changes nothing.
	newJobs := map[string]*cellv1.Job{}
	for _, c := range w.Changes {
		switch o := c.Object.(type) {
		case *cellv1.Change_Job:
			if s.jobs[o.Job.Id] == nil {
				newJobs[o.Job.Id] = o.Job
			}
		case *cellv1.Change_Task:
			n := uint32(0)
			if j := newJobs[o.Task.JobId]; j != nil {
				n = j.GetSpec().GetCount()
			} else if je := s.jobs[o.Task.JobId]; je != nil {
				n = je.job.GetSpec().GetCount()
			}
			if o.Task.Index >= n {
				return nil, fmt.Errorf("cellstate: replicated revision %d: task %s/%d of an unknown job", rev, o.Task.JobId, o.Task.Index)
			}
		case *cellv1.Change_Deleted:
			if s.jobs[o.Deleted.GetJobId()] == nil {
				return nil, fmt.Errorf("cellstate: replicated revision %d deletes unknown job %s", rev, o.Deleted.GetJobId())
			}
		}
	}
	for _, c := range w.Changes {
		switch o := c.Object.(type) {
		case *cellv1.Change_Machine:
			pb := o.Machine
			nm := newMachineRecord(pbconv.Machine(pb), pb.GpuMemoryBytes)
			nm.registeredBy = pb.RegisteredBy
			nm.drain = pb.Drain
			s.installMachine(nm)
		case *cellv1.Change_Job:
			pb := o.Job
			j := s.jobs[pb.Id]
			if j == nil {
				spec := pb.GetSpec()
				j = &jobEntry{tmpl: spec.GetTask()}
				if j.tmpl.GetMaxPerMachine() > 0 {
					j.perMachine = make(map[string]uint32)
				}
				s.jobs[pb.Id] = j
				s.jobByName[spec.GetName()] = pb.Id
			}
			// A queued job has no tasks until it is admitted (quota.go).
			if n := int(recoveredTasks(pb)); len(j.tasks) < n {
				j.tasks = append(j.tasks, make([]*task, n-len(j.tasks))...)
			}
			s.installJob(j, pb)
		case *cellv1.Change_Task:
			pb := o.Task
			j := s.jobs[pb.JobId]
			t := taskFromPB(pb, j.tmpl)
			// As recovery does (store.go): the task's quota usage is its
			// job's tenant's, on a follower as on the leader.
			t.t.Tenant = j.job.GetSpec().GetTenant()
			if old := j.tasks[pb.Index]; old != nil {
				t.t.Constraints = old.t.Constraints
			} else {
				t.t.Constraints = j.constraints()
			}
			s.installTask(t)
		case *cellv1.Change_Deleted:
			s.deleteJob(s.jobs[o.Deleted.GetJobId()])
		case *cellv1.Change_Tenant:
			s.putTenant(o.Tenant)
			s.changes.tenants = append(s.changes.tenants, o.Tenant)
		}
	}
	for _, name := range o.r.Schedulers {
		s.schedulers[name] = true
		s.seen.touch(name, s.now)
		s.changes.schedulers = append(s.changes.schedulers, name)
	}
	for _, name := range o.r.SchedulersGone {
		delete(s.schedulers, name)
		delete(s.pendingBySched, name)
		s.seen.forget(name)
		s.changes.schedulersGone = append(s.changes.schedulersGone, name)
	}
	// The leader's job versions already carry what refreshJobs decides.
	s.changes.touchedJobs = nil
	if s.changes.empty() {
		return nil, fmt.Errorf("cellstate: replicated revision %d changes nothing", rev)
	}
	return nil, nil
}

// constraints compiles the job's task constraints (once per job when its
// first task is installed; later versions reuse the compiled form).
func (j *jobEntry) constraints() []txn.Constraint {
	for _, t := range j.tasks {
		if t != nil {
			return t.t.Constraints
		}
	}
	return txn.Compile(pbconv.Constraints(j.tmpl.GetConstraints()))
}

// SetIdentity replaces the cell's identity with the replicated cell's (a
// replica serves under the identity of the cluster, not of its data
// directory). Call it before anything is served.
func (s *Store) SetIdentity(id string, incarnation uint64) error {
	if _, err := uuid.Parse(id); err != nil {
		return fmt.Errorf("cellstate: cell id %.100q is not a UUID: %w", id, err)
	}
	s.identity = newCellIdentity(id, incarnation)
	return nil
}

// Reload discards the in-memory state and rebuilds it from Pebble, then
// serves again: a replica whose append was refused (its round's changes
// exist only in memory) goes back to its durable revision without a
// restart, as a follower. Only for a store that failed that way.
func (s *Store) Reload() error {
	if err := s.reload(); err != nil {
		return err
	}
	s.rebuildLeaderState()
	return nil
}

func (s *Store) reload() error {
	if s.Err() == nil {
		return errors.New("cellstate: reload of a store that did not fail")
	}
	// A failed store commits nothing, so no checkpoint starts after these.
	s.checkpoints.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.st.reset()
	s.dirty = newDirtySet()
	if err := s.recover(); err != nil {
		return err
	}
	s.st.recoverGC()
	if s.st.rev != s.hub.headRevision() {
		return fmt.Errorf("cellstate: reloaded revision %d, watchers saw %d", s.st.rev, s.hub.headRevision())
	}
	s.failMu.Lock()
	s.failed = nil
	s.failMu.Unlock()
	return nil
}

// reset empties the state for a recovery, keeping what is not revisioned
// (the scheduler clock) and the caps. Tenant policies are replaced in
// place: submits read them without the lock.
func (st *state) reset() {
	fresh := newState()
	st.rev = 0
	st.machines, st.jobs, st.jobByName, st.schedulers = fresh.machines, fresh.jobs, fresh.jobByName, fresh.schedulers
	st.pendingBySched, st.onMachine, st.liveJobs = fresh.pendingBySched, fresh.onMachine, fresh.liveJobs
	st.ledger, st.draining = fresh.ledger, fresh.draining // queues and reaping: rebuildOp, in the loop
	st.finished = finishedQueue{}
	st.tenants.p.Store(nil) // submits read it without the lock
	st.now, st.changes = 0, nil
}

// headRevision is the newest revision published to watchers.
func (h *hub) headRevision() uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.head
}
