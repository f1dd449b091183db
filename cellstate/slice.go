package cellstate

import (
	"github.com/omegacell/omegacell/txn"
)

// Bounded rounds. The commit loop is one goroutine, so the longest thing
// it does in a round is what every other caller waits for. Three things
// keep each round short whatever a legal request holds:
//
//   - Work that needs no loop state is done by the caller's goroutine
//     before the operation is queued: a submitted job's tasks are built and
//     encoded outside the loop (submit.go), which then only installs them
//     and patches their revision in (O(1) per task, a store each).
//   - Operations whose items are independent are sliced: an incremental
//     commit is applied sliceItems claims at a time, and a stopped (or
//     failed) job's tasks are killed sliceItems at a time, each slice its
//     own revision, committed and published like any other. A sliced
//     operation is carried from round to round ahead of the operations
//     queued meanwhile, which run in the same round after its slice; its
//     caller is answered once its last slice is durable.
//   - What must be atomic is bounded instead: an all-or-nothing
//     transaction, one with preemptions or with claims of a gang job, and
//     a gang job itself hold at most limits.MaxAtomicClaims claims (tasks).
//
// Atomicity as clients see it. A job is submitted in one revision (never
// visible half-submitted). A sliced commit is an incremental transaction:
// each claim is accepted or refused on its own, so applying it in slices
// is the same as the scheduler committing consecutive parts of it; its
// answer carries every claim's result and the revision of its last slice.
// A stop makes the job STOPPED in its first revision, so from then on
// schedulers and agents see a finished job; its tasks are killed in the
// following revisions. A crash between slices leaves durable, consistent
// states only: a partly applied incremental commit (its caller never got
// an answer, as with any commit in flight during a crash: it resyncs from
// its watch), or a finished job with tasks still to kill, which recovery
// hands to the reaper (below), as it does a job that failed.

// sliceItems bounds the claims or tasks one sliced operation changes in
// one round (a few milliseconds of work).
const sliceItems = 4096

// A slicedOp is an operation that may take several rounds. After each run
// (one slice), more reports whether another slice remains; the loop then
// commits the slice and runs the operation again in the next round. Only
// the first slice may fail; a later slice never does (it continues what
// the first one decided).
type slicedOp interface {
	operation
	more() bool
}

// more reports whether r's operation has slices left.
func (r *request) more() bool {
	so, ok := r.op.(slicedOp)
	return ok && so.more()
}

// --- the reaper: killing the tasks of finished jobs in slices ---

// reapJob is a finished job whose tasks from index next on may still be
// unfinished.
type reapJob struct {
	j    *jobEntry
	next int
	why  string
}

// killFrom kills the unfinished tasks among the next budget tasks of j
// from index from on, and returns where to continue (len(j.tasks) when
// done). Once a job is
// finished none of its tasks becomes unfinished again (afterExit
// requeues only tasks of live jobs), so one pass in index order kills
// them all.
func (s *state) killFrom(j *jobEntry, from int, why string, budget int) int {
	i := from
	slab := newVersionSlab(min(budget, len(j.tasks)-from)) // the new versions die together
	for ; i < len(j.tasks) && i-from < budget; i++ {
		// A task that already ended (failed, lost, preempted) keeps its
		// state: a job that fails because a task failed shows that task
		// failed, with its exit code.
		if t := j.tasks[i]; !t.t.State.Terminal() && txn.CanTransition(t.t.State, txn.TaskKilled) {
			s.transitionInto(t.t.Key, txn.TaskKilled, why, slab)
		}
	}
	return i
}

// killTasks moves every unfinished task of a finished job to killed: the
// first sliceItems now, the rest by the reaper in the following rounds.
func (s *state) killTasks(j *jobEntry, why string) {
	if next := s.killFrom(j, 0, why, sliceItems); next < len(j.tasks) {
		s.reaping = append(s.reaping, reapJob{j: j, next: next, why: why})
	}
}

// recoverReaping queues every finished job that still has unfinished
// tasks (a crash between a stop's slices): the reaper finishes them.
func (s *state) recoverReaping() {
	for _, j := range s.jobs {
		if jobLive(j.job) || !j.killable() {
			continue
		}
		why := "job " + jobStateName(j.job.State)
		if j.job.Message != "" {
			why += ": " + j.job.Message
		}
		s.reaping = append(s.reaping, reapJob{j: j, why: why})
	}
}

// killable reports whether some task of j may still be killed.
func (j *jobEntry) killable() bool {
	for st, n := range j.counts {
		if n > 0 && !txn.TaskState(st).Terminal() && txn.CanTransition(txn.TaskState(st), txn.TaskKilled) {
			return true
		}
	}
	return false
}

// reapOp is the loop's own operation: one slice of the oldest job
// waiting to be reaped.
type reapOp struct{}

func (reapOp) run(s *state) (any, error) {
	budget := sliceItems
	for budget > 0 && len(s.reaping) > 0 {
		r := &s.reaping[0]
		if s.jobs[r.j.job.Id] != r.j { // deleted meanwhile
			s.reaping = s.reaping[1:]
			continue
		}
		from := r.next
		r.next = s.killFrom(r.j, from, r.why, budget)
		budget -= r.next - from
		if r.next >= len(r.j.tasks) {
			s.reaping[0] = reapJob{}
			s.reaping = s.reaping[1:]
		}
	}
	if len(s.reaping) == 0 {
		s.reaping = nil
	}
	return nil, nil
}

// withReaper puts one reaper slice first in a round when a finished job
// still has tasks to kill. Only the loop changes s.st.reaping, so it reads
// it without the lock.
func (s *Store) withReaper(batch []*request) []*request {
	if len(s.st.reaping) == 0 {
		return batch
	}
	return append([]*request{{op: reapOp{}}}, batch...)
}
