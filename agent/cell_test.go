package agent

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/omegacell/omegacell/agent/procstat"
	"github.com/omegacell/omegacell/cellstate"
	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
	"github.com/omegacell/omegacell/proto/cellclient"
	"github.com/omegacell/omegacell/proto/credentials"
)

// testCell is the real cell-state store with its gRPC server on loopback
// and liveness over a real embedded NATS server. It can be restarted on
// the same directory and port, as a real server restart would be.
type testCell struct {
	t     *testing.T
	dir   string
	addr  string
	grace time.Duration
	ns    *server.Server
	nc    *nats.Conn

	store *cellstate.Store
	live  *cellstate.Liveness
	grpc  *grpc.Server

	conn     *grpc.ClientConn
	jobs     cellv1.JobServiceClient
	machines cellv1.MachineServiceClient
	state    cellv1.StateServiceClient
}

func newTestCell(t *testing.T, grace time.Duration) *testCell {
	c := &testCell{t: t, dir: t.TempDir(), addr: "127.0.0.1:0", grace: grace, ns: startNATS(t)}
	var err error
	if c.nc, err = nats.Connect(c.ns.ClientURL()); err != nil {
		t.Fatal(err)
	}
	c.start()
	t.Cleanup(func() {
		c.stop()
		c.nc.Close()
	})
	return c
}

func (c *testCell) start() {
	c.t.Helper()
	st, err := cellstate.Open(cellstate.Options{Dir: c.dir, Logger: discard})
	if err != nil {
		c.t.Fatal(err)
	}
	live, err := cellstate.StartLiveness(st, cellstate.LivenessOptions{Conn: c.nc, Grace: c.grace, CheckEvery: c.grace / 5})
	if err != nil {
		c.t.Fatal(err)
	}
	srv := cellstate.NewServer(st, cellstate.ServerOptions{
		Liveness: live, NATSURL: c.ns.ClientURL(), HeartbeatInterval: 100 * time.Millisecond, Insecure: true,
		Logs: cellstate.LogOptions{Conn: c.nc},
	})
	lis, err := net.Listen("tcp", c.addr)
	if err != nil {
		c.t.Fatal(err)
	}
	c.addr = lis.Addr().String()
	c.store, c.live, c.grpc = st, live, srv.GRPCServer()
	go func() { _ = c.grpc.Serve(lis) }()
	if c.conn == nil {
		if c.conn, err = grpc.NewClient(c.addr, grpc.WithTransportCredentials(insecure.NewCredentials())); err != nil {
			c.t.Fatal(err)
		}
		c.jobs = cellv1.NewJobServiceClient(c.conn)
		c.machines = cellv1.NewMachineServiceClient(c.conn)
		c.state = cellv1.NewStateServiceClient(c.conn)
	}
}

func (c *testCell) stop() {
	if c.store == nil {
		return
	}
	c.store.CloseWatchers()
	c.grpc.Stop()
	c.live.Close()
	if err := c.store.Close(); err != nil {
		c.t.Errorf("close store: %v", err)
	}
	c.store = nil
}

