package agent

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/omegacell/omegacell/agent/procstat"
)

// The shim is each attempt's supervisor: the agent's own executable,
// started again with shimEnv set, whose only job is to start the task,
// hold its process tree and record how it ended. See "Task processes" in
// doc.go for why it exists.
//
// Protocol between the agent and a shim:
//   - argv is [shimArg0, command, args...]; the working directory, the
//     environment (less the shim's variables), stdout and stderr are the
//     task's.
//   - fd 3 is a pipe to the agent: the shim writes "ok\n" once the task
//     runs and its pid file is written, or "err <why>\n" when the task
//     could not be started, then closes it.
//   - with shimCgroupEnv=1, fd 4 is the directory of the task's cgroup: the
//     task is cloned straight into it (the shim itself is not in it).
//   - the shim becomes a child subreaper, so every orphan of the task's
//     tree (a daemon, a `setsid` grandchild) is re-parented to it: the
//     tree under the shim is the whole task, found by parent links.
//   - SIGTERM: the shim sends SIGTERM to every process of the tree.
//     SIGUSR1: SIGKILL to every process of the tree. SIGINT, SIGHUP and
//     SIGQUIT are ignored (a terminal's signals are not meant for tasks).
//   - when the task's leader ends, the rest of the tree is killed and
//     reaped; the shim then writes exitFile ("exit N" or "signal N")
//     atomically and exits 0. The file outlives the agent: an agent that
//     was down when the task ended reads it after its restart.
const (
	shimEnv       = "OMEGACELL_TASK_SHIM"
	shimCgroupEnv = "OMEGACELL_TASK_SHIM_CGROUP"
	shimArg0      = "omegacell-shim"
	shimReadyFD   = 3
	shimCgroupFD  = 4
	// exitFile records how the task's leader ended.
	exitFile = ".omegacell-exit"
)

// The shim runs before anything else of the program it is part of (the
// cell binary, or a test binary that links this package): package
// initialisation is the earliest hook a Go program has.
func init() {
	if os.Getenv(shimEnv) == "1" && len(os.Args) > 0 && os.Args[0] == shimArg0 {
		os.Exit(runShim(os.Args[1:]))
	}
}

