package cellstate

import (
	"sort"

	"github.com/omegacell/omegacell/pbconv"
	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
	"github.com/omegacell/omegacell/txn"
)

// machine is one installed machine version. Never mutated once installed.
type machine struct {
	m              *txn.Machine
	gpuMemoryBytes int64
	registeredBy   string // the agent identity that registered it
	modRev         uint64
	// labelsWire is m.Labels encoded as Machine field 2. Labels change only
	// when a machine registers; every other change (each claim) reuses it.
	labelsWire []byte
	// drain is set while the machine is cordoned (drain.go); immutable.
	drain *cellv1.MachineDrain
}

// newMachineRecord makes the record of a machine version with new labels.
func newMachineRecord(m *txn.Machine, gpuMemoryBytes int64) *machine {
	return &machine{m: m, gpuMemoryBytes: gpuMemoryBytes, labelsWire: appendLabels(nil, m.Labels)}
}

// task is one installed task version. Never mutated once installed.
type task struct {
	t           *txn.Task
	exitCode    int32
	message     string
	submitTime  int64
	assignTime  int64
	startTime   int64
	finishTime  int64
	failures    uint32
	notBefore   int64
	lastMachine string
	preemptedBy string // job id whose claim preempted it (issue 12)
	// events of the task's last ended attempts (see events.go); shared
	// between versions, never mutated once installed.
	events []*cellv1.TaskEvent
	modRev uint64
	// Issue 13 (update.go): the template version this task runs or will
	// run, since when; whether its attempt is ready, since when.
	version     uint64
	versionTime int64
	ready       bool
	readyTime   int64
}

// jobEntry is the loop's mutable bookkeeping of one job. job and the
// elements of tasks are immutable versions; the slice itself and the
// counters are changed by the commit loop under the write lock.
type jobEntry struct {
	job        *cellv1.Job
	tmpl       *cellv1.TaskTemplate
	tasks      []*task
	counts     [txn.TaskKilled + 1]uint32 // by txn.TaskState
	perMachine map[string]uint32          // only for max-per-machine jobs
	// slot[i] is task i's position in its machine's machineTasks while it
	// holds resources (allocated on the job's first placement).
	slot []int32
	// Issue 13 (update.go): the kept versions, oldest first; tasks that
	// are ready and that crash-loop (kept by index/unindex).
	versions     []*cellv1.JobVersion
	readyCount   uint32
	crashLooping uint32
	// System jobs only (system.go): the compiled constraints, and the
	// index of the task pinned to each machine.
	cons      []txn.Constraint
	byMachine map[string]uint32
}

// machineTasks lists the tasks holding resources on one machine, in no
// order; a task's position is kept in its job's slot, so adding and
// removing cost a few slice operations and no hashing.
type machineTasks struct {
	tasks []taskSlot
}

type taskSlot struct {
	job   *jobEntry
	index uint32
}

// state is the in-memory cell. The commit loop mutates it under Store.mu;
// everyone else reads under Store.mu.RLock.
type state struct {
	rev        uint64
	machines   map[string]*machine
	jobs       map[string]*jobEntry
	jobByName  map[string]string // name -> newest job of that name
	schedulers map[string]bool   // registered names
	tenants    tenantConfigs     // see tenant.go

	// ledger holds quotas and their use (quota.go); queues the queued
	// jobs per tenant and band, queuedTasks their tasks.
	ledger *txn.Ledger
	// systemJobs are the live system jobs (system.go).
	systemJobs  map[string]*jobEntry
	queues      map[tenantBand]*jobQueue
	queuedTasks int

	// pendingBySched counts pending tasks per owning scheduler.
	pendingBySched map[string]int
	// onMachine indexes the tasks holding resources on each machine, so
	// an agent's GetMachine and evicting a machine (drain, down) cost what
	// the machine holds, not a scan of the cell.
	onMachine map[string]*machineTasks
	// draining holds the machines whose drain is in progress (drain.go).
	draining map[string]bool

	// liveJobs counts live jobs per owning scheduler (see gc.go).
	liveJobs map[string]int
	// seen is when each scheduler last spoke (not revisioned).
	seen *schedulerClock
	// limits are the store's caps (set once by Open).
	limits stateLimits

	// finished queues finished jobs by finish time for deletion after
	// the retention (see gc.go).
	finished finishedQueue
	// reaping are finished jobs whose tasks are still being killed, a
	// slice per round (slice.go).
	reaping []reapJob
	// rolling holds the live jobs whose rollout runs (update.go).
	rolling map[string]struct{}

	// The loop's current operation context: time and the revision being
	// built, and where changed objects are recorded.
	now     int64
	changes *changeSet
}

