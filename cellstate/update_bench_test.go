package cellstate

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"

	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
)

// BenchmarkSubmitJob measures SubmitJob through the commit loop (fsync,
// 8 callers, so group commit works as it does under load): new jobs of one
// task, each of which now also writes its first version (issue 13). Run
// it against main's tree for the cost of versions:
//
//	go test -run '^$' -bench SubmitJob -benchtime 3000x ./cellstate/
func BenchmarkSubmitJob(b *testing.B) {
	st, err := Open(Options{Dir: b.TempDir(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), MaxPendingTasks: -1})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	var n atomic.Int64
	b.SetParallelism(4) // 4 x GOMAXPROCS callers
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			spec := &cellv1.JobSpec{Name: fmt.Sprintf("job-%d", i), Scheduler: "batch", Priority: 100, Count: 1, Kind: cellv1.JobKind_JOB_KIND_BATCH,
				Task: &cellv1.TaskTemplate{Command: "/bin/true", Args: []string{"--flag", "value"}, Resources: &cellv1.Resources{CpuMilli: 100, MemoryBytes: 1 << 20}}}
			if _, _, err := st.SubmitJob(context.Background(), spec); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "jobs/s")
}
