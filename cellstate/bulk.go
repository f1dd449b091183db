package cellstate

import (
	"fmt"
	"slices"

	"github.com/google/uuid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
	"github.com/omegacell/omegacell/proto/limits"
	"github.com/omegacell/omegacell/txn"
)

// The three operations whose size a request chooses (up to 100,000 claims
// or tasks), made so that no round holds more than sliceItems of them (see
// slice.go).

// ---------------------------------------------------------------- commit

// commitOp commits a scheduler's transaction. An incremental one without
// preemptions and without claims of a gang job is applied sliceItems
// claims at a time; any other is applied whole (and is bounded by
// limits.MaxAtomicClaims).
type commitOp struct {
	tx *txn.Transaction
	by string // the scheduler identity committing ("": not checked here)
	// Set before queuing (newCommitOp): the jobs claimed, in first-claim
	// order; whether the transaction may be sliced; which claims repeat
	// an earlier claim's task (only for a transaction that may be sliced:
	// they are answered DUPLICATE without being checked).
	jobs      []string
	sliceable bool
	dup       []bool
	// The loop's progress: claims run so far and the merged decision.
	next        int
	d           *txn.Decision
	preemptions []preemption // the victims so far, by tenant (metrics)
}

// newCommitOp does, outside the loop, what needs no cell state.
func newCommitOp(tx *txn.Transaction, by string) *commitOp {
	o := &commitOp{tx: tx, by: by}
	seen := make(map[string]struct{})
	for i := range tx.Claims {
		if j := tx.Claims[i].Task.Job; i == 0 || j != tx.Claims[i-1].Task.Job {
			if _, ok := seen[j]; !ok {
				seen[j] = struct{}{}
				o.jobs = append(o.jobs, j)
			}
		}
	}
	o.sliceable = len(tx.Claims) > sliceItems && tx.Commit != txn.CommitAllOrNothing && len(tx.Preemptions) == 0
	if o.sliceable {
		claimed := make(map[txn.TaskKey]struct{}, len(tx.Claims))
		for i := range tx.Claims {
			k := tx.Claims[i].Task
			if _, ok := claimed[k]; ok {
				if o.dup == nil {
					o.dup = make([]bool, len(tx.Claims))
				}
				o.dup[i] = true
			}
			claimed[k] = struct{}{}
		}
	}
	return o
}

// CommitResult is the outcome of a committed transaction.
type CommitResult struct {
	Decision *txn.Decision
	// preemptions attributes the victims to tenants (metrics).
	preemptions []preemption
}

func (o *commitOp) more() bool { return o.d != nil && o.next < len(o.tx.Claims) }

func (o *commitOp) run(s *state) (any, error) {
	if o.d == nil {
		if err := o.first(s); err != nil {
			return nil, err
		}
	}
	end := len(o.tx.Claims)
	if o.sliceable {
		end = min(o.next+sliceItems, end)
	}
	o.runClaims(s, o.next, end)
	o.next = end
	return &CommitResult{Decision: o.d, preemptions: o.preemptions}, nil
}

// first makes the checks of the whole transaction, in its first slice.
func (o *commitOp) first(s *state) error {
	if !s.schedulers[o.tx.Scheduler] {
		return status.Errorf(codes.InvalidArgument, "scheduler: %q is not registered", o.tx.Scheduler)
	}
	if err := s.claimsOwnedBy(o.tx, o.by); err != nil {
		return err
	}
	for _, id := range o.jobs {
		if _, gang := s.Gang(id); gang {
			if len(o.tx.Claims) > limits.MaxAtomicClaims {
				return status.Errorf(codes.InvalidArgument, "claims: %d claims with claims of gang job %s exceed %d (a gang is placed in one transaction, at most %d claims)",
					len(o.tx.Claims), id, limits.MaxAtomicClaims, limits.MaxAtomicClaims)
			}
			o.sliceable = false
		}
	}
	s.seen.touch(o.tx.Scheduler, s.now)
	o.d = &txn.Decision{Results: make([]txn.ClaimResult, 0, len(o.tx.Claims))}
	return nil
}

