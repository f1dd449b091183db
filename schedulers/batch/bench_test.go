package batch

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/omegacell/omegacell/schedulers/policy/policytest"
	"github.com/omegacell/omegacell/schedulers/view"
	"github.com/omegacell/omegacell/txn"
)

// BenchmarkPlace measures task decisions per second on a 10,000-machine
// view that is half full, for jobs of several sizes. Issue 3's target is
// 500,000 task decisions/s on one core.
func BenchmarkPlace(b *testing.B) {
	v := policytest.Cell(policytest.CellSpec{Machines: 10000, Racks: 250, Zones: 4, GPUEvery: 10, GPUsPerMachine: 8, Fill: 0.5}, 1)
	for _, tasks := range []uint32{10, 100, 1000, 10000} {
		b.Run(fmt.Sprint("tasks=", tasks), func(b *testing.B) {
			job := view.JobInfo{ID: fmt.Sprint("bench", tasks), Scheduler: Name, Priority: txn.PriorityBatch, Count: tasks,
				Resources: txn.Resources{CPUMilli: 1000, MemoryBytes: 2 * policytest.GiB}}
			pending := policytest.AddJob(v, job)
			p := New()
			rng := rand.New(rand.NewPCG(1, 1))
			b.ReportAllocs()
			b.ResetTimer()
			cpu := policytest.CPUTime()
			placed := 0
			for b.Loop() {
				placed += len(p.Place(job, pending, v, rng).Claims)
			}
			if placed != b.N*int(tasks) {
				b.Fatalf("placed %d of %d tasks", placed, b.N*int(tasks))
			}
			policytest.ReportTasks(b, placed, cpu)
		})
	}
}
