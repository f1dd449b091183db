// Package fair is weighted Dominant Resource Fairness (Ghodsi et al., "Dominant
// Resource Fairness: Fair Allocation of Multiple Resource Types", NSDI 2011)
// for the queues of the batch and GPU schedulers.
//
// A tenant's dominant share is the largest, over CPU, memory and GPUs, of
// what the tenant holds in the cell divided by the cell's capacity of that
// resource, divided by the tenant's weight. DRF gives the next decision to
// the tenant with the lowest dominant share (progressive filling), so with
// every tenant's queue saturated the tenants' unweighted dominant shares
// converge to the ratio of their weights.
//
// [Queue] orders jobs for a scheduler:
//  1. by priority band (production, then batch, then best-effort): a band's
//     jobs never wait behind a lower band's, whatever the tenants' shares;
//  2. within a band, across tenants, by weighted dominant share, lowest
//     first; a starving tenant (one that holds nothing) thus always goes
//     first, and among tenants with equal shares the one whose head job
//     comes first in the within-tenant order (so: waited longest) goes
//     first, then the tenant name;
//  3. within a tenant and band, FIFO by priority: higher priority first,
//     then earlier submission, then job id (the order the caller gives).
//
// Contract:
//   - Pure: no I/O, clocks or goroutines; deterministic for the same calls.
//   - Incremental: each tenant's jobs sit in a heap per band, and each band
//     keeps an indexed heap of its tenants keyed by their share; a push or
//     pop costs O(log jobs + log tenants), a usage or weight change of one
//     tenant O(log tenants), a capacity change O(tenants). Nothing is
//     sorted per decision.
//   - Stale entries: the queue does not know when a job stops being ready;
//     callers drop stale entries they pop (as the SDK's queue does).
//   - Usage, weights and capacity are inputs ([Queue.SetUsage],
//     [Queue.SetWeight], [Queue.SetCapacity]); a tenant without a weight
//     has weight 1.
package fair
