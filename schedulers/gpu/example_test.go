package gpu_test

import (
	"fmt"

	"github.com/omegacell/omegacell/schedulers/gpu"
	"github.com/omegacell/omegacell/schedulers/view"
	"github.com/omegacell/omegacell/txn"
)

// A researcher's loop: a view of two 8-GPU machines, one already running
// a 3/4-GPU task; the policy places a quarter GPU, and the decision shows
// why.
func Example() {
	v := view.New()
	for _, id := range []string{"a", "b"} {
		v.PutMachine(txn.NewMachine(id, map[string]string{"gpu.model": "T4"},
			txn.Resources{CPUMilli: 96000, MemoryBytes: 384 << 30, GPUMilli: 8000}))
	}
	place := func(job string, r txn.Resources) gpu.Choice {
		t := view.JobInfo{ID: job, Scheduler: gpu.Name, Count: 1, Resources: r}.NewTask(0)
		v.PutTask(t)
		c := gpu.Decide(gpu.New(), v, t, nil)
		if err := gpu.Commit(v, t, c); err != nil {
			fmt.Println(err)
		}
		return c
	}
	place("big", txn.Resources{CPUMilli: 8000, MemoryBytes: 16 << 30, GPUMilli: 750})
	c := place("small", txn.Resources{CPUMilli: 2000, MemoryBytes: 4 << 30, GPUMilli: 250})
	fmt.Println("machine", c.Machine, "devices", c.Devices)
	// Gradients are in milli-GPU × millionths (gpu.WeightScale): the
	// quarter GPU fills the sliver the 3/4-GPU shape (half the workload)
	// could not use, so expected fragmentation falls by 125 milli-GPU.
	fmt.Printf("fragmentation gradient %+d, balance gradient %+d milli-GPU, stranded %+d\n",
		c.Score.FragGradient/gpu.WeightScale, c.Score.BalanceGradient/gpu.WeightScale, c.Score.Stranded)
	fmt.Println("workload shapes", len(c.Workload))
	// Output:
	// machine a devices [{0 250}]
	// fragmentation gradient -125, balance gradient +25 milli-GPU, stranded -250
	// workload shapes 2
}
