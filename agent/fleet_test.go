package agent

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
)

// fakeRunner records what the fleet starts and stops; tests end attempts
// by hand.
type fakeRunner struct {
	mu       sync.Mutex
	started  []attemptKey
	handles  map[attemptKey]*fakeHandle
	startErr error
	// left are attempts "an earlier agent" left; discarded those the
	// fleet discarded.
	left      map[attemptKey]bool
	discarded []attemptKey
}

func (r *fakeRunner) resumable(k attemptKey) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.left[k]
}

func (r *fakeRunner) leftovers() []attemptKey {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []attemptKey
	for k := range r.left {
		out = append(out, k)
	}
	return out
}

func (r *fakeRunner) discard(k attemptKey) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.left, k)
	r.discarded = append(r.discarded, k)
}

type fakeHandle struct {
	mu      sync.Mutex
	stopped bool
	exited  func(exitResult)
}

func (h *fakeHandle) stop() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.stopped = true
}

func (h *fakeHandle) isStopped() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.stopped
}

func (r *fakeRunner) start(spec taskSpec, exited func(exitResult)) (runHandle, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.startErr != nil {
		return nil, r.startErr
	}
	h := &fakeHandle{exited: exited}
	delete(r.left, spec.key())
	if r.handles == nil {
		r.handles = make(map[attemptKey]*fakeHandle)
	}
	r.handles[spec.key()] = h
	r.started = append(r.started, spec.key())
	return h, nil
}

func (r *fakeRunner) handle(t *testing.T, k attemptKey) *fakeHandle {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	h := r.handles[k]
	if h == nil {
		t.Fatalf("attempt %s was never started", k)
	}
	return h
}

// harness is a fleet of machines m1 and m2 whose views came from the
// server with nothing on them, and which knows the template of job j.
type harness struct {
	t   *testing.T
	f   *fleet
	r   *fakeRunner
	m1  *machine
	now time.Time
}

func newHarness(t *testing.T) *harness {
	r := &fakeRunner{}
	f := newFleet(slog.New(slog.NewTextHandler(io.Discard, nil)), r)
	f.add(&cellv1.RegisterMachineRequest{Id: "m1"})
	f.add(&cellv1.RegisterMachineRequest{Id: "m2"})
	now := time.Unix(1000, 0)
	f.replaceAll(nil, []*cellv1.Job{{Id: "j", Spec: &cellv1.JobSpec{Task: &cellv1.TaskTemplate{Command: "true"}}}}, 1, now)
	return &harness{t: t, f: f, r: r, m1: f.machines["m1"], now: now}
}

func task(index, attempt uint32, state cellv1.TaskState, machine string, rev uint64) *cellv1.Task {
	return &cellv1.Task{JobId: "j", Index: index, Attempt: attempt, State: state, MachineId: machine, ModRevision: rev}
}

const (
	assigned  = cellv1.TaskState_TASK_STATE_ASSIGNED
	runningS  = cellv1.TaskState_TASK_STATE_RUNNING
	succeeded = cellv1.TaskState_TASK_STATE_SUCCEEDED
	failed    = cellv1.TaskState_TASK_STATE_FAILED
	killed    = cellv1.TaskState_TASK_STATE_KILLED
	pending   = cellv1.TaskState_TASK_STATE_PENDING
)

func ak(index, attempt uint32) attemptKey { return attemptKey{taskKey{"j", index}, attempt} }

// sync runs one reconcile pass over every machine.
func (h *harness) sync() work { return h.f.sync(h.now, true) }

// reportsOf flattens the updates of a sync as "index.attempt:STATE".
func reportsOf(w work) []string {
	var out []string
	for _, b := range w.reports {
		for _, u := range b.updates {
			k := attemptKey{taskKey{u.GetTask().GetJobId(), u.GetTask().GetIndex()}, u.GetAttempt()}
			out = append(out, k.String()+":"+shortState(u.GetState()))
		}
	}
	return out
}

func (h *harness) expectReports(w work, want ...string) {
	h.t.Helper()
	got := reportsOf(w)
	if strings.Join(got, " ") != strings.Join(want, " ") {
		h.t.Fatalf("reports = %v, want %v", got, want)
	}
}

// answer applies the server's answer to every report of w.
func (h *harness) answer(w work, rev uint64, err error, refuse bool) {
	for _, b := range w.reports {
		resp := &cellv1.ReportTaskStatesResponse{Revision: rev}
		for range b.updates {
			resp.Results = append(resp.Results, &cellv1.UpdateResult{Applied: !refuse, Reason: map[bool]string{true: "stale attempt"}[refuse]})
		}
		h.f.reported(b, resp, err, h.now)
	}
}

