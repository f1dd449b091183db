package agent

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/omegacell/omegacell/agent/procstat"
	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
)

var discard = slog.New(slog.NewTextHandler(io.Discard, nil))

func newTestRuntime(t *testing.T, grace time.Duration) *processRuntime {
	return newRuntimeOn(t, t.TempDir(), grace)
}

// newRuntimeOn makes a runtime on a data directory (which adopts what an
// earlier runtime there left).
func newRuntimeOn(t *testing.T, data string, grace time.Duration) *processRuntime {
	t.Helper()
	r, err := newProcessRuntime(discard, data, grace, nil)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func shellSpec(index uint32, script string) taskSpec {
	return taskSpec{
		machine:  "m1",
		task:     &cellv1.Task{JobId: "job-1", Index: index, Attempt: 1},
		template: &cellv1.TaskTemplate{Command: "sh", Args: []string{"-c", script}},
	}
}

// started is a running attempt and the channel its end arrives on.
type started struct {
	h    *procHandle
	dir  string
	done chan exitResult
}

func startAttempt(t *testing.T, r *processRuntime, spec taskSpec) started {
	t.Helper()
	done := make(chan exitResult, 1)
	h, err := r.start(spec, func(res exitResult) { done <- res })
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	ph := h.(*procHandle)
	<-ph.ready
	t.Cleanup(func() {
		ph.stop()
		<-ph.done
	})
	return started{h: ph, dir: r.attemptDir(spec.key()), done: done}
}

func (s started) wait(t *testing.T) exitResult {
	t.Helper()
	select {
	case r := <-s.done:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("attempt did not end within 10s")
		return exitResult{}
	}
}

// waitForFile waits until the attempt's file holds want.
func waitForFile(t *testing.T, path, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		data, _ := os.ReadFile(path)
		if strings.Contains(string(data), want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s holds %q, want it to contain %q", path, data, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestProcessOutcomes(t *testing.T) {
	tests := []struct {
		name           string
		script         string
		state          cellv1.TaskState
		code           int32
		message        string
		stdout, stderr string
	}{
		{"success with output", "echo out; echo err >&2", succeeded, 0, "exited with code 0", "out\n", "err\n"},
		{"exit code", "echo partial; exit 3", failed, 3, "exited with code 3", "partial\n", ""},
		{"killed by a signal", "kill -9 $$", failed, 137, "killed by signal SIGKILL", "", ""},
		{"runs in its attempt directory", "pwd", succeeded, 0, "exited with code 0", "@dir\n", ""},
	}
	r := newTestRuntime(t, time.Second)
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := startAttempt(t, r, shellSpec(uint32(i), tt.script))
			res := s.wait(t)
			if res.state != tt.state || res.exitCode != tt.code || res.message != tt.message {
				t.Fatalf("result = %+v, want %s, code %d, %q", res, shortState(tt.state), tt.code, tt.message)
			}
			for file, want := range map[string]string{stdoutFile: tt.stdout, stderrFile: tt.stderr} {
				got, err := os.ReadFile(filepath.Join(s.dir, file))
				want = strings.ReplaceAll(want, "@dir", s.dir)
				if err != nil || string(got) != want {
					t.Fatalf("%s = %q (%v), want %q", file, got, err, want)
				}
			}
			if _, err := os.Stat(filepath.Join(s.dir, pidFile)); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("pid file still there after the end: %v", err)
			}
		})
	}
}

func TestProcessStartErrors(t *testing.T) {
	r := newTestRuntime(t, time.Second)
	spec := shellSpec(0, "true")
	spec.template.Command = "omegacell-no-such-command"
	// The shim reports it: the attempt ends as FAILED with its reason.
	s := startAttempt(t, r, spec)
	if res := s.wait(t); res.state != failed || !strings.Contains(res.message, "executable file not found") {
		t.Fatalf("start of a missing command: %+v, want FAILED, executable file not found", res)
	}
	// The attempt's directory now exists: the attempt never starts again.
	spec.template.Command = "true"
	if _, err := r.start(spec, func(exitResult) {}); !errors.Is(err, errAttemptStarted) {
		t.Fatalf("second start of one attempt: %v, want errAttemptStarted", err)
	}
	bad := shellSpec(0, "true")
	bad.task.JobId = "../escape"
	if _, err := r.start(bad, func(exitResult) {}); err == nil || !strings.Contains(err.Error(), "cannot name a directory") {
		t.Fatalf("start with job id ../escape: %v, want refusal", err)
	}
}

