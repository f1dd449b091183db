package service

import (
	"fmt"
	"testing"

	"github.com/omegacell/omegacell/schedulers/policy/policytest"
	"github.com/omegacell/omegacell/schedulers/view"
	"github.com/omegacell/omegacell/txn"
)

// BenchmarkPlace measures replica decisions per second on a 10,000-machine
// view (250 racks, 4 zones), half full, replicas spread over racks with at
// most one per machine. Issue 3's target is 50,000 decisions/s on one core.
func BenchmarkPlace(b *testing.B) {
	v := policytest.Cell(policytest.CellSpec{Machines: 10000, Racks: 250, Zones: 4, GPUEvery: 10, GPUsPerMachine: 8, Fill: 0.5}, 1)
	for _, replicas := range []uint32{10, 50, 500} {
		b.Run(fmt.Sprint("replicas=", replicas), func(b *testing.B) {
			job := view.JobInfo{ID: fmt.Sprint("web", replicas), Scheduler: Name, Priority: txn.PriorityProduction, Count: replicas,
				Resources: txn.Resources{CPUMilli: 2000, MemoryBytes: 4 * policytest.GiB}, SpreadKey: "rack", MaxPerMachine: 1}
			policytest.BenchPlace(b, New(), v, job, int(replicas))
		})
	}
}

// BenchmarkPreempt measures decisions when the cell is full of batch work
// and every replica must preempt.
func BenchmarkPreempt(b *testing.B) {
	v := policytest.Cell(policytest.CellSpec{Machines: 10000, Racks: 250, Zones: 4, CPUMilli: 32000, MemoryBytes: 128 * policytest.GiB,
		Fill: 1, FillPriorities: []int32{txn.PriorityBestEffort, txn.PriorityBatch}}, 1)
	job := view.JobInfo{ID: "web", Scheduler: Name, Priority: txn.PriorityProduction, Count: 50,
		Resources: txn.Resources{CPUMilli: 4000, MemoryBytes: 4 * policytest.GiB}, SpreadKey: "rack", MaxPerMachine: 1}
	policytest.BenchPlace(b, New(), v, job, 50)
}
