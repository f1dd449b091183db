package replication

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/omegacell/omegacell/cellstate"
	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
)

// BenchmarkSnapshotFetch measures a rebuild's transfer: a store of 100
// jobs of 1,000 tasks each (OMEGACELL_SNAPSHOT_BENCH_JOBS jobs: more;
// checkpointed) is fetched from a peer over an
// embedded NATS server with cluster mode's payload limit (1 MiB chunks),
// verified and made ready to install. Reports the snapshot's size and
// the transfer rate.
func BenchmarkSnapshotFetch(b *testing.B) {
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true, MaxPayload: 64 << 20})
	if err != nil {
		b.Fatal(err)
	}
	go ns.Start()
	defer ns.Shutdown()
	if !ns.ReadyForConnections(10 * time.Second) {
		b.Fatal("nats did not start")
	}
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	dir := b.TempDir()
	src, err := cellstate.Open(cellstate.Options{Dir: filepath.Join(dir, "src", "store"), Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	jobs := 100
	if v := os.Getenv("OMEGACELL_SNAPSHOT_BENCH_JOBS"); v != "" {
		if jobs, err = strconv.Atoi(v); err != nil || jobs < 1 {
			b.Fatalf("OMEGACELL_SNAPSHOT_BENCH_JOBS=%q: want a positive number", v)
		}
	}
	for i := range jobs {
		if _, _, err := src.SubmitJob(ctx, &cellv1.JobSpec{Name: fmt.Sprintf("job-%d", i), Scheduler: "batch", Priority: 100, Count: 1000,
			Task: &cellv1.TaskTemplate{Command: fmt.Sprintf("/bin/job-%d --seed=%d", i, i*7919), Resources: &cellv1.Resources{CpuMilli: 100, MemoryBytes: 1 << 20}}}); err != nil {
			b.Fatal(err)
		}
	}
	// Close and reopen: the final checkpoint writes every task object.
	if err := src.Close(); err != nil {
		b.Fatal(err)
	}
	if src, err = cellstate.Open(cellstate.Options{Dir: filepath.Join(dir, "src", "store"), Logger: quiet}); err != nil {
		b.Fatal(err)
	}
	defer src.Close()
	srv, err := serveSnapshots(nc, src, "s1", DefaultMaxSnapshotBytes, quiet)
	if err != nil {
		b.Fatal(err)
	}
	defer srv.close()
	var bytes uint64
	var took time.Duration
	b.ResetTimer()
	for i := range b.N {
		store := filepath.Join(dir, fmt.Sprint(i), "store")
		res, err := fetchSnapshot(ctx, fetchOptions{nc: nc, self: "s2", cellID: src.Identity().GetId(), minRev: 1,
			storeDir: store, maxBytes: DefaultMaxSnapshotBytes, peers: 1, log: quiet})
		if err != nil {
			b.Fatal(err)
		}
		bytes, took = res.Bytes, took+res.Took
		b.StopTimer()
		os.RemoveAll(filepath.Dir(store))
		b.StartTimer()
	}
	b.ReportMetric(float64(bytes)/(1<<20), "MiB/snapshot")
	b.ReportMetric(float64(bytes)*float64(b.N)/(1<<20)/took.Seconds(), "MiB/s")
}
