package sdk

import (
	"fmt"
	"testing"
	"time"

	"github.com/omegacell/omegacell/cellstate"
	"github.com/omegacell/omegacell/schedulers/batch"
)

// BenchmarkPlaceJobsThroughTheLoop measures the whole scheduler path on
// loopback: b.N single-task jobs submitted up front to a 100-machine cell,
// each decided by the batch policy, committed as its own transaction, and
// caught up with through the watch. It reports jobs (= transactions) per
// second; the store runs without fsync, so the figure is the scheduler's
// and the RPCs', not the disk's.
func BenchmarkPlaceJobsThroughTheLoop(b *testing.B) {
	c := newTestCell(b, cellstate.Options{})
	for i := range 100 {
		c.addMachine(fmt.Sprintf("m%03d", i), nil, 1_000_000, 1<<40, 0)
	}
	var ids []string
	for i := range b.N {
		ids = append(ids, c.submit(jobSpec(fmt.Sprintf("j%d", i), "batch", 100, 1, 100, 1<<20, 0)).Id)
	}
	b.ResetTimer()
	start := time.Now()
	s := startScheduler(b, c, Config{Name: "batch", Policy: batch.New(), Seed: 1, Logger: discardLogger()})
	eventually(b, 10*time.Minute, "all jobs placed", func() (bool, string) {
		n := metric(b, s.reg, "omegacell_scheduler_claims_total", map[string]string{"outcome": "accepted"})
		return int(n) == b.N, fmt.Sprint(n)
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "jobs/s")
	if r := c.getJob(ids[len(ids)-1]); r.Counts.Assigned != 1 {
		b.Fatalf("last job not placed: %v", r.Counts)
	}
}