func newState() *state {
	return &state{
		machines:       make(map[string]*machine),
		jobs:           make(map[string]*jobEntry),
		jobByName:      make(map[string]string),
		schedulers:     map[string]bool{"service": true, "batch": true, "gpu": true},
		pendingBySched: make(map[string]int),
		onMachine:      make(map[string]*machineTasks),
		draining:       make(map[string]bool),
		liveJobs:       make(map[string]int),
		seen:           newSchedulerClock(0),
		ledger:         txn.NewLedger(),
		systemJobs:     make(map[string]*jobEntry),
		queues:         make(map[tenantBand]*jobQueue),
	}
}

// stateLimits are the caps the commit loop enforces.
type stateLimits struct {
	maxPending    int // pending tasks in the cell (0: none)
	maxSchedulers int // registered schedulers (0: none)
}

// builtinSchedulers are registered in every cell.
var builtinSchedulers = map[string]bool{"service": true, "batch": true, "gpu": true}

// --- txn.State / txn.Mutable ---

func (s *state) Machine(id string) *txn.Machine {
	if m := s.machines[id]; m != nil {
		return m.m
	}
	return nil
}

func (s *state) Task(k txn.TaskKey) *txn.Task {
	if t := s.task(k); t != nil {
		return t.t
	}
	return nil
}

func (s *state) TasksOfJobOn(job, machineID string) uint32 {
	if j := s.jobs[job]; j != nil {
		return j.perMachine[machineID]
	}
	return 0
}

func (s *state) Gang(job string) (uint32, bool) {
	if j := s.jobs[job]; j != nil && j.job.GetSpec().GetGang() {
		return j.counts[txn.TaskPending], true
	}
	return 0, false
}

func (s *state) PutMachine(m *txn.Machine) {
	// Through txn (placements, transitions) a machine's labels never
	// change: the new version shares the old one's encoded labels.
	old := s.machines[m.ID]
	nm := &machine{m: m}
	if old != nil {
		nm.gpuMemoryBytes, nm.labelsWire = old.gpuMemoryBytes, old.labelsWire
		nm.registeredBy = old.registeredBy
		nm.drain = old.drain
	} else {
		nm.labelsWire = appendLabels(nil, m.Labels)
	}
	s.installMachine(nm)
}

// PutTask installs a new placement version of a task, carrying over the
// store's own fields and stamping times for state changes.
func (s *state) PutTask(t *txn.Task) { s.putTask(t, "") }

// putTask is PutTask for a transition the store makes itself, for why: an
// attempt that ends as the task goes back to pending has its events
// archived (see events.go).
func (s *state) putTask(t *txn.Task, why string) { s.putTaskInto(t, why, nil) }

// putTaskInto is putTask writing the new version into nt (nil: a new one;
// see versionSlab).
func (s *state) putTaskInto(t *txn.Task, why string, nt *task) {
	old := s.task(t.Key)
	if nt == nil {
		nt = new(task)
	}
	*nt = *old
	nt.t = t
	if t.State == txn.TaskPending && old.t.State != txn.TaskPending {
		nt.events = archive(old.events, endedAttemptEvents(old, s.now, why))
	}
	if t.State != old.t.State {
		switch t.State {
		case txn.TaskAssigned:
			nt.assignTime, nt.startTime, nt.finishTime = s.now, 0, 0
			nt.exitCode, nt.message, nt.preemptedBy = 0, "", ""
		case txn.TaskRunning:
			nt.startTime = s.now
		case txn.TaskPending:
			nt.assignTime, nt.startTime = 0, 0
		default:
			if t.State.Terminal() {
				nt.finishTime = s.now
			}
		}
	}
	if t.Machine != "" {
		nt.lastMachine = t.Machine
	}
	s.stampTask(nt, old)
	s.installTask(nt)
}

// jobTasks is a job's task count (0 for an unknown job).
func (s *state) jobTasks(id string) int {
	if j := s.jobs[id]; j != nil {
		return len(j.tasks)
	}
	return 0
}

func (s *state) task(k txn.TaskKey) *task {
	j := s.jobs[k.Job]
	if j == nil || int(k.Index) >= len(j.tasks) {
		return nil
	}
	return j.tasks[k.Index]
}

// installMachine makes nm the current version and records the change.
func (s *state) installMachine(nm *machine) {
	nm.modRev = s.changes.rev
	var old *txn.Machine
	if o := s.machines[nm.m.ID]; o != nil {
		old = o.m
	}
	s.ledger.AccountMachine(old, nm.m)
	s.machines[nm.m.ID] = nm
	s.noteDrain(nm)
	s.changes.machine(nm)
}

// installTask makes nt the current version, keeps the job's counters and
// indexes right, and records the change.
func (s *state) installTask(nt *task) {
	nt.modRev = s.changes.rev
	j := s.jobs[nt.t.Key.Job]
	old := j.tasks[nt.t.Key.Index]
	if old != nil {
		s.unindex(j, old)
	}
	s.index(j, nt)
	j.tasks[nt.t.Key.Index] = nt
	s.changes.task(nt)
}

