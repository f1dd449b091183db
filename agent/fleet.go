package agent

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
)

// A fleet is the machines one agent process speaks for: one real machine,
// or thousands of simulated ones. It keeps, per machine, the server's view
// (the tasks the cell holds on it) and the local attempts (what runs here),
// and reconciles the two level-triggered: every sync compares them and
// starts, stops and reports until they agree. Nothing depends on having
// seen a particular event, so a missed report, a server restart or an
// agent restart converge the same way.
//
// All fields under mu. Nothing blocking happens under mu: runtimes start
// processes (a fork, bounded) and stop them asynchronously; RPCs are sent
// by the caller of sync after the lock is released.
type fleet struct {
	log *slog.Logger
	rt  runner

	mu       sync.Mutex
	machines map[string]*machine
	order    []*machine // registration order, for heartbeats
	// ids are the machines' ids in registration order. Like order, fixed
	// before the fleet runs: plain heartbeats read it without the lock.
	ids []string
	// home is the machine whose view holds each task.
	home map[taskKey]*machine
	jobs map[string]*jobEntry
	// waiting lists, per job, the machines with attempts waiting for its
	// template.
	waiting map[string]map[*machine]bool
	// dirty holds the machines something happened to since their last
	// sync: a view change, an attempt's exit, a report's answer, a job
	// template's arrival. unsettled holds the machines whose last sync left
	// them not in agreement with the server (an attempt waits for its job,
	// a report is in flight, refused or in backoff, the view lags behind an
	// attempt started here). The once-a-second reconciliation sweeps both.
	//
	// Invariant: a synced machine in neither set is settled — each local
	// attempt is the one the view holds, in the state the view shows, and
	// the view holds nothing without a local attempt — so a sync of it
	// would do nothing, and only one of the events above (each of which
	// marks it dirty) can change that. Sweeping it every second would be
	// wasted work; the level-triggered reconciliation holds for the others.
	// Time alone never unsettles a machine: a simulated attempt's end comes
	// from its runtime's timer through taskExited, like a process's exit.
	dirty     map[*machine]bool
	unsettled map[*machine]bool
	// kick wakes the sync loop; capacity 1, sends never block.
	kick chan struct{}

	counters fleetCounters
	// quiet logs per-task events at debug level (a simulated fleet would
	// otherwise log every simulated task).
	quiet bool
}

// logTask logs a per-task event.
func (f *fleet) logTask(level slog.Level, msg string, args ...any) {
	if f.quiet {
		level = slog.LevelDebug
	}
	f.log.Log(context.Background(), level, msg, args...)
}

// taskKey names a task; attemptKey one attempt of it.
type taskKey struct {
	job   string
	index uint32
}

type attemptKey struct {
	taskKey
	attempt uint32
}

func (k taskKey) String() string { return fmt.Sprintf("%s/%d", k.job, k.index) }

func (k attemptKey) String() string { return fmt.Sprintf("%s/%d.%d", k.job, k.index, k.attempt) }

func keyOf(t *cellv1.Task) taskKey { return taskKey{job: t.GetJobId(), index: t.GetIndex()} }

// machine is one machine of the fleet.
type machine struct {
	id  string
	reg *cellv1.RegisterMachineRequest

	// view holds the tasks the server has assigned to or running on this
	// machine, at their latest mod revision.
	view map[taskKey]*cellv1.Task
	// floor: a change at or below this revision for a task absent from the
	// view is history the view already reflects (see replaceView).
	floor uint64
	// synced is set once the view came from the server; before that the
	// machine starts and stops nothing.
	synced bool
	// leftoversChecked: the attempts an earlier agent left were compared
	// with the first view.
	leftoversChecked bool

	// local is the latest attempt of each task here; retiring holds older
	// attempts that are being stopped.
	local    map[taskKey]*localTask
	retiring map[attemptKey]*localTask
}

