package sdk

import (
	"cmp"
	"time"

	"github.com/omegacell/omegacell/schedulers/fair"
	"github.com/omegacell/omegacell/schedulers/policy"
	"github.com/omegacell/omegacell/schedulers/view"
	"github.com/omegacell/omegacell/txn"
)

// jobState is where one of the scheduler's jobs is in its queue.
type jobState uint8

const (
	// jobIdle: no pending task to place (placed, or not yet known whole).
	jobIdle jobState = iota
	// jobReady: to be tried now, in queue order.
	jobReady
	// jobWaiting: until wakeAt (backoff after a conflict, or the restart
	// delay the store set on its tasks).
	jobWaiting
	// jobParked: marked unschedulable; tried again when the cell changes
	// in a way that could help, or after Config.ParkedRetry.
	jobParked
)

func (s jobState) String() string {
	return [...]string{"idle", "ready", "waiting", "parked"}[s]
}

// job is the scheduler's bookkeeping for one job it owns. What the job
// is (priority, template, tasks) lives in the view.
type job struct {
	info  view.JobInfo
	state jobState
	// inReady: an entry of the job is in the ready heap (entries of jobs
	// that left the ready state are dropped when popped).
	inReady bool
	wakeAt  time.Time // jobWaiting: when
	// retry holds the task indexes whose claims conflicted in the last
	// attempt; the next attempt places only those (nil: every pending
	// task).
	retry map[uint32]struct{}
	// noProgress counts attempts in a row with no claim accepted.
	noProgress int
	// failures counts Commit calls in a row that got no answer.
	failures int
	// attempts counts every attempt this process made; attemptsMarked is
	// its value when the mark was last written.
	attempts       uint32
	attemptsMarked uint32
	// firstAttempt is when this process first tried the job (zero: not
	// yet); submitted→first attempt is observed once per job.
	firstAttempt time.Time
	// retryAt and reason: when a parked job is tried again at the latest,
	// and why it was parked.
	retryAt time.Time
	reason  string
	// lastConflict says why the latest conflicted claim lost.
	lastConflict string

	// What the cell holds about the job (from the watch): its
	// unschedulable mark, recorded attempts, first attempt, and whether it
	// was ever wholly placed.
	marked           string
	markedAttempts   uint32
	cellFirstAttempt int64
	placed           bool
}

// queue orders a scheduler's jobs: ready ones by priority (higher first),
// then submission time (earlier first), then id, or, with fair share, by
// band, then weighted DRF across tenants, then that order within a tenant
// (package fair); waiting ones by wake time; parked ones in a set. Heaps
// keep stale entries until popped, so every state change is O(log n).
type queue struct {
	jobs  map[string]*job
	ready policy.Heap[*job]
	fair  *fair.Queue[*job] // set with fair share; then ready is unused
	// batched is what the jobs popped for the batch being formed will
	// request, per tenant: the fair order charges it ahead, so one batch
	// does not go to the tenant that was lowest when it started.
	batched map[string]txn.Resources
	timers  policy.Heap[timer]
	parked  map[string]*job
}

// newFairQueue returns a queue whose ready jobs are ordered by weighted
// DRF across tenants.
func newFairQueue() *queue {
	q := newQueue()
	q.fair = fair.NewQueue(queueLess)
	return q
}

// syncShares feeds the fair order what changed in the view: tenants'
// usage and weights, and the ready capacity.
func (q *queue) syncShares(v *view.View) {
	if q.fair == nil {
		return
	}
	if v.TenantChanges(func(name string, usage txn.Resources, weight uint32) {
		q.fair.SetUsage(name, usage.Add(q.batched[name]))
		q.fair.SetWeight(name, weight)
	}) {
		q.fair.SetCapacity(v.ReadyCapacity())
	}
}

// chargeBatched charges tenant ahead for tasks popped into the batch
// being formed (requests, as if all are placed).
func (q *queue) chargeBatched(v *view.View, tenant string, pending []*txn.Task) {
	if q.fair == nil {
		return
	}
	if q.batched == nil {
		q.batched = make(map[string]txn.Resources)
	}
	r := q.batched[tenant]
	for _, t := range pending {
		r = r.Add(t.Resources)
	}
	q.batched[tenant] = r
	q.fair.SetUsage(tenant, v.TenantUsage(tenant).Add(r))
}

