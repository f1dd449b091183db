package sdk

import (
	"fmt"
	"testing"

	"github.com/omegacell/omegacell/proto/limits"
	"github.com/omegacell/omegacell/txn"
)

func TestFitAtomic(t *testing.T) {
	claims := func(n int) []txn.Claim {
		out := make([]txn.Claim, n)
		for i := range out {
			out[i] = txn.Claim{Task: txn.TaskKey{Job: "j", Index: uint32(i)}, Machine: fmt.Sprintf("m%d", i)}
		}
		return out
	}
	victims := map[txn.TaskKey]*txn.Task{
		{Job: "v", Index: 0}: {Machine: "m0"},                                       // targeted by a kept claim
		{Job: "v", Index: 1}: {Machine: fmt.Sprintf("m%d", limits.MaxAtomicClaims)}, // only by a claim left out
	}
	taskOf := func(k txn.TaskKey) *txn.Task { return victims[k] }
	big := limits.MaxAtomicClaims + 5
	for _, tc := range []struct {
		name        string
		tx          txn.Transaction
		wantClaims  int
		wantVictims int
	}{
		{"incremental without preemptions is left whole", txn.Transaction{Commit: txn.CommitIncremental, Claims: claims(big)}, big, 0},
		{"all-or-nothing is cut", txn.Transaction{Commit: txn.CommitAllOrNothing, Claims: claims(big)}, limits.MaxAtomicClaims, 0},
		{"small all-or-nothing is left", txn.Transaction{Commit: txn.CommitAllOrNothing, Claims: claims(10)}, 10, 0},
		{"preemptions: claims cut, unjustified victims dropped", txn.Transaction{Commit: txn.CommitIncremental, Claims: claims(big),
			Preemptions: []txn.TaskKey{{Job: "v", Index: 0}, {Job: "v", Index: 1}}}, limits.MaxAtomicClaims, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tx := tc.tx
			decided := []attemptJob{{from: 0, to: len(tx.Claims)}}
			fitAtomic(&tx, decided, taskOf)
			if len(tx.Claims) != tc.wantClaims || len(tx.Preemptions) != tc.wantVictims {
				t.Fatalf("%d claims, %d preemptions; want %d, %d", len(tx.Claims), len(tx.Preemptions), tc.wantClaims, tc.wantVictims)
			}
			if decided[0].to != len(tx.Claims) {
				t.Fatalf("job's claims end at %d, transaction has %d", decided[0].to, len(tx.Claims))
			}
		})
	}
}
