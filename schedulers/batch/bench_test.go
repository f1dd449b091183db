package batch

import (
	"fmt"
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
			policytest.BenchPlace(b, New(), v, job, int(tasks))
		})
	}
}
