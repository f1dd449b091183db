package sim

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/omegacell/omegacell/txn"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// smallWorkload is a 200-machine cell shaped like cluster-c.
func smallWorkload(t *testing.T) *Workload {
	t.Helper()
	w, err := LoadWorkload("testdata/small.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// runSmall runs the small workload for horizon seconds with cfg changed by
// edit, checking the cell's invariant every 5000 events and at the end.
func runSmall(t *testing.T, horizon float64, edit func(*Config)) *Result {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Horizon = horizon
	edit(&cfg)
	s, err := simulate(cfg, NewSynthetic(smallWorkload(t), cfg.Seed, cfg.Horizon), 5000)
	if err != nil {
		t.Fatal(err)
	}
	return s.result()
}

// serviceTJob sets t_job of the service scheduler.
func serviceTJob(c *Config, seconds float64) {
	c.Timing = map[string]Timing{
		KindBatch:   c.Timing[KindBatch],
		KindService: {JobSeconds: seconds, TaskSeconds: c.Timing[KindService].TaskSeconds},
		KindGPU:     c.Timing[KindGPU],
	}
}

func schedulerStats(t *testing.T, r *Result, name string) SchedulerStats {
	t.Helper()
	for _, s := range r.Schedulers {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no scheduler %q in %+v", name, r.Schedulers)
	return SchedulerStats{}
}

func jobStats(t *testing.T, r *Result, typ string) JobTypeStats {
	t.Helper()
	for _, j := range r.JobTypes {
		if j.Type == typ {
			return j
		}
	}
	t.Fatalf("no job type %q in %+v", typ, r.JobTypes)
	return JobTypeStats{}
}

// TestGolden pins the complete result of a tiny seeded run of every
// architecture. Run with -update after an intended change of behaviour.
// The runs use randomized first fit, so the files pin the simulator, not
// the production policies (which their own packages test, and which
// TestPoliciesPreemptAndKeepTheInvariant runs here).
func TestGolden(t *testing.T) {
	for _, arch := range Archs() {
		t.Run(string(arch), func(t *testing.T) {
			r := runSmall(t, 4*3600, func(c *Config) {
				c.Arch, c.Placement = arch, PlacementFirstFit
				serviceTJob(c, 5)
			})
			got, err := json.MarshalIndent(r, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			path := filepath.Join("testdata", "golden", string(arch)+".json")
			if *update {
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -run TestGolden -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("result differs from %s (go test -run TestGolden -update rewrites it):\n%s", path, got)
			}
		})
	}
}

// With the production policies on an overloaded cell the service policy
// preempts batch tasks; the victims go back to their scheduler and the
// cell's invariant holds throughout (checked every 5000 events).
func TestPoliciesPreemptAndKeepTheInvariant(t *testing.T) {
	w := smallWorkload(t)
	for i := range w.JobTypes {
		if w.JobTypes[i].Name == "service" {
			w.JobTypes[i].InterarrivalSeconds.Mean /= 3
		}
	}
	cfg := DefaultConfig()
	cfg.Horizon = 3 * 3600
	s, err := simulate(cfg, NewSynthetic(w, 1, cfg.Horizon), 5000)
	if err != nil {
		t.Fatal(err)
	}
	r := s.result()
	if r.Placement != string(PlacementPolicies) {
		t.Fatalf("placement %q, want policies", r.Placement)
	}
	batch, svc := jobStats(t, r, "batch"), jobStats(t, r, "service")
	if batch.TasksPreempted == 0 || svc.TasksPreempted != 0 {
		t.Errorf("preempted tasks: batch %d, service %d; want batch tasks preempted for service ones, never the reverse", batch.TasksPreempted, svc.TasksPreempted)
	}
	if svc.Scheduled*2 < svc.Submitted {
		t.Errorf("%d of %d service jobs scheduled; preemption should make room for most", svc.Scheduled, svc.Submitted)
	}
}

func TestDeterministicGivenSeed(t *testing.T) {
	run := func(seed uint64) string {
		r := runSmall(t, 3*3600, func(c *Config) { c.Seed = seed })
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	a, b, c := run(7), run(7), run(8)
	if a != b {
		t.Errorf("two runs with seed 7 differ:\n%s\n%s", a, b)
	}
	if a == c {
		t.Errorf("seeds 7 and 8 give the same result")
	}
}

// The Omega paper, section 4.2: with a slow service scheduler, Mesos locks
// nearly all resources in the service framework's offers; the batch
// framework sees only what frees up meanwhile, cannot make progress, and
// jobs are abandoned at the retry limit; the service framework starves.
// Shared state runs the same workload without abandoning anything.
func TestTwoLevelAbandonsJobsWhenServiceDecisionsAreSlow(t *testing.T) {
	const horizon = 12 * 3600
	abandoned := func(r *Result) int {
		n := 0
		for _, j := range r.JobTypes {
			n += j.Abandoned
		}
		return n
	}
	fast := runSmall(t, horizon, func(c *Config) { c.Arch = TwoLevel; serviceTJob(c, 0.1) })
	slow := runSmall(t, horizon, func(c *Config) { c.Arch = TwoLevel; serviceTJob(c, 100) })
	shared := runSmall(t, horizon, func(c *Config) { c.Arch = SharedState; serviceTJob(c, 100) })

	if n := abandoned(fast); n != 0 {
		t.Errorf("two-level with t_job(service) = 0.1s abandoned %d jobs, want 0", n)
	}
	batch := jobStats(t, slow, "batch")
	if batch.Abandoned*10 < batch.Submitted {
		t.Errorf("two-level with t_job(service) = 100s abandoned %d of %d batch jobs, want at least 10%%", batch.Abandoned, batch.Submitted)
	}
	svc := jobStats(t, slow, "service")
	if svc.Unscheduled*4 < svc.Submitted {
		t.Errorf("two-level with t_job(service) = 100s left %d of %d service jobs unscheduled, want the service framework starved (at least 25%%)", svc.Unscheduled, svc.Submitted)
	}
	if n := abandoned(shared); n != 0 {
		t.Errorf("shared state with t_job(service) = 100s abandoned %d jobs, want 0", n)
	}
}

// Head-of-line blocking: in a monolithic scheduler batch jobs queue behind
// slow service decisions (single path: every job is slow); in shared state
// the batch scheduler is not held up at all.
func TestHeadOfLineBlocking(t *testing.T) {
	const horizon = 6 * 3600
	wait := map[Arch]float64{}
	for _, arch := range []Arch{MonolithicSingle, MonolithicMulti, SharedState} {
		r := runSmall(t, horizon, func(c *Config) { c.Arch = arch; serviceTJob(c, 10) })
		wait[arch] = jobStats(t, r, "batch").WaitMean
	}
	if !(wait[MonolithicSingle] > 2*wait[MonolithicMulti]) {
		t.Errorf("batch wait: single-path %.2fs, multi-path %.2fs; want single-path well above multi-path", wait[MonolithicSingle], wait[MonolithicMulti])
	}
	if !(wait[MonolithicMulti] > 10*wait[SharedState]) || wait[SharedState] > 0.1 {
		t.Errorf("batch wait: multi-path %.3fs, shared state %.3fs; want shared state near zero and far below multi-path", wait[MonolithicMulti], wait[SharedState])
	}
}

// Conflict detection and commit modes, as in the paper's section 5:
// coarse-grained detection (any change to the machine) conflicts more than
// fine-grained (resources no longer fit), and all-or-nothing more than
// incremental.
func TestConflictModes(t *testing.T) {
	const horizon = 12 * 3600
	fraction := func(conflict txn.ConflictMode, commit txn.CommitMode) float64 {
		r := runSmall(t, horizon, func(c *Config) {
			c.Conflict, c.Commit = conflict, commit
			serviceTJob(c, 30)
		})
		return schedulerStats(t, r, "service").ConflictFraction
	}
	fine := fraction(txn.ConflictFine, txn.CommitIncremental)
	coarse := fraction(txn.ConflictCoarse, txn.CommitIncremental)
	gang := fraction(txn.ConflictFine, txn.CommitAllOrNothing)
	if fine <= 0 {
		t.Fatalf("fine-grained incremental conflict fraction is %v; the workload should conflict", fine)
	}
	if coarse < 1.5*fine {
		t.Errorf("conflict fraction: coarse %.3f, fine %.3f; want coarse at least 1.5x fine", coarse, fine)
	}
	if gang < 1.2*fine {
		t.Errorf("conflict fraction: all-or-nothing %.3f, incremental %.3f; want all-or-nothing at least 1.2x incremental", gang, fine)
	}
}

// More batch schedulers share the batch load: each is less busy.
func TestMoreBatchSchedulersAreEachLessBusy(t *testing.T) {
	const horizon = 6 * 3600
	busy := func(n int) float64 {
		r := runSmall(t, horizon, func(c *Config) {
			c.BatchSchedulers = n
			c.Timing = map[string]Timing{KindBatch: {JobSeconds: 8, TaskSeconds: 0.005}, KindService: {JobSeconds: 0.1, TaskSeconds: 0.005}, KindGPU: {JobSeconds: 0.1, TaskSeconds: 0.005}}
		})
		var sum float64
		for _, s := range r.Schedulers {
			if s.Kind == KindBatch {
				sum += s.BusynessMean
			}
		}
		return sum / float64(n)
	}
	one, four := busy(1), busy(4)
	if !(one > 0.3) || !(four < one/2) {
		t.Errorf("mean batch scheduler busyness: 1 scheduler %.3f, 4 schedulers %.3f; want the one busy and each of four under half of it", one, four)
	}
}

func TestConfigValidateNamesTheField(t *testing.T) {
	for _, tc := range []struct {
		edit func(*Config)
		want string
	}{
		{func(c *Config) { c.Arch = "ring" }, "arch:"},
		{func(c *Config) { c.Horizon = 0 }, "horizon:"},
		{func(c *Config) { delete(c.Timing, KindGPU) }, "timing[gpu]: missing"},
		{func(c *Config) { c.Timing = map[string]Timing{KindBatch: {-1, 0}, KindService: {}, KindGPU: {}} }, "timing[batch]"},
		{func(c *Config) { c.BatchSchedulers = 0 }, "batch_schedulers:"},
		{func(c *Config) { c.Conflict = 9 }, "conflict:"},
		{func(c *Config) { c.Commit = 9 }, "commit:"},
		{func(c *Config) { c.MaxAttempts = 0 }, "max_attempts:"},
		{func(c *Config) { c.RetryDelay = -1 }, "retry_delay:"},
	} {
		cfg := DefaultConfig()
		tc.edit(&cfg)
		err := cfg.Validate()
		if err == nil || !bytes.Contains([]byte(err.Error()), []byte(tc.want)) {
			t.Errorf("Validate() = %v, want an error containing %q", err, tc.want)
		}
	}
	if cfg := DefaultConfig(); cfg.Validate() != nil {
		t.Errorf("DefaultConfig().Validate() = %v", cfg.Validate())
	}
}

func TestAgendaOrdersByTimeThenInsertion(t *testing.T) {
	var a agenda
	times := []float64{5, 1, 3, 1, 5, 0, 3}
	for i, at := range times {
		a.push(event{at: at, kind: eventKind(i + 1)})
	}
	var got []eventKind
	for a.len() > 0 {
		got = append(got, a.pop().kind)
	}
	want := []eventKind{6, 2, 4, 3, 7, 1, 5}
	if !equalSlices(got, want) {
		t.Errorf("pop order %v, want %v", got, want)
	}
}

func equalSlices[T comparable](a, b []T) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
