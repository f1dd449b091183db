package cellserver

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"

	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
	"github.com/omegacell/omegacell/proto/cellclient"
	"github.com/omegacell/omegacell/proto/identity"
)

// BenchmarkCommitThroughputReplicated: 4 clients commit 1,000-claim
// transactions through gRPC (mutual TLS, synced) to a single server and to
// a cell of three replicas (this process runs all three), on 1,000
// machines: what replication costs a commit, measured side by side.
func BenchmarkCommitThroughputReplicated(b *testing.B) {
	b.Run("single", func(b *testing.B) { benchReplicated(b, 1) })
	b.Run("replicas-3", func(b *testing.B) { benchReplicated(b, 3) })
}

// startCell starts n servers of one cell (n = 1: a single server; more:
// StartLocalCluster) and returns a leader-following admin connection.
func startCell(b *testing.B, n int) *grpc.ClientConn {
	base := Config{DataDir: b.TempDir(), Listen: "127.0.0.1:0", NATSListen: "127.0.0.1:-1", Grace: time.Hour}
	var servers []*Server
	if n > 1 {
		var err error
		if servers, err = StartLocalCluster(base, n, quiet); err != nil {
			b.Fatal(err)
		}
	} else {
		s, err := Start(base, quiet)
		if err != nil {
			b.Fatal(err)
		}
		servers = []*Server{s}
	}
	for _, s := range servers {
		b.Cleanup(s.Close)
	}
	admin, err := servers[0].Client(identity.Identity{Role: identity.Admin})
	if err != nil {
		b.Fatal(err)
	}
	conn, err := cellclient.Dial(Addrs(servers), admin,
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(cellclient.MaxMessageBytes), grpc.MaxCallSendMsgSize(cellclient.MaxMessageBytes)))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close() })
	return conn
}

func benchReplicated(b *testing.B, n int) {
	const machines, clients, perTxn = 1000, 4, 1000
	conn := startCell(b, n)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	mc, jc, sc := cellv1.NewMachineServiceClient(conn), cellv1.NewJobServiceClient(conn), cellv1.NewStateServiceClient(conn)
	for i := range machines {
		if _, err := mc.RegisterMachine(ctx, &cellv1.RegisterMachineRequest{
			Id: fmt.Sprintf("m%04d", i), Capacity: &cellv1.Resources{CpuMilli: 1 << 24, MemoryBytes: 1 << 40},
		}); err != nil {
			b.Fatal(err)
		}
	}
	res := &cellv1.Resources{CpuMilli: 10, MemoryBytes: 1 << 20}
	reqs := make([]*cellv1.CommitRequest, b.N)
	rng := rand.New(rand.NewPCG(1, 2))
	for t := range b.N {
		r, err := jc.SubmitJob(ctx, &cellv1.SubmitJobRequest{Spec: &cellv1.JobSpec{
			Name: fmt.Sprintf("load-%d", t), Scheduler: "batch", Priority: 100, Count: perTxn,
			Task: &cellv1.TaskTemplate{Command: "x", Resources: res},
		}})
		if err != nil {
			b.Fatal(err)
		}
		req := &cellv1.CommitRequest{Scheduler: "batch", Claims: make([]*cellv1.Claim, perTxn)}
		for i := range perTxn {
			req.Claims[i] = &cellv1.Claim{Task: &cellv1.TaskRef{JobId: r.Job.Id, Index: uint32(i)}, MachineId: fmt.Sprintf("m%04d", rng.IntN(machines)), Resources: res}
		}
		reqs[t] = req
	}
	var accepted, idx atomic.Int64
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(idx.Add(1)) - 1
				if i >= b.N {
					return
				}
				r, err := sc.Commit(ctx, reqs[i])
				if err != nil {
					b.Error(err)
					return
				}
				accepted.Add(int64(r.Accepted))
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if int(accepted.Load()) != b.N*perTxn {
		b.Fatalf("accepted %d of %d claims", accepted.Load(), b.N*perTxn)
	}
	b.ReportMetric(float64(accepted.Load())/elapsed.Seconds(), "claims/s")
}
