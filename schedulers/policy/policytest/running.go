package policytest

import (
	"fmt"
	"testing"

	"github.com/omegacell/omegacell/schedulers/view"
	"github.com/omegacell/omegacell/txn"
)

// Run places every task of job on the machines named, one task per entry,
// through txn.Validate and txn.Apply (with the devices txn.AssignDevices
// picks), as a scheduler's commit would: the cell's running work for
// preemption tests.
func Run(t testing.TB, v *view.View, job view.JobInfo, machines ...string) {
	t.Helper()
	job.Count = uint32(len(machines))
	pending := AddJob(v, job)
	tx := &txn.Transaction{Scheduler: job.Scheduler, DecidedAt: v.Revision(), Conflict: txn.ConflictFine, Commit: txn.CommitIncremental}
	used := map[string]*txn.Machine{}
	for i, id := range machines {
		m := used[id]
		if m == nil {
			m = v.Machine(id).Clone()
			used[id] = m
		}
		devs, ok := txn.AssignDevices(m, job.Resources.GPUMilli)
		if job.Resources.GPUMilli > 0 && !ok {
			t.Fatalf("run %s/%d on %s: no devices", job.ID, i, id)
		}
		txn.Allocate(m, job.Resources, devs)
		tx.Claims = append(tx.Claims, txn.Claim{Task: pending[i].Key, Machine: id, Resources: job.Resources, Devices: devs})
	}
	d := txn.Validate(v, tx)
	if d.Accepted != len(machines) {
		t.Fatalf("run %s: %d of %d accepted: %+v", job.ID, d.Accepted, len(machines), d.Results)
	}
	txn.Apply(v, d)
	v.SetRevision(v.Revision() + 1)
}

// Machines returns n machine ids with a prefix: prefix0, prefix1, ...
func Machines(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprint(prefix, i)
	}
	return out
}
