package sdk

import (
	"github.com/omegacell/omegacell/proto/limits"
	"github.com/omegacell/omegacell/txn"
)

// fitAtomic keeps a transaction that the store applies atomically (all or
// nothing, or with preemptions) within limits.MaxAtomicClaims claims and
// preemptions, which the store refuses beyond. The claims beyond are left
// out (their tasks stay pending and are decided again by the next
// attempt), and so are the preemptions no remaining claim can justify (on
// machines no remaining claim targets). Gangs need nothing: a gang job
// has at most MaxAtomicClaims tasks. taskOf finds a victim in the copy.
func fitAtomic(tx *txn.Transaction, decided []attemptJob, taskOf func(txn.TaskKey) *txn.Task) {
	if tx.Commit != txn.CommitAllOrNothing && len(tx.Preemptions) == 0 {
		return // incremental: the store slices it, any size
	}
	if len(tx.Claims) <= limits.MaxAtomicClaims && len(tx.Preemptions) <= limits.MaxAtomicClaims {
		return
	}
	if len(tx.Claims) > limits.MaxAtomicClaims {
		tx.Claims = tx.Claims[:limits.MaxAtomicClaims]
		for i := range decided {
			decided[i].from = min(decided[i].from, limits.MaxAtomicClaims)
			decided[i].to = min(decided[i].to, limits.MaxAtomicClaims)
		}
	}
	targeted := make(map[string]struct{}, len(tx.Claims))
	for _, c := range tx.Claims {
		targeted[c.Machine] = struct{}{}
	}
	kept := tx.Preemptions[:0:0]
	for _, k := range tx.Preemptions {
		if len(kept) == limits.MaxAtomicClaims {
			break
		}
		if t := taskOf(k); t != nil {
			if _, ok := targeted[t.Machine]; ok {
				kept = append(kept, k)
			}
		}
	}
	tx.Preemptions = kept
}