func TestLifecycleStartsReportsAndForgets(t *testing.T) {
	h := newHarness(t)
	h.f.applyTask(task(0, 1, assigned, "m1", 10), 10)
	w := h.sync()
	h.expectReports(w, "j/0.1:running")
	if len(h.r.started) != 1 || h.r.started[0] != ak(0, 1) {
		t.Fatalf("started %v, want j/0.1", h.r.started)
	}
	h.answer(w, 11, nil, false)
	h.expectReports(h.sync()) // applied; the watch has not caught up yet
	h.f.applyTask(task(0, 1, runningS, "m1", 11), 11)
	h.expectReports(h.sync())

	h.r.handle(t, ak(0, 1)).exited(exitResult{state: succeeded, message: "exited with code 0"})
	w = h.sync()
	h.expectReports(w, "j/0.1:succeeded")
	h.answer(w, 12, nil, false)
	h.f.applyTask(task(0, 1, succeeded, "m1", 12), 12)
	h.expectReports(h.sync())
	if n := len(h.m1.local); n != 0 {
		t.Fatalf("%d local attempts left after the server recorded the end, want 0", n)
	}
}

func TestExitCodeAndMessageAreReported(t *testing.T) {
	h := newHarness(t)
	h.f.applyTask(task(0, 1, runningS, "m1", 10), 10)
	h.m1.local[taskKey{"j", 0}] = &localTask{key: ak(0, 1), phase: exited,
		result: exitResult{state: failed, exitCode: 3, message: "exited with code 3"}}
	w := h.sync()
	u := w.reports[0].updates[0]
	if u.GetState() != failed || u.GetExitCode() != 3 || u.GetMessage() != "exited with code 3" {
		t.Fatalf("update = %v, want FAILED, exit code 3 and its message", u)
	}
}

func TestTaskThatLeftIsStoppedWithoutReport(t *testing.T) {
	for _, tt := range []struct {
		name string
		left *cellv1.Task
	}{
		{"back to pending", task(0, 1, pending, "", 20)},
		{"killed by a stop", task(0, 1, killed, "m1", 20)},
		{"lost and placed on another agent's machine", task(0, 2, assigned, "elsewhere", 20)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			h.f.applyTask(task(0, 1, assigned, "m1", 10), 10)
			h.sync()
			hd := h.r.handle(t, ak(0, 1))

			h.f.applyTask(tt.left, 20)
			h.expectReports(h.sync())
			if !hd.isStopped() {
				t.Fatal("attempt that left the machine was not stopped")
			}
			if h.f.runningCount() != 1 {
				t.Fatalf("running = %d while stopping, want 1", h.f.runningCount())
			}
			hd.exited(exitResult{state: killed})
			h.expectReports(h.sync())
			if h.f.runningCount() != 0 {
				t.Fatalf("running = %d after the stop, want 0", h.f.runningCount())
			}
		})
	}
}

func TestNewerAttemptStartsAfterOldOneStopped(t *testing.T) {
	h := newHarness(t)
	h.f.applyTask(task(0, 1, assigned, "m1", 10), 10)
	h.sync()
	old := h.r.handle(t, ak(0, 1))
	h.f.applyTask(task(0, 2, assigned, "m1", 15), 15)
	w := h.sync()
	if !old.isStopped() {
		t.Fatal("old attempt not stopped")
	}
	if len(h.r.started) != 1 {
		t.Fatalf("started %v while the old attempt still runs, want only j/0.1", h.r.started)
	}
	h.expectReports(w)
	old.exited(exitResult{state: killed})
	h.expectReports(h.sync(), "j/0.2:running")
	if len(h.r.started) != 2 || h.r.started[1] != ak(0, 2) {
		t.Fatalf("started %v, want j/0.1 then j/0.2", h.r.started)
	}
}

func TestRunningWithoutProcessIsReportedLost(t *testing.T) {
	h := newHarness(t)
	h.f.replaceView(h.m1, []*cellv1.Task{task(4, 3, runningS, "m1", 30)}, 30)
	w := h.sync()
	h.expectReports(w, "j/4.3:failed")
	if len(h.r.started) != 0 {
		t.Fatalf("started %v; an attempt that ran before must not start again", h.r.started)
	}
	if msg := w.reports[0].updates[0].GetMessage(); !strings.Contains(msg, "lost") {
		t.Fatalf("message %q does not say the attempt was lost", msg)
	}
}

