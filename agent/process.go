package agent

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/omegacell/omegacell/agent/procstat"
	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
)

// processRuntime runs each attempt as a real child process: the leader of
// its own process group, in its own working directory
// <data>/tasks/<job>/<index>.<attempt>/ with stdout and stderr captured to
// files there, and, when cgroup v2 is usable, in its own cgroup with
// cpu.max and memory.max set from the task's resources.
//
// The attempt directory doubles as a durable fence: it is created with
// mkdir, which fails if it exists, so an attempt that any agent on this
// machine ever started is never started again.
type processRuntime struct {
	log      *slog.Logger
	tasksDir string
	grace    time.Duration
	// cgroups is nil when limits are not enforced.
	cgroups *cgroupTree
	path    string // PATH given to tasks
	// dirMu orders creating attempt directories (up to the pid file)
	// against the garbage collector's removals.
	dirMu sync.Mutex
}

// Files in an attempt directory.
const (
	stdoutFile = "stdout"
	stderrFile = "stderr"
	// pidFile holds "<pid> <start ticks>" while the attempt runs, so a
	// restarted agent can find and kill what an earlier one left behind.
	pidFile = ".omegacell-pid"
)

func newProcessRuntime(log *slog.Logger, dataDir string, grace time.Duration, cgroups *cgroupTree) *processRuntime {
	path := os.Getenv("PATH")
	if path == "" {
		path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	}
	return &processRuntime{log: log, tasksDir: filepath.Join(dataDir, "tasks"), grace: grace, cgroups: cgroups, path: path}
}

// attemptDir is where attempt k runs and logs.
func (r *processRuntime) attemptDir(k attemptKey) string {
	return filepath.Join(r.tasksDir, k.job, fmt.Sprintf("%d.%d", k.index, k.attempt))
}

