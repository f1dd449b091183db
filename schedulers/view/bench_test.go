package view

import (
	"fmt"
	"testing"

	"github.com/omegacell/omegacell/txn"
)

// BenchmarkApplyDecision measures how fast a scheduler's (or the
// simulator's) copy absorbs committed decisions: 100 claims on a
// 10,000-machine view per operation, applied with txn.Apply and undone
// with txn.Transition so every iteration sees the same cell.
func BenchmarkApplyDecision(b *testing.B) {
	v := New()
	for i := range 10000 {
		v.PutMachine(txn.NewMachine(fmt.Sprintf("m%05d", i), map[string]string{"rack": fmt.Sprint("r", i/40), "zone": fmt.Sprint("z", i%4)},
			txn.Resources{CPUMilli: 32000, MemoryBytes: 1 << 37, GPUMilli: int64(i%2) * 8000}))
	}
	job := JobInfo{ID: "j", Scheduler: "s", Resources: txn.Resources{CPUMilli: 1000, MemoryBytes: 1 << 30, GPUMilli: 1000}}
	v.PutJob(job)
	tx := &txn.Transaction{Scheduler: "s", Conflict: txn.ConflictFine, Commit: txn.CommitIncremental}
	for i := range uint32(100) {
		t := job.NewTask(i)
		v.PutTask(t)
		tx.Claims = append(tx.Claims, txn.Claim{Task: t.Key, Machine: fmt.Sprintf("m%05d", 2*i*37%10000+1), Resources: t.Resources,
			Devices: []txn.DeviceShare{{Device: 0, Milli: 1000}}})
	}
	b.ReportAllocs()
	for b.Loop() {
		d := txn.Validate(v, tx)
		if d.Accepted != len(tx.Claims) {
			b.Fatalf("accepted %d", d.Accepted)
		}
		txn.Apply(v, d)
		for _, c := range tx.Claims {
			nt, nm, err := txn.Transition(v, c.Task, txn.TaskPending)
			if err != nil {
				b.Fatal(err)
			}
			v.PutMachine(nm)
			v.PutTask(nt)
		}
	}
	b.ReportMetric(float64(b.N*len(tx.Claims))/b.Elapsed().Seconds(), "claims/s")
}
