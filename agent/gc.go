package agent

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Finished attempts keep their directories (working directory, stdout,
// stderr) so that `cell job logs` works after a task ends. Like kubelet's
// garbage collection of dead containers, the agent removes them once they
// are older than Config.KeepFinished, and beyond the newest
// Config.MaxFinishedAttempts, oldest first.
//
// Removing a directory removes the attempt's start fence (see
// processRuntime), which is safe for an attempt that is finished for good:
// every placement gets a new attempt number, so the cell never assigns a
// removed attempt again. The collector therefore only considers attempts
// that the machine's synced view does not hold and that run nowhere here
// (no pid file: the runtime writes it under the same lock as the mkdir,
// and removes it at exit).

// Defaults of the retention of finished attempts.
const (
	DefaultKeepFinished        = 24 * time.Hour
	DefaultMaxFinishedAttempts = 1000
	// gcInterval is how often the collector looks.
	gcInterval = time.Minute
)

// retention is what the collector keeps.
type retention struct {
	keepFor     time.Duration
	maxFinished int
}

func (r retention) validate() error {
	if r.keepFor < 0 {
		return fmt.Errorf("keep finished attempts: %v is negative", r.keepFor)
	}
	if r.maxFinished < 0 {
		return fmt.Errorf("max finished attempts: %d is negative", r.maxFinished)
	}
	return nil
}

// finishedAttempt is an attempt directory the collector may remove.
type finishedAttempt struct {
	path string
	// ended is the newest modification time of the directory and its
	// logs: when the attempt last wrote.
	ended time.Time
}

// collectGarbage removes the directories of finished attempts beyond the
// retention and returns how many it removed. live says which attempts the
// view holds; their directories stay whatever their age.
func (r *processRuntime) collectGarbage(live func(attemptKey) bool, now time.Time, keep retention) (int, error) {
	r.dirMu.Lock()
	defer r.dirMu.Unlock()
	jobs, err := os.ReadDir(r.tasksDir)
	if err != nil {
		return 0, fmt.Errorf("list %s: %w", r.tasksDir, err)
	}
	var finished []finishedAttempt
	for _, j := range jobs {
		if !j.IsDir() || checkJobID(j.Name()) != nil {
			continue
		}
		jobDir := filepath.Join(r.tasksDir, j.Name())
		attempts, err := os.ReadDir(jobDir)
		if err != nil {
			continue // removed meanwhile, or unreadable: not ours to judge
		}
		for _, a := range attempts {
			key, ok := parseAttemptDir(j.Name(), a.Name())
			if !ok || !a.IsDir() || live(key) {
				continue
			}
			dir := filepath.Join(jobDir, a.Name())
			if _, err := os.Lstat(filepath.Join(dir, pidFile)); !errors.Is(err, fs.ErrNotExist) {
				continue // running, or a leftover killLeftovers has not seen
			}
			finished = append(finished, finishedAttempt{path: dir, ended: lastWrite(dir)})
		}
	}
	sort.Slice(finished, func(i, k int) bool { return finished[i].ended.After(finished[k].ended) })
	removed := 0
	var errs []error
	for i, f := range finished {
		if i < keep.maxFinished && now.Sub(f.ended) <= keep.keepFor {
			continue
		}
		if err := os.RemoveAll(f.path); err != nil {
			errs = append(errs, err)
			continue
		}
		removed++
		_ = os.Remove(filepath.Dir(f.path)) // the job's directory, once empty
	}
	return removed, errors.Join(errs...)
}

// parseAttemptDir reads the key of <job>/<index>.<attempt>; anything else
// is not an attempt directory.
func parseAttemptDir(job, name string) (attemptKey, bool) {
	i, a, ok := strings.Cut(name, ".")
	if !ok {
		return attemptKey{}, false
	}
	index, err1 := strconv.ParseUint(i, 10, 32)
	attempt, err2 := strconv.ParseUint(a, 10, 32)
	if err1 != nil || err2 != nil || strconv.FormatUint(index, 10) != i || strconv.FormatUint(attempt, 10) != a {
		return attemptKey{}, false
	}
	return attemptKey{taskKey: taskKey{job: job, index: uint32(index)}, attempt: uint32(attempt)}, true
}

// lastWrite is the newest modification time of dir, its stdout and its
// stderr.
func lastWrite(dir string) time.Time {
	var last time.Time
	for _, p := range []string{dir, filepath.Join(dir, stdoutFile), filepath.Join(dir, stderrFile)} {
		if st, err := os.Lstat(p); err == nil && st.ModTime().After(last) {
			last = st.ModTime()
		}
	}
	return last
}

// liveAttempts snapshots the attempts the fleet's views hold and runs; ok
// is false until every machine's view came from the server (before that,
// nothing is known to be finished).
func (f *fleet) liveAttempts() (live map[attemptKey]bool, ok bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	live = make(map[attemptKey]bool)
	for _, m := range f.order {
		if !m.synced {
			return nil, false
		}
		for k, t := range m.view {
			live[attemptKey{taskKey: k, attempt: t.GetAttempt()}] = true
		}
		for _, l := range m.local {
			live[l.key] = true
		}
		for k := range m.retiring {
			live[k] = true
		}
	}
	return live, true
}

// collectLoop runs the collector every gcInterval until ctx ends.
func (a *Agent) collectLoop(ctx context.Context, rt *processRuntime, keep retention) {
	t := time.NewTicker(gcInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		a.collectOnce(rt, keep, time.Now())
	}
}

// collectOnce is one pass of the collector.
func (a *Agent) collectOnce(rt *processRuntime, keep retention, now time.Time) int {
	live, ok := a.fleet.liveAttempts()
	if !ok {
		return 0
	}
	n, err := rt.collectGarbage(func(k attemptKey) bool { return live[k] }, now, keep)
	if n > 0 || err != nil {
		a.log.Info("removed the directories of finished attempts", "removed", n, "err", err)
	}
	a.fleet.counters.attemptDirsRemoved.Add(int64(n))
	return n
}
