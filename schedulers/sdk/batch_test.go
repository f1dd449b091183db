package sdk

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/omegacell/omegacell/cellstate"
	"github.com/omegacell/omegacell/proto/limits"
	"github.com/omegacell/omegacell/schedulers/batch"
	"github.com/omegacell/omegacell/txn"
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

// TestHostileCommitIsCheckedBeforeSending: a policy's malformed claim is
// refused by the SDK with the store's own message, naming the field, and
// nothing reaches the cell.
func TestHostileCommitIsCheckedBeforeSending(t *testing.T) {
	c := newTestCell(t, cellstate.Options{})
	c.addMachine("m1", nil, 1000, gib, 0)
	job := c.submit(jobSpec("one", "batch", 100, 1, 100, gib/8, 0))
	cfg, err := Config{Conn: c.conn, Name: "batch", Policy: batch.New()}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	s, err := newScheduler(cfg, c.conn, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	before := c.store.Revision()
	r := txn.Resources{CPUMilli: 100, MemoryBytes: gib / 8}
	for _, tt := range []struct {
		name  string
		tx    txn.Transaction
		field string
	}{
		{"machine id that is none", txn.Transaction{Scheduler: "batch", Claims: []txn.Claim{{Task: txn.TaskKey{Job: job.Id}, Machine: "!! " + strings.Repeat("m", 1<<20), Resources: r}}}, "claims[0].machine_id"},
		{"unknown commit mode", txn.Transaction{Scheduler: "batch", Commit: 9, Claims: []txn.Claim{{Task: txn.TaskKey{Job: job.Id}, Machine: "m1", Resources: r}}}, "commit_mode"},
		{"no claims", txn.Transaction{Scheduler: "batch"}, "claims"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.commit(context.Background(), &tt.tx)
			st := status.Convert(err)
			if st.Code() != codes.InvalidArgument || !strings.Contains(st.Message(), tt.field+":") || len(st.Message()) > 1000 {
				t.Fatalf("got %v %s, want InvalidArgument naming %s", st.Code(), limits.Quote(st.Message()), tt.field)
			}
		})
	}
	if after := c.store.Revision(); after != before {
		t.Errorf("revision moved from %d to %d: something was sent", before, after)
	}
}
