package agent

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
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

// processRuntime runs each attempt as a real process under its own shim
// (shim.go): the shim is a child of the agent in a session of its own, and
// the task a child of the shim, the leader of its own process group, in
// its own working directory <data>/tasks/<job>/<index>.<attempt>/ with
// stdout and stderr captured to files there, and, when cgroup v2 is
// usable, in its own cgroup with cpu.max and memory.max set from the
// task's resources.
//
// The attempt directory doubles as a durable fence: it is created with
// mkdir, which fails if it exists, so an attempt that any agent on this
// machine ever started is never started again. It also holds the shim's
// pid file and, once the task ended, its exit record: what a restarted
// agent needs to adopt the attempts an earlier one started (found).
type processRuntime struct {
	log      *slog.Logger
	tasksDir string
	grace    time.Duration
	// cgroups is nil when limits are not enforced.
	cgroups *cgroupTree
	path    string // PATH given to tasks
	exe     string // this program, which is also the shim
	// dirMu orders creating attempt directories (up to the pid file)
	// against the garbage collector's removals.
	dirMu sync.Mutex

	mu sync.Mutex
	// found are the attempts an earlier agent on this data directory
	// started, not yet resumed or discarded.
	found map[attemptKey]*foundAttempt
	// handles are the attempts this runtime supervises (for detachAll).
	handles map[*procHandle]bool
}

// Files in an attempt directory.
const (
	stdoutFile = "stdout"
	stderrFile = "stderr"
	// pidFile holds "<task pid> <start ticks> <shim pid> <start ticks>"
	// while the attempt runs (the shim writes it), so a restarted agent
	// can find and adopt what an earlier one started; the start times make
	// a reused pid never mistaken for the attempt.
	pidFile = ".omegacell-pid"
	// shimStartTimeout bounds how long a shim may take to start its task.
	shimStartTimeout = 30 * time.Second
)

func newProcessRuntime(log *slog.Logger, dataDir string, grace time.Duration, cgroups *cgroupTree) (*processRuntime, error) {
	path := os.Getenv("PATH")
	if path == "" {
		path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find this program, which supervises each task: %w", err)
	}
	r := &processRuntime{log: log, tasksDir: filepath.Join(dataDir, "tasks"), grace: grace, cgroups: cgroups, path: path, exe: exe,
		found: make(map[attemptKey]*foundAttempt), handles: make(map[*procHandle]bool)}
	r.scan("/proc")
	return r, nil
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

// start starts an attempt, or resumes it when an earlier agent on this
// data directory started it (found).
func (r *processRuntime) start(spec taskSpec, exited func(exitResult)) (runHandle, error) {
	key := spec.key()
	if f := r.take(key); f != nil {
		return r.resume(spec, f, exited), nil
	}
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
	readyR, readyW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("start the task's shim: %w", err)
	}

	env := r.env(spec, dir)
	cmd := &exec.Cmd{
		Path:   r.exe,
		Args:   append([]string{shimArg0, tmpl.GetCommand()}, tmpl.GetArgs()...),
		Dir:    dir,
		Env:    append(slices.Clone(env), shimEnv+"=1"),
		Stdout: stdout, // the task writes to the files directly
		Stderr: stderr,
		// A session of its own: a terminal's signals (Ctrl-C in cell dev)
		// never reach the shim or its task.
		SysProcAttr: &syscall.SysProcAttr{Setsid: true},
		ExtraFiles:  []*os.File{readyW},
	}
	var cg *taskCgroup
	if r.cgroups != nil {
		cg, err = r.cgroups.create(key, spec.task.GetResources())
		if err != nil {
			readyW.Close()
			return nil, fmt.Errorf("resource limits: %w", err)
		}
		cgFile := os.NewFile(uintptr(cg.fd), cg.dir)
		cg.fd = -1 // now owned by cgFile
		defer cgFile.Close()
		cmd.ExtraFiles = append(cmd.ExtraFiles, cgFile)
		cmd.Env = append(cmd.Env, shimCgroupEnv+"=1")
		if r.cgroups.shimsFD >= 0 {
			cmd.SysProcAttr.UseCgroupFD = true
			cmd.SysProcAttr.CgroupFD = r.cgroups.shimsFD
		}
	}
	err = cmd.Start()
	readyW.Close()
	if err != nil {
		readyR.Close()
		if cg != nil {
			cg.remove()
		}
		return nil, fmt.Errorf("start the shim of %q: %w", tmpl.GetCommand(), err)
	}
	h := r.newHandle(key, dir, cg)
	h.cmd = cmd
	h.shimPid = cmd.Process.Pid
	// A first pid file names the shim at once (task pid 0: not known yet),
	// so an agent that dies from here on leaves the attempt to the next
	// one; the shim completes the file before it answers.
	if p, err := procstat.ReadProcess("/proc", h.shimPid); err == nil {
		h.shimStart = p.StartTicks
		// O_EXCL: never over the shim's own, complete file.
		if f, err := os.OpenFile(filepath.Join(dir, pidFile), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644); err == nil {
			fmt.Fprintf(f, "0 0 %d %d\n", h.shimPid, p.StartTicks)
			f.Close()
		}
	}
	// The shim's answer comes once it has started the task (a Go program
	// starting up: tens of milliseconds on a busy machine). The fleet calls
	// start under its lock, so the answer is awaited elsewhere; a task that
	// could not start ends as FAILED with the shim's reason.
	go h.handshake(readyR, tmpl, env, spec.ready, exited)
	return h, nil
}

