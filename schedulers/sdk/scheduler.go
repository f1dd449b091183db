package sdk

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/omegacell/omegacell/pbconv"
	"github.com/omegacell/omegacell/pbconv/apicheck"
	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
	"github.com/omegacell/omegacell/proto/limits"
	"github.com/omegacell/omegacell/schedulers/policy"
	"github.com/omegacell/omegacell/schedulers/view"
	"github.com/omegacell/omegacell/txn"
)

// scheduler is one running scheduler. Its loop goroutine owns everything
// below except the clients and channels: the view, the queue, the random
// numbers, the metrics' window.
type scheduler struct {
	cfg        Config
	log        *slog.Logger
	clock      Clock
	state      cellv1.StateServiceClient
	jobsAPI    cellv1.JobServiceClient
	schedulers cellv1.SchedulerServiceClient
	events     <-chan event

	view *view.View
	// live: the copy is being followed (a snapshot or watch response
	// arrived since the stream last broke). The loop decides only then.
	live   bool
	rng    *rand.Rand // the policy's
	jitter *rand.Rand // backoff jitter, apart so it does not shift decisions
	m      *metrics
	q      *queue
	// notBefore is the restart delay the store set on pending tasks of
	// this scheduler's jobs (Unix ns).
	notBefore map[txn.TaskKey]int64
	// helpful names machines changed since the last wakeParked in a way
	// that could let a parked job fit.
	helpful map[string]struct{}
	// touched names jobs whose tasks or spec changed in the current event.
	touched map[string]struct{}
	// parkedCheckAt is when the next parked job is due for its periodic
	// retry (zero: check now).
	parkedCheckAt time.Time

	statsOut  chan *cellv1.SchedulerStats
	nextStats time.Time
}

// Timeouts of the loop's calls and waits.
const (
	callTimeout   = 10 * time.Second
	commitTimeout = 30 * time.Second
	// catchUpTimeout bounds the wait for the copy to reach a commit's
	// revision; past it the loop goes on with a staler copy (and perhaps
	// more conflicts) rather than stall.
	catchUpTimeout = 5 * time.Second
	// maxEventsPerPass bounds the events applied between two decisions, so
	// a busy cell cannot starve the queue.
	maxEventsPerPass = eventBuffer
	// maxReasonLen is the store's limit on unschedulable_reason.
	maxReasonLen = 4096
)

// loop is the scheduler: apply what the cell did, take the head of the
// queue, decide, commit, repeat; sleep when there is nothing to do.
func (s *scheduler) loop(ctx context.Context) {
	for ctx.Err() == nil {
		s.drain()
		now := s.clock.Now()
		if !now.Before(s.nextStats) {
			s.report(now)
			s.nextStats = now.Add(s.cfg.StatsInterval)
		}
		if s.live {
			s.q.wake(now)
			s.wakeParked(now)
			if batch := s.nextBatch(ctx, now); len(batch) > 0 {
				s.attempt(ctx, batch)
				continue
			}
		}
		s.idle(ctx)
	}
}

// drain applies the events that are already waiting.
func (s *scheduler) drain() {
	for range maxEventsPerPass {
		select {
		case ev := <-s.events:
			s.apply(ev)
		default:
			return
		}
	}
}

// idle waits for an event, the next timer (a waiting job, a parked job's
// retry, the stats report) or the end. While the copy is not followed,
// only events and the stats report end the wait: jobs are not tried.
func (s *scheduler) idle(ctx context.Context) {
	until := s.nextStats
	if t, ok := s.q.nextWake(); ok && s.live && t.Before(until) {
		until = t
	}
	if s.live && len(s.q.parked) > 0 && !s.parkedCheckAt.IsZero() && s.parkedCheckAt.Before(until) {
		until = s.parkedCheckAt
	}
	select {
	case ev := <-s.events:
		s.apply(ev)
	case <-s.clock.After(max(until.Sub(s.clock.Now()), 0)):
	case <-ctx.Done():
	}
}

