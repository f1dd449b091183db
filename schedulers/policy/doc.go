// Package policy is the contract every placement policy of omegacell
// follows, and the building blocks the built-in ones (batch, service, gpu)
// share.
//
// A policy is a pure function
//
//	Place(job, pending tasks, view, rng) -> Decision
//
// from one job's pending tasks and a read-only [view.View] of the cell to
// claims (task -> machine, devices, the machine's Seq as seen), optional
// preemptions and a reason for every task it could not place. Contract:
//   - No I/O, no clocks, no goroutines; deterministic given the view, the
//     input and the seed of rng (math/rand/v2). The production scheduler
//     and the simulator run the same code and get the same decisions.
//   - It never modifies the view. Its own earlier claims within one call are
//     accounted on a [Scratch] overlay (cloned machines, txn.Allocate), so a
//     decision never over-commits a machine with its own claims: on a
//     consistent view, every claim it returns passes [txn.Validate].
//   - The one fit check is txn's: [txn.Fits] (through [Scratch.Check] and
//     [Scratch.Claim]) and [txn.AssignDevices]; policies only rank machines.
//   - A gang job's decision has claims for every pending task or none
//     ([Decision.KeepWholeGang]), and its [Modes] ask for all-or-nothing.
//
// Search follows Borg (Verma et al., EuroSys 2015): tasks with identical
// requests and constraints form an equivalence class ([Classes]) whose
// feasibility and scores are computed once; machines are examined in a
// random order and only until enough feasible ones are found ("relaxed
// randomization", [Pool]), so the cost per task does not grow with the cell.
package policy
