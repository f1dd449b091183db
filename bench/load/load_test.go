package load

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"math"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/omegacell/omegacell/cellserver"
)

// The end-to-end tests run each built-in workload small: a real cell with
// fsync on a temp dir, a simulated fleet, sdk schedulers, all on loopback.

func runSmall(t *testing.T, name string, o Overrides, k int) *Report {
	t.Helper()
	return runSmallReplicas(t, name, o, k, 1)
}

func runSmallReplicas(t *testing.T, name string, o Overrides, k, replicas int) *Report {
	t.Helper()
	w, err := LoadWorkload(name)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Apply(o); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	rep, err := Run(ctx, Config{Workload: w, Schedulers: k, SampleInterval: 250 * time.Millisecond,
		Timeout: 30 * time.Second, DataDir: t.TempDir(), Replicas: replicas})
	if err != nil {
		t.Fatal(err)
	}
	checkReport(t, rep)
	if want := inProcess(replicas); rep.Server != want {
		t.Errorf("server %q, want %q", rep.Server, want)
	}
	return rep
}

// checkReport asserts what holds for every successful run.
func checkReport(t *testing.T, rep *Report) {
	t.Helper()
	if !rep.Synced || !strings.HasPrefix(rep.Server, "in-process") {
		t.Errorf("synced %v, server %q", rep.Synced, rep.Server)
	}
	if len(rep.Phases) == 0 {
		t.Fatal("no measured phase")
	}
	for _, p := range rep.Phases {
		if p.Tasks <= 0 || p.Jobs <= 0 || p.Seconds <= 0 || p.PlacementsPerS <= 0 {
			t.Errorf("phase %s: %d tasks, %d jobs, %v s, %v placements/s", p.Name, p.Tasks, p.Jobs, p.Seconds, p.PlacementsPerS)
		}
		if math.Abs(p.PlacementsPerS*p.Seconds-float64(p.Tasks)) > 1e-6*float64(p.Tasks) {
			t.Errorf("phase %s: %v placements/s × %v s is not %d tasks", p.Name, p.PlacementsPerS, p.Seconds, p.Tasks)
		}
		l := p.SubmitToPlaced
		if l.Count != int64(p.Tasks) || l.P50MS <= 0 || l.P50MS > l.P99MS || l.P99MS > l.MaxMS || l.MaxMS > 1000*p.Seconds+30_000 {
			t.Errorf("phase %s: submit→placed %+v for %d tasks", p.Name, l, p.Tasks)
		}
		if r := p.SubmitToRunning; r.Count > int64(p.Tasks) || (r.Count > 0 && r.P50MS < l.P50MS/2) {
			t.Errorf("phase %s: submit→running %+v against placed %+v", p.Name, r, l)
		}
		if p.SubmitCall.Count != int64(p.Jobs) {
			t.Errorf("phase %s: %d SubmitJob calls timed for %d jobs", p.Name, p.SubmitCall.Count, p.Jobs)
		}
		s := p.Store
		if s == nil || s.Commits == 0 || s.GroupCommits == 0 || s.CommitP50MS <= 0 || s.CommitP50MS > s.CommitP99MS || s.GroupCommitsPerS <= 0 {
			t.Errorf("phase %s: store figures %+v", p.Name, s)
		}
		var accepted uint64
		for _, sf := range p.Schedulers {
			accepted += sf.Accepted
			if sf.Busyness < 0 || sf.Busyness > 1.05 || sf.ConflictFraction < 0 {
				t.Errorf("phase %s: scheduler %+v", p.Name, sf)
			}
		}
		if accepted != uint64(p.Tasks) {
			t.Errorf("phase %s: schedulers accepted %d claims for %d tasks", p.Name, accepted, p.Tasks)
		}
		if p.Moved+p.Replaced+p.Ended != 0 {
			t.Errorf("phase %s: anomalies %v", p.Name, p.Problems)
		}
	}
	c := rep.CPU
	if c == nil || c.UserSeconds+c.SysSeconds <= 0 || c.WallSeconds <= 0 {
		t.Fatalf("cpu %+v", c)
	}
	var share float64
	for _, comp := range c.Components {
		share += comp.Share
		known := comp.Name == compServer || comp.Name == compAgents || comp.Name == compBench || comp.Name == compUnattributed ||
			strings.HasPrefix(comp.Name, compSchedPrefix)
		if !known || comp.Seconds < 0 {
			t.Errorf("cpu component %+v", comp)
		}
	}
	if len(c.Components) > 0 && math.Abs(share-1) > 1e-9 {
		t.Errorf("component shares sum to %v", share)
	}
	v := rep.Verification
	if !v.OK || v.Checked == 0 || v.Machines != rep.Machines || v.Tasks < v.Checked {
		t.Errorf("verification %+v", v)
	}
}

