package cellserver

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/omegacell/omegacell/pki"
	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
	"github.com/omegacell/omegacell/proto/cellclient"
	"github.com/omegacell/omegacell/proto/credentials"
)

// BenchmarkCommitThroughputReplicated: 4 clients commit 1,000-claim
// transactions through gRPC (mutual TLS, synced) to a single server and to
// a cell of three replicas (this process runs all three), on 1,000
// machines: what replication costs a commit, measured side by side.
func BenchmarkCommitThroughputReplicated(b *testing.B) {
	b.Run("single", func(b *testing.B) { benchReplicated(b, 1) })
	b.Run("replicas-3", func(b *testing.B) { benchReplicated(b, 3) })
}

func benchAddr(b *testing.B) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startCell starts n servers of one cell (n = 1: a single server) and
// returns a leader-following admin connection.
func startCell(b *testing.B, n int) *grpc.ClientConn {
	dir := b.TempDir()
	cell, err := pki.Ensure(filepath.Join(dir, "s0", "pki"), nil, quiet)
	if err != nil {
		b.Fatal(err)
	}
	var routes, addrs []string
	for range n {
		routes, addrs = append(routes, benchAddr(b)), append(addrs, benchAddr(b))
	}
	servers := make([]*Server, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		data := filepath.Join(dir, fmt.Sprintf("s%d", i))
		if i > 0 {
			if err := os.MkdirAll(filepath.Join(data, "pki"), 0o700); err != nil {
				b.Fatal(err)
			}
			for _, f := range []string{pki.CAFile, pki.CAKeyFile} {
				buf, err := os.ReadFile(filepath.Join(cell.Dir, f))
				if err == nil {
					err = os.WriteFile(filepath.Join(data, "pki", f), buf, 0o600)
				}
				if err != nil {
					b.Fatal(err)
				}
			}
		}
		cfg := Config{DataDir: data, Listen: addrs[i], NATSListen: "127.0.0.1:-1", Grace: time.Hour}
		if n > 1 {
			cfg.Cluster = ClusterConfig{Name: fmt.Sprintf("s%d", i), Listen: routes[i], Peers: routes}
		}
		wg.Add(1)
		go func() { defer wg.Done(); servers[i], errs[i] = Start(cfg, quiet) }()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(servers[i].Close)
	}
	admin, err := credentials.Load(cell.AdminDir)
	if err != nil {
		b.Fatal(err)
	}
	conn, err := cellclient.Dial(strings.Join(addrs, ","), credentials.Client{Bundle: admin},
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
