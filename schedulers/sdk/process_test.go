package sdk

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/omegacell/omegacell/cellstate"
	"github.com/omegacell/omegacell/pbconv"
	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
	"github.com/omegacell/omegacell/proto/cellclient"
	"github.com/omegacell/omegacell/proto/credentials"
	"github.com/omegacell/omegacell/schedulers/policy/builtin"
	"github.com/omegacell/omegacell/txn"
)

// childEnv, when set, makes the test binary a scheduler process: its value
// is the childConfig as JSON. The tests re-execute their own binary this
// way, so each scheduler is a separate process without a build step.
const childEnv = "OMEGACELL_SDK_TEST_SCHEDULER"

// childConfig is what a child scheduler process runs.
type childConfig struct {
	Server   string
	Name     string
	Policy   string
	Seed     uint64
	Conflict string
}

func TestMain(m *testing.M) {
	if js := os.Getenv(childEnv); js != "" {
		os.Exit(runChild(js))
	}
	os.Exit(m.Run())
}

// runChild is the main of a child scheduler process: sdk.Run with a
// built-in policy until SIGTERM or SIGINT, metrics on a free port.
func runChild(js string) int {
	var cc childConfig
	if err := json.Unmarshal([]byte(js), &cc); err != nil {
		fmt.Fprintln(os.Stderr, "child config:", err)
		return 2
	}
	p, err := builtin.Lookup(cc.Policy)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	conflict, err := ParseConflictMode(cc.Conflict)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err = Run(ctx, Config{
		Server: cc.Server, Credentials: credentials.Client{Insecure: true}, Name: cc.Name, Policy: p, Seed: cc.Seed, ConflictMode: conflict,
		MetricsAddr: "127.0.0.1:0", StatsInterval: 50 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, nil)),
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "scheduler:", err)
		return 1
	}
	return 0
}

// childScheduler is a scheduler running as a separate process.
type childScheduler struct {
	name       string
	cmd        *exec.Cmd
	metricsURL string

	mu  sync.Mutex
	log bytes.Buffer
}

var metricsURLRE = regexp.MustCompile(`msg="scheduler metrics".* url=(\S+)`)

func startChild(t *testing.T, cc childConfig) *childScheduler {
	t.Helper()
	js, err := json.Marshal(cc)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+string(js))
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ch := &childScheduler{name: cc.Name, cmd: cmd}
	urlc := make(chan string, 1)
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			ch.mu.Lock()
			ch.log.WriteString(sc.Text() + "\n")
			ch.mu.Unlock()
			if m := metricsURLRE.FindStringSubmatch(sc.Text()); m != nil {
				urlc <- m[1]
			}
		}
		io.Copy(io.Discard, stderr)
	}()
	t.Cleanup(func() {
		// Graceful stop: SIGTERM ends Run, and the process exits 0.
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { <-copied; done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("scheduler process %s: %v\n%s", cc.Name, err, ch.output())
			}
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			t.Errorf("scheduler process %s did not stop on SIGTERM\n%s", cc.Name, ch.output())
		}
		if t.Failed() {
			t.Logf("scheduler process %s log:\n%s", cc.Name, ch.output())
		}
	})
	select {
	case ch.metricsURL = <-urlc:
	case <-time.After(30 * time.Second):
		t.Fatalf("scheduler process %s did not start:\n%s", cc.Name, ch.output())
	}
	return ch
}

func (ch *childScheduler) output() string {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	return ch.log.String()
}

var sampleRE = regexp.MustCompile(`^(\w+)(?:\{([^}]*)\})? (\S+)$`)

