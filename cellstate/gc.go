package cellstate

import (
	"context"
	"fmt"
	"runtime/debug"
	"sort"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
	"github.com/omegacell/omegacell/txn"
)

// Garbage collection keeps the cell's memory bounded by what is live.
//
// Finished jobs. A job that finished (succeeded, failed or stopped) and
// none of whose tasks is pending or holds resources is deleted, with all
// its tasks, once Options.JobRetention passed since it finished — like
// Kubernetes' ttlSecondsAfterFinished and Nomad's job GC. A deletion is an
// ordinary revisioned change made by the commit loop (one Change.deleted
// per job, not one per task), so watchers and schedulers' copies see it;
// the next checkpoint deletes the job's objects from Pebble, and the log
// revisions that mention the job go with the usual log compaction. The
// job's name may then be used again (it already may once the job is not
// live; after deletion, lookups by name no longer find the old job).
// Deletions go in bounded batches (gcBatchTasks tasks per operation), so a
// day's worth of finished jobs never stalls the commit loop.
//
// Scheduler registrations. A scheduler is seen when it registers, commits
// or reports its figures (the SDK reports every few seconds). One silent
// for Options.SchedulerTTL that owns no live job is forgotten; builtin
// schedulers never are. A scheduler owning live jobs stays registered, so
// `cell scheduler list` keeps showing its pending tasks. The number of
// registrations is capped (Options.MaxSchedulers): beyond it RegisterScheduler
// is refused with ResourceExhausted.

// Defaults of the bounds on what the cell keeps.
const (
	DefaultJobRetention    = 24 * time.Hour
	DefaultMaxPendingTasks = 1_000_000
	DefaultSchedulerTTL    = 5 * time.Minute
	DefaultMaxSchedulers   = 1_000
)

// gcBatchTasks bounds the tasks one deletion operation removes (a single
// larger job is still deleted whole: unindexing a finished task costs a
// few nanoseconds, so a million-task job takes milliseconds).
const gcBatchTasks = 200_000

// releaseAfterTasks: once collections deleted at least this many tasks
// since memory was last released (one big job or many small ones), the
// watch ring is emptied (its entries hold the deleted versions)
// and the Go runtime returns freed memory to the OS at once rather than
// over minutes.
const releaseAfterTasks = 100_000

// After such a collection memory is given back again, on the collector's
// ticks at least releaseFirstGap, then twice, four times … that long
// after it, up to releaseLastGap: what was still referenced at the first
// release (responses in flight, a flush's compactions in C memory, a
// watcher such as the web view still applying the deletions) is garbage
// by then, and an idle cell collects nothing by itself for two minutes.
const (
	releaseFirstGap = 500 * time.Millisecond
	releaseLastGap  = 8 * time.Second
)

// finishedJob is a job in the deletion queue.
type finishedJob struct {
	at int64 // when it finished (loop clock)
	id string
}

// finishedQueue holds finished jobs in the order they finished (the loop
// clock only moves forward within a process), so the due ones are at the
// head and the collector never scans the cell.
type finishedQueue struct {
	q    []finishedJob
	head int
}

func (f *finishedQueue) push(j finishedJob) { f.q = append(f.q, j) }
func (f *finishedQueue) len() int           { return len(f.q) - f.head }
func (f *finishedQueue) peek() finishedJob  { return f.q[f.head] }

func (f *finishedQueue) pop() {
	f.q[f.head] = finishedJob{}
	f.head++
	// Reclaim the consumed prefix once it is half the slice.
	if f.head > 1024 && f.head*2 >= len(f.q) {
		f.q = append([]finishedJob(nil), f.q[f.head:]...)
		f.head = 0
	}
}

// due reports whether the oldest finished job passed the retention.
func (f *finishedQueue) due(cutoff int64) bool { return f.len() > 0 && f.peek().at <= cutoff }

// noteFinished keeps the per-scheduler live-job counts and the deletion
// queue as a job version replaces another (old is nil for a new job).
func (s *state) noteFinished(old, pb *cellv1.Job) {
	sched := pb.GetSpec().GetScheduler()
	wasLive, isLive := old != nil && jobLive(old), jobLive(pb)
	switch {
	case old == nil && isLive:
		s.liveJobs[sched]++
	case wasLive && !isLive:
		if s.liveJobs[sched]--; s.liveJobs[sched] <= 0 {
			delete(s.liveJobs, sched)
		}
		s.finished.push(finishedJob{at: s.now, id: pb.Id})
	}
}

