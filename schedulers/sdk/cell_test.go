package sdk

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/omegacell/omegacell/cellstate"
	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
	"github.com/omegacell/omegacell/proto/credentials"
	"github.com/omegacell/omegacell/schedulers/policy"
	"github.com/omegacell/omegacell/schedulers/view"
	"github.com/omegacell/omegacell/txn"
)

// testCell is a real store on a temp dir behind a real gRPC server on
// loopback, which can be stopped and started again on the same address.
type testCell struct {
	t     testing.TB
	opts  cellstate.Options
	addr  string
	store *cellstate.Store
	grpc  *grpc.Server
	conn  *grpc.ClientConn // the test's own client; survives restarts

	jobs       cellv1.JobServiceClient
	machines   cellv1.MachineServiceClient
	state      cellv1.StateServiceClient
	agent      cellv1.AgentServiceClient
	schedulers cellv1.SchedulerServiceClient
}

func newTestCell(t testing.TB, opts cellstate.Options) *testCell {
	t.Helper()
	opts.Dir = t.TempDir()
	opts.NoSync = true // the tests exercise the schedulers, not the disk
	opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	c := &testCell{t: t, opts: opts}
	c.start()
	conn, err := grpc.NewClient(c.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	c.conn = conn
	c.jobs = cellv1.NewJobServiceClient(conn)
	c.machines = cellv1.NewMachineServiceClient(conn)
	c.state = cellv1.NewStateServiceClient(conn)
	c.agent = cellv1.NewAgentServiceClient(conn)
	c.schedulers = cellv1.NewSchedulerServiceClient(conn)
	t.Cleanup(func() {
		conn.Close()
		c.stop()
	})
	return c
}

// start opens the store and serves it, on the address of the previous
// start if there was one.
func (c *testCell) start() {
	c.t.Helper()
	st, err := cellstate.Open(c.opts)
	if err != nil {
		c.t.Fatalf("open store: %v", err)
	}
	addr := c.addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	var lis net.Listener
	for try := 0; ; try++ {
		if lis, err = net.Listen("tcp", addr); err == nil || try == 50 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		st.Close()
		c.t.Fatalf("listen %s: %v", addr, err)
	}
	c.addr, c.store = lis.Addr().String(), st
	c.grpc = cellstate.NewServer(st, cellstate.ServerOptions{Insecure: true}).GRPCServer()
	go c.grpc.Serve(lis)
}

// stop closes the server and the store, as a crash of the server process
// would end every client's streams.
func (c *testCell) stop() {
	if c.store == nil {
		return
	}
	c.store.CloseWatchers()
	c.grpc.Stop()
	if err := c.store.Close(); err != nil {
		c.t.Errorf("close store: %v", err)
	}
	c.store = nil
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func (c *testCell) addMachine(id string, labels map[string]string, cpu, mem, gpus int64) {
	c.t.Helper()
	_, err := c.machines.RegisterMachine(ctxT(c.t), &cellv1.RegisterMachineRequest{
		Id: id, Labels: labels, Capacity: &cellv1.Resources{CpuMilli: cpu, MemoryBytes: mem, GpuMilli: gpus * 1000},
	})
	if err != nil {
		c.t.Fatalf("register machine %s: %v", id, err)
	}
}

func (c *testCell) register(name string) {
	c.t.Helper()
	if _, err := c.schedulers.RegisterScheduler(ctxT(c.t), &cellv1.RegisterSchedulerRequest{Name: name}); err != nil {
		c.t.Fatalf("register scheduler %s: %v", name, err)
	}
}

func (c *testCell) submit(spec *cellv1.JobSpec) *cellv1.Job {
	c.t.Helper()
	r, err := c.jobs.SubmitJob(ctxT(c.t), &cellv1.SubmitJobRequest{Spec: spec})
	if err != nil {
		c.t.Fatalf("submit %s: %v", spec.Name, err)
	}
	return r.Job
}

func (c *testCell) getJob(id string) *cellv1.GetJobResponse {
	c.t.Helper()
	r, err := c.jobs.GetJob(ctxT(c.t), &cellv1.GetJobRequest{IdOrName: id, IncludeTasks: true})
	if err != nil {
		c.t.Fatalf("get job %s: %v", id, err)
	}
	return r
}

// jobSpec is a job of count tasks of the given shape.
func jobSpec(name, scheduler string, priority int32, count uint32, cpu, mem, gpuMilli int64) *cellv1.JobSpec {
	return &cellv1.JobSpec{
		Name: name, Scheduler: scheduler, Priority: priority, Count: count,
		Task: &cellv1.TaskTemplate{Command: "/bin/true", Resources: &cellv1.Resources{CpuMilli: cpu, MemoryBytes: mem, GpuMilli: gpuMilli}},
	}
}

// cellSnapshot is the whole cell read through StateService.Snapshot.
type cellSnapshot struct {
	revision uint64
	machines []*cellv1.Machine
	jobs     []*cellv1.Job
	tasks    []*cellv1.Task
}

func (c *testCell) snapshot() cellSnapshot {
	c.t.Helper()
	stream, err := c.state.Snapshot(ctxT(c.t), &cellv1.SnapshotRequest{})
	if err != nil {
		c.t.Fatal(err)
	}
	var s cellSnapshot
	for {
		r, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return s
		}
		if err != nil {
			c.t.Fatalf("snapshot: %v", err)
		}
		if s.revision == 0 {
			s.revision = r.Revision
		}
		s.machines = append(s.machines, r.Machines...)
		s.jobs = append(s.jobs, r.Jobs...)
		s.tasks = append(s.tasks, r.Tasks...)
		if r.Last {
			return s
		}
	}
}

// checkInvariant checks omegacell's invariant on a snapshot read through
// the API, as `cell check` does.
func (c *testCell) checkInvariant() cellSnapshot {
	c.t.Helper()
	s := c.snapshot()
	if err := cellstate.CheckSnapshot(s.machines, s.jobs, s.tasks); err != nil {
		c.t.Fatalf("invariant broken at revision %d: %v", s.revision, err)
	}
	return s
}

// eventually polls cond until it holds or the timeout passes.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s; last state: %s", timeout, what, state)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// jobPlaced waits until every task of job holds resources.
func (c *testCell) waitPlaced(id string, timeout time.Duration) *cellv1.GetJobResponse {
	c.t.Helper()
	var r *cellv1.GetJobResponse
	eventually(c.t, timeout, "job "+id+" wholly placed", func() (bool, string) {
		r = c.getJob(id)
		n := r.Counts.Assigned + r.Counts.Running
		return n == r.Job.Spec.Count, fmt.Sprintf("counts %v, unschedulable %q", r.Counts, r.Job.UnschedulableReason)
	})
	return r
}

// runningScheduler is an in-process sdk.Run against a testCell.
type runningScheduler struct {
	reg  *prometheus.Registry
	stop func()
}

// startScheduler runs cfg against c until the test ends (or stop). Its
// metrics go to cfg.Registerer if that is a *prometheus.Registry, else to a
// new one. Logs go to the test's output.
func startScheduler(t testing.TB, c *testCell, cfg Config) *runningScheduler {
	t.Helper()
	reg, ok := cfg.Registerer.(*prometheus.Registry)
	if !ok {
		reg = prometheus.NewRegistry()
	}
	cfg.Server, cfg.Registerer, cfg.Credentials = c.addr, reg, credentials.Client{Insecure: true}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("scheduler %s: Run: %v", cfg.Name, err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("scheduler %s: Run did not return 10 s after its context ended", cfg.Name)
		}
	}
	t.Cleanup(stop)
	return &runningScheduler{reg: reg, stop: stop}
}

