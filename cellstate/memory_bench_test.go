package cellstate

import (
	"fmt"
	"runtime"
	"testing"
)

// BenchmarkPendingTaskMemory measures the Go heap one pending task costs
// the server once its submission is durable and the watch ring no longer
// holds it (what the --max-pending-tasks cap multiplies):
//
//	go test -run '^$' -bench PendingTaskMemory -benchtime 1x ./cellstate/
func BenchmarkPendingTaskMemory(b *testing.B) {
	const jobs, perJob = 5, 100_000
	for range b.N {
		c := newTestCell(b, Options{NoSync: true})
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		for i := range jobs {
			if _, _, err := c.store.SubmitJob(ctxT(b), batchSpec(fmt.Sprintf("p%d", i), perJob, 10, 1<<20)); err != nil {
				b.Fatal(err)
			}
		}
		c.store.hub.release()      // the ring's recent revisions are bounded separately (64 MB)
		c.store.checkpoints.Wait() // a checkpoint in flight holds chunks briefly
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/(jobs*perJob), "heap-bytes/pending-task")
		c.stop()
	}
}