// runShim supervises one task until its whole tree has ended.
func runShim(args []string) int {
	debug.SetGCPercent(20) // a shim per task: keep each one small
	syscall.CloseOnExec(shimReadyFD)
	ready := os.NewFile(shimReadyFD, "ready")
	fail := func(format string, a ...any) int {
		fmt.Fprintf(ready, "err "+format+"\n", a...)
		ready.Close()
		return 127
	}
	if len(args) == 0 {
		return fail("no command")
	}
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return fail("become a child subreaper: %v", err)
	}
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGUSR1, syscall.SIGINT, syscall.SIGHUP, syscall.SIGQUIT)

	env := make([]string, 0, len(os.Environ()))
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, shimEnv+"=") && !strings.HasPrefix(kv, shimCgroupEnv+"=") {
			env = append(env, kv)
		}
	}
	path, err := exec.LookPath(args[0])
	if err != nil {
		return fail("start %q: %v", args[0], err)
	}
	// Pdeathsig: should the shim itself be SIGKILLed, its task's leader
	// dies with it rather than run on unsupervised. The signal follows the
	// thread that forked, so that thread stays this goroutine's.
	runtime.LockOSThread()
	attr := &syscall.ProcAttr{Env: env, Files: []uintptr{0, 1, 2}, Sys: &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}}
	if os.Getenv(shimCgroupEnv) == "1" {
		syscall.CloseOnExec(shimCgroupFD)
		attr.Sys.UseCgroupFD = true
		attr.Sys.CgroupFD = shimCgroupFD
	}
	var mu sync.Mutex // held while reaping and while signalling the tree
	mu.Lock()
	leader, err := syscall.ForkExec(path, args, attr)
	if err != nil {
		mu.Unlock()
		return fail("start %q: %v", args[0], err)
	}
	self := os.Getpid()
	var selfStart, leaderStart uint64
	if p, err := procstat.ReadProcess("/proc", self); err == nil {
		selfStart = p.StartTicks
	}
	if p, err := procstat.ReadProcess("/proc", leader); err == nil {
		leaderStart = p.StartTicks
	}
	if err := writeAtomic(pidFile, fmt.Appendf(nil, "%d %d %d %d\n", leader, leaderStart, self, selfStart)); err != nil {
		_ = syscall.Kill(-leader, syscall.SIGKILL)
		mu.Unlock()
		return fail("write pid file: %v", err)
	}
	mu.Unlock()
	fmt.Fprintln(ready, "ok")
	ready.Close()

	leaderDone := false
	go func() {
		for s := range sigs {
			var sig syscall.Signal
			switch s {
			case syscall.SIGTERM:
				sig = syscall.SIGTERM
			case syscall.SIGUSR1:
				sig = syscall.SIGKILL
			default:
				continue
			}
			mu.Lock()
			if !leaderDone {
				// The leader's group first: processes forked since the
				// scan below are in it.
				_ = syscall.Kill(-leader, sig)
			}
			signalTree(self, sig)
			mu.Unlock()
		}
	}()

	var status syscall.WaitStatus
	for {
		// Wait without reaping, then reap under the lock: a pid the signal
		// goroutine is about to signal cannot be reaped and reused meanwhile.
		var info unix.Siginfo
		err := unix.Waitid(unix.P_ALL, 0, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil {
			break // ECHILD: the tree is gone
		}
		mu.Lock()
		for {
			var ws syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
			if err != nil || pid <= 0 {
				break
			}
			if pid == leader {
				leaderDone, status = true, ws
			}
		}
		if leaderDone {
			// A task's lifetime is its leader's: what is left goes too.
			signalTree(self, syscall.SIGKILL)
		}
		mu.Unlock()
	}
	record := fmt.Sprintf("exit %d\n", status.ExitStatus())
	if status.Signaled() {
		record = fmt.Sprintf("signal %d\n", int(status.Signal()))
	}
	if err := writeAtomic(exitFile, []byte(record)); err != nil {
		fmt.Fprintf(os.Stderr, "omegacell shim: cannot record the task's exit: %v\n", err)
		return 1
	}
	return 0
}

// signalTree signals every process descending from root.
func signalTree(root int, sig syscall.Signal) {
	procs, err := procstat.Scan("/proc")
	if err != nil {
		return
	}
	for _, pid := range procstat.Descendants(procs, root) {
		_ = syscall.Kill(pid, sig)
	}
}

// writeAtomic replaces file with data (write, then rename).
func writeAtomic(file string, data []byte) error {
	tmp := fmt.Sprintf("%s.tmp%d", file, os.Getpid())
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, file)
}

// exitStatus is how a task's leader ended, as its shim recorded it.
type exitStatus struct {
	code   int
	signal syscall.Signal // 0 when it exited
}

// readExitFile reads the record a shim left in an attempt directory.
func readExitFile(dir string) (exitStatus, bool) {
	data, err := os.ReadFile(filepath.Join(dir, exitFile))
	if err != nil {
		return exitStatus{}, false
	}
	how, num, ok := strings.Cut(strings.TrimSpace(string(data)), " ")
	n, err := strconv.Atoi(num)
	if !ok || err != nil {
		return exitStatus{}, false
	}
	switch how {
	case "exit":
		return exitStatus{code: n}, true
	case "signal":
		return exitStatus{code: 128 + n, signal: syscall.Signal(n)}, true
	}
	return exitStatus{}, false
}

// describe returns the exit code (128+signal for a signal death, as shells
// do) and a phrase saying how the process ended.
func (s exitStatus) describe() (int32, string) {
	if s.signal != 0 {
		return int32(s.code), "killed by signal " + unix.SignalName(s.signal)
	}
	return int32(s.code), fmt.Sprintf("exited with code %d", s.code)
}