func newMachine(reg *cellv1.RegisterMachineRequest) *machine {
	return &machine{
		id:       reg.GetId(),
		reg:      reg,
		view:     make(map[taskKey]*cellv1.Task),
		local:    make(map[taskKey]*localTask),
		retiring: make(map[attemptKey]*localTask),
	}
}

// phase is where a local attempt is in its life.
type phase uint8

const (
	// waitingForJob: assigned here, but the job's task template is not
	// known yet.
	waitingForJob phase = iota
	running
	exited
)

// localTask is one attempt of a task on this machine.
type localTask struct {
	key      attemptKey
	phase    phase
	handle   runHandle
	stopping bool
	started  time.Time
	// resources and template as the attempt was started with.
	resources *cellv1.Resources
	result    exitResult
	report    reportState
	// readiness is what the attempt's readiness check last said (issue
	// 13; unknown without one: the server then counts it ready as it runs).
	readiness readiness
}

type readiness uint8

const (
	readinessUnknown readiness = iota
	readinessReady
	readinessNotReady
)

// exitResult is how an attempt ended, as it will be reported.
type exitResult struct {
	state    cellv1.TaskState // SUCCEEDED, FAILED or KILLED
	exitCode int32
	message  string
}

// reportState remembers what was last reported for an attempt, so the same
// state is not sent again until the server's view shows it missed it.
type reportState struct {
	state    cellv1.TaskState
	ready    bool // issue 13: the readiness reported with RUNNING
	inflight bool
	// appliedRev: the server applied the report at this revision.
	appliedRev uint64
	// refusedAt: the server refused it while the view was at this mod
	// revision; try again only once the view moved.
	refused   bool
	refusedAt uint64
	failures  int
	retryAt   time.Time
}

// wanted is the state the server should show for an attempt.
func (l *localTask) wanted() cellv1.TaskState {
	switch l.phase {
	case running:
		return cellv1.TaskState_TASK_STATE_RUNNING
	case exited:
		return l.result.state
	}
	return cellv1.TaskState_TASK_STATE_UNSPECIFIED
}

// jobEntry caches a job's task template (immutable once submitted).
type jobEntry struct {
	template *cellv1.TaskTemplate
	version  uint64 // the job's template version (issue 13): tasks stamped with another refetch
	// wanted is the version a fetch was made for; refetchedFor, the one
	// the last fetch answered for: a task stamped with that version starts
	// with what the fetch returned (the job moved on; a task not started
	// yet takes the newest template). One fetch per version at most.
	wanted, refetchedFor uint64
	fetching             bool
	failures             int
	retryAt              time.Time
	lastUsed             time.Time
}

func newFleet(log *slog.Logger, rt runner) *fleet {
	return &fleet{
		log:       log,
		rt:        rt,
		machines:  make(map[string]*machine),
		home:      make(map[taskKey]*machine),
		jobs:      make(map[string]*jobEntry),
		waiting:   make(map[string]map[*machine]bool),
		dirty:     make(map[*machine]bool),
		unsettled: make(map[*machine]bool),
		kick:      make(chan struct{}, 1),
	}
}

// add registers a machine with the fleet (before the first session).
func (f *fleet) add(reg *cellv1.RegisterMachineRequest) {
	f.mu.Lock()
	defer f.mu.Unlock()
	m := newMachine(reg)
	f.machines[m.id] = m
	f.order = append(f.order, m)
	f.ids = append(f.ids, m.id)
}

func (f *fleet) markDirtyLocked(m *machine) {
	f.dirty[m] = true
	select {
	case f.kick <- struct{}{}:
	default:
	}
}

// holdsOn reports whether the server holds task t on machine id.
func holdsOn(t *cellv1.Task, id string) bool {
	if t.GetMachineId() != id {
		return false
	}
	s := t.GetState()
	return s == cellv1.TaskState_TASK_STATE_ASSIGNED || s == cellv1.TaskState_TASK_STATE_RUNNING
}

// applyTask merges one task change seen at revision rev into the views.
func (f *fleet) applyTask(t *cellv1.Task, rev uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.applyTaskLocked(t, rev)
}

