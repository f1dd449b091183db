package txn_test

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/omegacell/omegacell/txn"
)

// benchCell is a 10,000-machine cell: two thirds CPU machines (32 cores,
// 128 GiB, 1 TiB disk), one third GPU machines (the same plus 8 GPUs),
// across 4 zones, each already about a quarter full; and maxClaims pending
// tasks of scheduler "batch": 80% CPU-only (1 core, 2 GiB, 10 GiB disk),
// 10% half a GPU, 10% one GPU, a quarter of them constrained to two zones.
func benchCell(machines, maxClaims int) *cell {
	rng := rand.New(rand.NewPCG(2013, 10000))
	c := newCell()
	for i := range machines {
		capacity := res(32, 128, 1024, 0)
		if i%3 == 0 {
			capacity.GPUMilli = 8 * txn.MilliPerGPU
		}
		m := c.addMachine(fmt.Sprintf("m%05d", i), map[string]string{"zone": fmt.Sprintf("z%d", i%4)}, capacity)
		txn.Allocate(m, res(float64(rng.IntN(9)), int64(rng.IntN(33)), 100, 0), nil)
		if m.Devices() > 0 {
			d, _ := txn.AssignDevices(m, 2000)
			txn.Allocate(m, txn.Resources{GPUMilli: 2000}, d)
		}
	}
	for i := range maxClaims {
		r := res(1, 2, 10, 0)
		switch i % 10 {
		case 0:
			r.GPUMilli = 500
		case 1:
			r.GPUMilli = txn.MilliPerGPU
		}
		t := c.addTask("bench", uint32(i), txn.PriorityBatch, r)
		if i%4 == 0 {
			t.Constraints = []txn.Constraint{{Key: "zone", Op: txn.OpIn, Values: []string{"z0", "z1"}}}
		}
	}
	return c
}

// benchTransaction places the first n pending tasks, each on a different
// random machine where it fits, as a scheduler would: every claim is valid.
func benchTransaction(c *cell, n int, conflict txn.ConflictMode) *txn.Transaction {
	rng := rand.New(rand.NewPCG(uint64(n), uint64(conflict)))
	tx := &txn.Transaction{Scheduler: "batch", Conflict: conflict, Commit: txn.CommitIncremental}
	used := map[string]bool{}
	for i := range n {
		t := c.tasks[txn.TaskKey{Job: "bench", Index: uint32(i)}]
		for {
			m := c.machines[fmt.Sprintf("m%05d", rng.IntN(len(c.machines)))]
			if _, unmet := txn.FirstUnmet(t.Constraints, m.Labels); unmet || used[m.ID] || !txn.FitsAnywhere(m, t.Resources) {
				continue
			}
			used[m.ID] = true
			d, _ := txn.AssignDevices(m, t.Resources.GPUMilli)
			tx.Claims = append(tx.Claims, txn.Claim{Task: t.Key, Machine: m.ID, Resources: t.Resources, Devices: d, SeenSeq: m.Seq})
			break
		}
	}
	return tx
}

// BenchmarkValidate measures validation alone on a 10,000-machine cell:
// transactions of 1, 100 and 1,000 claims, fine and coarse conflict modes.
// claims/s is the figure the issue asks for.
func BenchmarkValidate(b *testing.B) {
	const machines = 10000
	c := benchCell(machines, 1000)
	for _, n := range []int{1, 100, 1000} {
		for _, mode := range []struct {
			name     string
			conflict txn.ConflictMode
		}{{"fine", txn.ConflictFine}, {"coarse", txn.ConflictCoarse}} {
			tx := benchTransaction(c, n, mode.conflict)
			if d := txn.Validate(c, tx); d.Accepted != n {
				b.Fatalf("benchmark transaction: only %d of %d claims accepted", d.Accepted, n)
			}
			b.Run(fmt.Sprintf("claims=%d/%s", n, mode.name), func(b *testing.B) {
				b.ReportAllocs()
				iterations := 0
				for b.Loop() {
					txn.Validate(c, tx)
					iterations++
				}
				b.ReportMetric(float64(iterations*n)/b.Elapsed().Seconds(), "claims/s")
			})
		}
	}
}
