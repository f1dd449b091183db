package txn_test

import (
	"slices"
	"testing"

	"github.com/omegacell/omegacell/txn"
)

// TestGangEvictedWhole: a gang victim is evicted whole, its tasks on
// machines no claim targets included, when a sibling sits where a claim
// that may preempt it goes; a lone victim elsewhere is still refused.
func TestGangEvictedWhole(t *testing.T) {
	c := newCell()
	c.gangs = map[string]bool{"begang": true}
	cap8 := txn.Resources{CPUMilli: 8000, MemoryBytes: 8 * gib}
	for _, id := range []string{"m1", "m2", "m3"} {
		c.PutMachine(txn.NewMachine(id, nil, cap8))
	}
	run := func(job string, i uint32, m string, prio int32, r txn.Resources) {
		k := txn.TaskKey{Job: job, Index: i}
		c.PutTask(&txn.Task{Key: k, Scheduler: "gpu", Priority: prio, State: txn.TaskRunning, Machine: m, Resources: r, Attempt: 1})
		mm := c.Machine(m).Clone()
		txn.Allocate(mm, r, nil)
		c.PutMachine(mm)
	}
	run("begang", 0, "m1", txn.PriorityBestEffort, cap8)
	run("begang", 1, "m2", txn.PriorityBestEffort, cap8)
	run("lone", 0, "m3", txn.PriorityBestEffort, txn.Resources{CPUMilli: 1000})
	c.PutTask(&txn.Task{Key: txn.TaskKey{Job: "prod", Index: 0}, Scheduler: "gpu", Priority: txn.PriorityProduction, State: txn.TaskPending, Resources: cap8})
	for _, mode := range []txn.CommitMode{txn.CommitIncremental, txn.CommitAllOrNothing} {
		tx := &txn.Transaction{Scheduler: "gpu", Conflict: txn.ConflictFine, Commit: mode,
			Claims:      []txn.Claim{{Task: txn.TaskKey{Job: "prod"}, Machine: "m1", Resources: cap8}},
			Preemptions: []txn.TaskKey{{Job: "begang", Index: 0}, {Job: "begang", Index: 1}}}
		d := txn.Validate(c, tx)
		if d.Accepted != 1 || !slices.Equal(d.Preempted, tx.Preemptions) || len(d.PreemptionErrors) != 0 {
			t.Errorf("mode %v: accepted %d, preempted %v, errors %q; want the claim and both gang tasks", mode, d.Accepted, d.Preempted, d.PreemptionErrors)
		}
		tx.Preemptions = append(tx.Preemptions, txn.TaskKey{Job: "lone"})
		d = txn.Validate(c, tx)
		if mode == txn.CommitIncremental && (d.Accepted != 1 || len(d.Preempted) != 2 || len(d.PreemptionErrors) != 1) {
			t.Errorf("with a lone victim elsewhere: accepted %d, preempted %v, errors %q; want it refused alone", d.Accepted, d.Preempted, d.PreemptionErrors)
		}
		if mode == txn.CommitAllOrNothing && d.Accepted != 0 {
			t.Errorf("all-or-nothing with a lone victim elsewhere: accepted %d, want the transaction aborted", d.Accepted)
		}
	}
	// The gang's claim must still be able to preempt it: a batch claim may
	// not evict a production gang anywhere.
	c.gangs["prodgang"] = true
	run("prodgang", 0, "m3", txn.PriorityProduction, txn.Resources{CPUMilli: 1000})
	tx := &txn.Transaction{Scheduler: "gpu", Conflict: txn.ConflictFine, Commit: txn.CommitIncremental,
		Claims:      []txn.Claim{{Task: txn.TaskKey{Job: "prod"}, Machine: "m1", Resources: cap8}},
		Preemptions: []txn.TaskKey{{Job: "begang", Index: 0}, {Job: "begang", Index: 1}, {Job: "prodgang", Index: 0}}}
	if d := txn.Validate(c, tx); len(d.Preempted) != 2 || len(d.PreemptionErrors) != 1 {
		t.Errorf("production gang named as a victim: preempted %v, errors %q", d.Preempted, d.PreemptionErrors)
	}
}
