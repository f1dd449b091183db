package cellstate

import (
	"cmp"
	"fmt"
	"math"
	"slices"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/omegacell/omegacell/pbconv"
	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
	"github.com/omegacell/omegacell/txn"
)

// Quota and admission in the store (issue 12).
//
// Quota usage is part of the state: index and unindex feed every task
// version to the state's txn.Ledger, installMachine every machine version,
// so txn.Validate (commit) and txn.Ledger.Admit (submit) read the same
// numbers the simulator's cell keeps with the same code.
//
// Admission, Kueue style: at submit a job of a tenant and band with a
// quota is
//   - refused (FailedPrecondition) if its whole request (count x task
//     resources) exceeds the quota, plus the borrow limit in batch: it
//     could never run;
//   - refused (ResourceExhausted) if it would take the tenant's pending
//     and queued tasks of the band past the band's max_pending_tasks;
//   - queued (JobState QUEUED, with the reason) if it fits the quota but
//     not the headroom now (what the tenant's admitted live tasks leave),
//     or if earlier jobs of the tenant and band are queued (strict FIFO);
//     a queued job has no tasks, so no scheduler sees it;
//   - else admitted: its tasks are created pending.
// After every operation that changed the cell, admitQueued admits the
// head of each tenant and band's queue while it fits (in the same
// revision as the change that made room).

type tenantBand struct {
	tenant string
	band   txn.Band
}

// jobQueue is one tenant and band's queued jobs in submission order.
type jobQueue struct {
	jobs  []string // job ids
	tasks uint32   // tasks of those jobs
	// refreshed is when the head's reason was last rewritten (s.now).
	refreshed int64
}

func (s *state) queue(tb tenantBand) *jobQueue {
	if q := s.queues[tb]; q != nil {
		return q
	}
	return &jobQueue{}
}

// Ledger implements txn.QuotaState: Validate enforces quotas.
func (s *state) Ledger() *txn.Ledger { return s.ledger }

// jobRequest is what all of a job's tasks request together (saturating:
// a bounded request times a bounded count can exceed int64 for memory).
func jobRequest(spec *cellv1.JobSpec) txn.Resources {
	r := pbconv.Resources(spec.GetTask().GetResources())
	n := int64(spec.GetCount())
	mul := func(v int64) int64 {
		if v > 0 && n > math.MaxInt64/v {
			return math.MaxInt64
		}
		return v * n
	}
	return txn.Resources{CPUMilli: mul(r.CPUMilli), MemoryBytes: mul(r.MemoryBytes), DiskBytes: mul(r.DiskBytes), GPUMilli: mul(r.GPUMilli)}
}

// admission decides a submitted job: an error refuses it, a non-empty
// reason queues it, neither admits it.
func (s *state) admission(spec *cellv1.JobSpec) (string, error) {
	tb := tenantBand{spec.Tenant, txn.BandOf(spec.Priority)}
	q := s.ledger.Quota(tb.tenant, tb.band)
	if q == nil {
		return "", nil
	}
	jq := s.queue(tb)
	if q.MaxPending > 0 {
		pending := s.ledger.Use(tb.tenant, tb.band).Pending
		if uint64(pending)+uint64(jq.tasks)+uint64(spec.Count) > uint64(q.MaxPending) {
			return "", status.Errorf(codes.ResourceExhausted,
				"spec.count: tenant %s: %d more tasks would exceed its %s cap of %d pending tasks (%d pending, %d queued)",
				tb.tenant, spec.Count, tb.band, q.MaxPending, pending, jq.tasks)
		}
	}
	verdict, why := s.ledger.Admit(tb.tenant, tb.band, jobRequest(spec))
	switch {
	case verdict == txn.Never:
		return "", status.Errorf(codes.FailedPrecondition, "spec: the job can never run within its quota: %s", why)
	case len(jq.jobs) > 0:
		return fmt.Sprintf("tenant %s: behind %d queued %s jobs (first in line: %s)", tb.tenant, len(jq.jobs), tb.band, s.jobs[jq.jobs[0]].job.GetQueuedReason()), nil
	case verdict == txn.Queue:
		return why, nil
	}
	return "", nil
}

// enqueue installs a new queued job (no tasks).
func (s *state) enqueue(j *jobEntry) {
	spec := j.job.GetSpec()
	tb := tenantBand{spec.Tenant, txn.BandOf(spec.Priority)}
	q := s.queues[tb]
	if q == nil {
		q = &jobQueue{}
		s.queues[tb] = q
	}
	q.jobs = append(q.jobs, j.job.Id)
	q.tasks += spec.Count
	s.queuedTasks += int(spec.Count)
}

// dequeue takes a queued job out of its queue (admitted or stopped).
func (s *state) dequeue(j *jobEntry) {
	spec := j.job.GetSpec()
	tb := tenantBand{spec.Tenant, txn.BandOf(spec.Priority)}
	q := s.queues[tb]
	if q == nil {
		return
	}
	if i := slices.Index(q.jobs, j.job.Id); i >= 0 {
		q.jobs = slices.Delete(q.jobs, i, i+1)
		q.tasks -= spec.Count
		s.queuedTasks -= int(spec.Count)
	}
	if len(q.jobs) == 0 {
		delete(s.queues, tb)
	}
}