// replaceNATS swaps the NATS server for a new one on another port, as a
// restarted `cell server` with an embedded NATS on a free port does.
// Agents learn the new address when they register again.
func (c *testCell) replaceNATS() {
	c.t.Helper()
	c.nc.Close()
	c.ns.Shutdown()
	c.ns.WaitForShutdown()
	c.ns = startNATS(c.t)
	var err error
	if c.nc, err = nats.Connect(c.ns.ClientURL()); err != nil {
		c.t.Fatal(err)
	}
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// submit submits a batch job running a shell script.
func (c *testCell) submit(name string, count uint32, script string, retry uint32) *cellv1.Job {
	c.t.Helper()
	r, err := c.jobs.SubmitJob(ctxFor(c.t), &cellv1.SubmitJobRequest{Spec: &cellv1.JobSpec{
		Name: name, Scheduler: "batch", Priority: 100, Count: count, RetryLimit: retry, Kind: cellv1.JobKind_JOB_KIND_BATCH,
		Task: &cellv1.TaskTemplate{Command: "sh", Args: []string{"-c", script},
			Resources: &cellv1.Resources{CpuMilli: 100, MemoryBytes: 64 << 20}},
	}})
	if err != nil {
		c.t.Fatalf("submit %s: %v", name, err)
	}
	return r.Job
}

// place commits task index of job on machine, as the batch scheduler.
func (c *testCell) place(job *cellv1.Job, index uint32, machine string) {
	c.t.Helper()
	r, err := c.state.Commit(ctxFor(c.t), &cellv1.CommitRequest{Scheduler: "batch", Claims: []*cellv1.Claim{{
		Task: &cellv1.TaskRef{JobId: job.Id, Index: index}, MachineId: machine, Resources: job.Spec.Task.Resources,
	}}})
	if err != nil || r.Accepted != 1 {
		c.t.Fatalf("place %s/%d on %s: %v %v", job.Spec.Name, index, machine, r, err)
	}
}

func (c *testCell) task(job *cellv1.Job, index uint32) *cellv1.Task {
	c.t.Helper()
	r, err := c.jobs.GetJob(ctxFor(c.t), &cellv1.GetJobRequest{IdOrName: job.Id, IncludeTasks: true})
	if err != nil {
		c.t.Fatal(err)
	}
	return r.Tasks[index]
}

// eventually polls cond every 20 ms for up to 15 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// runAgent starts a real agent for machine name against the cell.
func runAgent(t *testing.T, c *testCell, name string) (*Agent, context.CancelFunc) {
	t.Helper()
	return runAgentIn(t, c, name, t.TempDir())
}

// runAgentIn starts a real agent on the given data directory; it stops its
// tasks when it exits.
func runAgentIn(t *testing.T, c *testCell, name, data string) (*Agent, context.CancelFunc) {
	t.Helper()
	t.Cleanup(func() { killShims(t, data) })
	a, err := New(context.Background(), Config{
		StopTasksOnExit: true,
		Server:          c.addr, Name: name, DataDir: data, Labels: map[string]string{"zone": "z1"},
		CPUMilli: 4000, MemoryBytes: 8 << 30, DiskBytes: 10 << 30, GPUs: 0,
		UsageInterval: 200 * time.Millisecond, StopGrace: 300 * time.Millisecond, CgroupRoot: "-",
		MetricsListen: "127.0.0.1:0", Logger: discard, Credentials: credentials.Client{Insecure: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("agent %s: %v", name, err)
		}
	}
	t.Cleanup(stop)
	select {
	case <-a.Synced():
	case <-time.After(15 * time.Second):
		t.Fatal("agent did not sync with the server")
	}
	return a, stop
}

func TestAgentRunsTasksAgainstTheRealStore(t *testing.T) {
	c := newTestCell(t, 2*time.Second)
	a, _ := runAgent(t, c, "m1")
	job := c.submit("hello", 2, `echo "hello from $OMEGACELL_TASK_INDEX"; echo "to stderr" >&2; exit $((OMEGACELL_TASK_INDEX * 3))`, 0)
	// One after the other: task 1's failure fails the job (retry limit 0),
	// which would kill task 0 if it still ran.
	c.place(job, 0, "m1")
	eventually(t, "task 0 succeeded", func() bool { return c.task(job, 0).State == succeeded })
	c.place(job, 1, "m1")
	eventually(t, "task 1 ended", func() bool {
		st := c.task(job, 1).State
		return st != runningS && st != assigned
	})
	if t1 := c.task(job, 1); t1.ExitCode != 3 || !strings.Contains(t1.Message, "exited with code 3") {
		t.Fatalf("task 1 = %v, want exit code 3 and its message", t1)
	}
	r, err := c.jobs.GetJob(ctxFor(t), &cellv1.GetJobRequest{IdOrName: job.Id})
	if err != nil || r.Job.State != cellv1.JobState_JOB_STATE_FAILED {
		t.Fatalf("job = %v, %v; want FAILED (retry limit 0)", r.GetJob(), err)
	}

	// Logs come back through the server, which asks the agent over NATS.
	for stream, want := range map[cellv1.LogStream]string{
		cellv1.LogStream_LOG_STREAM_STDOUT: "hello from 0\n",
		cellv1.LogStream_LOG_STREAM_STDERR: "to stderr\n",
	} {
		logs, err := c.jobs.GetTaskLogs(ctxFor(t), &cellv1.GetTaskLogsRequest{Task: &cellv1.TaskRef{JobId: job.Id}, Stream: stream})
		if err != nil || string(logs.Data) != want {
			t.Fatalf("%v via the server = %q, %v; want %q", stream, logs.GetData(), err, want)
		}
	}
	if reg := a.Registration(); reg.Labels["zone"] != "z1" {
		t.Fatalf("registration %v lacks the labels", reg)
	}

	eventually(t, "a heartbeat was published", func() bool { return scrape(t, a.MetricsAddress())["omegacell_agent_heartbeats_total"] >= 1 })
	m := scrape(t, a.MetricsAddress())
	for name, want := range map[string]float64{"omegacell_agent_machines": 1, "omegacell_agent_task_starts_total": 2, "omegacell_agent_tasks_running": 0} {
		if m[name] != want {
			t.Errorf("%s = %v, want %v", name, m[name], want)
		}
	}
	if applied, syncs := m["omegacell_agent_task_reports_applied_total"], m["omegacell_agent_server_syncs_total"]; applied < 2 || syncs != 1 {
		t.Errorf("%v applied reports and %v syncs, want at least 2 and exactly 1", applied, syncs)
	}
}

// scrape reads the unlabelled samples of a /metrics page.
func scrape(t *testing.T, addr string) map[string]float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[string]float64)
	for _, line := range strings.Split(string(body), "\n") {
		f := strings.Fields(line)
		if len(f) == 2 && !strings.HasPrefix(line, "#") {
			v, err := strconv.ParseFloat(f[1], 64)
			if err == nil {
				out[f[0]] = v
			}
		}
	}
	return out
}