func (f *fleet) applyTaskLocked(t *cellv1.Task, rev uint64) {
	key := keyOf(t)
	if cur := f.home[key]; cur != nil {
		if old := cur.view[key]; old.GetModRevision() >= t.GetModRevision() && t.GetModRevision() != 0 {
			return // a replay of something the view already has
		}
		if holdsOn(t, cur.id) {
			cur.view[key] = t
			f.markDirtyLocked(cur)
			return
		}
		delete(cur.view, key)
		delete(f.home, key)
		f.markDirtyLocked(cur)
	}
	m := f.machines[t.GetMachineId()]
	if m == nil || !holdsOn(t, m.id) || rev <= m.floor {
		return
	}
	m.view[key] = t
	f.home[key] = m
	f.markDirtyLocked(m)
}

// replaceView installs the server's list of tasks on machine m, read at some
// revision at least floor. floor is the machine's own mod revision: every
// placement on the machine and every departure from it changes the machine
// (its allocation), so a watch replay at or below floor about a task that
// is not in tasks describes a stay that already ended.
func (f *fleet) replaceView(m *machine, tasks []*cellv1.Task, floor uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.clearViewLocked(m)
	m.floor = floor
	for _, t := range tasks {
		if holdsOn(t, m.id) {
			m.view[keyOf(t)] = t
			f.home[keyOf(t)] = m
		}
	}
	m.synced = true
	f.markDirtyLocked(m)
}

// replaceAll installs a snapshot of the whole cell taken at revision rev.
func (f *fleet) replaceAll(tasks []*cellv1.Task, jobs []*cellv1.Job, rev uint64, now time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, m := range f.order {
		f.clearViewLocked(m)
		m.floor = rev
		m.synced = true
		f.markDirtyLocked(m)
	}
	for _, j := range jobs {
		f.putJobLocked(j, now)
	}
	for _, t := range tasks {
		if m := f.machines[t.GetMachineId()]; m != nil && holdsOn(t, m.id) {
			m.view[keyOf(t)] = t
			f.home[keyOf(t)] = m
		}
	}
}

func (f *fleet) clearViewLocked(m *machine) {
	for key := range m.view {
		delete(f.home, key)
	}
	clear(m.view)
}

// putJob caches a job's template from a watch change or a snapshot.
func (f *fleet) putJob(j *cellv1.Job, now time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.putJobLocked(j, now)
}

func (f *fleet) putJobLocked(j *cellv1.Job, now time.Time) {
	tmpl := j.GetSpec().GetTask()
	if tmpl == nil {
		return
	}
	e := f.jobs[j.GetId()]
	if e == nil {
		e = &jobEntry{lastUsed: now}
		f.jobs[j.GetId()] = e
	}
	if v := j.GetTemplateVersion(); e.template == nil || v != e.version {
		e.template, e.version = tmpl, v
		f.markJobDirtyLocked(j.GetId())
	}
}

// jobFetched records the answer to a GetJob call.
func (f *fleet) jobFetched(id string, tmpl *cellv1.TaskTemplate, err error, now time.Time) {
	f.jobFetchedAt(id, tmpl, 0, err, now)
}

// jobFetchedAt records a GetJob answer of the job's template version v.
func (f *fleet) jobFetchedAt(id string, tmpl *cellv1.TaskTemplate, v uint64, err error, now time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	e := f.jobs[id]
	if e == nil {
		e = &jobEntry{lastUsed: now}
		f.jobs[id] = e
	}
	e.fetching = false
	if err != nil || tmpl == nil {
		e.failures++
		e.retryAt = now.Add(jobRetryDelay)
		if e.failures == 1 {
			f.log.Warn("cannot read the job of an assigned task; will retry", "job", id, "err", err)
		}
		return
	}
	e.template, e.version, e.refetchedFor = tmpl, v, e.wanted
	f.markJobDirtyLocked(id)
}

// markJobDirtyLocked wakes the machines whose tasks wait for job id.
func (f *fleet) markJobDirtyLocked(id string) {
	for m := range f.waiting[id] {
		f.markDirtyLocked(m)
	}
	delete(f.waiting, id)
}