// scrape reads the process's /metrics and sums the samples of name whose
// labels contain every want pair (value "!x": any value but x).
func (ch *childScheduler) scrape(t *testing.T, name string, want map[string]string) float64 {
	t.Helper()
	resp, err := http.Get(ch.metricsURL)
	if err != nil {
		t.Fatalf("scrape %s: %v", ch.name, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, line := range strings.Split(string(body), "\n") {
		m := sampleRE.FindStringSubmatch(line)
		if m == nil || m[1] != name {
			continue
		}
		labels := make(map[string]string)
		for _, kv := range strings.Split(m[2], ",") {
			if k, v, ok := strings.Cut(kv, "="); ok {
				labels[k] = strings.Trim(v, `"`)
			}
		}
		match := true
		for k, v := range want {
			got, ok := labels[k]
			if !ok || (strings.HasPrefix(v, "!") && got == v[1:]) || (!strings.HasPrefix(v, "!") && got != v) {
				match = false
			}
		}
		if match {
			x, err := strconv.ParseFloat(m[3], 64)
			if err != nil {
				t.Fatalf("metric line %q: %v", line, err)
			}
			sum += x
		}
	}
	return sum
}

// TestThreeSchedulerProcessesShareOneCell is the Omega setting: the batch,
// service and GPU schedulers run as separate processes against one cell
// server, the cell about 90% full with overlapping demand. Every task that
// can be placed is placed, the invariant holds, and the races the
// schedulers lose show up as conflicts, are retried, and appear in the
// metrics and in `cell scheduler list`.
func TestThreeSchedulerProcessesShareOneCell(t *testing.T) {
	c := newTestCell(t, cellstate.Options{})
	// 3 large CPU machines, one per zone and rack, and 2 GPU machines in
	// 2 racks (no zone): 128 cores, 8 GPUs. Few machines, so the
	// schedulers' decisions overlap.
	for i := range 3 {
		c.addMachine(fmt.Sprintf("cpu%d", i), map[string]string{"zone": fmt.Sprintf("z%d", i), "rack": fmt.Sprintf("r%d", i)}, 32000, 128*gib, 0)
	}
	for i := range 2 {
		c.addMachine(fmt.Sprintf("gpu%d", i), map[string]string{"rack": fmt.Sprintf("g%d", i), "gpu.model": "H100"}, 16000, 64*gib, 4)
	}
	// The batch and service schedulers detect conflicts coarsely (any
	// change to the machine since they looked), as in the Omega paper's
	// comparison; the GPU scheduler finely.
	children := []*childScheduler{
		startChild(t, childConfig{Server: c.addr, Name: "batch", Policy: "batch", Seed: 1, Conflict: "coarse"}),
		startChild(t, childConfig{Server: c.addr, Name: "service", Policy: "service", Seed: 2, Conflict: "coarse"}),
		startChild(t, childConfig{Server: c.addr, Name: "gpu", Policy: "gpu", Seed: 3}),
	}

	// Demand: 117 of 128 cores (91%), 7 of 8 GPUs. Service and batch
	// compete for the CPU machines; batch spills onto the GPU machines.
	var specs []*cellv1.JobSpec
	for i := range 12 {
		s := jobSpec(fmt.Sprintf("svc%02d", i), "service", 200, 3, 1000, 2*gib, 0)
		s.Task.SpreadKey = "zone"
		specs = append(specs, s)
	}
	for i := range 36 {
		specs = append(specs, jobSpec(fmt.Sprintf("batch%02d", i), "batch", 100+int32(i%3), 2, 1000, 2*gib, 0))
	}
	gang := jobSpec("gang", "gpu", 150, 4, 1000, 2*gib, 1000)
	gang.Gang = true
	specs = append(specs, gang, jobSpec("frac", "gpu", 120, 4, 1000, 2*gib, 500), jobSpec("single", "gpu", 120, 1, 1000, 2*gib, 1000))
	// Interleave the schedulers' jobs so they decide at the same time.
	var wg sync.WaitGroup
	for _, group := range [][]*cellv1.JobSpec{specs[:12], specs[12:48], specs[48:]} {
		wg.Go(func() {
			for _, s := range group {
				c.submit(s)
			}
		})
	}
	wg.Wait()

	// Quiescent: every job is wholly placed or marked unschedulable.
	eventually(t, 30*time.Second, "every job placed or marked unschedulable", func() (bool, string) {
		r, err := cellclient.ListJobs(ctxT(t), c.jobs, &cellv1.ListJobsRequest{})
		if err != nil {
			return false, err.Error()
		}
		var waiting []string
		for _, j := range r.Jobs {
			if j.Counts.Pending > 0 && j.Job.UnschedulableReason == "" {
				waiting = append(waiting, fmt.Sprintf("%s(%d pending)", j.Job.Spec.Name, j.Counts.Pending))
			}
		}
		return len(r.Jobs) == len(specs) && len(waiting) == 0, fmt.Sprint(len(r.Jobs), " jobs; waiting: ", waiting)
	})
	snap := c.checkInvariant()
	checkNothingPlaceableIsPending(t, snap)
	checkGangsWhole(t, snap)

	// Conflicts happened, were retried, and are in every account of them.
	conflicted, accepted := 0.0, 0.0
	for _, ch := range children {
		conflicted += ch.scrape(t, "omegacell_scheduler_claims_total", map[string]string{"outcome": "!accepted"})
		accepted += ch.scrape(t, "omegacell_scheduler_claims_total", map[string]string{"outcome": "accepted"})
	}
	placed := 0
	for _, tk := range snap.tasks {
		if tk.MachineId != "" {
			placed++
		}
	}
	// Service replicas may preempt batch tasks, which are placed again.
	preempted := 0.0
	for _, ch := range children {
		preempted += ch.scrape(t, "omegacell_scheduler_preemptions_total", nil)
	}
	if int(accepted-preempted) != placed {
		t.Errorf("accepted claims %v - preempted %v in the metrics, tasks placed %d", accepted, preempted, placed)
	}
	if conflicted == 0 {
		t.Fatal("no claim conflicted: the schedulers never raced")
	}
	// Every process has sent its figures at least once after its last
	// commit; the store's own counts agree with the processes' metrics.
	eventually(t, 10*time.Second, "reported figures match the metrics", func() (bool, string) {
		r, err := c.schedulers.ListSchedulers(ctxT(t), &cellv1.ListSchedulersRequest{})
		if err != nil {
			return false, err.Error()
		}
		var sumConflicted, sumReported uint64
		for _, info := range r.Schedulers {
			sumConflicted += info.ClaimsConflicted
			sumReported += info.Stats.GetClaimsConflicted()
		}
		return sumConflicted == uint64(conflicted) && sumReported == uint64(conflicted),
			fmt.Sprintf("store counted %d, schedulers reported %d, metrics %v", sumConflicted, sumReported, conflicted)
	})
	fractions := 0.0
	for _, ch := range children {
		fractions += ch.scrape(t, "omegacell_scheduler_conflict_fraction", nil)
		if ch.scrape(t, "omegacell_scheduler_busy_seconds_total", nil) <= 0 {
			t.Errorf("%s: busy_seconds_total is 0", ch.name)
		}
	}
	if fractions <= 0 {
		t.Error("conflict fraction is 0 in every scheduler despite conflicts")
	}
	t.Logf("placed %d tasks; %v claims conflicted and were retried", placed, conflicted)
}

// checkNothingPlaceableIsPending fails for a job with a pending task that
// the final cell could still take: a ready machine with the right labels
// (constraints; the spread label when the job spreads) and room for it by
// txn's fit check. A gang needs room for all its pending tasks at once.
func checkNothingPlaceableIsPending(t *testing.T, snap cellSnapshot) {
	t.Helper()
	pending := make(map[string][]*cellv1.Task)
	for _, tk := range snap.tasks {
		if tk.State == cellv1.TaskState_TASK_STATE_PENDING {
			pending[tk.JobId] = append(pending[tk.JobId], tk)
		}
	}
	for _, j := range snap.jobs {
		tasks := pending[j.Id]
		if len(tasks) == 0 {
			continue
		}
		tk := pbconv.Task(tasks[0], j.Spec.Task)
		need := 1
		if j.Spec.Gang {
			need = len(tasks)
		}
		room := 0
		for _, pm := range snap.machines {
			m := pbconv.Machine(pm)
			if _, ok := m.Labels[j.Spec.Task.SpreadKey]; j.Spec.Task.SpreadKey != "" && !ok {
				continue
			}
			if _, unmet := txn.FirstUnmet(tk.Constraints, m.Labels); unmet || m.State != txn.MachineReady {
				continue
			}
			room += copiesThatFit(m, tk.Resources)
		}
		if room >= need {
			t.Errorf("job %s has %d pending tasks, but the cell has room for %d of them (reason %q)",
				j.Spec.Name, len(tasks), room, j.UnschedulableReason)
		}
	}
}

// copiesThatFit counts how many more tasks requesting r fit on m.
func copiesThatFit(m *txn.Machine, r txn.Resources) int {
	m = m.Clone()
	n := 0
	for ; n < 1000; n++ {
		devices, ok := txn.AssignDevices(m, r.GPUMilli)
		if !ok || txn.Fits(m, r, devices) != txn.ReasonOK {
			break
		}
		txn.Allocate(m, r, devices)
	}
	return n
}

// checkGangsWhole fails for a gang job holding some but not all tasks.
func checkGangsWhole(t *testing.T, snap cellSnapshot) {
	t.Helper()
	held := make(map[string]uint32)
	for _, tk := range snap.tasks {
		if tk.MachineId != "" {
			held[tk.JobId]++
		}
	}
	for _, j := range snap.jobs {
		if n := held[j.Id]; j.Spec.Gang && n != 0 && n != j.Spec.Count {
			t.Errorf("gang %s holds %d of %d tasks", j.Spec.Name, n, j.Spec.Count)
		}
	}
}
