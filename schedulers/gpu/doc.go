// Package gpu is omegacell's built-in policy for GPU work: gang placement,
// GPU count and model constraints, gangs packed into few racks and
// machines, fractional GPUs sharing devices, and fragmentation-aware
// choice of machines.
//
// Fragmentation. The policy follows Fragmentation Gradient Descent (FGD)
// from Weng et al., "Beware of Fragmentation: Scheduling GPU-Sharing
// Workloads with Fragmentation Gradient Descent", USENIX ATC 2023. A
// machine's idle GPU capacity is a fragment for a task shape when that
// shape cannot use it: all of it when the shape does not fit on the
// machine at all (its CPU, memory or GPUs short: FGD's Q1, Q2 and Q4),
// otherwise the idle milli-GPU on devices the shape cannot use (for a
// fractional shape, devices with less free than it asks; for a whole-GPU
// shape, partly used devices). The machine's fragmentation is the
// expectation over the target workload ([Workload]): a given one
// (Policy.Workload) or, by default, the one learned from the view on
// every call, the most common shapes of the cell's pending and running
// tasks covering 95% of them ([LearnWorkload], [view.View.Shapes]; the
// paper's "typical tasks"). Learning from the view is what makes the
// workload follow the cell: finished tasks leave it, so old shapes decay
// as they stop running. Shapes without GPUs count as in FGD (every idle
// GPU is a fragment for them wherever a task lands) and so drop out of
// the gradient.
//
// Ranking ([Score], lower is better, terms in order): for a GPU task the
// growth of fragmentation (FGD's gradient) plus, weighted by
// Policy.BalanceWeight (default one half), the growth of the machine's
// CPU-to-GPU imbalance against the workload's CPU per GPU, counted double
// when CPU falls short of the idle GPUs (GPUs behind exhausted CPU are
// lost to every shape); then the change of GPU shares stranded on partly
// used devices (a fractional task completes a used device first); then
// the imbalance left (best fit on the right ratio). Devices: for a
// fractional task, the device whose use grows fragmentation least (the
// most used on ties); for whole GPUs, txn.AssignDevices'. Tasks without
// GPUs avoid GPU machines when others fit; among GPU machines they go
// where fragmentation grows least, then where the fewest GPUs are idle
// (packing CPU-only work next to busy GPUs, not idle ones), then best
// fit. Equal scores go to the lowest machine ordinal, so a decision does
// not depend on the random stream when every candidate is scored.
//
// On FGD's own experiment (the Alibaba openb trace, 1,213 machines, pods
// arriving until 130% of the GPUs are requested; `cell bench sim sweep
// --protocol fgd`, bench/README.md) this allocates about 95.9% of the GPUs
// (median of seeds 42–51) where the paper's FGD reaches 95.4% and BestFit
// 93.1%.
//
// The researcher's API: [Decide] places one task on a view with a policy
// and returns a [Choice] (machine, devices, the [Score] breakdown and the
// workload measured against) without changing the view; [Commit] applies
// it as the store would (txn.Validate, txn.Apply). See Example.
//
// Gangs (job.Gang) are placed whole or not at all: the decision has a
// claim for every pending task or none, and [Policy.Modes] asks for an
// all-or-nothing commit, so a gang is never partially placed even when
// some claims lose a race. A gang is planned over every feasible GPU
// machine (no sampling: the plan needs the whole picture):
//  1. Each feasible machine's capacity for the gang's tasks is estimated
//     from its free resources and devices; machines are grouped by rack
//     (machines without a rack label form one group).
//  2. Fewest racks: the racks with the most capacity are taken until the
//     gang fits, and the last one is swapped for the rack that holds the
//     rest on the fewest machines, then with the least capacity to spare
//     (best fit, keeping big racks for big gangs).
//  3. Fewest machines within each rack: machines with the most capacity
//     first; the last, partially used machine is the one with the best
//     [Score] among those that hold the rest.
//  4. Each planned task is claimed on the decision's overlay, checked by
//     txn.Fits; if an estimate was optimistic the remaining tasks go to
//     the next machines in plan order. If any task is left, nothing is
//     claimed.
//
// Non-gang tasks are placed one by one on the best-ranked machine: every
// feasible candidate is scored when there are at most Policy.ScanAll
// (4,096) of them, as FGD does; in larger cells machines are sampled
// Borg-style (package policy) in random order until enough feasible ones
// are found. The chosen machine is scored again after each claim.
//
// Preemption (issue 12, policy.Evictor): a task that fits nowhere may
// evict lower-band work, and a batch task may reclaim borrowed batch
// quota, as in package batch. A gang that does not fit is decided again
// task by task, each on the best-ranked machine where it fits or else
// where evicting makes room, preferring machines the gang already uses
// (fewest machines), single tasks before whole gangs, fewest and youngest
// victims; production never preempts production. The scheduler's queue
// is ordered by weighted DRF across tenants (package schedulers/fair).
//
// The policy is pure and deterministic given the view and its rng (which
// only sampling uses); see package policy.
package gpu