func TestUsageArrivesAndStopKillsTheTask(t *testing.T) {
	c := newTestCell(t, 2*time.Second)
	a, _ := runAgent(t, c, "m1")
	job := c.submit("spin", 1, `trap "echo terminated; exit 0" TERM; while :; do :; done`, 0)
	c.place(job, 0, "m1")
	eventually(t, "the task runs", func() bool { return c.task(job, 0).State == runningS })

	eventually(t, "usage of machine and task is visible through the API", func() bool {
		r, err := c.machines.GetMachine(ctxFor(t), &cellv1.GetMachineRequest{Id: "m1"})
		if err != nil || r.Machine.Usage == nil || r.Machine.LastHeartbeatUnixNano == 0 || len(r.Tasks) != 1 {
			return false
		}
		u := r.Tasks[0].Usage
		return u.GetCpuMilli() > 0 && u.GetMemoryBytes() > 0
	})

	if _, err := c.jobs.StopJob(ctxFor(t), &cellv1.StopJobRequest{IdOrName: job.Id}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the agent stopped the process", func() bool { return a.fleet.runningCount() == 0 })
	dir := filepath.Join(a.fleet.rt.(*processRuntime).attemptDir(attemptKey{taskKey{job.Id, 0}, 1}))
	waitForFile(t, filepath.Join(dir, stdoutFile), "terminated")
	if st := c.task(job, 0).State; st != killed {
		t.Fatalf("task state %v after StopJob, want killed", st)
	}
}

// attemptPID reads the pid of a running attempt from its pid file.
func attemptPID(t *testing.T, a *Agent, k attemptKey) int {
	t.Helper()
	var pid int
	eventually(t, "the attempt's pid file exists", func() bool {
		data, err := os.ReadFile(filepath.Join(a.fleet.rt.(*processRuntime).attemptDir(k), pidFile))
		if err != nil || len(strings.Fields(string(data))) != 4 {
			return false
		}
		pid, err = strconv.Atoi(strings.Fields(string(data))[0])
		return err == nil && pid > 0
	})
	return pid
}

func TestServerRestartKeepsTasksRunningAndAgentResyncs(t *testing.T) {
	c := newTestCell(t, 2*time.Second)
	a, _ := runAgent(t, c, "m1")
	long := c.submit("long", 1, "sleep 60", 0)
	short := c.submit("short", 1, `while [ ! -f release ]; do sleep 0.02; done; exit 0`, 0)
	c.place(long, 0, "m1")
	c.place(short, 0, "m1")
	eventually(t, "both tasks run", func() bool {
		return c.task(long, 0).State == runningS && c.task(short, 0).State == runningS
	})
	pid := attemptPID(t, a, attemptKey{taskKey{long.Id, 0}, 1})
	sessions := a.driver.sessions.Load()

	c.stop()
	// While the server is down the short task ends; its end must reach
	// the server once it is back.
	shortDir := a.fleet.rt.(*processRuntime).attemptDir(attemptKey{taskKey{short.Id, 0}, 1})
	if err := os.WriteFile(filepath.Join(shortDir, "release"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the short task ended locally", func() bool { return a.fleet.runningCount() == 1 })
	c.replaceNATS()
	c.start()

	eventually(t, "the agent read its view again", func() bool { return a.driver.sessions.Load() > sessions })
	eventually(t, "the end missed by the server is reported", func() bool { return c.task(short, 0).State == succeeded })
	if st := c.task(long, 0); st.State != runningS || st.Attempt != 1 {
		t.Fatalf("long task after the restart = %v, want still running as attempt 1", st)
	}
	if err := syscall.Kill(pid, 0); err != nil {
		t.Fatalf("long task's process %d died across the server restart: %v", pid, err)
	}
	// The agent answers log requests on the new NATS too.
	eventually(t, "logs come back over the new NATS", func() bool {
		_, err := c.jobs.GetTaskLogs(ctxFor(t), &cellv1.GetTaskLogsRequest{Task: &cellv1.TaskRef{JobId: short.Id}})
		return err == nil
	})
	if got := attemptPID(t, a, attemptKey{taskKey{long.Id, 0}, 1}); got != pid {
		t.Fatalf("long task pid %d after the restart, want the same process %d", got, pid)
	}
	// Usage lives only in the new server's memory and only comes over
	// NATS: seeing it proves heartbeats found the new NATS address.
	eventually(t, "heartbeats with usage reach the restarted server over the new NATS", func() bool {
		r, err := c.machines.GetMachine(ctxFor(t), &cellv1.GetMachineRequest{Id: "m1"})
		return err == nil && r.Machine.Usage != nil
	})
}

func TestDrainStopsTasksOnTheMachine(t *testing.T) {
	c := newTestCell(t, 2*time.Second)
	a, _ := runAgent(t, c, "m1")
	job := c.submit("drained", 1, "sleep 60", 0)
	c.place(job, 0, "m1")
	eventually(t, "the task runs", func() bool { return c.task(job, 0).State == runningS })
	pid := attemptPID(t, a, attemptKey{taskKey{job.Id, 0}, 1})
	if _, err := c.machines.DrainMachine(ctxFor(t), &cellv1.DrainMachineRequest{Id: "m1", Drain: true}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the agent stopped the evicted task", func() bool { return a.fleet.runningCount() == 0 })
	waitDead(t, pid)
	if st := c.task(job, 0).State; st != pending {
		t.Fatalf("drained task is %v, want pending", st)
	}
}

// An agent that goes silent (stopped without reporting, as after SIGKILL)
// is marked down after the grace period; its task returns to pending, is
// placed on another agent and runs there as the next attempt.
func TestSilentAgentsTaskMovesToAnotherAgent(t *testing.T) {
	const grace = time.Second
	c := newTestCell(t, grace)
	_, stopA := runAgent(t, c, "m1")
	b, _ := runAgent(t, c, "m2")
	job := c.submit("mover", 1, "sleep 60", 0)
	c.place(job, 0, "m1")
	eventually(t, "the task runs on m1", func() bool { return c.task(job, 0).State == runningS })

	silent := time.Now()
	stopA()
	eventually(t, "the task is lost and back to pending", func() bool { return c.task(job, 0).State == pending })
	if took := time.Since(silent); took > grace+5*time.Second {
		t.Fatalf("task returned to pending %v after its agent went silent, want within grace + 5s", took)
	}
	c.place(job, 0, "m2")
	eventually(t, "the task runs on m2", func() bool {
		tk := c.task(job, 0)
		return tk.State == runningS && tk.MachineId == "m2" && tk.Attempt == 2
	})
	attemptPID(t, b, attemptKey{taskKey{job.Id, 0}, 2})
}

func TestSimulatedFleetAgainstTheRealStore(t *testing.T) {
	c := newTestCell(t, 2*time.Second)
	p := DefaultProfile()
	sim, err := NewSimulation(SimConfig{Server: c.addr, Prefix: "sim", Machines: 200, Profile: p, Credentials: credentials.Client{Insecure: true},
		UsageInterval: 200 * time.Millisecond, RegisterConcurrency: 16, Logger: discard})
	if err != nil {
		t.Fatal(err)
	}
	subsBefore := c.ns.NumSubscriptions()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sim.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("simulation: %v", err)
		}
	})
	select {
	case <-sim.Synced():
	case <-time.After(15 * time.Second):
		t.Fatal("simulation did not sync")
	}
	eventually(t, "all 200 machines heartbeat", func() bool {
		r, err := cellclient.ListMachines(ctxFor(t), c.machines, &cellv1.ListMachinesRequest{})
		if err != nil || len(r.Machines) != 200 {
			return false
		}
		for _, m := range r.Machines {
			if m.LastHeartbeatUnixNano == 0 || m.State != cellv1.MachineState_MACHINE_STATE_READY {
				return false
			}
		}
		return true
	})

	r, err := c.jobs.SubmitJob(ctxFor(t), &cellv1.SubmitJobRequest{Spec: &cellv1.JobSpec{
		Name: "simbatch", Scheduler: "batch", Priority: 100, Count: 50, Kind: cellv1.JobKind_JOB_KIND_BATCH,
		Task: &cellv1.TaskTemplate{Command: "train", DurationMs: 300, Resources: &cellv1.Resources{CpuMilli: 1000, MemoryBytes: 1 << 30}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	job := r.Job
	for i := range uint32(50) {
		c.place(job, i, sim.Machines()[i*4].Id)
	}
	eventually(t, "the simulated job succeeded", func() bool {
		r, err := c.jobs.GetJob(ctxFor(t), &cellv1.GetJobRequest{IdOrName: job.Id})
		return err == nil && r.Job.State == cellv1.JobState_JOB_STATE_SUCCEEDED && r.Counts.Succeeded == 50
	})

	svc := c.submit("simsvc", 3, "x", 0) // duration 0: runs until stopped
	for i := range uint32(3) {
		c.place(svc, i, sim.Machines()[i].Id)
	}
	eventually(t, "simulated tasks run", func() bool {
		for i := range uint32(3) {
			if c.task(svc, i).State != runningS {
				return false
			}
		}
		return true
	})
	// The fleet keeps no logs: it subscribes to nothing (not one logs
	// subject per machine), and the server says so.
	if subs := c.ns.NumSubscriptions(); subs > subsBefore+2 {
		t.Errorf("NATS subscriptions went from %d to %d with 200 simulated machines", subsBefore, subs)
	}
	_, err = c.jobs.GetTaskLogs(ctxFor(t), &cellv1.GetTaskLogsRequest{Task: &cellv1.TaskRef{JobId: svc.Id}})
	if want := "machine " + sim.Machines()[0].Id + " is simulated and keeps no logs"; status.Code(err) != codes.Unimplemented || !strings.Contains(err.Error(), want) {
		t.Errorf("logs of a simulated task: %v; want Unimplemented %q", err, want)
	}
	eventually(t, "simulated usage is visible", func() bool {
		r, err := c.machines.GetMachine(ctxFor(t), &cellv1.GetMachineRequest{Id: sim.Machines()[0].Id})
		return err == nil && len(r.Tasks) == 1 && r.Tasks[0].Usage.GetCpuMilli() > 0 && r.Machine.Usage.GetCpuMilli() > 0
	})
	if _, err := c.jobs.StopJob(ctxFor(t), &cellv1.StopJobRequest{IdOrName: svc.Id}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the fleet stopped the simulated tasks", func() bool { return sim.fleet.runningCount() == 0 })
	if err := c.store.CheckInvariant(); err != nil {
		t.Fatal(err)
	}
}

func TestCommandRejectsMixedModes(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--simulate", "3", "--cpu", "4"}, "--cpu describes a real machine"},
		{[]string{"--profile", "zones=2"}, "give --simulate N too"},
		{[]string{"--simulate", "-1"}, "want a number of machines"},
		{[]string{"--simulate", "2", "--profile", "zones=0"}, "profile: zones"},
		{[]string{"--labels", "zone", "--server", "127.0.0.1:1"}, "not key=value"},
		{[]string{"--memory", "lots", "--server", "127.0.0.1:1"}, "--memory"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.args), func(t *testing.T) {
			cmd := Command()
			cmd.SetArgs(tt.args)
			cmd.SetOut(new(strings.Builder))
			cmd.SetErr(new(strings.Builder))
			err := cmd.Execute()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("cell agent %v: %v, want an error containing %q", tt.args, err, tt.want)
			}
		})
	}
}

// startAgentProcess runs `cell agent` as a child process (this test binary
// in helper mode), so a test can SIGKILL it.
func startAgentProcess(t *testing.T, c *testCell, name, data string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), agentHelperEnv+"="+strings.Join([]string{
		"--server", c.addr, "--insecure", "--name", name, "--data", data, "--cgroup-root", "-", "--stop-grace", "300ms",
		"--usage-interval", "200ms", "--cpu", "4", "--memory", "8Gi", "--disk", "10Gi", "--gpus", "0",
	}, " "))
	if os.Getenv("AGENT_TEST_LOGS") != "" {
		cmd.Stderr = os.Stderr
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait(); killShims(t, data) })
	eventually(t, "the agent process registered "+name, func() bool {
		_, err := c.machines.GetMachine(ctxFor(t), &cellv1.GetMachineRequest{Id: name})
		return err == nil
	})
	return cmd
}

