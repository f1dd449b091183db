package sdk

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"

	"github.com/omegacell/omegacell/proto/credentials"
	"github.com/omegacell/omegacell/proto/limits"
	"github.com/omegacell/omegacell/schedulers/policy"
	"github.com/omegacell/omegacell/txn"
)

// Config says which cell a scheduler serves, under which name, with which
// policy. Only Server (or Conn), Name and Policy are required; every other
// field has a default that suits a production cell.
type Config struct {
	// Server is the cell server's gRPC address (host:port). Ignored when
	// Conn is set.
	Server string
	// Conn is an existing client connection to the cell; the scheduler does
	// not close it.
	Conn *grpc.ClientConn
	// Credentials say how to connect to Server: mutual TLS with a bundle
	// (normally scheduler/Name's), or Insecure. The zero value finds a
	// bundle as credentials.Find does ($CELL_CREDENTIALS, then
	// ./cell-data/pki/admin). Ignored when Conn is set.
	Credentials credentials.Client
	// CredentialsDir is the directory searched first when Credentials is
	// the zero value (a --credentials flag).
	CredentialsDir string

	// Name is the scheduler's name: jobs name it in spec.scheduler, and the
	// scheduler places exactly the tasks whose scheduler field equals it.
	// Lowercase letters, digits and '-', at most 63 characters.
	Name string
	// Policy decides placements; see package policy for its contract.
	Policy policy.Policy
	// Order is how ready jobs are ordered: OrderDefault lets the policy
	// say ([policy.FairSharer]: the built-in batch and GPU policies order
	// by weighted DRF across tenants, others by priority and submission).
	Order Order
	// Seed seeds the policy's random numbers (relaxed randomization), so a
	// scheduler fed the same changes makes the same decisions.
	Seed uint64

	// ConflictMode overrides the conflict mode the policy asks for
	// (0: the policy's, per job).
	ConflictMode txn.ConflictMode
	// CommitMode overrides the commit mode the policy asks for (0: the
	// policy's, per job). A gang job is always committed all-or-nothing.
	CommitMode txn.CommitMode

	// MaxAttempts is how many attempts in a row a job may make without any
	// claim accepted before it is marked unschedulable and parked
	// (default 20).
	MaxAttempts int
	// Backoff is the wait before a job whose claims conflicted is tried
	// again (default 10 ms doubling to 2 s).
	Backoff Backoff
	// ParkedRetry is how often parked jobs are tried again even when no
	// change of the cell looked helpful, e.g. because lower-priority work
	// a preempting policy could evict has arrived since (default 30 s).
	ParkedRetry time.Duration
	// StatsInterval is how often the scheduler reports its figures with
	// SchedulerService.ReportSchedulerStats (default 5 s).
	StatsInterval time.Duration

	// Registerer receives the scheduler's metrics, each labelled
	// scheduler=Name. Nil: a registry of the scheduler's own.
	Registerer prometheus.Registerer
	// MetricsAddr, if set, serves GET /metrics on this address (host:port;
	// port 0 picks one, logged as "scheduler metrics"). It serves
	// Registerer, which must then also be a prometheus.Gatherer (a
	// *prometheus.Registry is), or the scheduler's own registry.
	MetricsAddr string
	// Logger (default slog.Default()).
	Logger *slog.Logger
	// Clock is the time source (default the wall clock).
	Clock Clock
	// Ready, if set, is called once, when the local copy of the cell has
	// been read and the scheduler starts placing, with the copy's
	// revision. It is called from the scheduling loop: it must not block.
	Ready func(revision uint64)
}

// Order is the order of a scheduler's queue of ready jobs.
type Order uint8

const (
	// OrderDefault: fair share if the policy is a [policy.FairSharer]
	// that asks for it, else OrderFIFO.
	OrderDefault Order = iota
	// OrderFIFO: higher priority first, then earlier submission.
	OrderFIFO
	// OrderFairShare: priority band first; within a band, the tenant with
	// the lowest weighted dominant share (package fair); within a tenant,
	// as OrderFIFO.
	OrderFairShare
)

// fairShare reports whether the queue is ordered by fair share.
func (c Config) fairShare() bool {
	switch c.Order {
	case OrderFairShare:
		return true
	case OrderFIFO:
		return false
	}
	fs, ok := c.Policy.(policy.FairSharer)
	return ok && fs.FairShare()
}

// Backoff is exponential: Initial, doubled per attempt without progress,
// at most Max, each wait drawn uniformly from [d/2, d] so schedulers that
// lost the same race do not retry in lockstep.
type Backoff struct {
	Initial time.Duration
	Max     time.Duration
}

// Defaults of Config.
const (
	DefaultMaxAttempts    = 20
	DefaultBackoffInitial = 10 * time.Millisecond
	DefaultBackoffMax     = 2 * time.Second
	DefaultParkedRetry    = 30 * time.Second
	DefaultStatsInterval  = 5 * time.Second
)

