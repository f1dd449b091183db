package txn_test

import (
	"strings"
	"testing"

	"github.com/omegacell/omegacell/txn"
)

// TestPreemptionOnlyForAcceptedClaims: a victim is evicted only if an
// accepted claim on its machine may preempt it. Here the claim on m1 fails
// its constraint, so its victim must stay; the claim on m2 succeeds and
// its victim goes.
func TestPreemptionOnlyForAcceptedClaims(t *testing.T) {
	c := newCell()
	c.addMachine("m1", map[string]string{"zone": "a"}, res(1, 4, 0, 0))
	c.addMachine("m2", map[string]string{"zone": "b"}, res(1, 4, 0, 0))
	v1 := c.addTask("low", 0, txn.PriorityBatch, res(1, 1, 0, 0))
	v2 := c.addTask("low", 1, txn.PriorityBatch, res(1, 1, 0, 0))
	c.place(v1.Key, "m1")
	c.place(v2.Key, "m2")
	h1 := c.addTask("high", 0, txn.PriorityBatch+50, res(1, 1, 0, 0))
	h1.Constraints = []txn.Constraint{{Key: "zone", Op: txn.OpIn, Values: []string{"b"}}}
	h2 := c.addTask("high", 1, txn.PriorityBatch+50, res(1, 1, 0, 0))
	before := c.clone()

	d := txn.Validate(c, &txn.Transaction{
		Scheduler: "batch", Conflict: txn.ConflictFine, Commit: txn.CommitIncremental,
		Claims: []txn.Claim{
			{Task: h1.Key, Machine: "m1", Resources: h1.Resources},
			{Task: h2.Key, Machine: "m2", Resources: h2.Resources},
		},
		Preemptions: []txn.TaskKey{v1.Key, v2.Key},
	})
	if d.Results[0].Reason != txn.ReasonConstraintViolated || d.Results[1].Reason != txn.ReasonOK {
		t.Fatalf("results %v", d.Results)
	}
	if len(d.Preempted) != 1 || d.Preempted[0] != v2.Key {
		t.Fatalf("preempted %v, want only %v", d.Preempted, v2.Key)
	}
	if len(d.PreemptionErrors) != 1 || !strings.Contains(d.PreemptionErrors[0], "low/0") {
		t.Fatalf("preemption errors %q should explain why low/0 stayed", d.PreemptionErrors)
	}
	for _, m := range d.Machines {
		if m.ID == "m1" {
			t.Fatalf("m1 changed although nothing was placed or evicted there: %+v", m)
		}
	}
	if diff := before.diff(c); diff != "" {
		t.Fatalf("Validate mutated its input: %s", diff)
	}
	txn.Apply(c, d)
	if msgs := checkInvariant(c); len(msgs) > 0 {
		t.Fatalf("invariant: %v", msgs)
	}
}
