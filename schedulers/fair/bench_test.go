package fair

import (
	"fmt"
	"testing"

	"github.com/omegacell/omegacell/txn"
)

// BenchmarkDecision is one scheduling decision's queue work on a queue of
// 10,000 pending jobs from 100 tenants: pop the head, charge its tenant
// for one task (its share changes) and push the job back (it has more
// tasks). Issue 12's bound is 1 ms per decision.
func BenchmarkDecision(b *testing.B) {
	const tenants, jobs = 100, 10_000
	q := NewQueue(fifo)
	q.SetCapacity(txn.Resources{CPUMilli: 10_000 * 64_000, MemoryBytes: 10_000 << 38, GPUMilli: 1000 * 8000})
	use := make(map[string]txn.Resources, tenants)
	for i := range jobs {
		name := fmt.Sprint("tenant-", i%tenants)
		q.SetWeight(name, uint32(1+i%tenants%4))
		q.Push(name, []int32{0, 100, 100, 100}[i%4], qjob{name, []int32{0, 100, 100, 100}[i%4], int64(i), fmt.Sprint("job-", i)})
	}
	task := txn.Resources{CPUMilli: 1000, MemoryBytes: 1 << 30, GPUMilli: 500}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		j, tenant, ok := q.Pop()
		if !ok {
			b.Fatal("queue ran dry")
		}
		use[tenant] = use[tenant].Add(task)
		q.SetUsage(tenant, use[tenant])
		q.Push(tenant, j.priority, j)
	}
}