func TestProcessEnvironment(t *testing.T) {
	r := newTestRuntime(t, time.Second)
	spec := shellSpec(7, "env")
	spec.task.Attempt = 4
	spec.task.Devices = []*cellv1.DeviceShare{{Device: 0, Milli: 1000}, {Device: 2, Milli: 1000}}
	spec.template.Env = map[string]string{"GREETING": "hello", "OMEGACELL_MACHINE_ID": "overridden"}
	s := startAttempt(t, r, spec)
	if res := s.wait(t); res.state != succeeded {
		t.Fatalf("env task: %+v", res)
	}
	out, _ := os.ReadFile(filepath.Join(s.dir, stdoutFile))
	for _, want := range []string{
		"OMEGACELL_JOB_ID=job-1", "OMEGACELL_TASK_INDEX=7", "OMEGACELL_TASK_ATTEMPT=4",
		"OMEGACELL_MACHINE_ID=overridden", "GREETING=hello", "CUDA_VISIBLE_DEVICES=0,2", "HOME=" + s.dir,
	} {
		if !strings.Contains(string(out), want+"\n") {
			t.Errorf("environment lacks %s:\n%s", want, out)
		}
	}
}

func TestStopEscalatesFromSIGTERMToSIGKILL(t *testing.T) {
	const grace = 300 * time.Millisecond
	r := newTestRuntime(t, grace)
	s := startAttempt(t, r, shellSpec(0, `trap "" TERM; echo ready; while :; do sleep 0.05; done`))
	waitForFile(t, filepath.Join(s.dir, stdoutFile), "ready")
	began := time.Now()
	s.h.stop()
	res := s.wait(t)
	if took := time.Since(began); took < grace {
		t.Fatalf("ended after %v, before the %v grace period: SIGTERM was not ignored?", took, grace)
	}
	if res.state != killed || res.exitCode != 137 || !strings.Contains(res.message, "SIGKILL") {
		t.Fatalf("result = %+v, want KILLED by SIGKILL (137)", res)
	}
}

func TestStopEndsACooperativeTaskWithinGrace(t *testing.T) {
	r := newTestRuntime(t, time.Minute)
	s := startAttempt(t, r, shellSpec(0, `trap "echo bye; exit 0" TERM; echo ready; while :; do sleep 0.05; done`))
	waitForFile(t, filepath.Join(s.dir, stdoutFile), "ready")
	began := time.Now()
	s.h.stop()
	res := s.wait(t)
	if took := time.Since(began); took > 10*time.Second {
		t.Fatalf("a task that exits on SIGTERM took %v to end", took)
	}
	if res.state != killed || res.exitCode != 0 {
		t.Fatalf("result = %+v, want KILLED with its own exit code 0", res)
	}
	waitForFile(t, filepath.Join(s.dir, stdoutFile), "bye")
}

// The task's lifetime is its leader's: what it left in its process group
// is killed when it exits.
func TestProcessGroupDiesWithItsLeader(t *testing.T) {
	r := newTestRuntime(t, time.Second)
	s := startAttempt(t, r, shellSpec(0, `sleep 60 & echo $! > child.pid; exit 0`))
	if res := s.wait(t); res.state != succeeded {
		t.Fatalf("leader: %+v", res)
	}
	data, err := os.ReadFile(filepath.Join(s.dir, "child.pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(data)))
	waitDead(t, pid)
}

// waitDead waits until pid is gone or a zombie (reaping it is the job of
// whoever inherited it).
func waitDead(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return
		}
		if i := strings.LastIndexByte(string(data), ')'); i > 0 && len(data) > i+2 && data[i+2] == 'Z' {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("process %d still alive: %s", pid, data)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestExecHealthCheck(t *testing.T) {
	tests := []struct {
		name  string
		check *cellv1.HealthCheck
		want  string
	}{
		{
			name:  "failing command",
			check: &cellv1.HealthCheck{Exec: []string{"sh", "-c", "echo not ready; exit 1"}, IntervalMs: 30, FailureThreshold: 2},
			want:  `health check failed: 2 consecutive failures, last: exec "sh -c echo not ready; exit 1": exit status 1: not ready`,
		},
		{
			name:  "command that hangs",
			check: &cellv1.HealthCheck{Exec: []string{"sleep", "30"}, IntervalMs: 30, TimeoutMs: 100, FailureThreshold: 1},
			want:  `health check failed: 1 consecutive failures, last: exec "sleep 30" timed out after 100ms`,
		},
	}
	r := newTestRuntime(t, time.Second)
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := shellSpec(uint32(i), "sleep 60")
			spec.template.HealthCheck = tt.check
			res := startAttempt(t, r, spec).wait(t)
			if res.state != failed || res.message != tt.want {
				t.Fatalf("result = %+v, want FAILED with %q", res, tt.want)
			}
		})
	}
}