// metric sums the samples of a metric family whose labels include want:
// counter and gauge values, histogram sample counts.
func metric(t testing.TB, g prometheus.Gatherer, name string, want map[string]string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if !hasLabels(m, want) {
				continue
			}
			switch {
			case m.Counter != nil:
				sum += m.Counter.GetValue()
			case m.Gauge != nil:
				sum += m.Gauge.GetValue()
			case m.Histogram != nil:
				sum += float64(m.Histogram.GetSampleCount())
			}
		}
	}
	return sum
}

// waitMetric waits until metric(...) equals want: the scheduler counts a
// commit after the cell applied it, so a test that saw the placement may
// be ahead of the metrics.
func waitMetric(t testing.TB, g prometheus.Gatherer, name string, labels map[string]string, want float64) {
	t.Helper()
	eventually(t, 5*time.Second, fmt.Sprintf("%s%v = %v", name, labels, want), func() (bool, string) {
		got := metric(t, g, name, labels)
		return got == want, fmt.Sprint(got)
	})
}

func hasLabels(m *dto.Metric, want map[string]string) bool {
	n := 0
	for _, lp := range m.GetLabel() {
		if v, ok := want[lp.GetName()]; ok {
			if v != lp.GetValue() && !(strings.HasPrefix(v, "!") && v[1:] != lp.GetValue()) {
				return false
			}
			n++
		}
	}
	return n == len(want)
}

// interfering wraps a policy and, on chosen calls, lets steal commit a
// competing claim after the decision was made and before the scheduler
// commits it: a lost race, on demand. Test double only: real policies do
// no I/O.
type interfering struct {
	policy.Policy
	steal func(call int, d policy.Decision) // called from the scheduler's loop

	mu      sync.Mutex
	pending [][]uint32 // task indexes each call was asked to place
}

func (p *interfering) Place(job view.JobInfo, pending []*txn.Task, v *view.View, rng *rand.Rand) policy.Decision {
	idx := make([]uint32, len(pending))
	for i, t := range pending {
		idx[i] = t.Key.Index
	}
	p.mu.Lock()
	p.pending = append(p.pending, idx)
	call := len(p.pending)
	p.mu.Unlock()
	d := p.Policy.Place(job, pending, v, rng)
	if p.steal != nil {
		p.steal(call, d)
	}
	return d
}

// calls returns the task indexes of every call so far.
func (p *interfering) calls() [][]uint32 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([][]uint32(nil), p.pending...)
}