func TestStartFailuresAreReportedFailed(t *testing.T) {
	for _, err := range []error{errAttemptStarted, errors.New(`start "nope": executable file not found`)} {
		h := newHarness(t)
		h.r.startErr = err
		h.f.applyTask(task(0, 1, assigned, "m1", 10), 10)
		w := h.sync()
		h.expectReports(w, "j/0.1:failed")
		if u := w.reports[0].updates[0]; u.GetMessage() != err.Error() || u.GetExitCode() != -1 {
			t.Fatalf("update = %v, want exit code -1 and message %q", u, err)
		}
	}
}

func TestRefusedReportWaitsForTheViewToMove(t *testing.T) {
	h := newHarness(t)
	h.f.applyTask(task(0, 1, assigned, "m1", 10), 10)
	w := h.sync()
	h.answer(w, 0, nil, true)
	h.now = h.now.Add(time.Minute)
	h.expectReports(h.sync())
	h.f.applyTask(task(0, 1, assigned, "m1", 12), 12)
	h.expectReports(h.sync(), "j/0.1:running")
}

func TestFailedReportIsRetriedWithBackoff(t *testing.T) {
	h := newHarness(t)
	h.f.applyTask(task(0, 1, assigned, "m1", 10), 10)
	w := h.sync()
	h.answer(w, 0, errors.New("unavailable"), false)
	h.expectReports(h.sync()) // in backoff
	h.now = h.now.Add(reportBackoffCap)
	h.expectReports(h.sync(), "j/0.1:running")
}

func TestAppliedReportIsResentWhenTheServerForgotIt(t *testing.T) {
	h := newHarness(t)
	h.f.applyTask(task(0, 1, assigned, "m1", 10), 10)
	w := h.sync()
	h.answer(w, 11, nil, false)
	// The server's view moved past the applied revision yet still says
	// assigned: it lost the update, so it is sent again.
	h.f.replaceView(h.m1, []*cellv1.Task{task(0, 1, assigned, "m1", 13)}, 13)
	h.expectReports(h.sync(), "j/0.1:running")
}

func TestOlderChangeIsIgnored(t *testing.T) {
	h := newHarness(t)
	h.f.applyTask(task(0, 1, runningS, "m1", 20), 20)
	h.f.applyTask(task(0, 1, assigned, "m1", 15), 15)
	h.f.applyTask(task(0, 1, pending, "", 18), 18)
	if v := h.m1.view[taskKey{"j", 0}]; v.GetState() != runningS || v.GetModRevision() != 20 {
		t.Fatalf("view = %v, want the newest change (running at 20)", v)
	}
}

func TestReplayAtOrBelowFloorIsHistory(t *testing.T) {
	h := newHarness(t)
	h.f.replaceView(h.m1, nil, 50)
	h.f.applyTask(task(0, 1, assigned, "m1", 40), 40)
	h.f.applyTask(task(1, 1, assigned, "m1", 50), 50)
	if len(h.m1.view) != 0 {
		t.Fatalf("view = %v; changes at or below the floor must not add tasks", h.m1.view)
	}
	h.f.applyTask(task(2, 1, assigned, "m1", 51), 51)
	if len(h.m1.view) != 1 {
		t.Fatalf("view has %d tasks, want the change above the floor", len(h.m1.view))
	}
}

func TestUnfilteredChangesMoveTasksBetweenMachines(t *testing.T) {
	h := newHarness(t)
	h.f.applyTask(task(0, 1, assigned, "m1", 10), 10)
	h.f.applyTask(task(0, 2, assigned, "m2", 12), 12)
	if _, ok := h.m1.view[taskKey{"j", 0}]; ok {
		t.Fatal("task still in m1's view after it was placed on m2")
	}
	if v := h.f.machines["m2"].view[taskKey{"j", 0}]; v.GetAttempt() != 2 {
		t.Fatalf("m2 view = %v, want attempt 2", v)
	}
	if h.f.home[taskKey{"j", 0}].id != "m2" {
		t.Fatal("home index not moved to m2")
	}
	// A change for a machine of another agent is none of the fleet's.
	h.f.applyTask(task(0, 3, assigned, "elsewhere", 14), 14)
	if len(h.f.home) != 0 {
		t.Fatalf("home = %v, want empty once the task is on a foreign machine", h.f.home)
	}
}