// Delays of the reconcile loop.
const (
	jobRetryDelay    = 2 * time.Second
	jobCacheIdle     = 10 * time.Minute
	reportTimeout    = 10 * time.Second
	reportBackoff    = 250 * time.Millisecond
	reportBackoffCap = 5 * time.Second
	// maxUpdatesPerReport and maxReportMessage keep reports well inside
	// what the server accepts.
	maxUpdatesPerReport = 1000
	maxReportMessage    = 1024
)

// taskExited records that an attempt ended. Runtimes call it from their own
// goroutines, never while the fleet calls into them.
func (f *fleet) taskExited(m *machine, ak attemptKey, r exitResult) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if l := m.retiring[ak]; l != nil {
		delete(m.retiring, ak)
		f.logTask(slog.LevelDebug, "stopped old attempt", "machine", m.id, "task", ak)
		f.markDirtyLocked(m)
		return
	}
	l := m.local[ak.taskKey]
	if l == nil || l.key != ak || l.phase != running {
		return
	}
	if l.stopping {
		r.state = cellv1.TaskState_TASK_STATE_KILLED
	}
	l.phase = exited
	l.result = r
	l.handle = nil
	f.logTask(slog.LevelInfo, "task ended", "machine", m.id, "task", ak, "state", shortState(r.state), "exit_code", r.exitCode, "message", r.message)
	f.markDirtyLocked(m)
}

// work is what one sync decided to do outside the lock.
type work struct {
	reports []reportBatch
	fetches []string
}

// reportBatch is one ReportTaskStates call.
type reportBatch struct {
	m       *machine
	updates []*cellv1.TaskStateUpdate
}

// sync reconciles the dirty machines; with all set, also the unsettled
// ones (retries, backoffs and timeouts; see fleet.unsettled) — every
// machine that a sync could change.
func (f *fleet) sync(now time.Time, all bool) work {
	f.mu.Lock()
	defer f.mu.Unlock()
	var w work
	if all {
		for m := range f.unsettled {
			if !f.dirty[m] {
				f.syncMachineLocked(m, now, &w)
			}
		}
		f.evictJobsLocked(now)
	}
	for m := range f.dirty {
		f.syncMachineLocked(m, now, &w)
	}
	clear(f.dirty)
	return w
}

