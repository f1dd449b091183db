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
// # Quota
//
// A [Ledger] holds each tenant's quota per band ([Tenant], [Quota]) and
// its use ([BandUse]: in use by assigned and running tasks; admitted,
// i.e. requested by pending, assigned and running tasks), derived from
// every task and machine version the State installs. [Validate] enforces
// quotas when its State implements [QuotaState] (the store's state and
// the simulator's cell do), per claim, on the transaction's overlay:
//   - best-effort has no quota (and is always preemptible);
//   - a band without a quota is not limited;
//   - production: in use after the claim <= nominal, on CPU, memory and
//     GPU (whole and milli alike; disk is not under quota). Production
//     quota is a guarantee and never borrows;
//   - batch: in use after the claim <= nominal + borrow limit, and the
//     part above nominal that the claim adds must be idle;
//   - else the claim fails with [ReasonQuotaExceeded] (a conflict: quota
//     frees as tasks end).
//
// Idle, per kind, Kueue-cohort style with the whole cell as the cohort:
//
//	idle = capacity - reserved
//	capacity = the capacity of every machine that is not down
//	reserved = sum over tenants t and bands b in {production, batch} of
//	           max(nominal(t,b), inUse(t,b))  if t has a quota in b
//	           inUse(t,b)                     if it has none
//
// Unused nominal quota is reserved for its owner (never lent), borrowed
// capacity counts as used, and best-effort use counts as idle (it is
// preemptible). A claim borrows only what is idle, so borrowing never
// eats into another tenant's unused nominal quota; sums of quotas beyond
// the capacity leave nothing to borrow.
//
// Victims give their quota back before the claims are checked. Besides
// the precedence of [CanPreempt], a batch claim of a tenant with a batch
// quota, accepted without borrowing, may preempt a batch task of another
// tenant while that tenant borrows (its batch in use is above nominal in
// a kind the victim holds): reclaiming borrowed quota. A failed gang
// gives back what its claims took. Admission ([Ledger.Admit]) applies the
// same rules to a job's whole request against admitted use.
//
// GPUs are accounted per device: a machine with N GPUs has N devices of
// [MilliPerGPU] each. A request of one or more whole GPUs takes whole free
// devices; a fractional request (below 1000 milli) shares one device.
package txn