func TestExecHealthCheckRunsInTheAttemptDirectory(t *testing.T) {
	r := newTestRuntime(t, time.Second)
	spec := shellSpec(0, `touch alive; sleep 0.3; rm alive; sleep 60`)
	spec.template.HealthCheck = &cellv1.HealthCheck{Exec: []string{"test", "-f", "alive"}, IntervalMs: 50, FailureThreshold: 2}
	s := startAttempt(t, r, spec)
	began := time.Now()
	res := s.wait(t)
	if res.state != failed || !strings.Contains(res.message, `exec "test -f alive"`) {
		t.Fatalf("result = %+v, want FAILED by the probe once the file is gone", res)
	}
	if time.Since(began) < 300*time.Millisecond {
		t.Fatal("probe failed while the file existed")
	}
}

func TestHTTPHealthCheck(t *testing.T) {
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if calls.Add(1) > 3 {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	r := newTestRuntime(t, time.Second)
	spec := shellSpec(0, "sleep 60")
	spec.template.HealthCheck = &cellv1.HealthCheck{HttpGetUrl: srv.URL + "/healthz", IntervalMs: 30, FailureThreshold: 2}
	res := startAttempt(t, r, spec).wait(t)
	want := fmt.Sprintf("health check failed: 2 consecutive failures, last: GET %s/healthz: status 503", srv.URL)
	if res.state != failed || res.message != want {
		t.Fatalf("result = %+v, want FAILED with %q", res, want)
	}
	if n := calls.Load(); n != 5 {
		t.Fatalf("server saw %d probes, want 3 healthy then 2 failing", n)
	}
}

func TestHealthyTaskKeepsRunning(t *testing.T) {
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { calls.Add(1) }))
	defer srv.Close()
	r := newTestRuntime(t, time.Second)
	spec := shellSpec(0, "sleep 60")
	spec.template.HealthCheck = &cellv1.HealthCheck{HttpGetUrl: srv.URL, IntervalMs: 20, FailureThreshold: 1}
	s := startAttempt(t, r, spec)
	for calls.Load() < 5 {
		select {
		case res := <-s.done:
			t.Fatalf("healthy task ended: %+v", res)
		case <-time.After(10 * time.Millisecond):
		}
	}
	s.h.stop()
	if res := s.wait(t); res.state != killed {
		t.Fatalf("result = %+v, want KILLED by the stop, not a health failure", res)
	}
}

