package txn

import "fmt"

// ConflictMode selects how a claim is checked against changes made since the
// scheduler decided.
type ConflictMode uint8

const (
	// ConflictFine rejects a claim only if it no longer fits.
	ConflictFine ConflictMode = 1
	// ConflictCoarse rejects a claim if its machine changed at all.
	ConflictCoarse ConflictMode = 2
)

// CommitMode selects what happens to valid claims when others are not.
type CommitMode uint8

const (
	// CommitIncremental applies every valid claim.
	CommitIncremental CommitMode = 1
	// CommitAllOrNothing applies all claims or none (gangs).
	CommitAllOrNothing CommitMode = 2
)

// Claim places one pending task on a machine.
type Claim struct {
	Task      TaskKey
	Machine   string
	Resources Resources // must equal the task's request
	Devices   []DeviceShare
	SeenSeq   uint64 // the machine's Seq when the scheduler decided
}

// Transaction is what a scheduler commits.
type Transaction struct {
	Scheduler string
	DecidedAt uint64 // revision of the scheduler's copy
	Conflict  ConflictMode
	Commit    CommitMode
	Claims    []Claim
	// Preemptions are running or assigned tasks to evict for the claims;
	// each must sit on a machine that a claim of higher priority targets.
	Preemptions []TaskKey
}

// Reason is the outcome of one claim. The numbering matches the API's
// ClaimOutcome enum so conversion is a cast.
type Reason uint8

const (
	ReasonOK                 Reason = 1
	ReasonTaskUnknown        Reason = 2
	ReasonTaskNotPending     Reason = 3
	ReasonWrongScheduler     Reason = 4
	ReasonDuplicate          Reason = 5
	ReasonResourcesMismatch  Reason = 6
	ReasonMachineUnknown     Reason = 7
	ReasonMachineNotReady    Reason = 8
	ReasonMachineDraining    Reason = 9
	ReasonInsufficientCPU    Reason = 10
	ReasonInsufficientMemory Reason = 11
	ReasonInsufficientDisk   Reason = 12
	ReasonInsufficientGPU    Reason = 13
	ReasonInvalidDevices     Reason = 14
	ReasonSeqChanged         Reason = 15
	ReasonConstraintViolated Reason = 16
	ReasonInvalidPreemption  Reason = 17
	ReasonAborted            Reason = 18
	ReasonMaxPerMachine      Reason = 19
	// ReasonQuotaExceeded: the claim would take its tenant past its
	// band's quota (plus, in batch, what it may borrow).
	ReasonQuotaExceeded Reason = 20

	numReasons = 21
)

var reasonNames = [numReasons]string{
	"", "accepted", "task_unknown", "task_not_pending", "wrong_scheduler", "duplicate_in_transaction",
	"resources_mismatch", "machine_unknown", "machine_not_ready", "machine_draining",
	"insufficient_cpu", "insufficient_memory", "insufficient_disk", "insufficient_gpu",
	"invalid_devices", "seq_changed", "constraint_violated", "invalid_preemption", "aborted",
	"max_per_machine", "quota_exceeded",
}

func (r Reason) String() string {
	if r > 0 && r < numReasons {
		return reasonNames[r]
	}
	return fmt.Sprintf("Reason(%d)", uint8(r))
}

// AllReasons lists every reason, for metrics that pre-create their labels.
func AllReasons() []Reason {
	out := make([]Reason, 0, numReasons-1)
	for r := Reason(1); r < numReasons; r++ {
		out = append(out, r)
	}
	return out
}

// IsConflict reports whether the reason is a lost race with another change
// (worth retrying on fresher state) rather than a malformed claim.
func (r Reason) IsConflict() bool {
	switch r {
	case ReasonTaskNotPending, ReasonMachineNotReady, ReasonMachineDraining, ReasonInsufficientCPU,
		ReasonInsufficientMemory, ReasonInsufficientDisk, ReasonInsufficientGPU, ReasonSeqChanged,
		ReasonConstraintViolated, ReasonAborted, ReasonMaxPerMachine, ReasonMachineUnknown, ReasonQuotaExceeded:
		return true
	}
	return false
}

// ClaimResult is the outcome of one claim with a human-readable detail.
type ClaimResult struct {
	Reason Reason
	Detail string
}

// State is a read-only view of the cell that [Validate] checks against.
type State interface {
	// Machine returns the machine or nil.
	Machine(id string) *Machine
	// Task returns the task or nil.
	Task(k TaskKey) *Task
	// TasksOfJobOn counts the job's tasks holding resources on a machine;
	// it is only asked for jobs with MaxPerMachine > 0.
	TasksOfJobOn(job, machine string) uint32
	// Gang reports whether a job is a gang (placed whole or not at all)
	// and, if it is, how many of its tasks are pending. Unknown jobs are
	// not gangs.
	Gang(job string) (pending uint32, gang bool)
}

// Mutable is a State that [Apply] can install new objects into.
type Mutable interface {
	State
	PutMachine(m *Machine)
	PutTask(t *Task)
}