// killShims kills every task an agent on data left running (a test never
// leaves processes behind): its shim kills the tree on SIGUSR1.
func killShims(t *testing.T, data string) {
	files, _ := filepath.Glob(filepath.Join(data, "tasks", "*", "*", pidFile))
	for _, file := range files {
		ids, err := readPidFile(filepath.Dir(file))
		if err != nil {
			continue
		}
		if p, err := procstat.ReadProcess("/proc", ids.shim); err == nil && p.StartTicks == ids.shimStart {
			_ = syscall.Kill(ids.shim, syscall.SIGUSR1)
			waitDead(t, ids.shim)
		}
	}
}

// taskPID reads the pid file of an attempt in an agent's data directory.
func taskPID(t *testing.T, data string, k attemptKey) int {
	t.Helper()
	var pid int
	eventually(t, "the attempt's pid file exists", func() bool {
		b, err := os.ReadFile(filepath.Join(data, "tasks", k.job, fmt.Sprintf("%d.%d", k.index, k.attempt), pidFile))
		if err != nil || len(strings.Fields(string(b))) != 4 {
			return false
		}
		pid, err = strconv.Atoi(strings.Fields(string(b))[0])
		return err == nil && pid > 0 // 0: the shim has not started the task yet
	})
	return pid
}

// SIGKILL an agent: its task is lost after the grace period, placed on
// another agent and runs there; the process the dead agent left behind is
// killed when an agent starts again on that machine.
func TestSIGKILLedAgentsTaskRunsElsewhere(t *testing.T) {
	const grace = time.Second
	c := newTestCell(t, grace)
	data := t.TempDir()
	agentA := startAgentProcess(t, c, "m1", data)
	b, _ := runAgent(t, c, "m2")
	job := c.submit("crash", 1, "sleep 60", 1)
	c.place(job, 0, "m1")
	eventually(t, "the task runs on m1", func() bool { return c.task(job, 0).State == runningS })
	orphan := taskPID(t, data, attemptKey{taskKey{job.Id, 0}, 1})

	if err := agentA.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = agentA.Wait()
	killed := time.Now()
	eventually(t, "the task is lost and back to pending", func() bool { return c.task(job, 0).State == pending })
	if took := time.Since(killed); took > grace+5*time.Second {
		t.Fatalf("task returned to pending %v after its agent was killed, want within grace + 5s", took)
	}
	c.place(job, 0, "m2")
	eventually(t, "the task runs on m2 as attempt 2", func() bool {
		tk := c.task(job, 0)
		return tk.State == runningS && tk.MachineId == "m2" && tk.Attempt == 2
	})
	attemptPID(t, b, attemptKey{taskKey{job.Id, 0}, 2})

	if err := syscall.Kill(orphan, 0); err != nil {
		t.Fatalf("the dead agent's task process %d is gone already (%v); the test expects it orphaned", orphan, err)
	}
	runAgentIn(t, c, "m1", data)
	waitDead(t, orphan)
	if tk := c.task(job, 0); tk.State != runningS || tk.MachineId != "m2" {
		t.Fatalf("restarting m1's agent disturbed the task: %v", tk)
	}
}

