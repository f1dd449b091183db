// Package txn is omegacell's pure transaction model: resources, machines,
// tasks, claims, and the one validator that decides whether a transaction's
// claims still fit the cell.
//
// Contract:
//   - Pure. No I/O, no clocks, no goroutines, standard library only. Every
//     function is deterministic given its inputs.
//   - One source of truth for "does this fit". The store's commit loop, the
//     schedulers' policies and the simulator all call [Fits] (directly or
//     through [Validate]); nobody re-implements resource arithmetic.
//   - Objects are treated as immutable once handed to a [State]. [Validate]
//     never mutates its input; it returns a [Decision] holding fresh copies
//     of every machine it would change, and [Apply] installs them through a
//     [Mutable] state. This is what lets the store hand out snapshots by
//     copying pointers.
//
// Conflict detection follows Omega (Schwarzkopf et al., EuroSys 2013):
// fine-grained ([ConflictFine]) rejects a claim only if the resources no
// longer fit; coarse-grained ([ConflictCoarse]) rejects it if the machine's
// sequence number moved since the scheduler looked. Commit modes are
// incremental (apply what is valid) and all-or-nothing. Whatever the mode,
// a gang job ([State.Gang]) is placed whole or not at all: its claims must
// name every pending task of the job, and fail together. This is the one
// place the gang rule lives; the store and the schedulers' local checks
// both get it through [Validate].
//
// Cost: [Validate] is linear in the transaction (claims and preemptions)
// with O(1) map lookups per claim; constraint terms with many values are
// matched through sets built once per job ([Compile]).
//
// GPUs are accounted per device: a machine with N GPUs has N devices of
// [MilliPerGPU] each. A request of one or more whole GPUs takes whole free
// devices; a fractional request (below 1000 milli) shares one device.
package txn
