// Package batch is omegacell's built-in batch policy: best-fit bin packing
// with Borg's equivalence classes and relaxed randomization, committed
// incrementally with fine-grained conflict detection.
//
// For each equivalence class of the job's pending tasks (identical
// resources, constraints and max-per-machine; feasibility and scores are
// computed once per class) the policy examines the candidate machines in
// a random order until it has found max(MinSample, SampleFactor × tasks
// left) feasible ones, then claims on the best fit among them: the machine
// left with the smallest free CPU plus memory fraction after the task
// (Borg's "best fit"; it packs tightly and keeps whole machines free for
// large tasks). For tasks that ask for no GPU, machines with GPUs rank
// behind all machines without, keeping accelerators for the work that
// needs them.
// A machine stays a candidate, rescored, while the class still fits on it;
// when the sample runs dry the next one is drawn. The cost per task is
// therefore a few machine checks and a heap operation, whatever the size of
// the cell (Verma et al., "Large-scale cluster management at Google with
// Borg", EuroSys 2015, §3.4).
//
// Preemption (issue 12, policy.Evictor): a task that fits nowhere may
// evict lower-band work (production evicts batch and best-effort, batch
// evicts best-effort; production is never evicted), and a batch task of a
// tenant within its nominal batch quota may evict batch tasks of tenants
// that borrow above theirs (reclaiming borrowed quota, as txn.Validate
// allows). Victims are chosen per machine, fewest and youngest first; a
// victim of a gang job is evicted whole. The scheduler's queue is ordered
// by weighted DRF across tenants (the policy is a policy.FairSharer; see
// package schedulers/fair).
//
// The policy is pure and deterministic given its rng; see package policy.
package batch