// An agent SIGTERMed or SIGKILLed and started again on its data directory
// within the server's grace adopts its tasks: the running one keeps its
// pid, attempt and log (which goes on growing) and is charged no failure,
// its usage is sampled again; the one that ended while no agent ran is
// reported with its real exit code.
func TestRestartedAgentAdoptsItsTasks(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		t.Run(unixSignalName(sig), func(t *testing.T) {
			c := newTestCell(t, 10*time.Second)
			data := t.TempDir()
			agentA := startAgentProcess(t, c, "m1", data)
			ticker := c.submit("ticker", 1, `i=0; while :; do echo tick $i; i=$((i+1)); sleep 0.05; done`, 0)
			ends := c.submit("ends", 1, `while [ ! -f release ]; do sleep 0.02; done; exit 3`, 0)
			c.place(ticker, 0, "m1")
			c.place(ends, 0, "m1")
			eventually(t, "both tasks run", func() bool {
				return c.task(ticker, 0).State == runningS && c.task(ends, 0).State == runningS
			})
			tk := attemptKey{taskKey{ticker.Id, 0}, 1}
			pid := taskPID(t, data, tk)
			if err := agentA.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			_ = agentA.Wait()
			if err := syscall.Kill(pid, 0); err != nil {
				t.Fatalf("the task died with its agent (%s): %v", unixSignalName(sig), err)
			}
			endsDir := filepath.Join(data, "tasks", ends.Id, "0.1")
			if err := os.WriteFile(filepath.Join(endsDir, "release"), nil, 0o644); err != nil {
				t.Fatal(err)
			}
			waitForFile(t, filepath.Join(endsDir, exitFile), "exit 3")
			logFile := filepath.Join(data, "tasks", ticker.Id, "0.1", stdoutFile)
			fi, _ := os.Stat(logFile)
			before := fi.Size()

			startAgentProcess(t, c, "m1", data)
			eventually(t, "the end missed while the agent was down is reported with its exit code", func() bool {
				// A failure with retry limit 0 fails the job (which marks
				// the task killed); the exit code is the task's own.
				e := c.task(ends, 0)
				return e.Failures == 1 && e.ExitCode == 3 && strings.Contains(e.Message, "exited with code 3")
			})
			eventually(t, "the resumed task's usage is sampled", func() bool {
				r, err := c.machines.GetMachine(ctxFor(t), &cellv1.GetMachineRequest{Id: "m1"})
				return err == nil && len(r.Tasks) == 1 && r.Tasks[0].GetUsage().GetMemoryBytes() > 0
			})
			if got := c.task(ticker, 0); got.State != runningS || got.Attempt != 1 || got.Failures != 0 {
				t.Fatalf("ticker after the agent restart = %v, want running attempt 1 with no failure", got)
			}
			if got := taskPID(t, data, tk); got != pid {
				t.Fatalf("ticker pid %d after the restart, want %d", got, pid)
			}
			eventually(t, "the log goes on", func() bool {
				fi, err := os.Stat(logFile)
				return err == nil && fi.Size() > before
			})
		})
	}
}