// index counts a task version in the job's counters and the cell's
// indexes; unindex takes it out.
func (s *state) index(j *jobEntry, t *task) {
	s.ledger.AccountTask(nil, t.t)
	j.counts[t.t.State]++
	j.countHealth(t, 1)
	if t.t.State == txn.TaskPending {
		s.pendingBySched[t.t.Scheduler]++
	}
	if !t.t.State.HoldsResources() {
		return
	}
	if j.perMachine != nil {
		j.perMachine[t.t.Machine]++
	}
	on := s.onMachine[t.t.Machine]
	if on == nil {
		on = &machineTasks{}
		s.onMachine[t.t.Machine] = on
	}
	if j.slot == nil {
		j.slot = make([]int32, len(j.tasks))
	}
	j.slot[t.t.Key.Index] = int32(len(on.tasks))
	on.tasks = append(on.tasks, taskSlot{j, t.t.Key.Index})
}

func (s *state) unindex(j *jobEntry, t *task) {
	s.ledger.AccountTask(t.t, nil)
	j.counts[t.t.State]--
	j.countHealth(t, -1)
	if t.t.State == txn.TaskPending {
		s.pendingBySched[t.t.Scheduler]--
	}
	if !t.t.State.HoldsResources() {
		return
	}
	if j.perMachine != nil {
		j.perMachine[t.t.Machine]--
	}
	on := s.onMachine[t.t.Machine]
	at, last := j.slot[t.t.Key.Index], len(on.tasks)-1
	moved := on.tasks[last]
	on.tasks[at] = moved
	moved.job.slot[moved.index] = at
	on.tasks = on.tasks[:last]
}

// tasksOn lists the tasks holding resources on a machine, by job and index.
func (s *state) tasksOn(machineID string) []txn.TaskKey {
	on := s.onMachine[machineID]
	if on == nil {
		return nil
	}
	keys := make([]txn.TaskKey, len(on.tasks))
	for i, ts := range on.tasks {
		keys[i] = txn.TaskKey{Job: ts.job.job.Id, Index: ts.index}
	}
	sort.Slice(keys, func(a, b int) bool {
		if keys[a].Job != keys[b].Job {
			return keys[a].Job < keys[b].Job
		}
		return keys[a].Index < keys[b].Index
	})
	return keys
}

// installJob makes a new job version current and records the change.
func (s *state) installJob(j *jobEntry, pb *cellv1.Job) {
	pb.ModRevision = s.changes.rev
	s.noteFinished(j.job, pb)
	s.noteRollout(pb)
	j.job = pb
	s.changes.job(pb)
}

// counts returns a job's task counts in API form.
func (j *jobEntry) taskCounts() *cellv1.TaskCounts {
	c := &j.counts
	out := &cellv1.TaskCounts{
		Pending:      c[txn.TaskPending],
		Assigned:     c[txn.TaskAssigned],
		Running:      c[txn.TaskRunning],
		Succeeded:    c[txn.TaskSucceeded],
		Failed:       c[txn.TaskFailed],
		Lost:         c[txn.TaskLost],
		Killed:       c[txn.TaskKilled] + c[txn.TaskPreempted],
		Ready:        j.readyCount,
		CrashLooping: j.crashLooping,
	}
	if jobLive(j.job) { // killed tasks of a live job are retired slots
		out.Retired, out.Killed = c[txn.TaskKilled], c[txn.TaskPreempted]
	}
	return out
}

// live reports whether a job still has work to do.
func jobLive(pb *cellv1.Job) bool {
	switch pb.GetState() {
	case cellv1.JobState_JOB_STATE_SUCCEEDED, cellv1.JobState_JOB_STATE_FAILED, cellv1.JobState_JOB_STATE_STOPPED:
		return false
	}
	return true
}

// sortedMachineIDs returns machine ids in a stable order.
func (s *state) sortedMachineIDs() []string {
	ids := make([]string, 0, len(s.machines))
	for id := range s.machines {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// --- conversion to the API ---

func (m *machine) pb() *cellv1.Machine {
	out := &cellv1.Machine{GpuMemoryBytes: m.gpuMemoryBytes, ModRevision: m.modRev, RegisteredBy: m.registeredBy, Drain: m.drain}
	pbconv.MachineInto(out, m.m)
	return out
}

func (t *task) pb() *cellv1.Task {
	out := &cellv1.Task{
		ExitCode:            t.exitCode,
		Message:             t.message,
		SubmitTimeUnixNano:  t.submitTime,
		AssignTimeUnixNano:  t.assignTime,
		StartTimeUnixNano:   t.startTime,
		FinishTimeUnixNano:  t.finishTime,
		ModRevision:         t.modRev,
		Failures:            t.failures,
		NotBeforeUnixNano:   t.notBefore,
		LastMachineId:       t.lastMachine,
		PreemptedByJobId:    t.preemptedBy,
		Events:              t.events,
		Version:             t.version,
		VersionTimeUnixNano: t.versionTime,
		Ready:               t.ready,
		ReadyTimeUnixNano:   t.readyTime,
	}
	pbconv.TaskInto(out, t.t)
	return out
}
