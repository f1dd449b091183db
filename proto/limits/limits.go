package limits

import "regexp"

// Bounds on requests. doc.go has the table of every request field and the
// bound that applies to it.
const (
	MaxTasksPerJob      = 100_000 // JobSpec.count
	MaxClaimsPerCommit  = 100_000 // claims (and preemptions) of one transaction
	MaxAtomicClaims     = 10_000  // claims of an all-or-nothing or preempting transaction, preemptions, tasks of a gang job (issue 11: see below)
	MaxUpdatesPerReport = 1_000   // task-state updates of one agent report (the agent sends at most 1,000)
	// MaxUpdateMessageLen bounds TaskStateUpdate.message: an exit reason,
	// not a log (agents send at most 1 KiB).
	MaxUpdateMessageLen = 1024
	MaxGPUsPerMachine   = 64      // devices of one machine, and GPUs of one task
	MaxCPUMilli         = 1 << 30 // a million cores
	MaxBytes            = 1 << 50 // a petabyte, for memory and disk
	MaxLabels           = 64      // labels of one machine
	MaxLabelValueLen    = 253     // bytes of one label value (and of one constraint value)
	MaxRetryLimit       = 1000    // JobSpec.retry_limit
	MaxPriority         = 10_000  // JobSpec.priority
	MaxEnv              = 256     // environment variables of a task
	MaxEnvNameLen       = 255     // bytes of one variable's name
	MaxArgs             = 1024    // arguments of a task's command
	MaxConstraints      = 64      // label-selector terms of a task
	MaxStringLen        = 4096    // bytes of a command, an argument, a value or a message
	MaxRequestBytes     = 64 << 20
	// MaxDrainDeadlineMs bounds DrainMachineRequest.deadline_ms (30 days;
	// issue 14). JobSpec.disruption.max_unavailable is bounded by count.
	MaxDrainDeadlineMs = 30 * 24 * 3600 * 1000

	// MaxConstraintValues bounds the values of one in/notin term. The
	// store matches them through a set built once per job, so the bound
	// is about memory and the size of the job, not the commit loop's time.
	MaxConstraintValues = 256
	// MaxHealthExec bounds health_check.exec (a command and its arguments).
	MaxHealthExec = 64
	// MaxURLLen bounds health_check.http_get_url (browsers' practical limit).
	MaxURLLen = 2048
	// MaxFailureThreshold bounds health_check.failure_threshold.
	MaxFailureThreshold = 100
	// MaxHealthMillis bounds health_check.interval_ms and timeout_ms (an hour).
	MaxHealthMillis = 3_600_000
	// MaxDurationMillis bounds TaskTemplate.duration_ms (a year), far
	// below where a conversion to nanoseconds overflows.
	MaxDurationMillis = 365 * 24 * 3_600_000
	// MinWatchProgressMillis and MaxWatchProgressMillis bound
	// WatchRequest.progress_interval_ms (0 means the default).
	MinWatchProgressMillis = 10
	MaxWatchProgressMillis = 3_600_000
	// MaxRatio bounds SchedulerStats.conflict_fraction (conflicted claims
	// per accepted claim).
	MaxRatio = 1e9
	// MaxRolloutMillis bounds update.min_healthy_time_ms and
	// healthy_deadline_ms (a day; issue 13).
	MaxRolloutMillis = 24 * 3_600_000
	// MaxJobVersions is how many versions of a job the cell keeps
	// (issue 13): the newest ten, as Nomad's job history.
	MaxJobVersions = 10
	// MaxIDLen bounds an id_or_name (a UUID is 36 bytes, a job name 253).
	MaxIDLen = 253

	// MaxJobSpecBytes bounds a job's spec as encoded (protobuf), whatever
	// its fields hold within their own bounds: 64 KiB, several times what
	// large real specs need (a long command line and environment; Linux
	// itself caps one argument at 128 KiB). Every revision that changes a
	// job carries its spec, so this and MaxJobsPerCommit bound what a
	// revision can carry; doc.go shows the arithmetic.
	MaxJobSpecBytes = 64 << 10
	// MaxJobsPerCommit bounds the distinct jobs whose tasks one
	// transaction claims: a commit re-encodes each job it places with its
	// spec, so its claims bring at most 256 x 64 KiB = 16 MiB of specs
	// into the revision. The SDK batches at most 64 jobs per transaction.
	// (Victims' jobs are not counted: see doc.go.)
	MaxJobsPerCommit = 256

	// MaxAtomicClaims bounds what the commit loop must apply in one round
	// because it is atomic: an all-or-nothing transaction's claims, the
	// claims and the preemptions of a transaction with preemptions (its
	// victims are justified by its claims), and so the tasks of a gang job
	// (placed whole, in one transaction). Any other transaction, however
	// large, is applied a slice at a time (cellstate/slice.go). 10,000
	// tasks of 8 GPUs is an 80,000-GPU gang; the SDK sends larger
	// incremental placements with preemptions in parts.

	// MaxQuoted is how many bytes of an offending value an error message
	// quotes (see Quote).
	MaxQuoted = 100
)

// Names. Each pattern bounds the length too.
var (
	// JobName: 1-253 lower-case letters, digits, '-' and '.', starting and
	// ending with a letter or digit (a DNS subdomain, as Kubernetes names).
	JobName = regexp.MustCompile(`^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$`)
	// SchedulerName (also tenants): 1-63 lower-case letters, digits and
	// '-', starting and ending with a letter or digit (a DNS label).
	SchedulerName = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)
	// TenantName is SchedulerName's syntax (a DNS label); empty means no
	// tenant.
	TenantName = SchedulerName
	// MachineName: 1-253 letters, digits, '-', '.' and '_', starting and
	// ending with a letter or digit (host names as they come).
	MachineName = regexp.MustCompile(`^[A-Za-z0-9]([-A-Za-z0-9._]{0,251}[A-Za-z0-9])?$`)
	// LabelKey: 1-63 letters, digits, '-', '.', '_' and '/', starting and
	// ending with a letter or digit ("rack", "gpu.model", "example.com/team").
	// Constraint keys and spread keys are label keys.
	LabelKey = regexp.MustCompile(`^[A-Za-z0-9]([-A-Za-z0-9._/]{0,61}[A-Za-z0-9])?$`)
	// EnvName: 1-255 letters, digits and '_', not starting with a digit
	// (POSIX's portable names, case kept): no '=', no NUL.
	EnvName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,254}$`)
)

// Length bounds implied by the patterns, for error messages that say
// "too long" before "bad characters".
const (
	MaxJobNameLen       = 253
	MaxSchedulerNameLen = 63
	MaxMachineNameLen   = 253
	MaxLabelKeyLen      = 63
)