// checkJobID refuses job ids that would escape the tasks directory. The
// store issues UUIDs; anything with a separator or dot-dot is not one.
func checkJobID(id string) error {
	if id == "" || id == "." || id == ".." || strings.ContainsAny(id, `/\`) || strings.ContainsRune(id, 0) {
		return fmt.Errorf("job id %q cannot name a directory", id)
	}
	return nil
}

func (r *processRuntime) start(spec taskSpec, exited func(exitResult)) (runHandle, error) {
	key := spec.key()
	tmpl := spec.template
	if err := checkJobID(key.job); err != nil {
		return nil, err
	}
	if tmpl.GetCommand() == "" {
		return nil, errors.New("the job's task template has no command")
	}
	dir := r.attemptDir(key)
	r.dirMu.Lock()
	defer r.dirMu.Unlock()
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return nil, fmt.Errorf("create task directory: %w", err)
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil, errAttemptStarted
		}
		return nil, fmt.Errorf("create attempt directory: %w", err)
	}
	stdout, err := os.OpenFile(filepath.Join(dir, stdoutFile), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("create stdout file: %w", err)
	}
	defer stdout.Close()
	stderr, err := os.OpenFile(filepath.Join(dir, stderrFile), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("create stderr file: %w", err)
	}
	defer stderr.Close()

	env := r.env(spec, dir)
	cmd := exec.Command(tmpl.GetCommand(), tmpl.GetArgs()...)
	cmd.Dir = dir
	cmd.Env = env
	cmd.Stdout = stdout // the child writes to the files directly
	cmd.Stderr = stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}

	var cg *taskCgroup
	if r.cgroups != nil {
		cg, err = r.cgroups.create(key, spec.task.GetResources())
		if err != nil {
			return nil, fmt.Errorf("resource limits: %w", err)
		}
		cmd.SysProcAttr.UseCgroupFD = true
		cmd.SysProcAttr.CgroupFD = cg.fd
	}
	if err := cmd.Start(); err != nil {
		if cg != nil {
			cg.remove()
		}
		return nil, fmt.Errorf("start %q: %w", tmpl.GetCommand(), err)
	}
	if cg != nil {
		cg.closeFD()
	}
	h := &procHandle{
		log:    r.log.With("task", key),
		key:    key,
		cmd:    cmd,
		pid:    cmd.Process.Pid,
		dir:    dir,
		cgroup: cg,
		grace:  r.grace,
		done:   make(chan struct{}),
	}
	if p, err := procstat.ReadProcess("/proc", h.pid); err == nil {
		h.startTicks = p.StartTicks
		_ = os.WriteFile(filepath.Join(dir, pidFile), fmt.Appendf(nil, "%d %d\n", h.pid, p.StartTicks), 0o644)
	}
	if p := newProber(tmpl.GetHealthCheck(), dir, env); p != nil {
		go p.run(h.done, h.unhealthy)
	}
	if p := newProber(tmpl.GetReadinessCheck(), dir, env); p != nil && spec.ready != nil {
		go p.runReadiness(h.done, spec.ready)
	}
	go h.wait(exited)
	return h, nil
}

// env is the environment of an attempt: PATH and HOME, the OMEGACELL_*
// identity of the attempt, CUDA_VISIBLE_DEVICES for the GPUs it holds, then
// the template's env, which wins.
func (r *processRuntime) env(spec taskSpec, dir string) []string {
	t := spec.task
	vars := map[string]string{
		"PATH":                   r.path,
		"HOME":                   dir,
		"OMEGACELL_JOB_ID":       t.GetJobId(),
		"OMEGACELL_TASK_INDEX":   strconv.FormatUint(uint64(t.GetIndex()), 10),
		"OMEGACELL_TASK_ATTEMPT": strconv.FormatUint(uint64(t.GetAttempt()), 10),
		"OMEGACELL_MACHINE_ID":   spec.machine,
	}
	if len(t.GetDevices()) > 0 {
		ids := make([]string, len(t.GetDevices()))
		for i, d := range t.GetDevices() {
			ids[i] = strconv.FormatUint(uint64(d.GetDevice()), 10)
		}
		vars["CUDA_VISIBLE_DEVICES"] = strings.Join(ids, ",")
	}
	for k, v := range spec.template.GetEnv() {
		vars[k] = v
	}
	env := make([]string, 0, len(vars))
	for k, v := range vars {
		env = append(env, k+"="+v)
	}
	sort.Strings(env)
	return env
}

// procHandle is one running attempt.
type procHandle struct {
	log        *slog.Logger
	key        attemptKey
	cmd        *exec.Cmd
	pid        int // also the process group id
	startTicks uint64
	dir        string
	cgroup     *taskCgroup
	grace      time.Duration
	done       chan struct{} // closed when the attempt has ended

	mu sync.Mutex
	// leaderExited: the leader is a zombie or reaped; its group must not
	// be signalled any more (the id could be reused once reaped).
	leaderExited  bool
	stopRequested bool
	healthFailure string
}

// stop sends SIGTERM to the process group, then SIGKILL after the grace
// period if the leader is still alive.
func (h *procHandle) stop() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.stopRequested || h.leaderExited {
		return
	}
	h.stopRequested = true
	h.signalLocked(syscall.SIGTERM)
	time.AfterFunc(h.grace, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		if !h.leaderExited {
			h.log.Info("task ignored SIGTERM for the grace period; sending SIGKILL", "grace", h.grace)
			h.signalLocked(syscall.SIGKILL)
		}
	})
}

func (h *procHandle) signalLocked(sig syscall.Signal) {
	if err := syscall.Kill(-h.pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		h.log.Warn("cannot signal task process group", "signal", sig, "err", err)
	}
}

// unhealthy is called by the prober: the attempt fails with reason.
func (h *procHandle) unhealthy(reason string) {
	h.mu.Lock()
	if h.healthFailure == "" && !h.leaderExited {
		h.healthFailure = reason
	}
	h.mu.Unlock()
	h.log.Info("task failed its health check; stopping it", "reason", reason)
	h.stop()
}

// wait waits for the leader to exit, kills whatever is left of its process
// group (a task's lifetime is its leader's), reaps it and reports.
func (h *procHandle) wait(exited func(exitResult)) {
	// Observe the exit without reaping: while the leader is a zombie its
	// pid, which is the group id, cannot be reused, so killing the group
	// cannot hit an unrelated process.
	var info unix.Siginfo
	for {
		err := unix.Waitid(unix.P_PID, h.pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	h.mu.Lock()
	h.signalLocked(syscall.SIGKILL)
	h.leaderExited = true
	h.mu.Unlock()
	if h.cgroup != nil {
		h.cgroup.kill()
	}
	_ = h.cmd.Wait()
	close(h.done)
	_ = os.Remove(filepath.Join(h.dir, pidFile))
	oom := false
	if h.cgroup != nil {
		oom = h.cgroup.oomKilled()
		h.cgroup.remove()
	}
	exited(h.result(oom))
}

// result turns how the leader ended into the state to report.
func (h *procHandle) result(oom bool) exitResult {
	h.mu.Lock()
	health, stopped := h.healthFailure, h.stopRequested
	h.mu.Unlock()
	code, how := describeExit(h.cmd.ProcessState)
	switch {
	case health != "":
		return exitResult{state: cellv1.TaskState_TASK_STATE_FAILED, exitCode: code, message: "health check failed: " + health}
	case stopped:
		return exitResult{state: cellv1.TaskState_TASK_STATE_KILLED, exitCode: code, message: "stopped by the agent (" + how + ")"}
	case oom:
		return exitResult{state: cellv1.TaskState_TASK_STATE_FAILED, exitCode: code, message: "out of memory: killed at its memory limit (" + how + ")"}
	case code == 0:
		return exitResult{state: cellv1.TaskState_TASK_STATE_SUCCEEDED, message: how}
	}
	return exitResult{state: cellv1.TaskState_TASK_STATE_FAILED, exitCode: code, message: how}
}

// describeExit returns the exit code (128+signal for a signal death, as
// shells do) and a phrase saying how the process ended.
func describeExit(st *os.ProcessState) (int32, string) {
	if st == nil {
		return -1, "exit status unknown"
	}
	if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return int32(128 + ws.Signal()), "killed by signal " + unix.SignalName(ws.Signal())
	}
	return int32(st.ExitCode()), fmt.Sprintf("exited with code %d", st.ExitCode())
}

// killLeftovers kills the process groups that an earlier agent on this
// data directory started and left running (it died or was SIGKILLed).
// Their attempts are reported lost by the reconcile loop, so they must not
// keep running. A pid file whose process is gone or was replaced (start
// time differs) is just removed.
func killLeftovers(log *slog.Logger, dataDir, procRoot string) {
	files, _ := filepath.Glob(filepath.Join(dataDir, "tasks", "*", "*", pidFile))
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			continue
		}
		var pid int
		var startTicks uint64
		if _, err := fmt.Sscan(string(data), &pid, &startTicks); err == nil && pid > 0 {
			p, err := procstat.ReadProcess(procRoot, pid)
			if err == nil && p.StartTicks == startTicks && p.PGRP == pid {
				log.Warn("killing a task process left by an earlier agent", "pid", pid, "dir", filepath.Dir(file))
				_ = syscall.Kill(-pid, syscall.SIGKILL)
			}
		}
		_ = os.Remove(file)
	}
}
