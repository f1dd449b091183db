// Package load is omegacell's end-to-end load benchmark, `cell bench load`,
// measured the way kube-scheduler's scheduler_perf measures itself: real
// components, a named workload, throughput sampled every second.
//
// What runs: a cell server (cellserver: the store with an fsync per group
// commit, gRPC, embedded NATS) in this process, or an external one with
// --server; a simulated fleet (agent.Simulation: every machine registered,
// NATS heartbeats, one watch, task states reported back); and the
// workload's schedulers (sdk.Run with the built-in batch, service or gpu
// policy), K instances each with --schedulers K. All of it talks over
// loopback gRPC exactly as separate processes would; the benchmark itself
// is only a client: it submits jobs with JobService.SubmitJob and follows
// the cell with one StateService.Watch.
//
// Contract:
//   - A workload (workload.go; built in: workloads/*.yaml, or a YAML/JSON
//     file validated field by field, errors naming the field) is a fleet,
//     schedulers and phases. A burst phase submits its tasks as fast as
//     the cell takes them (Config.Submitters in flight); a rate phase
//     submits jobs open loop at a fixed rate, and its latencies count from
//     each job's due time, not from when it could be sent (no coordinated
//     omission). A phase ends when every one of its tasks is placed.
//   - "Placed" means seen assigned to a machine on the watch: committed,
//     durable (acknowledged only after the synced write) and published.
//     "Running" means the simulated agent saw it and its report was
//     committed. Every time is taken on this process's clock.
//   - Figures of a measured phase (Report): placements per second overall
//     and sampled every Config.SampleInterval (average, p50, p90, p99,
//     first sample skipped as scheduler_perf does); submit→placed and
//     submit→running latency (HdrHistogram); the store's commit latency and
//     group commits (its Prometheus histograms, via the in-process registry
//     or --server-metrics); per scheduler instance the transactions,
//     accepted and conflicted claims, Omega's conflict fraction (conflicted
//     per accepted) and busyness (its own metrics); and, over the measured
//     phases, the process's user and system CPU (getrusage) split between
//     server, agents, each scheduler and the benchmark by pprof labels on a
//     CPU profile (--cpuprofile keeps it).
//   - At the end the cell is read with StateService.Snapshot and checked:
//     cellstate.CheckSnapshot (no overcommit, allocations match, no task
//     twice) and every task the benchmark submitted is assigned, running
//     or succeeded, on a machine, at attempt 1 (placed exactly once). A
//     failure is ErrInvariant and a non-zero exit, after the report.
//
// Files, top-down: cmd.go (the command), run.go (setting up the rig and
// the run), phase.go (submitting and waiting), observer.go (the watch),
// verify.go, report.go, metrics.go (Prometheus figures), cpu.go (rusage
// and the labelled profile), workload.go and plan.go (workloads and their
// layout into jobs).
package load
