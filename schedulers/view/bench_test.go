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

// BenchmarkPutTaskLargeView measures what a scheduler's copy does most in
// a busy cell: absorbing other schedulers' task changes. The view holds
// 200,000 tasks of 1,000 jobs on 10,000 machines; each operation moves one
// task through assigned, running and back to pending.
func BenchmarkPutTaskLargeView(b *testing.B) {
	v := New()
	const machines, jobs, perJob = 10000, 1000, 200
	for i := range machines {
		v.PutMachine(txn.NewMachine(fmt.Sprintf("m%05d", i), nil, txn.Resources{CPUMilli: 64000, MemoryBytes: 1 << 38}))
	}
	var tasks []*txn.Task
	for j := range jobs {
		info := JobInfo{ID: fmt.Sprintf("%08d-0000-4000-8000-000000000000", j), Scheduler: "s", Resources: txn.Resources{CPUMilli: 100, MemoryBytes: 1 << 20}}
		v.PutJob(info)
		for i := range uint32(perJob) {
			t := info.NewTask(i)
			t.State, t.Machine, t.Attempt = txn.TaskRunning, fmt.Sprintf("m%05d", (j*perJob+int(i))%machines), 1
			v.PutTask(t)
			tasks = append(tasks, t)
		}
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		t := tasks[(i*7919)%len(tasks)]
		i++
		p := *t
		p.State, p.Machine = txn.TaskPending, ""
		v.PutTask(&p)
		a := *t
		a.State, a.Attempt = txn.TaskAssigned, t.Attempt+1
		v.PutTask(&a)
		r := a
		r.State = txn.TaskRunning
		v.PutTask(&r)
	}
	b.ReportMetric(float64(3*b.N)/b.Elapsed().Seconds(), "puts/s")
}