func (f *fleet) syncMachineLocked(m *machine, now time.Time, w *work) {
	if !m.synced {
		return
	}
	var updates []*cellv1.TaskStateUpdate
	// settled stays true while the machine agrees with the server.
	settled := true
	var waiting []*localTask

	// Local attempts the server no longer holds here, or holds as a newer
	// attempt, are stopped; finished ones are forgotten.
	for key, l := range m.local {
		v := m.view[key]
		switch {
		case v != nil && v.GetAttempt() == l.key.attempt:
			if l.phase == waitingForJob {
				waiting = append(waiting, l)
				settled = false
				continue
			}
			if u := f.reportLocked(l, v, now); u != nil {
				updates = append(updates, u)
			}
			if v.GetState() != l.wanted() || l.readyDiffers(v) {
				settled = false
			}
		case v != nil && v.GetAttempt() < l.key.attempt:
			// The view lags behind what we started; wait for it.
			if l.phase == waitingForJob {
				waiting = append(waiting, l)
			}
			settled = false
		default:
			delete(m.local, key)
			if l.phase == running {
				m.retiring[l.key] = l
				f.stopLocked(m, l, "the server no longer places this attempt here")
			}
		}
	}

	// Tasks the server holds here without a local attempt are started.
	// Every local attempt left is one the view holds, so when there are as
	// many as the view holds there is nothing to start.
	for key, v := range m.view {
		if len(m.local) == len(m.view) {
			break
		}
		settled = false
		if m.local[key] != nil || m.retiringTask(key) {
			continue
		}
		ak := attemptKey{key, v.GetAttempt()}
		l := &localTask{key: ak, resources: v.GetResources()}
		m.local[key] = l
		if v.GetState() != cellv1.TaskState_TASK_STATE_RUNNING || f.rt.resumable(ak) {
			// To start, or to resume: an earlier agent on this machine
			// started it and left it running (or its exit recorded).
			waiting = append(waiting, l)
		} else {
			// Running on the server but not here, and nothing left of
			// it: an earlier agent's attempt that cannot be resumed (its
			// data directory is gone). Never start an attempt twice;
			// report it lost as a failure.
			l.phase = exited
			l.result = exitResult{state: cellv1.TaskState_TASK_STATE_FAILED, exitCode: -1,
				message: fmt.Sprintf("attempt %d was lost: the agent restarted while it ran", ak.attempt)}
			if u := f.reportLocked(l, v, now); u != nil {
				updates = append(updates, u)
			}
		}
	}

	// Attempts waiting for their job start once the template is known.
	for _, l := range waiting {
		key := l.key.taskKey
		tmpl, fetch := f.templateLocked(key.job, m.view[key].GetVersion(), now)
		if fetch {
			w.fetches = append(w.fetches, key.job)
		}
		if tmpl == nil {
			if f.waiting[key.job] == nil {
				f.waiting[key.job] = make(map[*machine]bool)
			}
			f.waiting[key.job][m] = true
			continue
		}
		f.startLocked(m, l, m.view[key], tmpl, now)
		if u := f.reportLocked(l, m.view[key], now); u != nil {
			updates = append(updates, u)
		}
	}
	if !m.leftoversChecked {
		// The first view: what an earlier agent left that the server no
		// longer holds here is stopped.
		m.leftoversChecked = true
		for _, k := range f.rt.leftovers() {
			if v := m.view[k.taskKey]; v == nil || v.GetAttempt() != k.attempt {
				f.rt.discard(k)
			}
		}
	}
	for len(updates) > 0 {
		n := min(len(updates), maxUpdatesPerReport)
		w.reports = append(w.reports, reportBatch{m: m, updates: updates[:n]})
		updates = updates[n:]
	}
	if settled {
		delete(f.unsettled, m)
	} else {
		f.unsettled[m] = true
	}
}

func (m *machine) retiringTask(key taskKey) bool {
	for ak := range m.retiring {
		if ak.taskKey == key {
			return true
		}
	}
	return false
}

// templateLocked returns the cached template of a job, and whether it must
// be fetched now.
// A template of another version than the one stamped on the task (issue
// 13) is fetched again.
func (f *fleet) templateLocked(job string, version uint64, now time.Time) (*cellv1.TaskTemplate, bool) {
	e := f.jobs[job]
	if e == nil {
		e = &jobEntry{}
		f.jobs[job] = e
	}
	e.lastUsed = now
	if e.template != nil && (version == 0 || e.version == version || e.refetchedFor == version) {
		return e.template, false
	}
	if e.fetching || now.Before(e.retryAt) {
		return nil, false
	}
	e.fetching, e.wanted = true, version
	return nil, true
}

// evictJobsLocked forgets templates no task here has used for a while.
func (f *fleet) evictJobsLocked(now time.Time) {
	for id, e := range f.jobs {
		if !e.fetching && now.Sub(e.lastUsed) > jobCacheIdle {
			delete(f.jobs, id)
		}
	}
}

func (f *fleet) startLocked(m *machine, l *localTask, v *cellv1.Task, tmpl *cellv1.TaskTemplate, now time.Time) {
	ak := l.key
	h, err := f.rt.start(taskSpec{machine: m.id, task: v, template: tmpl, ready: func(ok bool) { f.taskReady(m, ak, ok) }}, func(r exitResult) {
		f.taskExited(m, ak, r)
	})
	if err != nil {
		l.phase = exited
		l.result = exitResult{state: cellv1.TaskState_TASK_STATE_FAILED, exitCode: -1, message: err.Error()}
		f.counters.startFailures.Add(1)
		f.logTask(slog.LevelWarn, "task did not start", "machine", m.id, "task", ak, "err", err)
		return
	}
	f.counters.starts.Add(1)
	l.phase = running
	l.handle = h
	l.started = now
	if _, sim := h.(*simHandle); sim {
		l.readiness = readinessReady // a simulated task is ready once it "runs"
	}
	f.logTask(slog.LevelInfo, "task started", "machine", m.id, "task", ak, "command", tmpl.GetCommand())
}

