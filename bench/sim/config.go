package sim

import (
	"fmt"
	"math"

	"github.com/omegacell/omegacell/txn"
)

// Arch is a scheduler architecture, as the Omega paper compares them.
type Arch string

const (
	// MonolithicSingle is one scheduler with one code path: every job
	// takes the service scheduler's decision time.
	MonolithicSingle Arch = "monolithic-single"
	// MonolithicMulti is one scheduler with a fast path: each job takes
	// the decision time of its kind, but all jobs wait in one queue.
	MonolithicMulti Arch = "monolithic-multi"
	// TwoLevel is Mesos-style: a central allocator offers all free
	// resources to one framework at a time (lowest dominant share first)
	// and locks them until the framework answers.
	TwoLevel Arch = "two-level"
	// SharedState is Omega (and omegacell): every scheduler decides on its
	// own copy of the cell and commits a transaction that txn.Validate
	// checks against the cell as it is by then.
	SharedState Arch = "shared-state"
)

// Archs lists every architecture.
func Archs() []Arch { return []Arch{MonolithicSingle, MonolithicMulti, TwoLevel, SharedState} }

// ParseArch parses an architecture name.
func ParseArch(s string) (Arch, error) {
	for _, a := range Archs() {
		if string(a) == s {
			return a, nil
		}
	}
	return "", fmt.Errorf("architecture %q: want one of monolithic-single, monolithic-multi, two-level, shared-state", s)
}

// Timing is the paper's decision-time model: deciding a job takes
// JobSeconds (t_job) plus TaskSeconds (t_task) for each task considered.
type Timing struct {
	JobSeconds  float64 `json:"t_job"`
	TaskSeconds float64 `json:"t_task"`
}

func (t Timing) decision(tasks int) float64 { return t.JobSeconds + t.TaskSeconds*float64(tasks) }

// Config is one simulation run.
type Config struct {
	Arch Arch
	Seed uint64
	// Horizon is the simulated time in seconds.
	Horizon float64
	// Timing per scheduler kind (batch, service, gpu).
	Timing map[string]Timing
	// BatchSchedulers is the number of batch schedulers (shared state and
	// two-level); batch jobs are dealt to them round-robin.
	BatchSchedulers int
	// Conflict and Commit are the shared-state transaction modes.
	Conflict txn.ConflictMode
	Commit   txn.CommitMode
	// A job is abandoned after MaxAttempts scheduling attempts, or after
	// MaxAttemptsUnplaced attempts that placed none of its tasks (the
	// paper gives up after 1000 attempts).
	MaxAttempts         int
	MaxAttemptsUnplaced int
	// RetryDelay is how long a job none of whose tasks fitted waits before
	// it goes back to its scheduler's queue.
	RetryDelay float64
	// OfferInterval is how long the two-level allocator lets freed
	// resources accumulate before it makes the next offer, and
	// MinOfferCPUMilli the smallest offer worth making.
	OfferInterval    float64
	MinOfferCPUMilli int64
	// Placement is the placement algorithm of the decision step.
	Placement Placement
	// Order is how each scheduler orders its queue: OrderFIFO (arrival
	// order, the paper's) or OrderDRF (weighted DRF across the workload's
	// tenants, then FIFO by priority within a tenant: package
	// schedulers/fair, as the batch and GPU schedulers do).
	Order Order
	// SampleSeconds is how often each tenant's dominant share is sampled
	// when the workload has tenants (0: 1/240 of the horizon).
	SampleSeconds float64
	// Progress, if set, is called now and then with the simulated time.
	Progress func(simulated float64)
}

// Order is the order of a scheduler's queue.
type Order string

const (
	OrderFIFO Order = "fifo"
	OrderDRF  Order = "drf"
)

// ParseOrder parses fifo or drf.
func ParseOrder(s string) (Order, error) {
	switch Order(s) {
	case OrderFIFO, OrderDRF:
		return Order(s), nil
	}
	return "", fmt.Errorf("order %q: want fifo or drf", s)
}

