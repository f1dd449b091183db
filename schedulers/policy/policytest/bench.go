package policytest

import (
	"syscall"
	"testing"
	"time"
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
