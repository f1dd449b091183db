package sim

import (
	"github.com/omegacell/omegacell/schedulers/fair"
	"github.com/omegacell/omegacell/txn"
)

// The monolithic and shared-state architectures share one scheduler loop:
// take the job at the head of the queue, decide on the scheduler's copy of
// the cell, spend the decision time, then commit a transaction. They differ
// only in how many schedulers there are and which decision time applies.
//
// Taking the copy at decision start and deciding then is the same as
// deciding at any later moment on that copy, because the decision is a
// pure function of the copy; so the copy is the live cell at the start
// (s.cell.machines, whose machine objects are never mutated once
// installed) and the commit at the end validates against the cell as it is
// by then. Whatever other schedulers committed in between is exactly what
// can conflict. A monolithic scheduler has nobody to race with; its
// transactions only fail when a machine disappears.

// startDecision starts the scheduler on the next job of its queue if it is
// idle.
func (s *sim) startDecision(sc *scheduler) {
	if sc.busy {
		return
	}
	j := sc.queue.pop()
	if j == nil {
		return
	}
	j.queued = false
	s.attempt(j)
	pending := s.pendingTasks(j)
	sc.dec.begin(s.cell.copy())
	sc.claims = sc.dec.place(j, pending, sc.rng, sc.claims[:0])
	sc.busy, sc.busySince, sc.current = true, s.now, j
	s.agenda.push(event{at: s.now + s.timing(sc, j).decision(len(pending)), kind: evDecided, sched: sc})
}

// decided commits the scheduler's decision and moves it to its next job.
func (s *sim) decided(sc *scheduler) {
	j := sc.current
	mode, conflict := s.cfg.Commit, s.cfg.Conflict
	if s.cfg.Arch != SharedState {
		// A monolithic scheduler owns the cell: its commits are plain.
		mode, conflict = txn.CommitIncremental, txn.ConflictFine
	}
	r := s.commit(sc, sc.claims, sc.dec.preemptions(), conflict, mode)
	sc.stats.addBusy(sc.busySince, s.now, r.conflicts > 0)
	sc.busy, sc.current = false, nil
	if !s.finishAttempt(j) {
		if r.accepted == 0 && r.conflicts == 0 {
			// Nothing fitted: wait for the cell to change before retrying.
			sc.stats.NoFit++
			s.agenda.push(event{at: s.now + s.cfg.RetryDelay, kind: evRetry, job: j})
		} else {
			s.enqueue(j)
		}
	}
	s.startDecision(sc)
}

// jobQueue is a FIFO of jobs or, with Config.Order drf, a fair.Queue.
type jobQueue struct {
	items []*job
	head  int

	fair *fair.Queue[*job]
	book *tenantBook
	cell *cell
	// held are jobs of tenants at their quota, per tenant: DRF would put
	// them first forever (their share stays low) while every claim is
	// refused, so they wait here, as the store's admission queues them,
	// until the tenant has room again.
	held map[string][]*job
}

func (q *jobQueue) push(j *job) {
	if q.fair != nil {
		q.fair.Push(j.spec.Tenant, j.spec.Priority, j)
		return
	}
	q.items = append(q.items, j)
}

func (q *jobQueue) len() int {
	if q.fair != nil {
		n := q.fair.Len()
		for _, js := range q.held {
			n += len(js)
		}
		return n
	}
	return len(q.items) - q.head
}

func (q *jobQueue) pop() *job {
	if q.fair != nil {
		q.syncFair(q.book, q.cell.capacity)
		for {
			j, _, ok := q.fair.Pop()
			if !ok {
				return nil
			}
			if !q.atQuota(j) {
				return j
			}
			if q.held == nil {
				q.held = make(map[string][]*job)
			}
			q.held[j.spec.Tenant] = append(q.held[j.spec.Tenant], j)
		}
	}
	if q.head == len(q.items) {
		return nil
	}
	j := q.items[q.head]
	q.items[q.head] = nil
	q.head++
	if q.head > 1024 && q.head*2 > len(q.items) {
		n := copy(q.items, q.items[q.head:])
		clear(q.items[n:])
		q.items, q.head = q.items[:n], 0
	}
	return j
}

// each calls f on every queued job, head first.
func (q *jobQueue) each(f func(*job)) {
	if q.fair != nil {
		q.fair.Each(f)
		for _, t := range q.book.names {
			for _, j := range q.held[t] {
				f(j)
			}
		}
		return
	}
	for _, j := range q.items[q.head:] {
		f(j)
	}
}

// filter keeps the jobs for which keep is true, in order.
func (q *jobQueue) filter(keep func(*job) bool) {
	out := q.items[:0]
	for _, j := range q.items[q.head:] {
		if keep(j) {
			out = append(out, j)
		}
	}
	clear(q.items[len(out):])
	q.items, q.head = out, 0
}