// runClaims validates and applies claims [from, to) (with the
// preemptions when they are the whole transaction) and adds the outcome
// to the merged decision. Claims answered without txn: duplicates of an
// earlier slice's claims, and claims of a job that finished (its tasks
// are being killed by a stop's later slices).
func (o *commitOp) runClaims(s *state, from, to int) {
	part := *o.tx
	part.Claims = o.tx.Claims[from:to]
	if from > 0 || to < len(o.tx.Claims) {
		part.Preemptions = nil
	}
	pre := o.presets(s, from, to)
	if pre != nil && part.Commit == txn.CommitAllOrNothing {
		// One claim fails, so all do.
		for i := range part.Claims {
			if pre[i].Reason == 0 {
				pre[i] = txn.ClaimResult{Reason: txn.ReasonAborted, Detail: "another claim of the all-or-nothing transaction failed"}
			}
		}
		o.d.Results = append(o.d.Results, pre...)
		return
	}
	var keep []int // positions in part of the claims txn checks
	if pre != nil {
		claims := make([]txn.Claim, 0, len(part.Claims))
		for i := range part.Claims {
			if pre[i].Reason == 0 {
				keep = append(keep, i)
				claims = append(claims, part.Claims[i])
			}
		}
		part.Claims = claims
	}
	var machines map[string]string
	if len(part.Preemptions) > 0 {
		machines = victimMachines(s, part.Preemptions)
	}
	d := txn.Validate(s, &part)
	o.preemptions = append(o.preemptions, s.preemptionsOf(&part, d)...) // before Apply: the victims' machines
	txn.Apply(s, d)
	if len(d.Preempted) > 0 {
		by := preemptors(&part, d, machines)
		for _, k := range d.Preempted {
			job := by[k]
			s.annotateTask(k, fmt.Sprintf("preempted by job %s (scheduler %s)", s.jobName(job), o.tx.Scheduler), job)
			s.markPreempted(k, s.jobName(job)) // the event of the eviction (events.go)
		}
	}
	if pre == nil && from == 0 && to == len(o.tx.Claims) {
		o.d = d // the whole transaction at once: the common case
		return
	}
	o.d.Accepted += d.Accepted
	o.d.Preempted = append(o.d.Preempted, d.Preempted...)
	o.d.PreemptionErrors = append(o.d.PreemptionErrors, d.PreemptionErrors...)
	if pre == nil {
		o.d.Results = append(o.d.Results, d.Results...)
		return
	}
	for n, i := range keep {
		pre[i] = d.Results[n]
	}
	o.d.Results = append(o.d.Results, pre...)
}

// presets answers the claims of [from, to) that txn does not check (nil
// when there are none).
func (o *commitOp) presets(s *state, from, to int) []txn.ClaimResult {
	var finished map[string]string
	for _, id := range o.jobs {
		if j := s.jobs[id]; j != nil && !jobLive(j.job) {
			if finished == nil {
				finished = make(map[string]string)
			}
			finished[id] = jobStateName(j.job.State)
		}
	}
	if finished == nil && o.dup == nil {
		return nil
	}
	var pre []txn.ClaimResult
	for i := from; i < to; i++ {
		k := o.tx.Claims[i].Task
		var r txn.ClaimResult
		if st, ok := finished[k.Job]; ok {
			r = txn.ClaimResult{Reason: txn.ReasonTaskNotPending, Detail: fmt.Sprintf("task %s: job %s is %s", k, k.Job, st)}
		} else if o.dup != nil && o.dup[i] {
			r = txn.ClaimResult{Reason: txn.ReasonDuplicate, Detail: fmt.Sprintf("task %s is claimed twice in the transaction", k)}
		} else {
			continue
		}
		if pre == nil {
			pre = make([]txn.ClaimResult, to-from)
		}
		pre[i-from] = r
	}
	return pre
}

// annotateTask sets the message and preempting job of a task version
// installed by the current operation (not yet visible to anyone).
func (s *state) annotateTask(k txn.TaskKey, msg, preemptedBy string) {
	t := s.task(k)
	if t.modRev == s.changes.rev {
		t.message, t.preemptedBy = msg, preemptedBy
	}
}

// ---------------------------------------------------------------- submit

// submitOp creates a job and its pending tasks in one revision. What
// needs no cell state is done before queuing (prepareSubmit): the id, the
// tasks, and the encoding of their changes with a guessed revision; the
// loop checks the request against the cell, installs the tasks in O(1)
// each and patches the revision into their encoding.
type submitOp struct {
	spec  *cellv1.JobSpec
	id    string
	now   int64
	tasks []*task
	// changes are the tasks' encoded Change entries (WatchResponse field
	// 2), each ending with the task's mod_revision, encoded with guess;
	// nil if the loop must encode them.
	changes []byte
	guess   uint64
}

// prepareSubmit builds a submission outside the loop. guess is the
// revision the job will most likely get (only its encoded size matters).
func prepareSubmit(spec *cellv1.JobSpec, now int64, guess uint64) *submitOp {
	o := &submitOp{spec: spec, id: uuid.NewString(), now: now, guess: guess}
	o.tasks = newPendingTasks(o.id, spec, now)
	for _, t := range o.tasks {
		t.modRev = guess
	}
	var obj []byte
	for i, t := range o.tasks {
		// A new task's last field is its mod_revision (failures,
		// not_before and last_machine_id are empty), which patchRevision
		// relies on.
		obj = appendTaskRecord(obj[:0], t)
		if i == 0 {
			o.changes = make([]byte, 0, len(o.tasks)*(len(obj)+16))
		}
		o.changes = protowire.AppendTag(o.changes, fieldWatchChanges, protowire.BytesType)
		o.changes = protowire.AppendVarint(o.changes, uint64(protowire.SizeTag(fieldChangeTask)+protowire.SizeBytes(len(obj))))
		o.changes = protowire.AppendTag(o.changes, fieldChangeTask, protowire.BytesType)
		o.changes = protowire.AppendBytes(o.changes, obj)
	}
	return o
}

