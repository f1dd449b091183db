// Package cellstate is omegacell's authoritative cell-state store and the
// gRPC server of the cell.
//
// Contract:
//   - Every request is checked by package apicheck (each field against
//     proto/limits) before anything else, and refused with
//     InvalidArgument naming the field; errors quote at most 100 bytes of
//     a value. No round of the commit loop holds more than a slice of any
//     request (slice.go): a submission's tasks are built and encoded
//     before the loop; an incremental commit and a stopped or failed
//     job's kills are applied 4,096 items per round, each slice its own
//     revision, with other callers' operations between slices, the
//     caller answered after the last; what must be atomic (all-or-nothing
//     or preempting transactions, gangs) is bounded by
//     limits.MaxAtomicClaims (BenchmarkCommitLoopHostile measures the
//     worst legal request of each kind).
//   - One commit loop owns all state changes. It takes operations (commit
//     a transaction, submit or stop a job, register or drain a machine, an
//     agent's task updates, mark a machine down, ...) one at a time in
//     arrival order, validates each with package txn (the one fit check),
//     and gives every operation that changes something the next cell-wide
//     revision.
//   - Group commit: the changes of every operation taken in one round go
//     into one Pebble batch with one synced write. Only after that write
//     returns are callers answered and the changes published to watchers.
//     Nothing is acknowledged, and no watcher sees anything, before it is
//     durable.
//   - In memory, objects (machines, tasks, jobs) are immutable once
//     installed: a change installs a new version. Readers copy pointers
//     under a read lock, so a snapshot of a million tasks costs a few
//     milliseconds of memmove, not a deep copy.
//   - Durable layout (Pebble): current objects under m/, j/, t/, s/; the
//     change log under l/<revision> (each entry is the encoded
//     WatchResponse of that revision); meta/ holds the revision and the
//     compaction point. Objects and log are written in the same batch, so
//     recovery (indexes rebuilt from the objects) is always consistent
//     with the log. The log is a clean ordered sequence of revisions, ready
//     to be shipped to replicas later.
//   - Log compaction keeps the newest Options.LogRetention revisions. A
//     watch from an older revision is answered with the compaction point
//     and OUT_OF_RANGE: the client must resnapshot.
//   - Every RPC is authorized for the caller's identity (authorize.go and
//     the table of package authz): a gate interceptor refuses roles that
//     may not call a method at all, and each handler decides with the
//     request's facts, then shapes what it reads (schedulers get jobs
//     redacted, agents their machines, users their tenants). Refusals are
//     PermissionDenied naming identity, method and rule, logged
//     (rate-limited) and counted. The store enforces what needs its state
//     atomically: a scheduler's claims only for its jobs, a machine
//     re-registered only by its registrant.
//   - Watchers of the redacted view share one redacted encoding per
//     revision, made lazily; a revision without a job is the same bytes.
//   - Every legal object fits the wire: Snapshot chunks are bounded in
//     bytes (4 MiB) as well as objects, ListJobs and ListMachines are
//     paged with cursor tokens (pages.go), and a revision larger than 4 MiB
//     reaches watchers as fragments (WatchResponse.fragment). A progress
//     notification for R follows every change <= R the watch selects.
//   - The cell has an id (a UUID made with the data directory) and an
//     incarnation (counted up at every open), durable before anything is
//     served and carried by every Snapshot chunk, Watch response,
//     RegisterMachine and GetJob answer (identity.go), so clients never
//     mix two cells' (or two incarnations') histories.
//   - Liveness (heartbeats, usage) is not revisioned: it lives in memory
//     and only state transitions it causes (a machine marked down, its
//     tasks lost) go through the commit loop. Only registered machines are
//     tracked; silence is measured up to what the server has heard, so a
//     flood that delays or drops heartbeats never marks a live machine
//     down (liveness.go, watermark.go).
//   - Memory is bounded by what is live (gc.go): finished jobs are deleted
//     with their tasks after Options.JobRetention, as a revisioned change
//     (Change.deleted); silent schedulers without live jobs are forgotten
//     after Options.SchedulerTTL and their number is capped; the cell's
//     pending tasks are capped (Options.MaxPendingTasks).
//   - Task logs are not cell state: GetTaskLogs (logs.go) asks the agent of
//     the task's last machine over NATS request/reply on that machine's own
//     subject, within a deadline and server-wide and per-caller bounds on
//     calls in flight. The server never dials an address a client gave it.
//   - Replication (replica.go, package replication): in cluster mode the
//     commit loop reads the store's role once per round. A leader's round
//     is handed to the Replicator (the JetStream log, fenced on the
//     previous revision) after it is built and before Pebble, answers and
//     watchers; a refused append fails the round and the store reloads its
//     durable state. A follower's loop takes only the leader's revisions
//     (applyOp installs the leader's objects, group-committed like any
//     round) and refuses everything else with NotLeaderError. Without
//     replication the two calls are nil checks.
//   - Changing a running job (issue 13; update.go, rollout.go, plan.go,
//     versions.go): SubmitJob on a live name of the same tenant makes a
//     new version; the newest limits.MaxJobVersions specs are durable
//     under jv/ and deleted with the job. A service whose template changed
//     is rolled out by a controller inside the commit loop, driven by the
//     changes of its tasks and by a clock only while a rollout runs;
//     every step is one operation, so waves never overlap and a restart
//     resumes from the durable job and task fields. PlanJob reads the
//     state under the read lock and changes nothing.
package cellstate