func (f *fleet) stopLocked(m *machine, l *localTask, reason string) {
	if l.stopping || l.handle == nil {
		return
	}
	l.stopping = true
	f.counters.stops.Add(1)
	f.logTask(slog.LevelInfo, "stopping task", "machine", m.id, "task", l.key, "reason", reason)
	l.handle.stop()
}

// reportLocked returns the update that tells the server about attempt l,
// or nil when the server's view v already agrees or a report is pending.
func (f *fleet) reportLocked(l *localTask, v *cellv1.Task, now time.Time) *cellv1.TaskStateUpdate {
	want := l.wanted()
	r := &l.report
	if want == cellv1.TaskState_TASK_STATE_UNSPECIFIED || (v.GetState() == want && !l.readyDiffers(v)) || r.inflight {
		return nil
	}
	rdy := want == cellv1.TaskState_TASK_STATE_RUNNING && l.readiness == readinessReady
	if r.state == want && r.ready == rdy {
		switch {
		case r.appliedRev > v.GetModRevision():
			return nil // applied; the watch has not caught up yet
		case r.refused && v.GetModRevision() <= r.refusedAt:
			return nil // refused; nothing changed since
		case now.Before(r.retryAt):
			return nil
		}
	} else {
		*r = reportState{state: want, ready: rdy}
	}
	r.inflight = true
	r.refused = false
	u := &cellv1.TaskStateUpdate{
		Task:    &cellv1.TaskRef{JobId: l.key.job, Index: l.key.index},
		Attempt: l.key.attempt,
		State:   want,
		Ready:   rdy,
	}
	if l.phase == exited {
		u.ExitCode = l.result.exitCode
		u.Message = firstBytes(l.result.message, maxReportMessage)
	}
	return u
}

// reported records the server's answer to a report batch.
func (f *fleet) reported(b reportBatch, resp *cellv1.ReportTaskStatesResponse, err error, now time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	m := b.m
	for i, u := range b.updates {
		key := taskKey{job: u.GetTask().GetJobId(), index: u.GetTask().GetIndex()}
		l := m.local[key]
		if l == nil || l.key.attempt != u.GetAttempt() || l.report.state != u.GetState() || l.report.ready != u.GetReady() {
			continue
		}
		r := &l.report
		r.inflight = false
		switch {
		case err != nil || i >= len(resp.GetResults()):
			r.failures++
			f.counters.reportErrors.Add(1)
			r.retryAt = now.Add(min(reportBackoff<<min(r.failures, 8), reportBackoffCap))
			if r.failures == 1 {
				f.logTask(slog.LevelWarn, "cannot report task state; will retry", "machine", m.id, "task", l.key, "state", shortState(u.GetState()), "err", err)
			}
		case resp.GetResults()[i].GetApplied():
			r.appliedRev = resp.GetRevision()
			r.failures = 0
			f.counters.reportsApplied.Add(1)
		default:
			r.refused = true
			f.counters.reportsRefused.Add(1)
			r.refusedAt = m.view[key].GetModRevision()
			f.logTask(slog.LevelInfo, "server refused task state report", "machine", m.id, "task", l.key, "state", shortState(u.GetState()), "reason", resp.GetResults()[i].GetReason())
		}
	}
	f.markDirtyLocked(m)
}

// runningTask is an attempt that currently runs, for heartbeats and usage.
type runningTask struct {
	key       attemptKey
	resources *cellv1.Resources
	started   time.Time
	handle    runHandle
}

