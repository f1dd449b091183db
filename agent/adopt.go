package agent

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/omegacell/omegacell/agent/procstat"
)

// Adoption: a restarted agent takes over the attempts an earlier agent on
// the same data directory started. At start it reads every attempt's pid
// file (written by the attempt's shim) and sorts the attempts into those
// whose shim still runs (the same pid with the same start time in
// /proc/PID/stat, so a reused pid is never mistaken) and those whose shim
// ended (its exit record, when it wrote one, says how the task ended).
// Nothing is killed then: the agent does not know yet what the server
// holds on this machine. Once it has read its view, the reconcile resumes
// the attempts the server still holds here (start finds them here) and
// discards the others (they are stopped, like any attempt the server moved
// away). A resumed attempt keeps its pid, attempt number, log files and
// usage; its health check starts again.

// foundAttempt is an attempt an earlier agent started.
type foundAttempt struct {
	key  attemptKey
	dir  string
	ids  pidRecord
	live bool
}

// pidRecord is the content of a pid file.
type pidRecord struct {
	task, shim           int
	taskStart, shimStart uint64
}

// readPidFile parses "<task pid> <start> <shim pid> <start>" (the task's
// pid is 0 while the shim has not started it yet).
func readPidFile(dir string) (pidRecord, error) {
	data, err := os.ReadFile(filepath.Join(dir, pidFile))
	if err != nil {
		return pidRecord{}, err
	}
	var r pidRecord
	if _, err := fmt.Sscan(string(data), &r.task, &r.taskStart, &r.shim, &r.shimStart); err != nil || r.task < 0 || r.shim <= 0 {
		return pidRecord{}, fmt.Errorf("pid file %q: not <task pid> <start> <shim pid> <start>", strings.TrimSpace(string(data)))
	}
	return r, nil
}

// scan finds the attempts an earlier agent left (see Adoption above). A
// shim that is a zombie has ended: its parent (init, or whatever reaper
// the dead agent's shims went to) has not reaped it yet, or never will.
func (r *processRuntime) scan(procRoot string) {
	files, _ := filepath.Glob(filepath.Join(r.tasksDir, "*", "*", pidFile))
	for _, file := range files {
		dir := filepath.Dir(file)
		key, ok := parseAttemptDir(filepath.Base(filepath.Dir(dir)), filepath.Base(dir))
		if !ok {
			continue
		}
		ids, err := readPidFile(dir)
		if err != nil {
			// Not written by a shim (an agent from before shims): its
			// process group cannot be adopted (no exit status would ever
			// be known), so it is killed, as that agent did at start.
			killLegacy(r, file, procRoot)
			continue
		}
		p, err := procstat.ReadProcess(procRoot, ids.shim)
		live := err == nil && p.StartTicks == ids.shimStart && p.Alive()
		r.found[key] = &foundAttempt{key: key, dir: dir, ids: ids, live: live}
	}
	if len(r.found) > 0 {
		live := 0
		for _, f := range r.found {
			if f.live {
				live++
			}
		}
		r.log.Info("found attempts an earlier agent started", "running", live, "ended", len(r.found)-live)
	}
}

// killLegacy kills the process group of an old-format pid file
// ("<pid> <start ticks>") if it still runs, and removes the file.
func killLegacy(r *processRuntime, file, procRoot string) {
	data, _ := os.ReadFile(file)
	var pid int
	var start uint64
	if _, err := fmt.Sscan(string(data), &pid, &start); err == nil && pid > 0 {
		if p, err := procstat.ReadProcess(procRoot, pid); err == nil && p.StartTicks == start && p.PGRP == pid {
			r.log.Warn("killing a task process left by an earlier agent without a shim", "pid", pid, "dir", filepath.Dir(file))
			_ = syscall.Kill(-pid, syscall.SIGKILL)
		}
	}
	_ = os.Remove(file)
}

// resumable reports whether an earlier agent started attempt k here.
func (r *processRuntime) resumable(k attemptKey) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.found[k] != nil
}

// take removes and returns a found attempt.
func (r *processRuntime) take(k attemptKey) *foundAttempt {
	r.mu.Lock()
	defer r.mu.Unlock()
	f := r.found[k]
	delete(r.found, k)
	return f
}

// leftovers lists the found attempts not resumed yet.
func (r *processRuntime) leftovers() []attemptKey {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]attemptKey, 0, len(r.found))
	for k := range r.found {
		out = append(out, k)
	}
	slices.SortFunc(out, func(a, b attemptKey) int { return strings.Compare(a.String(), b.String()) })
	return out
}

// discard stops a found attempt the server no longer holds here. It
// returns at once.
func (r *processRuntime) discard(k attemptKey) {
	f := r.take(k)
	if f == nil {
		return
	}
	r.log.Info("stopping an attempt an earlier agent started: the server no longer holds it here", "task", k, "running", f.live)
	h := r.adopt(f)
	h.stop()
	go h.waitAdopted(func(exitResult) {})
}

// resume adopts a found attempt for the fleet: a live one goes on running
// under this agent (health checks start again); one that ended is reported
// with the exit its shim recorded.
func (r *processRuntime) resume(spec taskSpec, f *foundAttempt, exited func(exitResult)) runHandle {
	h := r.adopt(f)
	if f.live {
		r.log.Info("resumed a task an earlier agent started", "task", f.key, "pid", f.ids.task)
		h.startProber(spec.template, r.env(spec, f.dir), spec.ready)
	}
	go h.waitAdopted(exited)
	return h
}

// adopt makes a handle for a found attempt.
func (r *processRuntime) adopt(f *foundAttempt) *procHandle {
	var cg *taskCgroup
	if r.cgroups != nil {
		if c := r.cgroups.existing(f.key); c != nil {
			cg = c
		}
	}
	h := r.newHandle(f.key, f.dir, cg)
	h.adopted = true
	h.shimPid, h.shimStart, h.taskPid = f.ids.shim, f.ids.shimStart, f.ids.task
	close(h.ready)
	if !f.live {
		h.ended = true
		return h
	}
	fd, err := unix.PidfdOpen(h.shimPid, 0)
	if err == nil {
		// The pid could have been reused between the scan and the open:
		// the pidfd names whatever holds the pid now, so check again.
		if p, perr := procstat.ReadProcess("/proc", h.shimPid); perr != nil || p.StartTicks != h.shimStart || !p.Alive() {
			_ = unix.Close(fd)
			h.ended = true
			return h
		}
		h.pidfd = fd
	}
	return h
}

// adoptedPoll is how often an adopted shim is checked when pidfds are not
// available (Linux before 5.3).
const adoptedPoll = 250 * time.Millisecond

// waitAdopted waits until an adopted shim has ended, then finishes.
func (h *procHandle) waitAdopted(exited func(exitResult)) {
	h.mu.Lock()
	ended := h.ended
	h.mu.Unlock()
	for !ended {
		if h.pidfd >= 0 {
			fds := []unix.PollFd{{Fd: int32(h.pidfd), Events: unix.POLLIN}}
			_, err := unix.Poll(fds, -1)
			if err == nil || !errors.Is(err, syscall.EINTR) {
				break
			}
			continue
		}
		p, err := procstat.ReadProcess("/proc", h.shimPid)
		if err != nil || p.StartTicks != h.shimStart || !p.Alive() {
			break
		}
		time.Sleep(adoptedPoll)
	}
	h.finish(exited)
}