// next pops the first job of the queue that has tasks to place now and
// returns it with those tasks (in index order). Jobs with nothing pending
// become idle; jobs whose tasks are all in their restart delay wait.
func (s *scheduler) next(ctx context.Context, now time.Time) (*job, []*txn.Task) {
	s.q.syncShares(s.view)
	for j := s.q.pop(); j != nil; j = s.q.pop() {
		pending := s.view.Pending(j.info.ID)
		if len(pending) == 0 {
			s.settle(ctx, j)
			continue
		}
		eligible, wait := s.eligible(j, pending, now)
		if len(eligible) == 0 {
			s.q.setWaiting(j, wait)
			continue
		}
		return j, eligible
	}
	return nil, nil
}

// eligible picks the pending tasks to place now: those past their restart
// delay and, after a conflict, only the conflicted ones. A gang waits
// until every pending task is past its delay. With none eligible it
// returns when to look again.
func (s *scheduler) eligible(j *job, pending []*txn.Task, now time.Time) ([]*txn.Task, time.Time) {
	var out []*txn.Task
	var wait time.Time
	nowNano := now.UnixNano()
	for _, t := range pending {
		if nb := s.notBefore[t.Key]; nb > nowNano {
			if at := time.Unix(0, nb); wait.IsZero() || (j.info.Gang && at.After(wait)) || (!j.info.Gang && at.Before(wait)) {
				wait = at
			}
			continue
		}
		out = append(out, t)
	}
	if j.info.Gang && !wait.IsZero() {
		return nil, wait
	}
	if j.retry != nil {
		retry := slices.DeleteFunc(slices.Clone(out), func(t *txn.Task) bool {
			_, ok := j.retry[t.Key.Index]
			return !ok
		})
		if len(retry) > 0 {
			out = retry
		}
	}
	return out, wait
}

// Batching. Omega's schedulers commit many decisions in one transaction:
// the jobs at the head of the queue are decided one after another on the
// copy, each decision applied to the copy tentatively so the next job sees
// the room it took, and all their claims go to the store in one commit.
// A burst of small jobs then costs one round trip per batch instead of one
// per job. A gang is decided and committed alone (all-or-nothing covers a
// whole transaction), and a batch holds jobs of one conflict and commit
// mode only.
const (
	maxBatchJobs   = 64
	maxBatchClaims = 4096
)

// attemptJob is one job's part of a batch attempt.
type attemptJob struct {
	j        *job
	pending  []*txn.Task
	d        policy.Decision
	from, to int // its claims in the transaction
}

// nextBatch pops the jobs to attempt together: the head of the queue and,
// unless it is a gang, the following ready jobs of the same modes.
func (s *scheduler) nextBatch(ctx context.Context, now time.Time) []attemptJob {
	s.q.endBatch(s.view)
	j, pending := s.next(ctx, now)
	if j == nil {
		return nil
	}
	s.q.chargeBatched(s.view, j.info.Tenant, pending)
	batch := []attemptJob{{j: j, pending: pending}}
	if j.info.Gang {
		return batch
	}
	modes := s.cfg.modes(s.cfg.Policy.Modes(j.info), false)
	tasks := len(pending)
	for len(batch) < maxBatchJobs && tasks < maxBatchClaims {
		k, p := s.next(ctx, now)
		if k == nil {
			break
		}
		// A transaction holds at most limits.MaxClaimsPerCommit claims.
		if k.info.Gang || s.cfg.modes(s.cfg.Policy.Modes(k.info), false) != modes || tasks+len(p) > limits.MaxClaimsPerCommit {
			s.q.setReady(k) // first of the next batch
			break
		}
		batch = append(batch, attemptJob{j: k, pending: p})
		s.q.chargeBatched(s.view, k.info.Tenant, p)
		tasks += len(p)
	}
	return batch
}

