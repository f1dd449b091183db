package agent

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
)

// gcDir is one directory under tasks/ in a collector test.
type gcDir struct {
	path string        // <job>/<name>
	age  time.Duration // since its last write
	pid  bool          // holds a pid file
}

func TestCollectGarbage(t *testing.T) {
	hour := time.Hour
	cases := []struct {
		name string
		dirs []gcDir
		live []string // <job>/<index>.<attempt>
		keep retention
		want []string // directories left, sorted
	}{
		{
			name: "older than keepFor are removed, with their empty job directory",
			dirs: []gcDir{{path: "a/0.1", age: 25 * hour}, {path: "a/0.2", age: hour}, {path: "b/3.1", age: 30 * hour}},
			keep: retention{keepFor: 24 * hour, maxFinished: 100},
			want: []string{"a", "a/0.2"},
		},
		{
			name: "live attempts stay whatever their age",
			dirs: []gcDir{{path: "a/0.1", age: 90 * hour}, {path: "a/1.4", age: 90 * hour}},
			live: []string{"a/1.4"},
			keep: retention{keepFor: hour, maxFinished: 100},
			want: []string{"a", "a/1.4"},
		},
		{
			name: "a directory with a pid file stays (a process may run there)",
			dirs: []gcDir{{path: "a/0.1", age: 90 * hour, pid: true}},
			keep: retention{keepFor: hour, maxFinished: 100},
			want: []string{"a", "a/0.1"},
		},
		{
			name: "beyond maxFinished the oldest go first",
			dirs: []gcDir{{path: "a/0.1", age: 3 * time.Minute}, {path: "a/1.1", age: time.Minute}, {path: "b/0.1", age: 2 * time.Minute}},
			keep: retention{keepFor: 24 * hour, maxFinished: 2},
			want: []string{"a", "a/1.1", "b", "b/0.1"},
		},
		{
			name: "live attempts do not count against maxFinished",
			dirs: []gcDir{{path: "a/0.1", age: time.Minute}, {path: "a/1.1", age: 2 * time.Minute}},
			live: []string{"a/0.1"},
			keep: retention{keepFor: 24 * hour, maxFinished: 1},
			want: []string{"a", "a/0.1", "a/1.1"},
		},
		{
			name: "what the agent did not create is left alone",
			dirs: []gcDir{{path: "a/notes", age: 90 * hour}, {path: "a/01.1", age: 90 * hour}, {path: "a/0.1.2", age: 90 * hour}},
			keep: retention{keepFor: hour, maxFinished: 100},
			want: []string{"a", "a/0.1.2", "a/01.1", "a/notes"},
		},
	}
	now := time.Now()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := newTestRuntime(t, time.Second)
			for _, d := range c.dirs {
				dir := filepath.Join(r.tasksDir, d.path)
				if err := os.MkdirAll(dir, 0o755); err != nil {
					t.Fatal(err)
				}
				for _, f := range []string{stdoutFile, stderrFile} {
					if err := os.WriteFile(filepath.Join(dir, f), []byte("log\n"), 0o644); err != nil {
						t.Fatal(err)
					}
				}
				if d.pid {
					if err := os.WriteFile(filepath.Join(dir, pidFile), []byte("1 1\n"), 0o644); err != nil {
						t.Fatal(err)
					}
				}
				at := now.Add(-d.age)
				for _, p := range []string{filepath.Join(dir, stdoutFile), filepath.Join(dir, stderrFile), filepath.Join(dir, pidFile), dir} {
					_ = os.Chtimes(p, at, at)
				}
			}
			live := map[attemptKey]bool{}
			for _, l := range c.live {
				k, ok := parseAttemptDir(filepath.Dir(l), filepath.Base(l))
				if !ok {
					t.Fatalf("bad live key %q", l)
				}
				live[k] = true
			}
			removedWant := 0
			for _, d := range c.dirs {
				if !slices.Contains(c.want, d.path) {
					removedWant++
				}
			}
			n, err := r.collectGarbage(func(k attemptKey) bool { return live[k] }, now, c.keep)
			if err != nil || n != removedWant {
				t.Errorf("removed %d (%v), want %d", n, err, removedWant)
			}
			var left []string
			_ = filepath.WalkDir(r.tasksDir, func(p string, e os.DirEntry, err error) error {
				if err == nil && e.IsDir() && p != r.tasksDir {
					rel, _ := filepath.Rel(r.tasksDir, p)
					left = append(left, rel)
				}
				return nil
			})
			slices.Sort(left)
			if !slices.Equal(left, c.want) {
				t.Errorf("left %v, want %v", left, c.want)
			}
		})
	}
}