func unixSignalName(sig syscall.Signal) string {
	if sig == syscall.SIGTERM {
		return "SIGTERM"
	}
	return "SIGKILL"
}

// TestTwoCellsTakingTurnsOnOneAddress: when another cell takes over the
// server's address, and later the first cell comes back, the agent
// registers with whichever cell answers (each answer names its cell
// incarnation) and runs what that cell places on it.
func TestTwoCellsTakingTurnsOnOneAddress(t *testing.T) {
	a := newTestCell(t, 2*time.Second)
	b := newTestCell(t, 2*time.Second)
	b.stop()
	ag, _ := runAgent(t, a, "m1")
	idA := a.store.Identity().GetId()
	if got := ag.driver.cell.GetId(); got != idA {
		t.Fatalf("agent registered with cell %q, want A's %q", got, idA)
	}
	jobA := a.submit("on-a", 1, "exit 0", 0)
	a.place(jobA, 0, "m1")
	eventually(t, "A's task succeeded", func() bool { return a.task(jobA, 0).State == succeeded })

	// B takes over A's address; a's client now reaches B.
	a.stop()
	b.ns, b.nc = a.ns, a.nc // one NATS server stands for the address's
	b.addr = a.addr
	b.start()
	idB := b.store.Identity().GetId()
	sessions := ag.driver.sessions.Load()
	eventually(t, "the agent registered with cell B", func() bool {
		r, err := a.machines.GetMachine(ctxFor(t), &cellv1.GetMachineRequest{Id: "m1"})
		return err == nil && r.Machine.State == cellv1.MachineState_MACHINE_STATE_READY && ag.driver.sessions.Load() > sessions
	})
	jobB := a.submit("on-b", 1, "exit 0", 0)
	a.place(jobB, 0, "m1")
	eventually(t, "B's task succeeded", func() bool { return a.task(jobB, 0).State == succeeded })

	// A comes back.
	b.stop()
	a.start()
	eventually(t, "the agent registered with cell A again", func() bool {
		return ag.driver.sessions.Load() > sessions+1
	})
	jobA2 := a.submit("on-a-again", 1, "exit 0", 0)
	a.place(jobA2, 0, "m1")
	eventually(t, "A's second task succeeded", func() bool { return a.task(jobA2, 0).State == succeeded })
	if idA == idB {
		t.Fatal("two cells share an id")
	}
	if _, err := a.jobs.GetJob(ctxFor(t), &cellv1.GetJobRequest{IdOrName: jobB.Id}); status.Code(err) != codes.NotFound {
		t.Fatalf("B's job in cell A: %v, want NotFound", err)
	}
}