// DefaultConfig is the paper's baseline: t_job = 0.1 s and t_task = 5 ms
// for every scheduler, one batch scheduler, fine-grained conflicts,
// incremental commits, one simulated day.
func DefaultConfig() Config {
	return Config{
		Arch:    SharedState,
		Seed:    1,
		Horizon: 86400,
		Timing: map[string]Timing{
			KindBatch:   {JobSeconds: 0.1, TaskSeconds: 0.005},
			KindService: {JobSeconds: 0.1, TaskSeconds: 0.005},
			KindGPU:     {JobSeconds: 0.1, TaskSeconds: 0.005},
		},
		BatchSchedulers:     1,
		Conflict:            txn.ConflictFine,
		Commit:              txn.CommitIncremental,
		MaxAttempts:         1000,
		MaxAttemptsUnplaced: 100,
		RetryDelay:          1,
		OfferInterval:       1,
		MinOfferCPUMilli:    1000,
		Placement:           PlacementAuto,
		Order:               OrderFIFO,
	}
}

// Validate checks the configuration; the error names the field.
func (c *Config) Validate() error {
	if _, err := ParseArch(string(c.Arch)); err != nil {
		return fmt.Errorf("arch: %w", err)
	}
	if !(c.Horizon > 0) || math.IsInf(c.Horizon, 0) {
		return fmt.Errorf("horizon: %v seconds must be positive and finite", c.Horizon)
	}
	for _, k := range []string{KindBatch, KindService, KindGPU} {
		t, ok := c.Timing[k]
		if !ok {
			return fmt.Errorf("timing[%s]: missing", k)
		}
		if t.JobSeconds < 0 || t.TaskSeconds < 0 {
			return fmt.Errorf("timing[%s]: t_job %v and t_task %v must not be negative", k, t.JobSeconds, t.TaskSeconds)
		}
	}
	switch {
	case c.BatchSchedulers < 1:
		return fmt.Errorf("batch_schedulers: %d must be at least 1", c.BatchSchedulers)
	case c.Conflict != txn.ConflictFine && c.Conflict != txn.ConflictCoarse:
		return fmt.Errorf("conflict: mode %d is neither fine nor coarse", c.Conflict)
	case c.Commit != txn.CommitIncremental && c.Commit != txn.CommitAllOrNothing:
		return fmt.Errorf("commit: mode %d is neither incremental nor all-or-nothing", c.Commit)
	case c.MaxAttempts < 1:
		return fmt.Errorf("max_attempts: %d must be at least 1", c.MaxAttempts)
	case c.MaxAttemptsUnplaced < 1:
		return fmt.Errorf("max_attempts_unplaced: %d must be at least 1", c.MaxAttemptsUnplaced)
	case c.RetryDelay < 0:
		return fmt.Errorf("retry_delay: %v must not be negative", c.RetryDelay)
	case c.OfferInterval < 0:
		return fmt.Errorf("offer_interval: %v must not be negative", c.OfferInterval)
	}
	if _, err := ParsePlacement(string(c.Placement)); err != nil {
		return fmt.Errorf("placement: %w", err)
	}
	if _, err := ParseOrder(string(c.Order)); err != nil {
		return fmt.Errorf("order: %w", err)
	}
	if c.Order == OrderDRF && c.Arch == TwoLevel {
		return fmt.Errorf("order: drf orders a scheduler's own queue; two-level offers already go by dominant share (use fifo)")
	}
	if c.SampleSeconds < 0 {
		return fmt.Errorf("sample_seconds: %v must not be negative", c.SampleSeconds)
	}
	if c.Placement == PlacementPolicies && c.Arch == TwoLevel {
		return fmt.Errorf("placement: the policies decide on a copy of the whole cell; a two-level offer is not one (use first-fit or auto)")
	}
	return nil
}

// ConflictName and CommitName are the modes as the CLI and results spell them.
func ConflictName(m txn.ConflictMode) string {
	if m == txn.ConflictCoarse {
		return "coarse"
	}
	return "fine"
}

func CommitName(m txn.CommitMode) string {
	if m == txn.CommitAllOrNothing {
		return "all-or-nothing"
	}
	return "incremental"
}

// ParseConflict parses fine or coarse.
func ParseConflict(s string) (txn.ConflictMode, error) {
	switch s {
	case "fine":
		return txn.ConflictFine, nil
	case "coarse":
		return txn.ConflictCoarse, nil
	}
	return 0, fmt.Errorf("conflict mode %q: want fine or coarse", s)
}

// ParseCommit parses incremental or all-or-nothing.
func ParseCommit(s string) (txn.CommitMode, error) {
	switch s {
	case "incremental":
		return txn.CommitIncremental, nil
	case "all-or-nothing", "gang":
		return txn.CommitAllOrNothing, nil
	}
	return 0, fmt.Errorf("commit mode %q: want incremental or all-or-nothing", s)
}