// patchRevision rewrites the mod_revision that ends every change in
// changes (encoded as guess) to rev, in place. It reports false if rev
// does not encode to guess's size (the caller encodes anew).
func patchRevision(changes []byte, guess, rev uint64) bool {
	size := protowire.SizeVarint(rev)
	if size != protowire.SizeVarint(guess) {
		return false
	}
	for at := 0; at < len(changes); {
		_, _, n := protowire.ConsumeTag(changes[at:])
		l, m := protowire.ConsumeVarint(changes[at+n:])
		end := at + n + m + int(l)
		protowire.AppendVarint(changes[end-size:end-size], rev)
		at = end
	}
	return true
}

func (o *submitOp) run(s *state) (any, error) {
	spec := o.spec
	if spec.GetKind() == cellv1.JobKind_JOB_KIND_SYSTEM {
		spec = s.systemSpec(spec) // system.go: count is the machines covered
	}
	if !s.schedulers[spec.Scheduler] {
		return nil, status.Errorf(codes.InvalidArgument, "spec.scheduler: %q is not registered (registered: %s)", spec.Scheduler, s.schedulerNames())
	}
	if id, ok := s.jobByName[spec.Name]; ok && jobLive(s.jobs[id].job) {
		return s.updateJob(s.jobs[id], spec, "submitted") // a new version (update.go)
	}
	if err := s.refusePending(spec.Count); err != nil {
		return nil, err
	}
	queued, err := s.admission(spec) // quota.go
	if err != nil {
		return nil, err
	}
	pb := &cellv1.Job{Id: o.id, Spec: spec, State: cellv1.JobState_JOB_STATE_PENDING, SubmitTimeUnixNano: o.now,
		Version: 1, TemplateVersion: 1}
	if queued != "" {
		pb.State, pb.QueuedReason = cellv1.JobState_JOB_STATE_QUEUED, queued
	}
	j := &jobEntry{tmpl: spec.Task}
	if spec.Task.GetMaxPerMachine() > 0 {
		j.perMachine = make(map[string]uint32)
	}
	s.jobs[o.id] = j
	s.jobByName[spec.Name] = o.id
	s.installJob(j, pb)
	s.recordVersion(j, spec, 1, "submitted")
	if queued != "" {
		s.enqueue(j) // no tasks until admitted (quota.go)
		return pb, nil
	}
	if isSystem(j) {
		s.createSystemTasks(j) // system.go: one per eligible machine, pinned
		return pb, nil
	}
	// The prepared tasks, installed as installTask would (index: counters
	// and quota ledger), without recording them one by one.
	rev := s.changes.rev
	// The job's slice is the loop's to change (each later install writes
	// an element); the change set's is the log's, which watchers read
	// while the loop goes on: two slices, the same versions.
	j.tasks = slices.Clone(o.tasks)
	for _, t := range o.tasks {
		t.modRev = rev
		s.index(j, t)
	}
	s.changes.tasks = o.tasks
	s.changes.touchedJobs = map[string]struct{}{o.id: {}}
	if patchRevision(o.changes, o.guess, rev) {
		s.changes.taskChanges = o.changes
	}
	return pb, nil
}

// ---------------------------------------------------------------- stop

// stopOp stops a job: its first slice makes the job STOPPED (from then on
// everyone sees a finished job) and kills the first sliceItems tasks;
// each later slice kills the next sliceItems. The caller is answered
// when every task is killed.
type stopOp struct {
	idOrName string
	by       string // who asked (identity.String), named in the tasks' events
	j        *jobEntry
	next     int
}

func (o *stopOp) more() bool { return o.j != nil && o.next < len(o.j.tasks) }

func (o *stopOp) run(s *state) (any, error) {
	if o.j == nil {
		j, err := s.lookupJob(o.idOrName)
		if err != nil {
			return nil, err
		}
		if !jobLive(j.job) {
			return nil, status.Errorf(codes.FailedPrecondition, "job %s is already %s", j.job.Id, jobStateName(j.job.State))
		}
		pb := proto.Clone(j.job).(*cellv1.Job)
		pb.State = cellv1.JobState_JOB_STATE_STOPPED
		pb.FinishTimeUnixNano = s.now
		pb.Message = "stopped by request"
		s.dequeue(j) // if it was queued (quota.go)
		s.installJob(j, pb)
		o.j = j
	} else if s.jobs[o.j.job.Id] != o.j {
		o.next = len(o.j.tasks) // deleted meanwhile: nothing is left
		return o.j.job, nil
	}
	why := "job stopped"
	if o.by != "" {
		why = "job stopped by " + o.by
	}
	o.next = s.killFrom(o.j, o.next, why, sliceItems)
	return o.j.job, nil
}