// endBatch drops the charges of the previous batch: from now on the
// view's usage (which holds whatever that batch placed) is the truth.
func (q *queue) endBatch(v *view.View) {
	for tenant := range q.batched {
		q.fair.SetUsage(tenant, v.TenantUsage(tenant))
	}
	clear(q.batched)
}

// timer is a waiting job's wake time.
type timer struct {
	at  time.Time
	job *job
}

func newQueue() *queue {
	return &queue{
		jobs:   make(map[string]*job),
		ready:  policy.NewHeap(queueLess),
		timers: policy.NewHeap(func(a, b timer) bool { return a.at.Before(b.at) }),
		parked: make(map[string]*job),
	}
}

// queueLess is the queue order of ready jobs.
func queueLess(a, b *job) bool {
	return cmp.Or(
		cmp.Compare(b.info.Priority, a.info.Priority),
		cmp.Compare(a.info.SubmitTime, b.info.SubmitTime),
		cmp.Compare(a.info.ID, b.info.ID),
	) < 0
}

// get returns the job's bookkeeping, creating it (idle) on first sight.
func (q *queue) get(info view.JobInfo) *job {
	j := q.jobs[info.ID]
	if j == nil {
		j = &job{info: info}
		q.jobs[info.ID] = j
	}
	return j
}

// remove forgets a job (finished, or gone from the cell).
func (q *queue) remove(id string) {
	if j := q.jobs[id]; j != nil {
		delete(q.parked, id)
		delete(q.jobs, id)
		j.state = jobIdle
	}
}

// setReady puts j in the ready heap.
func (q *queue) setReady(j *job) {
	delete(q.parked, j.info.ID)
	j.state = jobReady
	if !j.inReady {
		j.inReady = true
		if q.fair != nil {
			q.fair.Push(j.info.Tenant, j.info.Priority, j)
		} else {
			q.ready.Push(j)
		}
	}
}

// setWaiting makes j wait until at.
func (q *queue) setWaiting(j *job, at time.Time) {
	delete(q.parked, j.info.ID)
	j.state, j.wakeAt = jobWaiting, at
	q.timers.Push(timer{at: at, job: j})
}

// setParked parks j for reason until retryAt at the latest.
func (q *queue) setParked(j *job, retryAt time.Time, reason string) {
	j.state, j.retryAt, j.reason = jobParked, retryAt, reason
	q.parked[j.info.ID] = j
}

// setIdle marks j as having nothing to place.
func (q *queue) setIdle(j *job) {
	delete(q.parked, j.info.ID)
	j.state = jobIdle
}

// live reports whether j is still the queue's entry for its id.
func (q *queue) live(j *job) bool { return q.jobs[j.info.ID] == j }

// wake moves waiting jobs whose time has come (at or before now) to ready.
func (q *queue) wake(now time.Time) {
	for q.timers.Len() > 0 {
		t := q.timers.Top()
		if t.at.After(now) {
			return
		}
		q.timers.Pop()
		if q.live(t.job) && t.job.state == jobWaiting && t.job.wakeAt.Equal(t.at) {
			q.setReady(t.job)
		}
	}
}

// nextWake is the earliest wake time of a waiting job (false if none).
func (q *queue) nextWake() (time.Time, bool) {
	for q.timers.Len() > 0 {
		t := q.timers.Top()
		if q.live(t.job) && t.job.state == jobWaiting && t.job.wakeAt.Equal(t.at) {
			return t.at, true
		}
		q.timers.Pop()
	}
	return time.Time{}, false
}

// pop returns the first ready job in queue order, or nil.
func (q *queue) pop() *job {
	for {
		var j *job
		if q.fair != nil {
			fj, _, ok := q.fair.Pop()
			if !ok {
				return nil
			}
			j = fj
		} else {
			if q.ready.Len() == 0 {
				return nil
			}
			j = q.ready.Pop()
		}
		j.inReady = false
		if q.live(j) && j.state == jobReady {
			return j
		}
	}
}

// counts returns how many jobs are in each state.
func (q *queue) counts() (ready, waiting, parked int) {
	for _, j := range q.jobs {
		switch j.state {
		case jobReady:
			ready++
		case jobWaiting:
			waiting++
		case jobParked:
			parked++
		}
	}
	return ready, waiting, parked
}