func TestParseAttemptDir(t *testing.T) {
	for name, want := range map[string]bool{"0.1": true, "12.3": true, "4294967295.1": true,
		"": false, "1": false, "a.1": false, "01.1": false, "1.01": false, "1.-1": false, "4294967296.1": false, "1.1.1": false} {
		if _, ok := parseAttemptDir("j", name); ok != want {
			t.Errorf("%q: ok = %v, want %v", name, ok, want)
		}
	}
}

// The collector of a real agent removes a finished attempt's directory once
// it is old enough (its logs are gone: NotFound), and never a running one.
func TestAgentCollectsFinishedAttempts(t *testing.T) {
	c := newTestCell(t, 2*time.Second)
	a, _ := runAgent(t, c, "m1")
	done := c.submit("done", 1, `echo bye`, 0)
	c.place(done, 0, "m1")
	eventually(t, "the task succeeded", func() bool { return c.task(done, 0).State == succeeded })
	long := c.submit("long", 1, `exec sleep 30`, 0)
	c.place(long, 0, "m1")
	eventually(t, "the long task runs", func() bool { return c.task(long, 0).State == runningS })

	doneDir := a.rt.attemptDir(attemptKey{taskKey: taskKey{job: done.Id}, attempt: 1})
	longDir := a.rt.attemptDir(attemptKey{taskKey: taskKey{job: long.Id}, attempt: 1})
	if n := a.collectOnce(a.rt, a.keep, time.Now()); n != 0 {
		t.Fatalf("a fresh pass removed %d directories", n)
	}
	if _, err := c.jobs.GetTaskLogs(ctxFor(t), &cellv1.GetTaskLogsRequest{Task: &cellv1.TaskRef{JobId: done.Id}}); err != nil {
		t.Fatalf("logs of the finished task before collection: %v", err)
	}

	// The agent drops its own record of the finished attempt when its
	// view catches up with the success; until then the directory is live.
	removed := 0
	eventually(t, "a pass a day later removed the finished attempt", func() bool {
		removed += a.collectOnce(a.rt, a.keep, time.Now().Add(DefaultKeepFinished+time.Hour))
		return removed >= 1
	})
	if removed != 1 {
		t.Fatalf("passes a day later removed %d directories, want 1", removed)
	}
	if _, err := os.Stat(doneDir); !os.IsNotExist(err) {
		t.Errorf("finished attempt's directory: %v, want removed", err)
	}
	if _, err := os.Stat(filepath.Dir(doneDir)); !os.IsNotExist(err) {
		t.Errorf("finished job's directory: %v, want removed", err)
	}
	if _, err := os.Stat(filepath.Join(longDir, stdoutFile)); err != nil {
		t.Errorf("running attempt's directory: %v", err)
	}
	if _, err := c.jobs.GetTaskLogs(ctxFor(t), &cellv1.GetTaskLogsRequest{Task: &cellv1.TaskRef{JobId: done.Id}}); err == nil {
		t.Error("logs of a collected attempt are still served")
	}
	if got := scrape(t, a.MetricsAddress())["omegacell_agent_attempt_dirs_removed_total"]; got != 1 {
		t.Errorf("attempt_dirs_removed_total = %v, want 1", got)
	}
}
