package cellstate

import (
	"context"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
)

// testCell is a real store on a temp dir behind a real gRPC server on
// loopback.
type testCell struct {
	t     testing.TB
	dir   string
	store *Store
	srv   *Server
	grpc  *grpc.Server
	conn  *grpc.ClientConn

	jobs     cellv1.JobServiceClient
	machines cellv1.MachineServiceClient
	state    cellv1.StateServiceClient
	agent    cellv1.AgentServiceClient

	reg *prometheus.Registry // set by benchmarks that read metrics
	tls *testTLS             // mutual TLS (authn_test.go); nil: insecure
}

func newTestCell(t testing.TB, opts Options) *testCell {
	t.Helper()
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	c := &testCell{t: t, dir: opts.Dir}
	c.start(opts)
	t.Cleanup(c.stop)
	return c
}

func (c *testCell) start(opts Options) {
	c.t.Helper()
	st, err := Open(opts)
	if err != nil {
		c.t.Fatalf("open store: %v", err)
	}
	c.store = st
	so, gopts, dial := ServerOptions{Insecure: true}, []grpc.ServerOption(nil), grpc.WithTransportCredentials(insecure.NewCredentials())
	if c.tls != nil {
		so, gopts, dial = c.tls.options(c.t, st)
	}
	c.srv = NewServer(st, so)
	c.grpc = c.srv.GRPCServer(gopts...)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		c.t.Fatal(err)
	}
	go c.grpc.Serve(lis)
	c.conn, err = grpc.NewClient(lis.Addr().String(), dial,
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(MaxRequestBytes), grpc.MaxCallSendMsgSize(MaxRequestBytes)))
	if err != nil {
		c.t.Fatal(err)
	}
	c.jobs = cellv1.NewJobServiceClient(c.conn)
	c.machines = cellv1.NewMachineServiceClient(c.conn)
	c.state = cellv1.NewStateServiceClient(c.conn)
	c.agent = cellv1.NewAgentServiceClient(c.conn)
}

func (c *testCell) stop() {
	if c.store == nil {
		return
	}
	c.store.CloseWatchers()
	c.conn.Close()
	c.grpc.Stop()
	if err := c.store.Close(); err != nil {
		c.t.Errorf("close store: %v", err)
	}
	c.store = nil
}

// restart closes and reopens the store on the same directory.
func (c *testCell) restart(opts Options) {
	c.stop()
	opts.Dir = c.dir
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	c.start(opts)
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func (c *testCell) addMachine(id string, labels map[string]string, cpu, mem, gpus int64) *cellv1.Machine {
	c.t.Helper()
	r, err := c.machines.RegisterMachine(ctxT(c.t), &cellv1.RegisterMachineRequest{
		Id: id, Labels: labels, Capacity: &cellv1.Resources{CpuMilli: cpu, MemoryBytes: mem, GpuMilli: gpus * 1000},
	})
	if err != nil {
		c.t.Fatalf("register %s: %v", id, err)
	}
	return r.Machine
}

func (c *testCell) submit(spec *cellv1.JobSpec) *cellv1.Job {
	c.t.Helper()
	r, err := c.jobs.SubmitJob(ctxT(c.t), &cellv1.SubmitJobRequest{Spec: spec})
	if err != nil {
		c.t.Fatalf("submit %s: %v", spec.Name, err)
	}
	return r.Job
}

func batchSpec(name string, count uint32, cpu, mem int64) *cellv1.JobSpec {
	return &cellv1.JobSpec{
		Name: name, Scheduler: "batch", Priority: 100, Count: count,
		Task: &cellv1.TaskTemplate{Command: "/bin/true", Resources: &cellv1.Resources{CpuMilli: cpu, MemoryBytes: mem}},
	}
}

func claim(job string, idx uint32, machine string, r *cellv1.Resources) *cellv1.Claim {
	return &cellv1.Claim{Task: &cellv1.TaskRef{JobId: job, Index: idx}, MachineId: machine, Resources: r}
}

func (c *testCell) checkInvariant() {
	c.t.Helper()
	if err := c.store.CheckInvariant(); err != nil {
		c.t.Fatalf("invariant broken: %v", err)
	}
}
