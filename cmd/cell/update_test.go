package main

import (
	"context"
	"errors"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	grpccreds "google.golang.org/grpc/credentials"

	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
	"github.com/omegacell/omegacell/proto/credentials"
)

var updateGolden = flag.Bool("update", false, "rewrite the golden files under testdata/")

// devCell is `cell dev --simulate 0` (the store, the schedulers and a real
// agent on this machine) running in its own directory on its own ports.
type devCell struct {
	dir, addr string
	conn      *grpc.ClientConn
}

func startDevCell(t *testing.T) *devCell {
	t.Helper()
	dir := t.TempDir()
	logPath := filepath.Join(dir, "cell.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cell := exec.Command(cellBinary, "dev", "--simulate", "0", "--listen", "127.0.0.1:0", "--metrics", "",
		"--nats-listen", "127.0.0.1:-1", "--data", filepath.Join(dir, "cell-data"),
		"--stop-tasks-on-exit") // a test leaves no task process behind
	cell.Dir = dir
	cell.Stdout, cell.Stderr = logf, logf
	if err := cell.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cell.Wait() }()
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			cell.Process.Signal(syscall.SIGINT)
			select {
			case <-exited:
			case <-time.After(30 * time.Second):
				cell.Process.Kill()
				<-exited
			}
		}
		logf.Close()
		if t.Failed() {
			out, _ := os.ReadFile(logPath)
			t.Logf("cell dev output:\n%s", tail(string(out), 6000))
		}
	})
	addr := bannerAddress(t, logPath, exited, &stopped)
	credDir := filepath.Join(dir, credentials.DefaultDir)
	waitForMachines(t, addr, credDir, 1)
	admin, err := credentials.Load(credDir)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(grpccreds.NewTLS(admin.ClientTLS(credentials.ServerName(addr)))))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &devCell{dir: dir, addr: addr, conn: conn}
}

// run runs the cell binary in the cell's directory and returns its
// combined output and exit status.
func (c *devCell) run(t *testing.T, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, cellBinary, args...)
	cmd.Dir = c.dir
	cmd.Env = append(os.Environ(), "CELL_ADDR="+c.addr)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return string(out), 0
	case errors.As(err, &ee):
		return string(out), ee.ExitCode()
	}
	t.Fatalf("cell %s: %v", strings.Join(args, " "), err)
	return "", 0
}

// mustRun runs a command that must exit 0.
func (c *devCell) mustRun(t *testing.T, args ...string) string {
	t.Helper()
	out, code := c.run(t, args...)
	if code != 0 {
		t.Fatalf("cell %s: exit %d\n%s", strings.Join(args, " "), code, out)
	}
	t.Logf("$ cell %s\n%s", strings.Join(args, " "), tail(out, 1500))
	return out
}

func (c *devCell) write(t *testing.T, name, spec string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(c.dir, name), []byte(spec), 0o644); err != nil {
		t.Fatal(err)
	}
}

func (c *devCell) job(t *testing.T, name string) *cellv1.GetJobResponse {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := cellv1.NewJobServiceClient(c.conn).GetJob(ctx, &cellv1.GetJobRequest{IdOrName: name, IncludeTasks: true})
	if err != nil {
		t.Fatalf("get job %s: %v", name, err)
	}
	return r
}