// Clock is the scheduler's source of time.
type Clock interface {
	Now() time.Time
	// After returns a channel that receives once d has passed.
	After(d time.Duration) <-chan time.Time
}

type wallClock struct{}

func (wallClock) Now() time.Time                         { return time.Now() }
func (wallClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// withDefaults validates c and fills in its defaults; errors name the field.
func (c Config) withDefaults() (Config, error) {
	switch {
	case c.Conn == nil && c.Server == "":
		return c, errors.New("sdk: Config.Server: is empty and Config.Conn is nil (want host:port of the cell server)")
	case !limits.SchedulerName.MatchString(c.Name):
		return c, fmt.Errorf("sdk: Config.Name: %q is not a scheduler name (lowercase letters, digits, '-', at most 63)", c.Name)
	case c.Policy == nil:
		return c, errors.New("sdk: Config.Policy: is nil")
	case c.ConflictMode > txn.ConflictCoarse:
		return c, fmt.Errorf("sdk: Config.ConflictMode: unknown mode %d", c.ConflictMode)
	case c.CommitMode > txn.CommitAllOrNothing:
		return c, fmt.Errorf("sdk: Config.CommitMode: unknown mode %d", c.CommitMode)
	case c.MaxAttempts < 0:
		return c, fmt.Errorf("sdk: Config.MaxAttempts: %d is negative", c.MaxAttempts)
	case c.Backoff.Initial < 0 || c.Backoff.Max < 0:
		return c, fmt.Errorf("sdk: Config.Backoff: %v is negative", c.Backoff)
	case c.ParkedRetry < 0:
		return c, fmt.Errorf("sdk: Config.ParkedRetry: %v is negative", c.ParkedRetry)
	case c.StatsInterval < 0:
		return c, fmt.Errorf("sdk: Config.StatsInterval: %v is negative", c.StatsInterval)
	}
	if c.MetricsAddr != "" && c.Registerer != nil {
		if _, ok := c.Registerer.(prometheus.Gatherer); !ok {
			return c, errors.New("sdk: Config.MetricsAddr: set, but Config.Registerer is not a prometheus.Gatherer to serve")
		}
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = DefaultMaxAttempts
	}
	if c.Backoff.Initial == 0 {
		c.Backoff.Initial = DefaultBackoffInitial
	}
	if c.Backoff.Max == 0 {
		c.Backoff.Max = max(DefaultBackoffMax, c.Backoff.Initial)
	}
	if c.Backoff.Max < c.Backoff.Initial {
		return c, fmt.Errorf("sdk: Config.Backoff: Max %v is below Initial %v", c.Backoff.Max, c.Backoff.Initial)
	}
	if c.ParkedRetry == 0 {
		c.ParkedRetry = DefaultParkedRetry
	}
	if c.StatsInterval == 0 {
		c.StatsInterval = DefaultStatsInterval
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Clock == nil {
		c.Clock = wallClock{}
	}
	return c, nil
}

// modes is how a decision for job is committed: the policy's choice,
// overridden by the Config, and all-or-nothing for gangs whatever the
// override says.
func (c *Config) modes(m policy.Modes, gang bool) policy.Modes {
	if c.ConflictMode != 0 {
		m.Conflict = c.ConflictMode
	}
	if c.CommitMode != 0 {
		m.Commit = c.CommitMode
	}
	if m.Conflict == 0 {
		m.Conflict = txn.ConflictFine
	}
	if m.Commit == 0 {
		m.Commit = txn.CommitIncremental
	}
	if gang {
		m.Commit = txn.CommitAllOrNothing
	}
	return m
}

// wait is the backoff before attempt number n (1-based) after n attempts
// without progress; u in [0,1) places it within [d/2, d].
func (b Backoff) wait(n int, u float64) time.Duration {
	d := b.Initial
	for i := 1; i < n && d < b.Max; i++ {
		d *= 2
	}
	d = min(d, b.Max)
	return d/2 + time.Duration(u*float64(d/2))
}

// ParseConflictMode reads "fine" or "coarse" (flags and configuration).
func ParseConflictMode(s string) (txn.ConflictMode, error) {
	switch s {
	case "fine":
		return txn.ConflictFine, nil
	case "coarse":
		return txn.ConflictCoarse, nil
	case "":
		return 0, nil
	}
	return 0, fmt.Errorf("conflict mode %q: want fine or coarse", s)
}

// ParseCommitMode reads "incremental" or "all-or-nothing".
func ParseCommitMode(s string) (txn.CommitMode, error) {
	switch s {
	case "incremental":
		return txn.CommitIncremental, nil
	case "all-or-nothing":
		return txn.CommitAllOrNothing, nil
	case "":
		return 0, nil
	}
	return 0, fmt.Errorf("commit mode %q: want incremental or all-or-nothing", s)
}