// A runtime started again on the same data directory resumes what the
// earlier one left running (same pid, logs continue), reports the recorded
// exit of what ended meanwhile, discards what it is told to, and kills
// processes of a pid file from before shims (never one whose start time
// says its pid was reused).
func TestRuntimeAdoptsAttemptsOfAnEarlierOne(t *testing.T) {
	data := t.TempDir()
	first := newRuntimeOn(t, data, time.Second)
	spec := func(index uint32, script string) taskSpec {
		s := shellSpec(index, script)
		return s
	}
	keep := spec(0, `i=0; while :; do echo line $i; i=$((i+1)); sleep 0.05; done`)
	ends := spec(1, `while [ ! -f release ]; do sleep 0.02; done; exit 7`)
	drop := spec(2, `sleep 60 & setsid sleep 61 & wait`)
	var handles []*procHandle
	for _, sp := range []taskSpec{keep, ends, drop} {
		h, err := first.start(sp, func(exitResult) { t.Errorf("the first runtime reported %v after detaching", sp.key()) })
		if err != nil {
			t.Fatal(err)
		}
		handles = append(handles, h.(*procHandle))
	}
	for _, h := range handles {
		<-h.ready
	}
	keepPID, _ := handles[0].pids()
	_, dropShim := handles[2].pids()
	waitForFile(t, filepath.Join(first.attemptDir(keep.key()), stdoutFile), "line 2")
	if n := first.detachAll(); n != 3 {
		t.Fatalf("detachAll = %d, want 3", n)
	}
	// The task ends while no agent watches it.
	if err := os.WriteFile(filepath.Join(first.attemptDir(ends.key()), "release"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	waitForFile(t, filepath.Join(first.attemptDir(ends.key()), exitFile), "exit 7")

	// Legacy pid files: one names a live process group, one a reused pid.
	legacy := exec.Command("sleep", "60")
	legacy.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	innocent := exec.Command("sleep", "60")
	innocent.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	for _, c := range []*exec.Cmd{legacy, innocent} {
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Process.Kill(); _ = c.Wait() })
	}
	p, err := procstat.ReadProcess("/proc", legacy.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string]string{
		"3.1": fmt.Sprintf("%d %d\n", legacy.Process.Pid, p.StartTicks),
		"4.1": fmt.Sprintf("%d 1\n", innocent.Process.Pid),
	} {
		dir := filepath.Join(data, "tasks", "job-1", name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, pidFile), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	second := newRuntimeOn(t, data, time.Second)
	if err := legacy.Wait(); err == nil {
		t.Fatal("the legacy process group was not killed")
	}
	if err := innocent.Process.Signal(syscall.Signal(0)); err != nil {
		t.Fatalf("process with a different start time was killed: %v", err)
	}
	for _, sp := range []taskSpec{keep, ends, drop} {
		if !second.resumable(sp.key()) {
			t.Fatalf("%v is not resumable", sp.key())
		}
	}
	if got := fmt.Sprint(second.leftovers()); got != fmt.Sprint([]attemptKey{keep.key(), ends.key(), drop.key()}) {
		t.Fatalf("leftovers = %s", got)
	}
	second.discard(drop.key())
	waitDead(t, dropShim)

	kept := startAttempt(t, second, keep)
	if pid, _ := kept.h.pids(); !kept.h.adopted || pid != keepPID {
		t.Fatalf("resumed handle = %+v, want adopted with task pid %d", kept.h, keepPID)
	}
	size := func() int64 {
		fi, _ := os.Stat(filepath.Join(kept.dir, stdoutFile))
		return fi.Size()
	}
	before := size()
	deadline := time.Now().Add(10 * time.Second)
	for size() == before {
		if time.Now().After(deadline) {
			t.Fatal("the resumed task's log did not grow")
		}
		time.Sleep(20 * time.Millisecond)
	}
	ended := startAttempt(t, second, ends)
	if res := ended.wait(t); res.state != failed || res.exitCode != 7 {
		t.Fatalf("attempt that ended while no agent watched = %+v, want FAILED with exit code 7", res)
	}
	kept.h.stop()
	if res := kept.wait(t); res.state != killed {
		t.Fatalf("resumed attempt after stop = %+v, want KILLED", res)
	}
	waitDead(t, keepPID)
	if len(second.leftovers()) != 0 {
		t.Fatalf("leftovers after resuming = %v", second.leftovers())
	}
}

func TestProcUsageSamplesARealTask(t *testing.T) {
	r := newTestRuntime(t, time.Second)
	s := startAttempt(t, r, shellSpec(0, "while :; do :; done"))
	u := newProcUsage(discard, "/proc")
	running := []machineRunning{{id: "m1", tasks: []runningTask{{key: s.h.key, started: time.Now(), handle: s.h}}}}
	u.sample(time.Now(), running)
	// Wait until the spinning shell has used 100 ms of CPU: the shared test
	// machine may give it little of a core.
	deadline := time.Now().Add(10 * time.Second)
	for {
		pid, _ := s.h.pids()
		p, err := procstat.ReadProcess("/proc", pid)
		if err != nil {
			t.Fatal(err)
		}
		if p.CPUTicks >= 10 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("spinning task used %d ticks in 10s", p.CPUTicks)
		}
		time.Sleep(50 * time.Millisecond)
	}
	out := u.sample(time.Now(), running)
	maxMilli := int64(runtime.NumCPU())*1000 + 100
	m := out[0].machine
	if m == nil || m.GetMemoryBytes() <= 0 || m.GetCpuMilli() <= 0 || m.GetCpuMilli() > maxMilli || m.GetSampleTimeUnixNano() == 0 {
		t.Fatalf("machine usage = %v, want memory in use and busy CPU in (0, %d]", m, maxMilli)
	}
	if len(out[0].tasks) != 1 {
		t.Fatalf("task usage = %v, want one sample", out[0].tasks)
	}
	tu := out[0].tasks[0]
	if tu.GetTask().GetJobId() != "job-1" || tu.GetAttempt() != 1 || tu.GetUsage().GetMemoryBytes() <= 0 ||
		tu.GetUsage().GetCpuMilli() <= 0 || tu.GetUsage().GetCpuMilli() > 1100 {
		t.Fatalf("task usage = %v, want the spinning shell's RSS and CPU in (0, 1100] millicores", tu)
	}
}