// waitJob waits (generously) until cond holds for the job.
func (c *devCell) waitJob(t *testing.T, name, what string, cond func(*cellv1.GetJobResponse) bool) *cellv1.GetJobResponse {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		r := c.job(t, name)
		if cond(r) {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s never %s: %v, counts %v", name, what, r.Job, r.Counts)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// golden compares out with testdata/update/NAME.golden (-update rewrites it).
func golden(t *testing.T, name, out string) {
	t.Helper()
	path := filepath.Join("testdata", "update", name+".golden")
	if *updateGolden {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if string(want) != out {
		t.Errorf("%s differs:\ngot:\n%s\nwant:\n%s", path, out, want)
	}
}

// webSpec is a service of real processes: each becomes ready 300 ms after
// it starts (its readiness check looks for a file it creates).
func webSpec(count int, version, readyFile, update string) string {
	return `name: web
kind: service
count: ` + strconv.Itoa(count) + `
task:
  command: sh
  args: ["-c", "sleep 0.3; touch ready; exec sleep 600"]
  env:
    VERSION: "` + version + `"
  resources: {cpu: 10m, memory: 16Mi}
  readinessCheck:
    exec: ["test", "-f", "` + readyFile + `"]
    interval: 100ms
    timeout: 100ms
    failureThreshold: 1
update: ` + update + "\n"
}

// TestRollingUpdateOnARealCell is issue 13's end-to-end proof on `cell
// dev` with real processes: plan (golden), a rolling update of 6 replicas
// with maxUnavailable 1 that keeps at least 5 ready at every 100 ms
// sample, a version whose readiness check fails rolled back by itself,
// history, scale up and down, and revert.
func TestRollingUpdateOnARealCell(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a cell with real processes")
	}
	c := startDevCell(t)
	const strategy = "{maxUnavailable: 1, healthyDeadline: 60s}"
	c.write(t, "web-v1.yaml", webSpec(6, "1", "ready", strategy))
	c.write(t, "web-v2.yaml", webSpec(6, "2", "ready", strategy))
	c.write(t, "web-v3.yaml", webSpec(6, "3", "never", "{maxUnavailable: 1, healthyDeadline: 2s, autoRevert: true}"))
	c.write(t, "web-mars.yaml", strings.Replace(webSpec(6, "1", "ready", strategy), "  resources:", "  constraints: [zone = mars]\n  resources:", 1))
	defer func() { // never leave processes behind
		c.run(t, "job", "stop", "web")
		c.waitJob(t, "web", "stopped", func(r *cellv1.GetJobResponse) bool {
			return r.Counts.Running+r.Counts.Assigned == 0
		})
	}()

	plan := func(file string, wantCode int) string {
		t.Helper()
		out, code := c.run(t, "job", "plan", file)
		if code != wantCode {
			t.Fatalf("job plan %s: exit %d, want %d\n%s", file, code, wantCode, out)
		}
		return out
	}
	golden(t, "plan-new", plan("web-v1.yaml", 1))
	c.mustRun(t, "job", "run", "web-v1.yaml", "--wait", "--timeout", "2m")
	golden(t, "plan-unchanged", plan("web-v1.yaml", 0))
	golden(t, "plan-update", plan("web-v2.yaml", 1))
	golden(t, "plan-infeasible", plan("web-mars.yaml", 2))

	// The rolling update, sampled every 100 ms.
	var mu sync.Mutex
	var samples []uint32
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		jobs := cellv1.NewJobServiceClient(c.conn)
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			r, err := jobs.GetJob(ctx, &cellv1.GetJobRequest{IdOrName: "web"})
			cancel()
			if err == nil {
				mu.Lock()
				samples = append(samples, r.Counts.Ready)
				mu.Unlock()
			}
		}
	}()
	start := time.Now()
	c.mustRun(t, "job", "run", "web-v2.yaml", "--wait", "--timeout", "2m")
	took := time.Since(start)
	close(stop)
	<-sampled
	r := c.job(t, "web")
	if ro := r.Job.Rollout; ro.GetState() != cellv1.RolloutState_ROLLOUT_STATE_SUCCEEDED || ro.Version != 2 {
		t.Fatalf("rollout: %v", ro)
	}
	for _, tk := range r.Tasks {
		if tk.State == cellv1.TaskState_TASK_STATE_RUNNING && (tk.Version != 2 || !tk.Ready) {
			t.Errorf("task %d runs version %d, ready %v", tk.Index, tk.Version, tk.Ready)
		}
	}
	mu.Lock()
	minReady := uint32(1 << 31)
	for _, n := range samples {
		minReady = min(minReady, n)
	}
	mu.Unlock()
	t.Logf("rolling update of 6 replicas (maxUnavailable 1, maxSurge 25%%): %v, %d samples, fewest ready %d", took.Round(time.Millisecond), len(samples), minReady)
	if len(samples) < 3 || minReady < 5 {
		t.Fatalf("%d samples, fewest ready %d (want >= 5): %v", len(samples), minReady, samples)
	}

	// A version that never becomes ready is rolled back by itself, and
	// --wait says so with a non-zero exit.
	out, code := c.run(t, "job", "run", "web-v3.yaml", "--wait", "--timeout", "2m")
	if code == 0 || !strings.Contains(out, "version 3 was rolled back") {
		t.Fatalf("job run web-v3.yaml --wait: exit %d\n%s", code, out)
	}
	r = c.waitJob(t, "web", "back on version 2's template, all ready", func(r *cellv1.GetJobResponse) bool {
		return r.Job.Rollout.GetState() == cellv1.RolloutState_ROLLOUT_STATE_SUCCEEDED && r.Counts.Ready == 6
	})
	if r.Job.Version != 4 || r.Job.TemplateVersion != 2 || r.Job.Spec.Task.Env["VERSION"] != "2" || r.Job.Rollout.Reverts != 3 {
		t.Fatalf("after the automatic revert: version %d, template %d, env %v, rollout %v", r.Job.Version, r.Job.TemplateVersion, r.Job.Spec.Task.Env, r.Job.Rollout)
	}
	if h := c.mustRun(t, "job", "history", "web"); !strings.Contains(h, "auto-revert of version 3") || !strings.Contains(h, "4 (current)") {
		t.Fatalf("history:\n%s", h)
	}
	if s := c.mustRun(t, "job", "status", "web"); !strings.Contains(s, "Replicas:") || !strings.Contains(s, "6/6 ready") {
		t.Fatalf("status:\n%s", s)
	}

	// Scale up and down (the highest indexes stop).
	c.mustRun(t, "job", "scale", "web", "8")
	c.waitJob(t, "web", "8 ready", func(r *cellv1.GetJobResponse) bool { return r.Counts.Ready == 8 })
	c.mustRun(t, "job", "scale", "web", "3")
	r = c.waitJob(t, "web", "3 running", func(r *cellv1.GetJobResponse) bool {
		return r.Counts.Ready == 3 && r.Counts.Running == 3
	})
	var running []int
	for _, tk := range r.Tasks {
		if tk.State == cellv1.TaskState_TASK_STATE_RUNNING {
			running = append(running, int(tk.Index))
		}
	}
	sort.Ints(running)
	if len(running) != 3 || running[2] >= 3 {
		t.Errorf("after scaling down to 3, running indexes %v (want the lowest)", running)
	}

	// Revert to version 1: its template (VERSION 1) and its count (6).
	c.mustRun(t, "job", "revert", "web", "1")
	r = c.waitJob(t, "web", "back on version 1", func(r *cellv1.GetJobResponse) bool {
		return r.Job.Rollout.GetState() == cellv1.RolloutState_ROLLOUT_STATE_SUCCEEDED && r.Counts.Ready == 6 && r.Counts.Running == 6
	})
	if r.Job.Spec.Task.Env["VERSION"] != "1" || r.Job.TemplateVersion != 1 {
		t.Fatalf("revert to 1: env %v, template version %d", r.Job.Spec.Task.Env, r.Job.TemplateVersion)
	}
}