// quiet reports whether none of a job's tasks is pending or holds
// resources: deleting it frees nothing in use.
func (j *jobEntry) quiet() bool {
	c := &j.counts
	return c[txn.TaskPending] == 0 && c[txn.TaskAssigned] == 0 && c[txn.TaskRunning] == 0
}

// deletedJob is a job removed by the current operation.
type deletedJob struct {
	id    string
	tasks int
}

// deleteJob removes a finished, quiet job and its tasks from memory and
// records the deletion in the current change set.
func (s *state) deleteJob(j *jobEntry) {
	for _, t := range j.tasks {
		s.unindex(j, t)
	}
	id, name := j.job.Id, j.job.GetSpec().GetName()
	delete(s.jobs, id)
	if s.jobByName[name] == id {
		delete(s.jobByName, name)
	}
	s.changes.deleted = append(s.changes.deleted, deletedJob{id: id, tasks: len(j.tasks)})
}

// gcJobsOp deletes finished jobs whose retention passed, up to
// gcBatchTasks tasks.
type gcJobsOp struct{ retention time.Duration }

type gcResult struct {
	jobs, tasks int
	more        bool // more are due: run again
}

func (o gcJobsOp) run(s *state) (any, error) {
	cutoff := s.now - int64(o.retention)
	var res gcResult
	for res.tasks < gcBatchTasks && s.finished.due(cutoff) {
		f := s.finished.peek()
		s.finished.pop()
		j := s.jobs[f.id]
		if j == nil || jobLive(j.job) {
			continue
		}
		if !j.quiet() {
			// Cannot happen (a finished job's tasks are terminal), but
			// never delete what holds resources: look again later.
			s.finished.push(finishedJob{at: s.now, id: f.id})
			continue
		}
		s.deleteJob(j)
		res.jobs++
		res.tasks += len(j.tasks)
	}
	res.more = s.finished.due(cutoff)
	return res, nil
}

// replayDeletion applies a logged job deletion during recovery.
func replayDeletion(id string, jobs map[string]*cellv1.Job, tasks map[txn.TaskKey]*cellv1.Task, dirty *dirtySet) {
	n := jobSlots(jobs[id])
	for i := range n {
		delete(tasks, txn.TaskKey{Job: id, Index: uint32(i)})
	}
	delete(jobs, id)
	dirty.forget(id, n)
}

// deleteJobObjects deletes a job's checkpointed objects: the job and every
// chunk of its tasks ("tc/<id>/" sorts just before "tc/<id>0").
func deleteJobObjects(b *pebble.Batch, id string) error {
	if err := b.Delete(jobKey(id), nil); err != nil {
		return err
	}
	lo := append(append(append([]byte(nil), prefixTaskChunk...), id...), '/')
	hi := append(append(append([]byte(nil), prefixTaskChunk...), id...), '/'+1)
	return b.DeleteRange(lo, hi, nil)
}

// recoverGC rebuilds the live-job counts and the deletion queue after a
// restart. Finished jobs are queued by the time they finished (recorded
// in the job), so a restart does not extend anyone's retention.
func (s *state) recoverGC() {
	var done []finishedJob
	for id, j := range s.jobs {
		if jobLive(j.job) {
			s.liveJobs[j.job.GetSpec().GetScheduler()]++
			continue
		}
		at := j.job.FinishTimeUnixNano
		if at == 0 {
			at = j.job.SubmitTimeUnixNano
		}
		done = append(done, finishedJob{at: at, id: id})
	}
	sort.Slice(done, func(a, b int) bool {
		if done[a].at != done[b].at {
			return done[a].at < done[b].at
		}
		return done[a].id < done[b].id
	})
	s.finished = finishedQueue{q: done}
}

// ------------------------------------------------------------ schedulers