// attempt is one scheduling attempt of a batch of jobs: the policy
// decides each on the copy, the decisions are committed in one
// transaction, the copy catches up with everything the commit was checked
// against, and each job is requeued, backed off, parked or settled by its
// own claims' outcomes.
func (s *scheduler) attempt(ctx context.Context, batch []attemptJob) {
	start := s.clock.Now()
	tx := &txn.Transaction{Scheduler: s.cfg.Name, DecidedAt: s.view.Revision()}
	var undo tentative
	decided := batch[:0]
	for _, a := range batch {
		j := a.j
		j.attempts++
		if j.firstAttempt.IsZero() {
			j.firstAttempt = start
			if j.cellFirstAttempt == 0 && !j.placed && j.info.SubmitTime > 0 {
				s.m.jobWait.WithLabelValues("first_attempt").Observe(start.Sub(time.Unix(0, j.info.SubmitTime)).Seconds())
			}
		}
		a.d = s.place(j, a.pending)
		if len(a.d.Claims) == 0 {
			now := s.clock.Now()
			j.noProgress++
			s.park(ctx, j, now, unplacedReason(a.d.Unplaced, len(a.pending)))
			continue
		}
		if len(decided) == 0 {
			modes := s.cfg.modes(s.cfg.Policy.Modes(j.info), j.info.Gang)
			tx.Conflict, tx.Commit = modes.Conflict, modes.Commit
		}
		a.from = len(tx.Claims)
		tx.Claims = append(tx.Claims, a.d.Claims...)
		tx.Preemptions = append(tx.Preemptions, a.d.Preemptions...)
		a.to = len(tx.Claims)
		if len(batch) > 1 {
			undo.apply(s.view, s.cfg.Name, a.d)
		}
		decided = append(decided, a)
	}
	fitAtomic(tx, decided, s.view.Task)
	decidedAt := s.clock.Now()
	s.m.decisionSeconds.Observe(decidedAt.Sub(start).Seconds())
	if len(decided) == 0 {
		s.m.busy(decidedAt, decidedAt.Sub(start))
		return
	}
	s.m.commitsInFlight.Inc()
	defer s.m.commitsInFlight.Dec() // after the claims are counted below
	cctx, cancel := context.WithTimeout(ctx, commitTimeout)
	resp, err := s.commit(cctx, tx)
	cancel()
	undo.restore(s.view)
	end := s.clock.Now()
	s.m.busy(end, end.Sub(start))
	s.m.commitSeconds.Observe(end.Sub(decidedAt).Seconds())
	if err != nil {
		for _, a := range decided {
			s.commitFailed(ctx, a.j, end, err)
		}
		return
	}
	outcomes := make([]cellv1.ClaimOutcome, len(resp.GetResults()))
	for i, r := range resp.GetResults() {
		outcomes[i] = r.GetOutcome()
	}
	s.m.transaction(end, outcomes, len(resp.GetPreempted()))
	s.log.Debug("committed", "jobs", len(decided), "revision", resp.GetRevision(), "claims", len(tx.Claims),
		"accepted", resp.GetAccepted(), "preempted", len(resp.GetPreempted()))
	for _, e := range resp.GetPreemptionErrors() {
		s.log.Debug("preemption not carried out", "err", e)
	}

	// The commit was checked against the cell up to its revision (or, if
	// nothing was applied, up to the cell's current one): let the copy
	// catch up so the next decision does not lose the same race again.
	target := resp.GetRevision()
	if target == 0 {
		target = s.cellRevision(ctx, decided[0].j)
	}
	s.catchUp(ctx, target)
	for _, a := range decided {
		s.afterCommit(ctx, a, tx, resp.GetResults())
	}
}

// commit sends a transaction after the store's own check of its shape
// (apicheck.Commit): a policy that built a malformed claim learns which
// field, without a round trip; the error is the store's InvalidArgument.
func (s *scheduler) commit(ctx context.Context, tx *txn.Transaction) (*cellv1.CommitResponse, error) {
	req := pbconv.CommitRequest(tx)
	if err := apicheck.Commit(req); err != nil {
		return nil, status.Error(codes.InvalidArgument, "not sent: "+err.Error())
	}
	return s.state.Commit(ctx, req)
}

