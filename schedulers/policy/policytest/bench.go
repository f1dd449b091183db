package policytest

import (
	"math/rand/v2"
	"syscall"
	"testing"
	"time"

	"github.com/omegacell/omegacell/schedulers/policy"
	"github.com/omegacell/omegacell/schedulers/view"
)

// CPUTime is the CPU time (user + system) the process has used so far,
// garbage collection included.
func CPUTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// ReportTasks reports task decisions per second of wall-clock time
// ("tasks/s", issue 3's figure) and per second of CPU time since cpuStart
// ("tasks/cpu-s"): on a shared machine wall time includes time other
// processes held the core, CPU time does not.
func ReportTasks(b *testing.B, tasks int, cpuStart time.Duration) {
	b.ReportMetric(float64(tasks)/b.Elapsed().Seconds(), "tasks/s")
	if cpu := CPUTime() - cpuStart; cpu > 0 {
		b.ReportMetric(float64(tasks)/cpu.Seconds(), "tasks/cpu-s")
	}
}

// BenchPlace measures one policy decision per iteration: the job's pending
// tasks (added to v here) placed by p on v, with a seeded random source.
// Every iteration must place want tasks. It reports task decisions per
// second of wall-clock and of CPU time, and CPU nanoseconds per decision.
func BenchPlace(b *testing.B, p policy.Policy, v *view.View, job view.JobInfo, want int) {
	b.Helper()
	pending := AddJob(v, job)
	rng := rand.New(rand.NewPCG(1, 1))
	b.ReportAllocs()
	b.ResetTimer()
	cpu := CPUTime()
	placed := 0
	for b.Loop() {
		placed += len(p.Place(job, pending, v, rng).Claims)
	}
	if placed != b.N*want {
		b.Fatalf("placed %d of %d tasks", placed, b.N*want)
	}
	b.ReportMetric(float64((CPUTime()-cpu).Nanoseconds())/float64(b.N), "cpu-ns/op")
	ReportTasks(b, placed, cpu)
}