// schedulerClock records when each scheduler was last seen. It is not
// revisioned (like heartbeats): after a restart every scheduler gets a
// full TTL from the start.
type schedulerClock struct {
	mu    sync.Mutex
	start int64
	at    map[string]int64
}

func newSchedulerClock(start int64) *schedulerClock {
	return &schedulerClock{start: start, at: make(map[string]int64)}
}

func (c *schedulerClock) touch(name string, now int64) {
	c.mu.Lock()
	c.at[name] = now
	c.mu.Unlock()
}

func (c *schedulerClock) forget(name string) {
	c.mu.Lock()
	delete(c.at, name)
	c.mu.Unlock()
}

// last is when name was last seen (the clock's start if never).
func (c *schedulerClock) last(name string) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t, ok := c.at[name]; ok {
		return t
	}
	return c.start
}

// silent lists registered names not seen since cutoff.
func (c *schedulerClock) silent(names []string, cutoff int64) []string {
	var out []string
	for _, n := range names {
		if !builtinSchedulers[n] && c.last(n) < cutoff {
			out = append(out, n)
		}
	}
	return out
}

// expireSchedulersOp forgets silent schedulers that own no live job.
type expireSchedulersOp struct {
	names  []string
	cutoff int64
}

func (o expireSchedulersOp) run(s *state) (any, error) {
	var gone []string
	for _, n := range o.names {
		if !s.schedulers[n] || builtinSchedulers[n] || s.liveJobs[n] > 0 || s.seen.last(n) >= o.cutoff {
			continue
		}
		delete(s.schedulers, n)
		delete(s.pendingBySched, n)
		s.seen.forget(n)
		gone = append(gone, n)
	}
	s.changes.schedulersGone = gone
	return gone, nil
}

// refuseScheduler says why a new registration is refused (nil: accept).
func (s *state) refuseScheduler() error {
	if s.limits.maxSchedulers > 0 && len(s.schedulers) >= s.limits.maxSchedulers {
		return status.Errorf(codes.ResourceExhausted,
			"name: the cell holds %d scheduler registrations, its cap (cell server --max-schedulers); silent schedulers without live jobs are forgotten after --scheduler-ttl",
			len(s.schedulers))
	}
	return nil
}

// refusePending says why a job of n more pending tasks is refused (nil:
// accept). The cap is cell-wide; the per-tenant cap is a band quota's
// max_pending_tasks (quota.go).
func (s *state) refusePending(n uint32) error {
	if s.limits.maxPending <= 0 {
		return nil
	}
	pending := s.queuedTasks // queued jobs' tasks become pending when admitted
	for _, p := range s.pendingBySched {
		pending += p
	}
	if pending+int(n) > s.limits.maxPending {
		return status.Errorf(codes.ResourceExhausted,
			"spec.count: %d more pending tasks would exceed the cell's cap of %d pending tasks (%d pending now; cell server --max-pending-tasks)",
			n, s.limits.maxPending, pending)
	}
	return nil
}

// ------------------------------------------------------------ the collector

// gcEvery is how often the collector looks for work.
func (o *Options) gcEvery() time.Duration {
	if o.GCInterval > 0 {
		return o.GCInterval
	}
	d := 30 * time.Second
	if o.JobRetention > 0 {
		d = min(d, o.JobRetention/8)
	}
	if o.SchedulerTTL > 0 {
		d = min(d, o.SchedulerTTL/8)
	}
	return max(d, 10*time.Millisecond)
}

// gcLoop runs the collector until the store closes. It is owned by the
// Store (started by Open, awaited by Close).
func (s *Store) gcLoop() {
	defer close(s.gcDone)
	rollouts := make(chan struct{}) // the rollout clock (update.go) stops with the collector
	go s.rolloutLoop(rollouts)
	defer func() { <-rollouts }()
	t := time.NewTicker(s.opts.gcEvery())
	defer t.Stop()
	for {
		select {
		case <-s.gcStop:
			return
		case <-t.C:
		}
		if !s.IsLeader() {
			continue // a follower applies the leader's deletions (replica.go)
		}
		if err := s.collect(); err != nil && s.Err() == nil {
			s.log.Warn("garbage collection", "err", err)
		}
	}
}