// machineRunning is one machine and what runs on it.
type machineRunning struct {
	id    string
	tasks []runningTask
}

// running lists, in registration order, every machine and its running
// attempts (old attempts being stopped included: they still use resources).
func (f *fleet) running() []machineRunning {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]machineRunning, len(f.order))
	for i, m := range f.order {
		out[i].id = m.id
		for _, l := range m.local {
			if l.phase == running {
				out[i].tasks = append(out[i].tasks, runningTask{key: l.key, resources: l.resources, started: l.started, handle: l.handle})
			}
		}
		for _, l := range m.retiring {
			out[i].tasks = append(out[i].tasks, runningTask{key: l.key, resources: l.resources, started: l.started, handle: l.handle})
		}
	}
	return out
}

// stopAll stops every running attempt (the agent is shutting down) and
// returns how many there were.
func (f *fleet) stopAll() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, m := range f.order {
		for _, l := range m.local {
			if l.phase == running {
				f.stopLocked(m, l, "the agent is shutting down")
				n++
			}
		}
	}
	return n
}

// runningCount is the number of attempts still running.
func (f *fleet) runningCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, m := range f.order {
		for _, l := range m.local {
			if l.phase == running {
				n++
			}
		}
		n += len(m.retiring)
	}
	return n
}

func shortState(s cellv1.TaskState) string {
	switch s {
	case cellv1.TaskState_TASK_STATE_RUNNING:
		return "running"
	case cellv1.TaskState_TASK_STATE_SUCCEEDED:
		return "succeeded"
	case cellv1.TaskState_TASK_STATE_FAILED:
		return "failed"
	case cellv1.TaskState_TASK_STATE_KILLED:
		return "killed"
	}
	return s.String()
}

// applyChanges merges one watch response and returns the fleet's machines
// the server reports down.
func (f *fleet) applyChanges(changes []*cellv1.Change, rev uint64, now time.Time) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var down []string
	for _, c := range changes {
		switch {
		case c.GetTask() != nil:
			f.applyTaskLocked(c.GetTask(), rev)
		case c.GetJob() != nil:
			f.putJobLocked(c.GetJob(), now)
		case c.GetMachine() != nil:
			m := c.GetMachine()
			if _, ours := f.machines[m.GetId()]; ours && m.GetState() == cellv1.MachineState_MACHINE_STATE_DOWN {
				down = append(down, m.GetId())
			}
		}
	}
	return down
}

// registrations lists the fleet's machines as registration requests. The
// machine set is fixed before the fleet runs, so it is read without the
// lock, like f.machines.
func (f *fleet) registrations() []*cellv1.RegisterMachineRequest {
	out := make([]*cellv1.RegisterMachineRequest, len(f.order))
	for i, m := range f.order {
		out[i] = m.reg
	}
	return out
}

// machineIDs lists the fleet's machine ids in registration order (the
// order of running). Fixed before the fleet runs; read without the lock.
func (f *fleet) machineIDs() []string { return f.ids }

// registration returns the registration request of machine id, or nil.
func (f *fleet) registration(id string) *cellv1.RegisterMachineRequest {
	if m := f.machines[id]; m != nil {
		return m.reg
	}
	return nil
}

// readyDiffers reports whether a running attempt's readiness is not what
// the server shows (issue 13).
func (l *localTask) readyDiffers(v *cellv1.Task) bool {
	return l.phase == running && l.readiness != readinessUnknown && v.GetState() == cellv1.TaskState_TASK_STATE_RUNNING &&
		(l.readiness == readinessReady) != v.GetReady()
}

// taskReady records what an attempt's readiness check says. Runtimes call
// it from their own goroutines, never while the fleet calls into them.
func (f *fleet) taskReady(m *machine, ak attemptKey, ok bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	l := m.local[ak.taskKey]
	if l == nil || l.key != ak || l.phase != running {
		return
	}
	want := readinessNotReady
	if ok {
		want = readinessReady
	}
	if l.readiness != want {
		l.readiness = want
		f.markDirtyLocked(m)
	}
}
