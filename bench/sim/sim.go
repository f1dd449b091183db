package sim

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"

	"github.com/omegacell/omegacell/schedulers/policy"
	"github.com/omegacell/omegacell/txn"
)

// Run simulates one cell under one architecture until cfg.Horizon and
// returns its metrics. It is deterministic: the same configuration and
// source give the same result.
func Run(cfg Config, src Source) (*Result, error) {
	s, err := simulate(cfg, src, 0)
	if err != nil {
		return nil, err
	}
	return s.result(), nil
}

// simulate runs the simulation and returns its final state. With
// checkEvery > 0 it checks the cell with txn.CheckInvariant every that
// many events and at the end (tests do).
func simulate(cfg Config, src Source, checkEvery uint64) (*sim, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("sim config: %w", err)
	}
	s := newSim(cfg, src)
	s.checkEvery = checkEvery
	if err := s.run(); err != nil {
		return nil, err
	}
	if checkEvery > 0 {
		if err := s.checkInvariant(); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// checkInvariant checks that no machine is over-committed, no task placed
// twice, and every machine's allocation is the sum of its tasks.
func (s *sim) checkInvariant() error {
	var tasks []*txn.Task
	ids := make([]string, 0, len(s.cell.jobs))
	for id := range s.cell.jobs {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		for _, t := range s.cell.jobs[id].tasks {
			if t != nil {
				tasks = append(tasks, t)
			}
		}
	}
	if err := txn.CheckInvariant(s.cell.machines, tasks); err != nil {
		return fmt.Errorf("at %.3fs: %w", s.now, err)
	}
	return nil
}

// sim is the state of one run: the clock, the agenda, the cell and the
// schedulers. Everything happens on one goroutine in event order.
type sim struct {
	cfg    Config
	now    float64
	agenda agenda
	cell   *cell
	src    Source
	next   Item // the source's next item, due at next.At
	hasNxt bool

	scheds   []*scheduler
	byKind   map[string][]*scheduler
	dealt    map[string]int // round-robin position per kind
	prefill  *scheduler
	jobTypes []*typeStats
	byType   map[string]*typeStats

	policies map[string]policy.Policy

	// Two-level allocator state.
	lockedBy     []int32 // machine index -> 1 + framework index, 0 if free
	roundPending bool

	err        error
	checkEvery uint64
	events     uint64
	placed     uint64
	pending    []*txn.Task // scratch

	tenantSeries *TenantSeries // nil unless the workload has tenants
}

// scheduler is one simulated scheduler (or two-level framework).
type scheduler struct {
	idx   int
	name  string
	kind  string // batch, service, gpu; "monolithic" for the single scheduler
	rng   *rand.Rand
	dec   decider
	queue jobQueue

	busy      bool
	busySince float64
	current   *job
	claims    []txn.Claim

	// Two-level: the outstanding offer and what the framework holds.
	offer      *offer
	spareOffer *offer
	allocated  txn.Resources
	locked     txn.Resources

	stats schedStats
}

// job is a submitted job as the simulator tracks it.
type job struct {
	spec      *JobSpec
	sched     *scheduler
	stats     *typeStats
	tasks     []*txn.Task // nil once finished or dropped
	pending   []uint32    // indices of pending tasks
	live      int         // non-nil tasks
	submitted float64
	attempts  int
	placed    int
	attempted bool
	scheduled bool // all tasks placed once
	abandoned bool
	done      bool // nothing pending: fully scheduled or abandoned
	queued    bool
}

// taskGroup is a set of tasks of one job that end at the same time.
type taskGroup struct {
	job  *job
	refs []taskRef
}

// taskRef names a placement: a task and the attempt that placed it, so an
// end event never ends a later placement of the same task.
type taskRef struct {
	idx     uint32
	attempt uint32
}

func newSim(cfg Config, src Source) *sim {
	s := &sim{cfg: cfg, src: src, byKind: map[string][]*scheduler{}, dealt: map[string]int{}, byType: map[string]*typeStats{}}
	s.cell = newCell(src.Machines(), &s.now)
	if cfg.Placement.usesPolicies(cfg.Arch) {
		s.cell.mirror = newMirror(s.cell.machines)
		s.policies = productionPolicies()
	}
	s.startTenants() // after the mirror (it takes the tenants too), before the schedulers (their queues)
	s.prefill = s.newScheduler("prefill", "prefill")
	// The prefill is the cell's initial state, not a scheduler under
	// study: it always takes first fit (a policy could preempt the prefill).
	s.prefill.dec = &firstFit{}
	switch cfg.Arch {
	case MonolithicSingle, MonolithicMulti:
		m := s.newScheduler("monolithic", "monolithic")
		for _, k := range []string{KindBatch, KindService, KindGPU} {
			s.byKind[k] = []*scheduler{m}
		}
	default:
		s.byKind[KindService] = []*scheduler{s.newScheduler("service", KindService)}
		for i := range cfg.BatchSchedulers {
			s.byKind[KindBatch] = append(s.byKind[KindBatch], s.newScheduler("batch-"+strconv.Itoa(i+1), KindBatch))
		}
		s.byKind[KindGPU] = []*scheduler{s.newScheduler("gpu", KindGPU)}
	}
	if cfg.Arch == TwoLevel {
		s.lockedBy = make([]int32, len(s.cell.machines))
	}
	return s
}

func (s *sim) newScheduler(name, kind string) *scheduler {
	sc := &scheduler{
		idx:  len(s.scheds),
		name: name,
		kind: kind,
		rng:  rand.New(rand.NewPCG(s.cfg.Seed, 0xD3C1_0000+uint64(len(s.scheds)))),
		dec:  &firstFit{},
	}
	if s.cell.mirror != nil {
		sc.dec = &policyDecider{mirror: s.cell.mirror, policies: s.policies}
	}
	sc.stats.init(s.cfg.Horizon)
	if s.cfg.Order == OrderDRF && s.cell.tenants != nil {
		sc.queue.fair = newFairQueue(s.cell.tenants)
		sc.queue.book, sc.queue.cell = s.cell.tenants, s.cell
	}
	s.scheds = append(s.scheds, sc)
	return sc
}

// timing is the decision-time model of a job on a scheduler.
func (s *sim) timing(sc *scheduler, j *job) Timing {
	if s.cfg.Arch == MonolithicSingle {
		return s.cfg.Timing[KindService]
	}
	return s.cfg.Timing[j.spec.Kind]
}

func (s *sim) run() error {
	s.pull()
	for s.hasNxt && s.next.At <= 0 && s.next.Job != nil && s.next.Job.Prefill {
		s.placePrefill(s.next.Job)
		s.pull()
	}
	if s.hasNxt {
		s.agenda.push(event{at: s.next.At, kind: evSource})
	}
	const progressEvery = 1 << 12
	for s.agenda.len() > 0 && s.err == nil {
		if s.agenda.h[0].at > s.cfg.Horizon {
			break
		}
		e := s.agenda.pop()
		s.now = e.at
		s.events++
		if s.cfg.Progress != nil && s.events%progressEvery == 0 {
			s.cfg.Progress(s.now)
		}
		if s.checkEvery > 0 && s.events%s.checkEvery == 0 {
			if err := s.checkInvariant(); err != nil {
				return err
			}
		}
		switch e.kind {
		case evSource:
			s.handleSource()
		case evDecided:
			s.decided(e.sched)
		case evTasksEnd:
			s.tasksEnd(e.group)
		case evRetry:
			s.enqueue(e.job)
		case evOfferRound:
			s.offerRound()
		case evOfferReply:
			s.offerReply(e.sched)
		case evSample:
			s.sample()
		}
	}
	if s.err != nil {
		return s.err
	}
	s.now = s.cfg.Horizon
	s.cell.account()
	for _, sc := range s.scheds {
		if sc.busy {
			sc.stats.addBusy(sc.busySince, s.now, false)
		}
	}
	if s.cfg.Progress != nil {
		s.cfg.Progress(s.now)
	}
	return nil
}

// pull reads the source's next item.
func (s *sim) pull() { s.next, s.hasNxt = s.src.Next() }

func (s *sim) handleSource() {
	it := s.next
	switch {
	case it.Job != nil:
		s.submit(it.Job)
	case it.Machine != nil:
		s.machineEvent(it.Machine)
	}
	s.pull()
	if s.hasNxt {
		at := max(s.next.At, s.now)
		s.agenda.push(event{at: at, kind: evSource})
	}
}

// newJob puts a job's tasks, all pending, into the cell.
func (s *sim) newJob(spec *JobSpec, sc *scheduler) *job {
	j := &job{spec: spec, sched: sc, submitted: s.now, tasks: make([]*txn.Task, spec.Tasks), pending: make([]uint32, spec.Tasks), live: spec.Tasks}
	block := make([]txn.Task, spec.Tasks)
	for i := range block {
		t := &block[i]
		t.Key = txn.TaskKey{Job: spec.ID, Index: uint32(i)}
		t.Scheduler = sc.name
		t.Tenant = spec.Tenant
		t.Priority = spec.Priority
		t.State = txn.TaskPending
		t.Resources = spec.resources(i)
		t.Constraints = spec.Constraints
		t.MaxPerMachine = spec.MaxPerMachine
		j.tasks[i] = t
		j.pending[i] = uint32(i)
	}
	s.cell.addJob(j)
	return j
}

// submit hands an arriving job to a scheduler of its kind.
func (s *sim) submit(spec *JobSpec) {
	if _, dup := s.cell.jobs[spec.ID]; dup {
		s.err = fmt.Errorf("job %s submitted twice", spec.ID)
		return
	}
	group := s.byKind[spec.Kind]
	if len(group) == 0 {
		s.err = fmt.Errorf("job %s: no scheduler for kind %q", spec.ID, spec.Kind)
		return
	}
	sc := group[s.dealt[spec.Kind]%len(group)]
	s.dealt[spec.Kind]++
	j := s.newJob(spec, sc)
	j.stats = s.typeStats(spec)
	j.stats.Submitted++
	if spec.Tasks == 0 {
		j.done = true
		return
	}
	s.enqueue(j)
}

func (s *sim) typeStats(spec *JobSpec) *typeStats {
	ts := s.byType[spec.Type]
	if ts == nil {
		ts = &typeStats{Type: spec.Type, Kind: spec.Kind}
		s.byType[spec.Type] = ts
		s.jobTypes = append(s.jobTypes, ts)
	}
	return ts
}

// enqueue puts a job at the back of its scheduler's queue and wakes the
// scheduler (or, in two-level, asks the allocator for an offer).
func (s *sim) enqueue(j *job) {
	if j.done || j.queued {
		return
	}
	j.queued = true
	j.sched.queue.push(j)
	if s.cfg.Arch == TwoLevel {
		s.requestRound()
		return
	}
	s.startDecision(j.sched)
}

// placePrefill places a prefill job at time zero with the same decision
// step and validator, unmeasured. Tasks that do not fit are dropped.
func (s *sim) placePrefill(spec *JobSpec) {
	j := s.newJob(spec, s.prefill)
	sc := s.prefill
	sc.dec.begin(s.cell.copy())
	sc.claims = sc.dec.place(j, s.pendingTasks(j), sc.rng, sc.claims[:0])
	tx := &txn.Transaction{Scheduler: sc.name, Conflict: txn.ConflictFine, Commit: txn.CommitIncremental, Claims: sc.claims}
	d := txn.Validate(s.cell, tx)
	txn.Apply(s.cell, d)
	s.scheduleEnds(j, sc.claims, d.Results)
	s.dropPending(j)
	// What did not fit is dropped: the prefill is what runs at time zero.
	j.done, j.abandoned = true, true
	s.abandon(j)
}

// pendingTasks returns the job's pending tasks (a scratch slice).
func (s *sim) pendingTasks(j *job) []*txn.Task {
	s.pending = s.pending[:0]
	for _, i := range j.pending {
		s.pending = append(s.pending, j.tasks[i])
	}
	return s.pending
}

// attempt counts a scheduling attempt of j.
func (s *sim) attempt(j *job) {
	j.attempts++
	if !j.attempted {
		j.attempted = true
		j.stats.addWait(s.now - j.submitted)
	}
}

// commitResult summarises one validated transaction.
type commitResult struct {
	accepted  int
	conflicts int
}

// commit validates claims against the cell with txn.Validate, installs the
// decision with txn.Apply and schedules the placed tasks' ends.
func (s *sim) commit(sc *scheduler, claims []txn.Claim, preempt []txn.TaskKey, conflict txn.ConflictMode, mode txn.CommitMode) commitResult {
	if len(claims) == 0 {
		return commitResult{}
	}
	tx := &txn.Transaction{Scheduler: sc.name, Conflict: conflict, Commit: mode, Claims: claims, Preemptions: preempt}
	d := txn.Validate(s.cell, tx)
	txn.Apply(s.cell, d)
	for _, k := range d.Preempted {
		s.preempted(k)
	}
	var r commitResult
	for i, res := range d.Results {
		switch {
		case res.Reason == txn.ReasonOK:
			r.accepted++
		case res.Reason.IsConflict():
			r.conflicts++
		default:
			s.err = fmt.Errorf("scheduler %s: claim %s on %s rejected (%s: %s): a simulator bug, not a conflict",
				sc.name, claims[i].Task, claims[i].Machine, res.Reason, res.Detail)
		}
	}
	sc.stats.recordTransaction(r, len(claims), s.now)
	s.placed += uint64(r.accepted)
	s.scheduleEndsFor(claims, d.Results)
	return r
}

// preempted takes a task that a transaction evicted (it is pending again
// in the cell) back to its job, which goes back to its scheduler.
func (s *sim) preempted(k txn.TaskKey) {
	j := s.cell.jobs[k.Job]
	if j.spec.Prefill || j.abandoned {
		s.cell.retireTask(j, k.Index, s.cell.Task(k))
		s.forgetIfFinished(j)
		return
	}
	j.stats.TasksPreempted++
	s.taskBack(j, k.Index)
}

// taskBack puts a task that is pending again into its job's pending list
// and the job back into its scheduler's queue.
func (s *sim) taskBack(j *job, i uint32) {
	j.pending = append(j.pending, i)
	if j.done {
		// Placing it again is a new attempt of a job that already counted
		// as scheduled; it is not counted again.
		j.done = false
	}
	s.enqueue(j)
}

// scheduleEndsFor schedules the ends of every accepted claim, per job.
func (s *sim) scheduleEndsFor(claims []txn.Claim, results []txn.ClaimResult) {
	start := 0
	for i := 1; i <= len(claims); i++ {
		if i == len(claims) || claims[i].Task.Job != claims[start].Task.Job {
			j := s.cell.jobs[claims[start].Task.Job]
			s.scheduleEnds(j, claims[start:i], results[start:i])
			start = i
		}
	}
}

// scheduleEnds records the accepted claims of one job (claims and results
// aligned) and schedules their ends, one event per distinct end time.
func (s *sim) scheduleEnds(j *job, claims []txn.Claim, results []txn.ClaimResult) {
	var groups map[float64]*taskGroup
	var single *taskGroup
	for i, c := range claims {
		if results[i].Reason != txn.ReasonOK {
			continue
		}
		t := j.tasks[c.Task.Index]
		j.placed++
		if fw := j.sched; s.cfg.Arch == TwoLevel {
			fw.allocated = fw.allocated.Add(t.Resources)
		}
		dur := j.spec.duration(int(c.Task.Index))
		if dur < 0 {
			continue // runs past the end of the simulation
		}
		ref := taskRef{idx: c.Task.Index, attempt: t.Attempt}
		if j.spec.TaskDurations == nil {
			if single == nil {
				single = &taskGroup{job: j}
				s.agenda.push(event{at: s.now + dur, kind: evTasksEnd, group: single})
			}
			single.refs = append(single.refs, ref)
			continue
		}
		if groups == nil {
			groups = map[float64]*taskGroup{}
		}
		g := groups[dur]
		if g == nil {
			g = &taskGroup{job: j}
			groups[dur] = g
			s.agenda.push(event{at: s.now + dur, kind: evTasksEnd, group: g})
		}
		g.refs = append(g.refs, ref)
	}
}

// dropPending removes from j.pending every task that is no longer pending.
func (s *sim) dropPending(j *job) {
	kept := j.pending[:0]
	for _, i := range j.pending {
		if t := j.tasks[i]; t != nil && t.State == txn.TaskPending {
			kept = append(kept, i)
		}
	}
	j.pending = kept
}

// finishAttempt decides a job's fate after an attempt: fully scheduled,
// abandoned, or still waiting. It reports whether the job is done.
func (s *sim) finishAttempt(j *job) bool {
	s.dropPending(j)
	switch {
	case len(j.pending) == 0:
		j.done = true
		if !j.scheduled {
			j.scheduled = true
			j.stats.addScheduled(s.now - j.submitted)
		}
	case j.attempts >= s.cfg.MaxAttempts || (j.placed == 0 && j.attempts >= s.cfg.MaxAttemptsUnplaced):
		j.done, j.abandoned = true, true
		j.stats.Abandoned++
		s.abandon(j)
	}
	return j.done
}

// abandon takes an abandoned job's pending tasks out of the cell; its
// placed tasks run on.
func (s *sim) abandon(j *job) {
	for _, i := range j.pending {
		killed := j.tasks[i].Clone()
		killed.State = txn.TaskKilled
		s.cell.retireTask(j, i, killed)
	}
	j.pending = j.pending[:0]
	s.forgetIfFinished(j)
}

func (s *sim) forgetIfFinished(j *job) {
	if j.live == 0 {
		s.cell.forgetJob(j)
	}
}

// tasksEnd finishes a group of tasks through txn.Transition and installs
// the released machines.
func (s *sim) tasksEnd(g *taskGroup) {
	j := g.job
	// When the group is all that is left of the job, the mirror forgets
	// the job at once instead of task by task (the same end state, at half
	// the cost).
	ending := 0
	for _, ref := range g.refs {
		if t := j.tasks[ref.idx]; t != nil && t.Attempt == ref.attempt && t.State.HoldsResources() {
			ending++
		}
	}
	wholeJob := ending == j.live
	for _, ref := range g.refs {
		t := j.tasks[ref.idx]
		if t == nil || t.Attempt != ref.attempt || !t.State.HoldsResources() {
			continue
		}
		done, m, err := txn.Transition(s.cell, t.Key, txn.TaskSucceeded)
		if err != nil {
			s.err = fmt.Errorf("ending task %s: %w", t.Key, err)
			return
		}
		s.cell.PutMachine(m)
		if s.cfg.Arch == TwoLevel {
			j.sched.allocated = j.sched.allocated.Sub(t.Resources)
		}
		if wholeJob {
			done = nil
		}
		s.cell.retireTask(j, ref.idx, done)
	}
	s.forgetIfFinished(j)
	if s.cfg.Arch == TwoLevel {
		s.requestRound()
	}
}

// machineEvent applies a trace's machine change. A removed machine goes
// down; its tasks are lost and go back to their schedulers as pending.
func (s *sim) machineEvent(ev *MachineEvent) {
	switch ev.Kind {
	case MachineAdded:
		if i, ok := s.cell.index[ev.Machine.ID]; ok {
			// Re-added after a removal: it comes back empty and ready.
			m := ev.Machine.Clone()
			m.Seq = s.cell.machines[i].Seq + 1
			s.loseTasksOn(ev.Machine.ID)
			s.cell.PutMachine(m)
			return
		}
		s.cell.addMachine(ev.Machine)
		if s.cfg.Arch == TwoLevel {
			s.lockedBy = append(s.lockedBy, 0)
			s.requestRound()
		}
	case MachineRemoved:
		old := s.cell.Machine(ev.ID)
		if old == nil {
			return
		}
		s.loseTasksOn(ev.ID)
		m := s.cell.Machine(ev.ID).Clone()
		m.State = txn.MachineDown
		m.Seq++
		s.cell.PutMachine(m)
	case MachineUpdated:
		old := s.cell.Machine(ev.Machine.ID)
		if old == nil {
			s.cell.addMachine(ev.Machine)
			if s.cfg.Arch == TwoLevel {
				s.lockedBy = append(s.lockedBy, 0)
			}
			return
		}
		// A machine shrunk below what runs on it loses its tasks first.
		want := ev.Machine.Capacity
		want.GPUMilli = old.Capacity.GPUMilli // devices do not change
		if !old.Allocated.LessOrEqual(want) {
			s.loseTasksOn(old.ID)
			old = s.cell.Machine(old.ID)
		}
		m := old.Clone()
		m.Capacity = want
		m.Labels = ev.Machine.Labels
		m.Seq++
		s.cell.PutMachine(m)
	}
}

// loseTasksOn moves every task on a machine to lost and back to pending,
// and requeues their jobs.
func (s *sim) loseTasksOn(machine string) {
	var requeue []lostTask
	// Map order is random: collect the affected jobs' ids and sort them.
	var ids []string
	for id, j := range s.cell.jobs {
		for _, t := range j.tasks {
			if t != nil && t.Machine == machine && t.State.HoldsResources() {
				ids = append(ids, id)
				break
			}
		}
	}
	slices.Sort(ids)
	for _, id := range ids {
		j := s.cell.jobs[id]
		for i, t := range j.tasks {
			if t == nil || t.Machine != machine || !t.State.HoldsResources() {
				continue
			}
			lost, m, err := txn.Transition(s.cell, t.Key, txn.TaskLost)
			if err != nil {
				s.err = fmt.Errorf("losing task %s: %w", t.Key, err)
				return
			}
			s.cell.PutMachine(m)
			s.cell.PutTask(lost)
			if s.cfg.Arch == TwoLevel {
				j.sched.allocated = j.sched.allocated.Sub(t.Resources)
			}
			if j.spec.Prefill || j.abandoned {
				s.cell.retireTask(j, uint32(i), lost)
				continue
			}
			again, _, err := txn.Transition(s.cell, t.Key, txn.TaskPending)
			if err != nil {
				s.err = fmt.Errorf("requeueing task %s: %w", t.Key, err)
				return
			}
			s.cell.PutTask(again)
			j.stats.TasksLost++
			requeue = append(requeue, lostTask{j, uint32(i)})
		}
		s.forgetIfFinished(j)
	}
	for _, lt := range requeue {
		s.taskBack(lt.job, lt.idx)
	}
}

type lostTask struct {
	job *job
	idx uint32
}