// collect deletes every finished job past its retention (in bounded
// operations) and forgets expired schedulers.
func (s *Store) collect() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var jobs, tasks int
	for s.opts.JobRetention > 0 && s.gcDue() && !s.closing() {
		res, _, err := s.do(ctx, gcJobsOp{retention: s.opts.JobRetention})
		if err != nil {
			return fmt.Errorf("delete finished jobs: %w", err)
		}
		r := res.(gcResult)
		jobs, tasks = jobs+r.jobs, tasks+r.tasks
		if !r.more {
			break
		}
	}
	if jobs > 0 {
		s.log.Info("deleted finished jobs past their retention", "jobs", jobs, "tasks", tasks, "retention", s.opts.JobRetention)
		s.m.gcDeleted(jobs, tasks)
	}
	s.deletedUnreleased += tasks
	switch now := time.Now(); {
	case s.deletedUnreleased >= releaseAfterTasks:
		s.deletedUnreleased = 0
		s.release()
		s.m.gcReleased()
		s.releaseGap = releaseFirstGap
		s.releaseNext = now.Add(s.releaseGap)
	case s.releaseGap > 0 && !now.Before(s.releaseNext):
		s.release()
		if s.releaseGap *= 2; s.releaseGap > releaseLastGap {
			s.releaseGap = 0
		}
		s.releaseNext = now.Add(s.releaseGap)
	}
	if s.opts.SchedulerTTL <= 0 {
		return nil
	}
	now := s.opts.Now().UnixNano()
	names, _ := s.Schedulers()
	silent := s.st.seen.silent(names, now-int64(s.opts.SchedulerTTL))
	if len(silent) == 0 {
		return nil
	}
	res, _, err := s.do(ctx, expireSchedulersOp{names: silent, cutoff: now - int64(s.opts.SchedulerTTL)})
	if err != nil {
		return fmt.Errorf("expire schedulers: %w", err)
	}
	if gone := res.([]string); len(gone) > 0 {
		s.log.Info("forgot silent schedulers", "schedulers", len(gone), "first", gone[0], "ttl", s.opts.SchedulerTTL)
		if fn := s.onSchedulersGone.Load(); fn != nil {
			(*fn)(gone)
		}
	}
	return nil
}

// closing reports whether Close began.
func (s *Store) closing() bool {
	select {
	case <-s.gcStop:
		return true
	default:
		return false
	}
}

// gcDue reports whether a finished job passed its retention.
func (s *Store) gcDue() bool {
	cutoff := s.opts.Now().UnixNano() - int64(s.opts.JobRetention)
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.st.finished.due(cutoff)
}

// release gives memory back after a large deletion: the watch ring, the
// memtable (flushed, so the deleted objects' last versions and their log
// leave memory; its successor's pages are not touched until written) and
// the Go heap's free pages (at once, not over minutes).
func (s *Store) release() {
	// A checkpoint in flight holds the versions it writes, deleted ones
	// included: let it finish, so the collection below finds them garbage.
	for wait := time.Now().Add(30 * time.Second); s.checkpointBusy.Load() && time.Now().Before(wait) && !s.closing(); {
		time.Sleep(10 * time.Millisecond)
	}
	s.hub.release()
	if err := s.db.Flush(); err != nil {
		s.log.Warn("flushing the memtable after deleting jobs", "err", err)
	}
	debug.FreeOSMemory()
	trimCHeap()
}

// release empties the ring of recent revisions: after a large deletion it
// holds the deleted objects' last versions. Watchers behind read from
// Pebble instead, as they do once they fall out of the ring.
func (h *hub) release() {
	h.mu.Lock()
	h.ring, h.bytes = nil, 0
	h.mu.Unlock()
}

// OnSchedulersExpired registers fn to be told the names of schedulers the
// collector forgot (the gRPC server drops their figures).
func (s *Store) OnSchedulersExpired(fn func(names []string)) { s.onSchedulersGone.Store(&fn) }

// touchScheduler records that a scheduler spoke and reports whether it is
// registered.
func (s *Store) touchScheduler(name string) bool {
	s.mu.RLock()
	ok := s.st.schedulers[name]
	s.mu.RUnlock()
	if ok {
		s.st.seen.touch(name, s.opts.Now().UnixNano())
	}
	return ok
}