// afterCommit settles one job of a committed batch by its claims'
// outcomes.
func (s *scheduler) afterCommit(ctx context.Context, a attemptJob, tx *txn.Transaction, results []*cellv1.ClaimResult) {
	j := a.j
	if !s.q.live(j) {
		return // finished (stopped) while the copy caught up
	}
	var conflicted map[uint32]struct{}
	accepted := 0
	for i := a.from; i < a.to && i < len(results); i++ {
		r := results[i]
		if r.GetOutcome() == cellv1.ClaimOutcome_CLAIM_OUTCOME_ACCEPTED {
			accepted++
			continue
		}
		if conflicted == nil {
			conflicted = make(map[uint32]struct{})
			j.lastConflict = fmt.Sprintf("%s on %s: %s", outcomeName(r.GetOutcome()), tx.Claims[i].Machine, r.GetDetail())
		}
		conflicted[tx.Claims[i].Task.Index] = struct{}{}
	}
	if accepted > 0 {
		j.noProgress = 0
	} else {
		j.noProgress++
	}
	j.failures = 0
	now := s.clock.Now()
	switch {
	case len(conflicted) > 0 && j.noProgress >= s.cfg.MaxAttempts:
		s.park(ctx, j, now, fmt.Sprintf("no claim accepted in %d attempts in a row; last conflict: %s", j.noProgress, j.lastConflict))
	case len(conflicted) > 0:
		j.retry = conflicted
		if j.info.Gang {
			j.retry = nil
		}
		s.q.setWaiting(j, now.Add(s.cfg.Backoff.wait(max(j.noProgress, 1), s.jitter.Float64())))
	case len(a.d.Unplaced) > 0:
		s.park(ctx, j, now, unplacedReason(a.d.Unplaced, len(a.pending)))
	default:
		// Every task tried was placed; next looks at what is left.
		j.retry = nil
		s.q.setReady(j)
	}
}

// tentative applies a batch's decisions to the copy so later jobs of the
// batch see them, and puts the copy back as it was once the batch is
// committed: what the store really did arrives through the watch.
type tentative struct {
	machines []*txn.Machine
	tasks    []*txn.Task
}

func (u *tentative) apply(v *view.View, scheduler string, d policy.Decision) {
	vd := txn.Validate(v, &txn.Transaction{Scheduler: scheduler, Conflict: txn.ConflictFine, Commit: txn.CommitIncremental, Claims: d.Claims, Preemptions: d.Preemptions})
	for _, m := range vd.Machines {
		u.machines = append(u.machines, v.Machine(m.ID))
	}
	for _, t := range vd.Tasks {
		u.tasks = append(u.tasks, v.Task(t.Key))
	}
	txn.Apply(v, vd)
}

// restore puts back the versions from before the first apply (older
// versions are restored last, so they win).
func (u *tentative) restore(v *view.View) {
	for i := len(u.machines) - 1; i >= 0; i-- {
		v.PutMachine(u.machines[i])
	}
	for i := len(u.tasks) - 1; i >= 0; i-- {
		v.PutTask(u.tasks[i])
	}
	u.machines, u.tasks = nil, nil
}

// place calls the policy. A policy that panics fails the job's attempt,
// with the panic as the reason, not the whole scheduler.
func (s *scheduler) place(j *job, pending []*txn.Task) (d policy.Decision) {
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("policy panicked", "job", j.info.Name, "id", j.info.ID, "panic", r, "stack", string(debug.Stack()))
			d = policy.Decision{}
			d.Unplace(pending, fmt.Sprintf("policy %s panicked: %v", s.cfg.Policy.Name(), r))
		}
	}()
	return s.cfg.Policy.Place(j.info, pending, s.view, s.rng)
}