func TestBasicSmall(t *testing.T) {
	rep := runSmall(t, "basic", Overrides{Machines: 200, Tasks: 500, TasksPerJob: 50}, 2)
	p := rep.Phases[0]
	if p.Name != "measured" || p.Tasks != 500 || p.Jobs != 10 {
		t.Errorf("phase %s: %d tasks in %d jobs, want measured: 500 in 10", p.Name, p.Tasks, p.Jobs)
	}
	if len(p.Schedulers) != 2 || p.Schedulers[0].Accepted == 0 || p.Schedulers[1].Accepted == 0 {
		t.Errorf("two batch instances should share the jobs: %+v", p.Schedulers)
	}
	if rep.Verification.Checked != 1000+500 {
		t.Errorf("checked %d tasks, want the 1,000 pre-placed and the 500 measured", rep.Verification.Checked)
	}
}

// TestBasicSmallReplicated runs the basic workload against a replicated
// in-process cell of three servers (--replicas 3, issue 15): every part
// dials all three and follows the leader, the invariant holds, and the
// store's figures are the leader's.
func TestBasicSmallReplicated(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: three servers")
	}
	rep := runSmallReplicas(t, "basic", Overrides{Machines: 100, Tasks: 300, TasksPerJob: 50}, 1, 3)
	if p := rep.Phases[0]; p.Tasks != 300 {
		t.Errorf("phase %s: %d tasks, want 300", p.Name, p.Tasks)
	}
}

func TestMixedSmall(t *testing.T) {
	rep := runSmall(t, "mixed", Overrides{Machines: 400, Tasks: 3000, TasksPerJob: 100}, 1)
	p := rep.Phases[0]
	if p.Tasks != 2502+450+48 {
		t.Errorf("tasks = %d, want 3,000", p.Tasks)
	}
	for _, s := range p.Schedulers {
		if s.Accepted == 0 || s.Transactions == 0 {
			t.Errorf("scheduler %s placed nothing: %+v", s.Name, s)
		}
	}
}

func TestLatencySmall(t *testing.T) {
	rep := runSmall(t, "latency", Overrides{Machines: 200, Rate: 100, Duration: 2 * time.Second}, 1)
	p := rep.Phases[0]
	if p.TargetJobsPerS != 100 || p.Jobs != 200 || p.Tasks != 200 {
		t.Errorf("phase: %v jobs/s, %d jobs, %d tasks", p.TargetJobsPerS, p.Jobs, p.Tasks)
	}
	// 2 s sampled every 250 ms: at least 6 samples, the first skipped.
	if len(p.Samples) < 6 || p.Sampled.N != len(p.Samples)-1 || p.Sampled.Average <= 0 ||
		p.Sampled.P50 > p.Sampled.P90 || p.Sampled.P90 > p.Sampled.P99 {
		t.Errorf("samples %v summarised as %+v", p.Samples, p.Sampled)
	}
	if p.Seconds < 1.9 {
		t.Errorf("a 2 s rate phase placed everything in %v s", p.Seconds)
	}
}

