// Package jobspec reads job specs, the YAML (or JSON) files people submit
// with `cell job run`, into the API's cell.v1.JobSpec, and writes amounts
// back in the same units for the CLI.
//
// Contract:
//   - Strict. Unknown fields are refused (case-sensitively, with a
//     suggestion for typos), so are duplicate keys, values of the wrong
//     type (YAML's unquoted `no` is a boolean, `8080` a number), a second
//     YAML document, and every value outside the rules below.
//   - Precise errors. [Parse] reports every problem it finds as an
//     [Errors] list; each [FieldError] names the field path as written
//     (task.resources.memory, task.constraints[1]) and, for block-style
//     YAML, its line; YAML syntax errors carry the parser's line.
//   - One set of rules. Resource requests are checked by
//     txn.ValidateRequest and constraints by txn.Constraint.Validate, the
//     same checks the store applies, after the friendlier checks here.
//   - Pure apart from [ParseFile]: no clocks, no goroutines.
//
// An error reads, one per line:
//
//	line 9: task.resources.memory: "12Qi": unknown unit "Qi" (want one of k, M, G, T, P, E, Ki, Mi, Gi, Ti, Pi, Ei)
//
// Decoding goes through sigs.k8s.io/yaml (YAML to JSON, duplicate keys
// refused), then a shape check against [Spec] that names the path of any
// type error or unknown field, then encoding/json with
// DisallowUnknownFields, then the semantic checks and defaults.
//
// # Format
//
// A complete spec, every field set:
//
//	name: train-llm              # required; lower-case letters, digits, '-', '.'
//	tenant: ml-research          # optional; [a-z0-9-]{1,63}, alphanumeric at both ends
//	scheduler: gpu               # service | batch | gpu | a custom scheduler's name
//	priority: production         # production (200) | batch (100) | best-effort (0) | 0..1000
//	kind: batch                  # service | batch | system (one task per matching machine)
//	count: 4                     # tasks, 1..100000; default 1 (system: most machines covered, default 100000)
//	labels:                      # optional; `cell job list -l team=ml`
//	  team: ml
//	gang: true                   # place all tasks or none; default false
//	retryLimit: 2                # retries of a failed task, 0..100; default 3
//	disruption:                  # what a machine drain may take down at once
//	  maxUnavailable: 1          # 1..count; default 1 for a service, no limit for batch
//	task:                        # required
//	  command: python            # required
//	  args: ["train.py", "--epochs", "3"]   # strings (quote numbers)
//	  env:
//	    NCCL_DEBUG: INFO         # names: letters, digits, _; values are strings
//	  resources:                 # required; some cpu, memory or gpu
//	    cpu: "8"                 # cores: 2, 0.5, "1.5", or millicores "500m"
//	    memory: 64Gi             # bytes: 512Mi, 2Gi, 1G, 1.5Gi, 1000000
//	    disk: 100Gi              # bytes, as memory
//	    gpu: 8                   # GPUs: 0.5 (part of one) or whole GPUs 1, 2, ...
//	    gpuModel: H100           # adds the constraint "gpu.model = H100"
//	  constraints:               # label selectors, all must hold
//	    - zone == a              # also: zone = a
//	    - rack in (r1, r2)
//	    - rack notin (r3)
//	    - zone != b              # label absent or different
//	    - ssd                    # label exists
//	    - "!preemptible"         # label does not exist (quoted: ! is YAML syntax)
//	  spreadKey: rack            # spread tasks over this label's values
//	  maxPerMachine: 1           # at most this many per machine, <= count; 0: no limit
//	  duration: 5m               # simulated machines: how long a task runs
//	  healthCheck:
//	    exec: ["test", "-f", "/tmp/alive"]   # or httpGet: http://localhost:8080/healthz
//	    interval: 10s            # default 10s, at least 100ms
//	    timeout: 1s              # default 1s, at most the interval
//	    failureThreshold: 3      # 1..100; default 3
//	  readinessCheck:            # as healthCheck; a replica counts as running
//	    httpGet: http://localhost:8080/ready   # (for the job, a rollout and
//	    interval: 1s             # `job run --wait`) only once it passed
//
// A service or a system job also takes (update_test.go parses it):
//
//	update:                      # how a new version rolls out
//	  maxSurge: 25%              # replicas above count during a rollout; default 25% (rounded up)
//	  maxUnavailable: 1          # replicas below count not ready; default 25% (rounded down)
//	  minHealthyTime: 10s        # a new replica is healthy once ready this long; default 0
//	  healthyDeadline: 5m        # a new replica not healthy by then fails the rollout; default 5m
//	  autoRevert: true           # a failed rollout submits the previous version again
//
// Changing a running job: `cell job run` on the name of a live job of the
// same tenant submits a new version of it (`cell job plan` shows the
// difference first). A service whose task template changed replaces its
// replicas in waves: new replicas go up to maxSurge above count, healthy
// replicas never drop more than maxUnavailable below count (both 0 act as
// maxUnavailable 1), and a replica is healthy once running and ready (its
// readinessCheck passed, or at start without one) for minHealthyTime. A
// new replica not healthy healthyDeadline after it got the version stops
// the rollout (failed); with autoRevert the template of the version before
// is submitted again as a new version. A system job's new version rolls
// out the same way, like a DaemonSet's RollingUpdate: its tasks are
// replaced in place on their machines, maxUnavailable at a time (default
// 1 for a system job, a percentage of the machines it covers), each wave
// gated by readiness and minHealthyTime; maxSurge must be 0 (absent means
// 0: one task per machine). A batch job's new version applies
// to its tasks not started yet. The scheduler, kind and gang of a live job
// do not change. These defaults are a Kubernetes Deployment's; the
// rollout controller lives in the cell store (cellstate/rollout.go says why).
//
// Defaults: kind is service when the scheduler is "service", batch
// otherwise. A system job (Kubernetes' DaemonSet, Nomad's system job)
// runs one task on every machine that satisfies its constraints, and the
// store follows machines that join, leave, drain or change labels; it
// restarts its tasks as a service does and cannot be a gang. The
// scheduler, when absent, is "service" for kinds service and system,
// "gpu" when GPUs are requested, and "batch" otherwise. The priority, when
// absent, is production for services and system jobs and batch for
// batch jobs. Durations
// use Go's syntax (30s, 5m, 1h30m) and must be whole milliseconds. Label
// keys are letters, digits and . _ / - (rack, gpu.model, example.com/team),
// label values letters, digits and . _ - (both at most 63 characters).
// Scheduler names are [a-z0-9-]{1,63}, alphanumeric at both ends. Limits
// mirror the store's API (cellstate/validate.go) or are tighter: at most
// 64 constraints of at most 256 values, 1024 args, 256 env variables,
// 4096 bytes per string (no NUL byte), 64 health-check exec entries,
// http:// or https:// health-check URLs of at most 2048 bytes, 64 GPUs, a
// million cores and a petabyte per task, durations of at most a year
// (health-check interval and timeout: an hour), and 64 KiB for the whole
// spec as the API encodes it (limits.MaxJobSpecBytes).
//
// [Marshal] and [Document] go the other way (cell.v1.JobSpec to a
// document), and [FormatCPU], [FormatBytes], [FormatGPU] and [HumanBytes]
// render amounts for the CLI's tables.
package jobspec
