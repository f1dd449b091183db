// Package sim is omegacell's Omega-style discrete-event simulator of one
// cell: `cell bench sim`. It compares scheduler architectures the way the
// Omega paper does (Schwarzkopf et al., EuroSys 2013, sections 4 and 5),
// but on the product's own code: every placement is committed with
// txn.Validate and txn.Apply against the simulated cell, tasks end through
// txn.Transition, fit is txn.Fits, and in monolithic and shared-state runs
// the decisions are made by the production policies (schedulers/batch,
// service, gpu) on a schedulers/view copy of the cell. A result of the
// simulator is a result about the product.
//
// Contract:
//   - Discrete events on a virtual clock (seconds, float64). No sleeps, no
//     goroutines, no wall clock in the simulation; deterministic given the
//     configuration, the workload and the seed (math/rand/v2 PCG streams:
//     one per job type for the workload, so every architecture sees the
//     same jobs, and one per scheduler for its decisions). Events at equal
//     times run in the order they were scheduled.
//   - Architectures ([Arch]): monolithic single-path (one scheduler, one
//     slow code path), monolithic multi-path (one scheduler, per-kind
//     decision times, one queue), two-level (Mesos-style offers that lock
//     resources, DRF order), shared state (a scheduler per kind, N batch
//     schedulers, optimistic transactions with fine or coarse conflict
//     detection, incremental or all-or-nothing commits). A job's decision
//     takes t_job + t_task × tasks ([Timing]); a job is retried until all
//     its tasks are placed and abandoned after MaxAttempts attempts (or
//     MaxAttemptsUnplaced attempts that placed nothing).
//   - Workloads ([Source]): synthetic ([Workload], YAML or JSON files, four
//     built in under workloads/) with a steady-state prefill; the Google
//     2011 cluster-data trace ([ReadGoogleTrace]); the Alibaba GPU 2023
//     trace ([ReadAlibabaTrace]). A malformed trace row is a [RowError]
//     naming the file, line and column.
//   - Metrics ([Result]) as the paper defines them: job wait time (to the
//     first scheduling attempt; mean and 90th percentile) per job type and
//     kind, scheduler busyness (median of daily values), conflict fraction
//     (conflicted per successful transaction), abandoned and unscheduled
//     jobs, time-averaged CPU and memory utilisation, GPU allocation ratio
//     and stranded GPU capacity (txn.StrandedGPUMilli).
//   - Sweeps ([Sweep], [Experiments]) run series × axis values and write
//     CSV, JSON and gonum/plot charts (PNG, SVG).
//   - The FGD protocol ([RunFGD], [FGDSweep]): the GPU allocation
//     experiment of Weng et al. (USENIX ATC 2023, Fig. 9a) on the Alibaba
//     openb trace, without the event loop: pods arrive one at a time in a
//     seeded order, inflated to 130% of the GPUs, never leave; the
//     production gpu policy (through gpu.Decide and gpu.Commit) against
//     the paper's baselines ([FGDPolicies]) on the same view and txn fit.
//   - A trace run without a horizon replays the whole Alibaba trace; what
//     a replay leaves out is counted in [Trace.Skipped] and printed.
//
// Files, top-down: config.go (architectures, timing, configuration),
// sim.go (the event loop and job lifecycle), optimistic.go (monolithic and
// shared state), twolevel.go, decide.go (the decision step and randomized
// first fit), policies.go (the production policies on a view mirror),
// cell.go (the simulated store), event.go, metrics.go, workload.go,
// dist.go, source.go, trace.go, google.go, alibaba.go, sweep.go,
// output.go, chart.go, cmd.go; the FGD protocol in fgd.go (protocol and
// trace), fgdpolicies.go (baselines), fgdsweep.go (seeds × policies,
// table, CSV, JSON, chart), fgdcmd.go (its flags).
package sim