// TestCommandJSON runs the command as a person would, with --json.
func TestCommandJSON(t *testing.T) {
	cmd := Command()
	var out, errOut bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs([]string{"--workload", "basic", "--machines", "100", "--tasks", "200", "--tasks-per-job", "20", "--json", "--quiet", "--data", t.TempDir()})
	if err := cmd.ExecuteContext(context.Background()); err != nil {
		t.Fatalf("%v\n%s", err, errOut.String())
	}
	var rep Report
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("output is not a JSON report: %v\n%s", err, out.String())
	}
	if rep.Workload != "basic" || rep.Machines != 100 || len(rep.Phases) != 1 || rep.Phases[0].Tasks != 200 || !rep.Verification.OK {
		t.Errorf("report %+v", rep)
	}

	bad := Command()
	bad.SetOut(&out)
	bad.SetErr(&errOut)
	bad.SetArgs([]string{"--workload", "latency", "--tasks", "5"})
	if err := bad.ExecuteContext(context.Background()); err == nil || !strings.Contains(err.Error(), "--tasks") {
		t.Errorf("--tasks on latency: %v", err)
	}
}

func TestReportText(t *testing.T) {
	snap, jobs := goodCell()
	rep := &Report{Workload: "w", Server: "in-process", Synced: true, Machines: 2, Schedulers: []string{"batch (batch)"},
		Phases: []PhaseReport{{Name: "p", Jobs: 1, Tasks: 2, Seconds: 0.5, PlacementsPerS: 4, Samples: []float64{3, 4, 5},
			Sampled: summarize([]float64{3, 4, 5}), Store: &StoreFigures{Commits: 1},
			Schedulers: []SchedulerFigures{{Name: "batch", Policy: "batch", Accepted: 2}}}},
		CPU:          &CPUFigures{WallSeconds: 1, UserSeconds: 0.5, Components: []ComponentCPU{{Name: compServer, Seconds: 0.5, Share: 1}}},
		Verification: verify(snap, jobs),
	}
	var b bytes.Buffer
	if err := rep.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"workload w", "fsync on every group commit", "4 overall", "n=2): average 4", "invariant OK", "server"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("text lacks %q:\n%s", want, b.String())
		}
	}
	snap.tasks[0].Attempt = 3
	rep.Verification = verify(snap, jobs)
	b.Reset()
	_ = rep.WriteText(&b)
	if !strings.Contains(b.String(), "INVARIANT BROKEN") {
		t.Errorf("a broken invariant is not shown loudly:\n%s", b.String())
	}
}

// TestExternalServer runs against a cell started apart, as `--server` and
// `--server-metrics` do against `cell server`.
func TestExternalServer(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	metricsAddr := lis.Addr().String()
	lis.Close()
	srv, err := cellserver.Start(cellserver.Config{DataDir: t.TempDir(), Listen: "127.0.0.1:0", Metrics: metricsAddr,
		NATSListen: "127.0.0.1:-1"}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	w, err := LoadWorkload("basic")
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Apply(Overrides{Machines: 100, Tasks: 200, TasksPerJob: 20}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	rep, err := Run(ctx, Config{Workload: w, Server: srv.Addr(), Credentials: srv.AdminDir(), ServerMetrics: "http://" + metricsAddr + "/metrics", Timeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Server != srv.Addr() || len(rep.Phases) != 1 || rep.Phases[0].Store == nil || rep.Phases[0].Store.Commits == 0 || !rep.Verification.OK {
		t.Errorf("report against %s: %+v", srv.Addr(), rep)
	}
	if _, err := Run(ctx, Config{Workload: w, Server: srv.Addr(), Credentials: srv.AdminDir(), UnsafeNoSync: true}); err == nil {
		t.Error("--unsafe-no-sync was accepted with --server")
	}
}
