// Package view is a scheduler's local copy of the cell: machines, jobs and
// tasks as [txn] objects, plus the indexes a placement policy needs so that
// it never scans every machine of a big cell for every task.
//
// Contract:
//   - Pure: no I/O, no clocks, no goroutines. A View is not safe for
//     concurrent use; one scheduler loop (or one simulator) owns it.
//   - It is fed with txn objects ([View.PutMachine], [View.PutTask],
//     [View.PutJob], [View.RemoveJob]) or with the cell/v1 changes of a
//     snapshot or a watch stream ([View.ApplyChange],
//     [View.ApplyWatchResponse], [View.ApplySnapshotChunk]), converted by
//     pbconv. A [txn.Decision] is applied with [txn.Apply]: a View is a
//     [txn.Mutable].
//   - It implements [txn.State], so claims are pre-checked with the very
//     validator the store runs ([txn.Validate]); the view holds no fit
//     logic of its own.
//   - Objects handed to it are treated as immutable (as in txn): a change
//     is a new object replacing the old one.
//   - Every query that returns machines returns ordinals (dense int32
//     handles, assigned on first sight, never reused) in ascending order
//     (or, where a query says so, a concatenation of ascending lists), so
//     iteration is deterministic and independent of map order. Slices
//     returned by queries are owned by the view: read them, do not keep or
//     modify them across changes.
//
// Indexes (all restricted to machines in state ready, the only ones a claim
// may target): the ready set; machines by label key and value (zone, rack,
// gpu.model, ...); GPU machines and machines by number of wholly free
// devices; tasks holding resources per machine (preemption victims); per
// job, its tasks holding resources per machine (max-per-machine, spread)
// and its pending tasks; the histogram of GPU request sizes in the cell
// (the workload that fragmentation-aware GPU placement measures against).
package view