func TestAttemptWaitsForItsJobTemplate(t *testing.T) {
	h := newHarness(t)
	h.f.applyTask(&cellv1.Task{JobId: "k", Index: 0, Attempt: 1, State: assigned, MachineId: "m1", ModRevision: 10}, 10)
	w := h.sync()
	if len(w.fetches) != 1 || w.fetches[0] != "k" || len(h.r.started) != 0 {
		t.Fatalf("fetches %v, started %v; want one fetch of k and no start", w.fetches, h.r.started)
	}
	if w := h.sync(); len(w.fetches) != 0 {
		t.Fatalf("fetched %v again while a read is in flight", w.fetches)
	}
	h.f.jobFetched("k", nil, errors.New("unavailable"), h.now)
	h.now = h.now.Add(jobRetryDelay)
	if w := h.sync(); len(w.fetches) != 1 {
		t.Fatalf("fetches %v after a failed read and its delay, want a retry", w.fetches)
	}
	h.f.jobFetched("k", &cellv1.TaskTemplate{Command: "true"}, nil, h.now)
	if !h.f.dirty[h.m1] {
		t.Fatal("template arrival did not wake the waiting machine")
	}
	h.expectReports(h.f.sync(h.now, false), "k/0.1:running")
}

func TestNothingHappensBeforeTheFirstView(t *testing.T) {
	r := &fakeRunner{}
	f := newFleet(slog.New(slog.NewTextHandler(io.Discard, nil)), r)
	f.add(&cellv1.RegisterMachineRequest{Id: "m1"})
	f.machines["m1"].view[taskKey{"j", 0}] = task(0, 1, runningS, "m1", 5)
	if w := f.sync(time.Now(), true); len(w.reports) != 0 || len(r.started) != 0 {
		t.Fatalf("unsynced machine acted: %v, started %v", reportsOf(w), r.started)
	}
}

func TestOnlyUnsettledMachinesAreSweptAgain(t *testing.T) {
	h := newHarness(t)
	h.f.applyTask(task(0, 1, assigned, "m1", 10), 10)
	w := h.sync()
	if !h.f.unsettled[h.m1] || h.f.unsettled[h.f.machines["m2"]] {
		t.Fatalf("unsettled = %v after a start whose report is in flight, want m1 only", h.f.unsettled)
	}
	h.answer(w, 11, nil, false)
	h.f.applyTask(task(0, 1, runningS, "m1", 11), 11)
	h.expectReports(h.sync())
	if len(h.f.unsettled) != 0 {
		t.Fatalf("unsettled = %v once the server shows what runs, want none", h.f.unsettled)
	}
	// A settled machine, left out of the sweep, is still woken by an exit.
	h.r.handle(t, ak(0, 1)).exited(exitResult{state: succeeded})
	h.expectReports(h.sync(), "j/0.1:succeeded")
}

// BenchmarkSyncSecond10k is the once-a-second reconciliation of 10,000
// simulated machines running 20 tasks each that the server already shows
// as running: the fleet's steady state.
func BenchmarkSyncSecond10k(b *testing.B) {
	const machines, perMachine = 10_000, 20
	f := simFleet(b, SimulatedMachines("sim", machines, DefaultProfile()))
	now := time.Now()
	for _, state := range []cellv1.TaskState{assigned, runningS} {
		rev := uint64(10)
		if state == runningS {
			rev = 10 + machines*perMachine
		}
		for i := range machines * perMachine {
			f.applyTask(&cellv1.Task{JobId: "j", Index: uint32(i), Attempt: 1, State: state,
				MachineId: fmt.Sprintf("sim-%04d", i%machines), ModRevision: rev + uint64(i),
				Resources: &cellv1.Resources{CpuMilli: 100, MemoryBytes: 1 << 20}}, rev+uint64(i))
		}
		w := f.sync(now, true)
		for _, r := range w.reports {
			resp := &cellv1.ReportTaskStatesResponse{Revision: rev}
			for range r.updates {
				resp.Results = append(resp.Results, &cellv1.UpdateResult{Applied: true})
			}
			f.reported(r, resp, nil, now)
		}
	}
	f.sync(now, true)
	if n := f.runningCount(); n != machines*perMachine {
		b.Fatalf("%d attempts run, want %d", n, machines*perMachine)
	}
	b.ResetTimer()
	for range b.N {
		if w := f.sync(now, true); len(w.reports) != 0 || len(w.fetches) != 0 {
			b.Fatalf("a steady fleet sent %d reports and %d job reads", len(w.reports), len(w.fetches))
		}
	}
}