// reasonRefresh is how often a queued head's reason is rewritten while
// its numbers move (each rewrite is a job change in the watch stream).
const reasonRefresh = int64(1e9)

// admitQueued admits, per tenant and band in name order, the queue's head
// jobs while they fit, and keeps the head's reason current.
func (s *state) admitQueued() {
	if len(s.queues) == 0 {
		return
	}
	keys := make([]tenantBand, 0, len(s.queues))
	for tb := range s.queues {
		keys = append(keys, tb)
	}
	slices.SortFunc(keys, func(a, b tenantBand) int {
		return cmp.Or(cmp.Compare(a.tenant, b.tenant), cmp.Compare(a.band, b.band))
	})
	for _, tb := range keys {
		q := s.queues[tb]
		for q != nil && len(q.jobs) > 0 {
			j := s.jobs[q.jobs[0]]
			verdict, why := s.ledger.Admit(tb.tenant, tb.band, jobRequest(j.job.GetSpec()))
			if verdict == txn.Admit {
				s.dequeue(j)
				s.admit(j)
				q = s.queues[tb]
				continue
			}
			if verdict == txn.Never {
				// The quota shrank below the job: it can never run.
				s.dequeue(j)
				pb := proto.Clone(j.job).(*cellv1.Job)
				pb.State, pb.FinishTimeUnixNano, pb.QueuedReason = cellv1.JobState_JOB_STATE_FAILED, s.now, ""
				pb.Message = "can never run within its quota: " + why
				s.installJob(j, pb)
				q = s.queues[tb]
				continue
			}
			if why != j.job.QueuedReason && s.now-q.refreshed >= reasonRefresh {
				q.refreshed = s.now
				pb := proto.Clone(j.job).(*cellv1.Job)
				pb.QueuedReason = why
				s.installJob(j, pb)
			}
			break
		}
	}
}

// admit turns a queued job into a pending one: its tasks are created.
func (s *state) admit(j *jobEntry) {
	pb := proto.Clone(j.job).(*cellv1.Job)
	pb.State, pb.QueuedReason = cellv1.JobState_JOB_STATE_PENDING, ""
	pb.Message = fmt.Sprintf("admitted after %s queued", fmtDuration(s.now-pb.SubmitTimeUnixNano))
	s.installJob(j, pb)
	s.createTasks(j, pb.Spec)
}

// createTasks creates a job's pending tasks.
func (s *state) createTasks(j *jobEntry, spec *cellv1.JobSpec) {
	if spec.GetKind() == cellv1.JobKind_JOB_KIND_SYSTEM {
		s.createSystemTasks(j) // system.go
		return
	}
	j.tasks = make([]*task, spec.Count)
	for _, t := range newPendingTasks(j.job.Id, spec, s.now) {
		s.installTask(t)
	}
}

// newPendingTasks makes the first versions of a job's tasks.
func newPendingTasks(id string, spec *cellv1.JobSpec, now int64) []*task {
	tasks := make([]*task, spec.Count)
	res := pbconv.Resources(spec.Task.GetResources())
	cons := txn.Compile(pbconv.Constraints(spec.Task.GetConstraints())) // once per job, shared by its tasks
	slab := newVersionSlab(int(spec.Count))
	for i := range spec.Count {
		nt, tt := slab.next()
		*tt = txn.Task{
			Key: txn.TaskKey{Job: id, Index: i}, Scheduler: spec.Scheduler, Tenant: spec.Tenant, Priority: spec.Priority,
			State: txn.TaskPending, Resources: res, Constraints: cons, MaxPerMachine: spec.Task.GetMaxPerMachine(),
		}
		*nt = task{
			t:          tt,
			submitTime: now,
			version:    1, versionTime: now, // issue 13
		}
		tasks[i] = nt
	}
	return tasks
}

// recoverQueues rebuilds the queues from the recovered queued jobs, in
// submission order.
func (s *state) recoverQueues() {
	var queued []*jobEntry
	for _, j := range s.jobs {
		if j.job.State == cellv1.JobState_JOB_STATE_QUEUED {
			queued = append(queued, j)
		}
	}
	slices.SortFunc(queued, func(a, b *jobEntry) int {
		return cmp.Or(cmp.Compare(a.job.SubmitTimeUnixNano, b.job.SubmitTimeUnixNano), cmp.Compare(a.job.Id, b.job.Id))
	})
	for _, j := range queued {
		s.enqueue(j)
	}
}

// recoveredTasks is how many tasks a recovered job has: none while queued.
func recoveredTasks(pb *cellv1.Job) uint32 {
	if pb.State == cellv1.JobState_JOB_STATE_QUEUED {
		return 0
	}
	return pb.GetSpec().GetCount()
}

func fmtDuration(ns int64) string {
	return fmt.Sprintf("%.1fs", float64(ns)/1e9)
}

// rebuildLedger computes the ledger from scratch: what the state's
// incremental one must equal (checkInvariant).
func rebuildLedger(s *state, machines []*txn.Machine, tasks []*txn.Task) *txn.Ledger {
	l := txn.NewLedger()
	for _, p := range s.tenants.all() {
		l.SetTenant(pbconv.Tenant(p))
	}
	for _, m := range machines {
		l.AccountMachine(nil, m)
	}
	for _, t := range tasks {
		l.AccountTask(nil, t)
	}
	return l
}