// An agent SIGKILLed with many tasks running, and a new one started on its
// data directory: how long until it has adopted every task (registered,
// read its view and the job, resumed each attempt). AGENT_RESTART_TASKS
// sets how many (default 20; the report's figure uses 100).
func TestAgentRestartAdoptsManyTasks(t *testing.T) {
	n := uint32(20)
	if s := os.Getenv("AGENT_RESTART_TASKS"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v <= 0 || v > 1000 {
			t.Fatalf("AGENT_RESTART_TASKS=%q: want 1..1000", s)
		}
		n = uint32(v)
	}
	c := newTestCell(t, time.Minute)
	data := t.TempDir()
	agentA := startAgentProcess(t, c, "m1", data)
	r, err := c.jobs.SubmitJob(ctxFor(t), &cellv1.SubmitJobRequest{Spec: &cellv1.JobSpec{
		Name: "many", Scheduler: "batch", Priority: 100, Count: n, Kind: cellv1.JobKind_JOB_KIND_BATCH,
		Task: &cellv1.TaskTemplate{Command: "sleep", Args: []string{"600"}, Resources: &cellv1.Resources{CpuMilli: 10, MemoryBytes: 8 << 20}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	job := r.Job
	started := time.Now()
	for i := range n {
		c.place(job, i, "m1")
	}
	running := func() int {
		g, err := c.jobs.GetJob(ctxFor(t), &cellv1.GetJobRequest{IdOrName: job.Id})
		if err != nil {
			t.Fatal(err)
		}
		return int(g.Counts.Running)
	}
	waitLong := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(3 * time.Minute)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting until %s", what)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitLong("every task runs", func() bool { return running() == int(n) })
	t.Logf("%d tasks started in %v", n, time.Since(started).Round(time.Millisecond))
	if err := agentA.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = agentA.Wait()

	began := time.Now()
	a, _ := runAgentIn(t, c, "m1", data)
	waitLong("every task is adopted", func() bool { return a.fleet.runningCount() == int(n) })
	took := time.Since(began)
	t.Logf("agent restart with %d running tasks: all adopted %v after the new agent started", n, took.Round(time.Millisecond))
	if got := running(); got != int(n) {
		t.Fatalf("%d tasks running on the server after the restart, want %d", got, n)
	}
	if a.fleet.counters.starts.Load() != int64(n) || a.fleet.counters.startFailures.Load() != 0 {
		t.Fatalf("restarted agent: %d starts (resumes), %d start failures; want %d and 0",
			a.fleet.counters.starts.Load(), a.fleet.counters.startFailures.Load(), n)
	}
}