// handshake waits for the shim's answer, then for the attempt's end.
func (h *procHandle) handshake(ready *os.File, tmpl *cellv1.TaskTemplate, env []string, readiness func(bool), exited func(exitResult)) {
	_ = ready.SetReadDeadline(time.Now().Add(shimStartTimeout))
	answer, _ := io.ReadAll(io.LimitReader(ready, 4096))
	ready.Close()
	if line := strings.TrimSpace(string(answer)); line != "ok" {
		why, found := strings.CutPrefix(line, "err ")
		if !found {
			why = fmt.Sprintf("start %q: its shim did not start it (answered %q)", tmpl.GetCommand(), line)
		}
		h.mu.Lock()
		h.startFailure = why
		h.mu.Unlock()
		close(h.ready)
		_ = h.cmd.Process.Kill()
		h.waitChild(exited)
		return
	}
	if ids, err := readPidFile(h.dir); err == nil {
		h.mu.Lock()
		h.taskPid, h.shimStart = ids.task, ids.shimStart
		h.mu.Unlock()
	}
	close(h.ready)
	h.startProber(tmpl, env, readiness)
	h.waitChild(exited)
}

func (r *processRuntime) newHandle(key attemptKey, dir string, cg *taskCgroup) *procHandle {
	h := &procHandle{
		log:    r.log.With("task", key),
		rt:     r,
		key:    key,
		dir:    dir,
		cgroup: cg,
		grace:  r.grace,
		pidfd:  -1,
		done:   make(chan struct{}),
		ready:  make(chan struct{}),
	}
	r.mu.Lock()
	r.handles[h] = true
	r.mu.Unlock()
	return h
}

// detachAll lets every attempt run on without this runtime: the agent is
// exiting and leaves its tasks to the next one. Their shims go on; nothing
// is reported or cleaned up for them here any more.
func (r *processRuntime) detachAll() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	for h := range r.handles {
		h.mu.Lock()
		h.detached = true
		h.mu.Unlock()
	}
	n := len(r.handles)
	clear(r.handles)
	return n
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

// procHandle is one attempt under its shim: started by this agent (cmd is
// the shim, a child) or adopted from an earlier agent (pidfd watches the
// shim, which is no child of this process).
type procHandle struct {
	log    *slog.Logger
	rt     *processRuntime
	key    attemptKey
	dir    string
	cgroup *taskCgroup
	grace  time.Duration
	done   chan struct{} // closed when the attempt has ended
	// ready is closed once the shim answered (the task runs, or
	// startFailure says why not); taskPid and shimStart are known then.
	ready chan struct{}

	cmd     *exec.Cmd // the shim, when this agent started it
	pidfd   int       // the adopted shim's pidfd; -1 when none
	shimPid int
	adopted bool

	mu sync.Mutex
	// shimStart and taskPid (the task's leader; informative: the shim
	// owns it) come from the pid file.
	shimStart    uint64
	taskPid      int
	startFailure string

	// ended: the shim is gone; its pid must not be signalled any more.
	ended         bool
	stopRequested bool
	healthFailure string
	// detached: the agent is exiting and leaves the attempt running.
	detached bool
}

// stop asks the shim to SIGTERM the task's whole tree, then after the
// grace period to SIGKILL it (and kills the cgroup), if it is still there.
func (h *procHandle) stop() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.stopRequested || h.ended {
		return
	}
	h.stopRequested = true
	h.signalShimLocked(syscall.SIGTERM)
	time.AfterFunc(h.grace, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		if h.ended {
			return
		}
		h.log.Info("task ignored SIGTERM for the grace period; killing it", "grace", h.grace)
		h.signalShimLocked(syscall.SIGUSR1)
		if h.cgroup != nil {
			h.cgroup.kill()
		}
	})
}