// commitFailed handles a Commit call that returned no outcome. A server
// that is down or restarting is waited for without using up the job's
// attempts; a refusal (a policy claiming what the API forbids) counts as
// an attempt without progress.
func (s *scheduler) commitFailed(ctx context.Context, j *job, now time.Time, err error) {
	s.m.transactions.WithLabelValues(resultFailed).Inc()
	if ctx.Err() != nil {
		s.q.setReady(j)
		return
	}
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded, codes.Canceled, codes.ResourceExhausted, codes.Aborted:
		j.failures++
		s.log.Warn("commit failed; will retry", "job", j.info.Name, "err", err)
		s.q.setWaiting(j, now.Add(Backoff{Initial: reconnectInitial, Max: reconnectMax}.wait(j.failures, s.jitter.Float64())))
		return
	}
	j.noProgress++
	j.lastConflict = "commit refused: " + status.Convert(err).Message()
	s.log.Error("commit refused", "job", j.info.Name, "err", err)
	if j.noProgress >= s.cfg.MaxAttempts {
		s.park(ctx, j, now, fmt.Sprintf("no claim accepted in %d attempts in a row; last error: %s", j.noProgress, j.lastConflict))
		return
	}
	s.q.setWaiting(j, now.Add(s.cfg.Backoff.wait(j.noProgress, s.jitter.Float64())))
}

// cellRevision is the cell's current revision, read with a cheap call
// (GetJob answers with it); 0 if the call fails.
func (s *scheduler) cellRevision(ctx context.Context, j *job) uint64 {
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	r, err := s.jobsAPI.GetJob(cctx, &cellv1.GetJobRequest{IdOrName: j.info.ID})
	if err != nil {
		s.log.Debug("read cell revision", "err", err)
		return 0
	}
	return r.GetRevision()
}

// catchUp applies events until the copy reaches revision target, the
// stream breaks, or catchUpTimeout passes.
func (s *scheduler) catchUp(ctx context.Context, target uint64) {
	if s.view.Revision() >= target {
		return
	}
	timeout := time.NewTimer(catchUpTimeout)
	defer timeout.Stop()
	for s.live && s.view.Revision() < target {
		select {
		case ev := <-s.events:
			s.apply(ev)
		case <-timeout.C:
			s.log.Warn("local copy did not catch up with a commit", "revision", s.view.Revision(), "want", target)
			return
		case <-ctx.Done():
			return
		}
	}
}

// park marks j unschedulable for reason: it waits for a helpful change of
// the cell or its retry time. The mark is written to the cell (Omega's
// abandoned jobs, visible through the API) when it changed.
func (s *scheduler) park(ctx context.Context, j *job, now time.Time, reason string) {
	retryAt := now.Add(s.cfg.ParkedRetry)
	// Tasks still in their restart delay were not part of this attempt;
	// they are tried when the delay ends.
	for _, t := range s.view.Pending(j.info.ID) {
		if nb := time.Unix(0, s.notBefore[t.Key]); nb.After(now) && nb.Before(retryAt) {
			retryAt = nb
		}
	}
	s.q.setParked(j, retryAt, reason)
	s.m.unschedulable.Inc()
	if s.parkedCheckAt.IsZero() || retryAt.Before(s.parkedCheckAt) {
		s.parkedCheckAt = retryAt
	}
	if j.marked != reason {
		s.log.Info("job unschedulable", "job", j.info.Name, "id", j.info.ID, "attempts", j.attempts, "reason", reason)
		s.setMark(ctx, j, reason)
	}
}

