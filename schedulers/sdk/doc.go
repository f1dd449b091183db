// Package sdk runs an Omega-style scheduler: a process with its own local
// copy of the cell that places the pending tasks of the jobs naming it and
// commits its decisions as optimistic transactions, in parallel with every
// other scheduler of the cell and without asking anyone's permission
// (Schwarzkopf et al., "Omega: flexible, scalable schedulers for large
// compute clusters", EuroSys 2013).
//
// A team brings a placement policy (package policy: a pure function from
// one job's pending tasks and a read-only view of the cell to claims) and
// runs it in a few lines:
//
//	err := sdk.Run(ctx, sdk.Config{
//		Server:      "127.0.0.1:7070", // the cell server
//		Name:        "mine",           // jobs say scheduler: mine
//		Policy:      myPolicy,         // a policy.Policy
//		MetricsAddr: ":9100",          // optional: GET /metrics
//	})
//
// Run returns nil when ctx ends. `cell scheduler --policy batch|service|gpu`
// is this call with a built-in policy; examples/customsched is a complete
// binary with a policy of its own. Schedulers in other languages speak the
// same gRPC protocol, described in PROTOCOL.md next to this file.
//
// What Run does:
//   - Registers the name (SchedulerService.RegisterScheduler; jobs and
//     commits may only name registered schedulers), waiting for the server
//     if it is not up yet.
//   - Keeps a local copy (view.View, indexed so policies never scan the
//     whole cell per task): StateService.Snapshot, then StateService.Watch
//     from the snapshot's revision, so the copy is always a prefix of the
//     cell's history. When the watch start was compacted it reads a new
//     snapshot; when the server is unavailable it reconnects with backoff
//     and resumes the watch where it stopped, unless the answers now come
//     from another cell incarnation (another cell on the address, or the
//     server restarted or restored): then it reads a new snapshot, so the
//     copy never mixes two histories. Revisions sent as fragments are
//     joined before they are applied. Config.Ready, if set, is called once
//     the first copy is read.
//   - Queues the jobs that own pending tasks (task.scheduler == Name):
//     higher priority first, then earlier submission. Tasks in their
//     restart delay (task.not_before_unix_nano, set by the store) wait;
//     a gang waits until all its pending tasks may go.
//   - Takes the head job, calls the policy on the copy, and commits the
//     claims and preemptions as one transaction decided at the copy's
//     revision, with the policy's conflict and commit modes unless
//     Config.ConflictMode or Config.CommitMode override them (a gang is
//     always all-or-nothing).
//   - After every commit it lets the copy catch up with the revision the
//     commit was checked against (the commit's revision, or the cell's
//     current one when nothing was applied). Conflicted tasks are retried,
//     alone, after a backoff (Config.Backoff), on that fresher copy.
//   - A job parks, marked unschedulable through
//     JobService.SetJobSchedulingStatus with the reason and the attempts
//     so far (Omega's abandoned jobs; `cell job status` shows it), when the
//     policy cannot place its tasks on the copy, or after
//     Config.MaxAttempts attempts in a row without an accepted claim.
//     Parked jobs are tried again when the cell changes in a way that could
//     help (a machine added, back to ready, with more capacity or new
//     labels, or with resources freed, on which a task of the job fits),
//     when a task of the job leaves its restart delay, and after
//     Config.ParkedRetry in any case (a preempting policy may have found
//     new victims). The mark is cleared once the job's tasks are all
//     placed. A policy that panics fails the attempt (the panic is the
//     reason), not the scheduler.
//   - Reports its figures every Config.StatsInterval
//     (SchedulerService.ReportSchedulerStats), so `cell scheduler list`
//     shows busyness, conflict fraction and queue length.
//
// One goroutine owns the copy, the queue and the policy's random numbers
// (seeded by Config.Seed), so decisions are deterministic given the
// changes the scheduler saw; another follows the watch stream and hands
// it responses in order. The policy is called from that one goroutine,
// never concurrently.
//
// Metrics (Prometheus, prefix omegacell_scheduler_, label scheduler=Name),
// named after the Omega paper's figures: busyness (gauge over the last
// minute) and busy_seconds_total (time deciding and committing),
// conflict_fraction (conflicted claims per accepted claim, last minute),
// decision_seconds (time in the policy per attempt), commit_seconds,
// commits_in_flight (1 from sending a Commit until its claims are
// counted), claims_total by outcome, transactions_total by result (accepted,
// partial, conflicted, failed), preemptions_total, job_wait_seconds
// (submission to first attempt, until=first_attempt; to all tasks placed,
// until=placed), attempts_per_job, jobs_unschedulable_total, queue_jobs by
// state (ready, waiting, parked), queue_tasks, view_revision,
// snapshots_total by reason and watch_restarts_total by reason. The
// windowed gauges and queue gauges are refreshed every
// Config.StatsInterval.
//
// Busyness counts an attempt from the policy's call to the commit's
// answer: a scheduler cannot decide anything else meanwhile. Config.Clock
// drives the loop's timing (backoff, restart delays, parked retries,
// figures); network timeouts use the wall clock.
package sdk