// signalShimLocked signals the shim. A child's os.Process and an adopted
// shim's pidfd both name that very process, never a reuse of its pid.
func (h *procHandle) signalShimLocked(sig syscall.Signal) {
	if h.ended {
		return
	}
	var err error
	switch {
	case h.cmd != nil:
		err = h.cmd.Process.Signal(sig)
	case h.pidfd >= 0:
		err = unix.PidfdSendSignal(h.pidfd, sig, nil, 0)
	case h.shimStart == 0:
		return // adopted, and gone before it could be watched
	default:
		if p, rerr := procstat.ReadProcess("/proc", h.shimPid); rerr == nil && p.StartTicks == h.shimStart {
			err = syscall.Kill(h.shimPid, sig)
		}
	}
	if err != nil && !errors.Is(err, syscall.ESRCH) && !errors.Is(err, os.ErrProcessDone) {
		h.log.Warn("cannot signal the task's shim", "signal", sig, "err", err)
	}
}

// unhealthy is called by the prober: the attempt fails with reason.
func (h *procHandle) unhealthy(reason string) {
	h.mu.Lock()
	if h.healthFailure == "" && !h.ended {
		h.healthFailure = reason
	}
	h.mu.Unlock()
	h.log.Info("task failed its health check; stopping it", "reason", reason)
	h.stop()
}

func (h *procHandle) startProber(tmpl *cellv1.TaskTemplate, env []string, ready func(bool)) {
	if p := newProber(tmpl.GetHealthCheck(), h.dir, env); p != nil {
		go p.run(h.done, h.unhealthy)
	}
	if p := newProber(tmpl.GetReadinessCheck(), h.dir, env); p != nil && ready != nil { // issue 13
		go p.runReadiness(h.done, ready)
	}
}

// waitChild waits for a shim this agent started.
func (h *procHandle) waitChild(exited func(exitResult)) {
	_ = h.cmd.Wait()
	h.finish(exited)
}

// finish records the end of the attempt and reports it (unless the agent
// detached from it: then the next agent does).
func (h *procHandle) finish(exited func(exitResult)) {
	h.mu.Lock()
	h.ended = true
	detached := h.detached
	h.mu.Unlock()
	close(h.done)
	if h.pidfd >= 0 {
		_ = unix.Close(h.pidfd)
	}
	h.rt.mu.Lock()
	delete(h.rt.handles, h)
	h.rt.mu.Unlock()
	if detached {
		return
	}
	oom := false
	if h.cgroup != nil {
		h.cgroup.kill() // leftovers of a shim that was killed itself
		oom = h.cgroup.oomKilled()
		h.cgroup.remove()
	}
	st, known := readExitFile(h.dir)
	_ = os.Remove(filepath.Join(h.dir, pidFile))
	exited(h.result(st, known, oom))
}

// result turns how the leader ended into the state to report.
func (h *procHandle) result(st exitStatus, known, oom bool) exitResult {
	h.mu.Lock()
	health, stopped, startFailure := h.healthFailure, h.stopRequested, h.startFailure
	h.mu.Unlock()
	code, how := st.describe()
	if !known {
		code, how = -1, "exit status unknown: its shim ended without recording it"
	}
	switch {
	case startFailure != "" && !stopped:
		return exitResult{state: cellv1.TaskState_TASK_STATE_FAILED, exitCode: -1, message: startFailure}
	case health != "":
		return exitResult{state: cellv1.TaskState_TASK_STATE_FAILED, exitCode: code, message: "health check failed: " + health}
	case stopped:
		return exitResult{state: cellv1.TaskState_TASK_STATE_KILLED, exitCode: code, message: "stopped by the agent (" + how + ")"}
	case oom:
		return exitResult{state: cellv1.TaskState_TASK_STATE_FAILED, exitCode: code, message: "out of memory: killed at its memory limit (" + how + ")"}
	case known && code == 0:
		return exitResult{state: cellv1.TaskState_TASK_STATE_SUCCEEDED, message: how}
	}
	return exitResult{state: cellv1.TaskState_TASK_STATE_FAILED, exitCode: code, message: how}
}

// pids returns the task's and the shim's pid (the task's is known once
// ready is closed).
func (h *procHandle) pids() (task, shim int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.taskPid, h.shimPid
}