// settle handles a job with nothing left pending: it becomes idle, its
// wait and attempts are observed the first time it is wholly placed, and
// an unschedulable mark is cleared.
func (s *scheduler) settle(ctx context.Context, j *job) {
	s.q.setIdle(j)
	j.retry, j.noProgress = nil, 0
	if !j.placed && j.attempts > 0 {
		j.placed = true
		if j.info.SubmitTime > 0 {
			s.m.jobWait.WithLabelValues("placed").Observe(s.clock.Now().Sub(time.Unix(0, j.info.SubmitTime)).Seconds())
		}
		s.m.attemptsPerJob.Observe(float64(j.attempts))
	}
	if j.marked != "" {
		s.log.Info("job placed; unschedulable mark cleared", "job", j.info.Name, "id", j.info.ID, "attempts", j.attempts)
		s.setMark(ctx, j, "")
	}
}

// setMark writes the job's unschedulable reason (empty: clears it), with
// the attempts so far and the first attempt's time.
func (s *scheduler) setMark(ctx context.Context, j *job, reason string) {
	if len(reason) > maxReasonLen {
		reason = reason[:maxReasonLen-3] + "..."
	}
	req := &cellv1.SetJobSchedulingStatusRequest{
		JobId: j.info.ID, Scheduler: s.cfg.Name, UnschedulableReason: reason,
		Attempts: j.markedAttempts + j.attempts - j.attemptsMarked, FirstAttemptUnixNano: j.firstAttempt.UnixNano(),
	}
	if err := apicheck.SetJobSchedulingStatus(req); err != nil {
		s.log.Error("job scheduling status not sent", "job", j.info.Name, "err", err)
		return
	}
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	if _, err := s.jobsAPI.SetJobSchedulingStatus(cctx, req); err != nil {
		if ctx.Err() == nil {
			s.log.Warn("set job scheduling status", "job", j.info.Name, "err", err)
		}
		return
	}
	j.marked, j.markedAttempts, j.attemptsMarked = reason, req.Attempts, j.attempts
}

// report refreshes the queue gauges and hands the scheduler's figures to
// the stats reporter (dropping them if it is still busy with the last).
func (s *scheduler) report(now time.Time) {
	ready, waiting, parked := s.q.counts()
	tasks := 0
	for id, j := range s.q.jobs {
		if j.state != jobIdle {
			tasks += len(s.view.Pending(id))
		}
	}
	s.m.queueJobs.WithLabelValues(jobReady.String()).Set(float64(ready))
	s.m.queueJobs.WithLabelValues(jobWaiting.String()).Set(float64(waiting))
	s.m.queueJobs.WithLabelValues(jobParked.String()).Set(float64(parked))
	s.m.queueTasks.Set(float64(tasks))
	st := s.m.stats(now, ready+waiting+parked, tasks)
	select {
	case s.statsOut <- st:
	default:
	}
}

// unplacedReason summarises why a policy placed none or only some of
// pending tasks: the most common reason, and how many others there were.
func unplacedReason(unplaced []policy.Unplaced, pending int) string {
	if len(unplaced) == 0 {
		return fmt.Sprintf("the policy placed none of %d pending tasks and gave no reason", pending)
	}
	type count struct {
		reason string
		n      int
		first  int
	}
	byReason := make(map[string]*count)
	for i, u := range unplaced {
		c := byReason[u.Reason]
		if c == nil {
			c = &count{reason: u.Reason, first: i}
			byReason[u.Reason] = c
		}
		c.n++
	}
	counts := make([]*count, 0, len(byReason))
	for _, c := range byReason {
		counts = append(counts, c)
	}
	slices.SortFunc(counts, func(a, b *count) int { return cmp.Or(cmp.Compare(b.n, a.n), cmp.Compare(a.first, b.first)) })
	var b strings.Builder
	fmt.Fprintf(&b, "%d of %d pending tasks unplaced: %s", len(unplaced), pending, counts[0].reason)
	if rest := len(counts) - 1; rest > 0 {
		fmt.Fprintf(&b, " (and %s for %s)", plural(len(unplaced)-counts[0].n, "more task"), plural(rest, "other reason"))
	}
	return b.String()
}

// plural writes a count and a noun, with an s unless the count is one.
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
