package sdk

import (
	"fmt"
	"testing"
	"time"

	"github.com/omegacell/omegacell/cellstate"
	"github.com/omegacell/omegacell/proto/limits"
	"github.com/omegacell/omegacell/schedulers/batch"
)

// TestBurstOfSmallJobsIsCommittedInBatches: 40 one-task jobs waiting at
// once are decided together and committed in a few transactions, and the
// jobs of one batch do not compete for the same room (each decision is
// applied to the copy before the next is made), so the cell is filled
// exactly with no conflict at all.
func TestBurstOfSmallJobsIsCommittedInBatches(t *testing.T) {
	c := newTestCell(t, cellstate.Options{})
	for i := range 4 {
		c.addMachine(fmt.Sprintf("m%d", i), nil, 1000, 8*gib, 0)
	}
	var ids []string
	for i := range 40 {
		ids = append(ids, c.submit(jobSpec(fmt.Sprintf("small-%d", i), "batch", 100, 1, 100, gib/8, 0)).Id)
	}
	s := startScheduler(t, c, Config{Name: "batch", Policy: batch.New(), Seed: 1})
	for _, id := range ids {
		c.waitPlaced(id, 10*time.Second)
	}
	c.checkInvariant()
	waitMetric(t, s.reg, "omegacell_scheduler_claims_total", map[string]string{"outcome": "accepted"}, 40)
	if conflicts := metric(t, s.reg, "omegacell_scheduler_claims_total", map[string]string{"outcome": "!accepted"}); conflicts != 0 {
		t.Errorf("%v conflicted claims: jobs of one batch competed for the same room", conflicts)
	}
	if txns := metric(t, s.reg, "omegacell_scheduler_transactions_total", map[string]string{}); txns > 4 {
		t.Errorf("%v transactions for 40 waiting one-task jobs, want a few batches", txns)
	}
}

// TestBatchesFitATransaction: the batch bounds are within what one
// transaction may hold.
func TestBatchesFitATransaction(t *testing.T) {
	if maxBatchJobs > limits.MaxJobsPerCommit {
		t.Errorf("a batch of %d jobs exceeds the %d jobs a transaction may claim for", maxBatchJobs, limits.MaxJobsPerCommit)
	}
	if maxBatchClaims > limits.MaxClaimsPerCommit {
		t.Errorf("a batch of %d claims exceeds the %d of a transaction", maxBatchClaims, limits.MaxClaimsPerCommit)
	}
}
