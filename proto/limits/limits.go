package limits

import "regexp"

// Bounds on requests.
const (
	MaxTasksPerJob      = 100_000 // JobSpec.count
	MaxClaimsPerCommit  = 100_000 // claims of one transaction
	MaxUpdatesPerReport = 10_000  // task-state updates of one agent report
	MaxGPUsPerMachine   = 64      // devices of one machine, and GPUs of one task
	MaxCPUMilli         = 1 << 30 // a million cores
	MaxBytes            = 1 << 50 // a petabyte, for memory and disk
	MaxLabels           = 64      // labels of one machine
	MaxLabelValueLen    = 253     // bytes of one label value
	MaxRetryLimit       = 1000    // JobSpec.retry_limit
	MaxPriority         = 10_000  // JobSpec.priority
	MaxEnv              = 256     // environment variables of a task
	MaxEnvNameLen       = 255     // bytes of one variable's name
	MaxArgs             = 1024    // arguments of a task's command
	MaxConstraints      = 64      // label-selector terms of a task
	MaxStringLen        = 4096    // bytes of a command, an argument, a value or a message
	MaxRequestBytes     = 64 << 20
)

// Names. Each pattern bounds the length too.
var (
	// JobName: 1-253 lower-case letters, digits, '-' and '.', starting and
	// ending with a letter or digit (a DNS subdomain, as Kubernetes names).
	JobName = regexp.MustCompile(`^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$`)
	// SchedulerName (also tenants): 1-63 lower-case letters, digits and
	// '-', starting and ending with a letter or digit (a DNS label).
	SchedulerName = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)
	// MachineName: 1-253 letters, digits, '-', '.' and '_', starting and
	// ending with a letter or digit (host names as they come).
	MachineName = regexp.MustCompile(`^[A-Za-z0-9]([-A-Za-z0-9._]{0,251}[A-Za-z0-9])?$`)
	// LabelKey: 1-63 letters, digits, '-', '.', '_' and '/', starting and
	// ending with a letter or digit ("rack", "gpu.model", "example.com/team").
	LabelKey = regexp.MustCompile(`^[A-Za-z0-9]([-A-Za-z0-9._/]{0,61}[A-Za-z0-9])?$`)
)

// Length bounds implied by the patterns, for error messages that say
// "too long" before "bad characters".
const (
	MaxJobNameLen       = 253
	MaxSchedulerNameLen = 63
	MaxMachineNameLen   = 253
	MaxLabelKeyLen      = 63
)
