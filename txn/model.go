package txn

import "fmt"

// MachineState is the lifecycle state of a machine.
type MachineState uint8

const (
	MachineReady    MachineState = 1
	MachineDraining MachineState = 2
	MachineDown     MachineState = 3
)

func (s MachineState) String() string {
	switch s {
	case MachineReady:
		return "ready"
	case MachineDraining:
		return "draining"
	case MachineDown:
		return "down"
	}
	return fmt.Sprintf("MachineState(%d)", uint8(s))
}

// Machine is the part of a machine that placement depends on.
type Machine struct {
	ID     string
	Labels map[string]string // never mutated once the machine is shared
	// Capacity.GPUMilli is len(DeviceUsed) * MilliPerGPU.
	Capacity  Resources
	Allocated Resources
	// DeviceUsed is the milli-GPU in use on each device.
	DeviceUsed []uint32
	State      MachineState
	// Seq is bumped on every change; coarse conflict detection compares it.
	Seq uint64
}

// NewMachine returns a ready machine with nothing allocated.
func NewMachine(id string, labels map[string]string, capacity Resources) *Machine {
	return &Machine{
		ID:         id,
		Labels:     labels,
		Capacity:   capacity,
		DeviceUsed: make([]uint32, capacity.GPUMilli/MilliPerGPU),
		State:      MachineReady,
		Seq:        1,
	}
}

// Clone returns a copy that can be changed without touching m. Labels are
// shared: they are replaced, never mutated.
func (m *Machine) Clone() *Machine {
	c := *m
	c.DeviceUsed = append([]uint32(nil), m.DeviceUsed...)
	return &c
}

// Free is capacity minus allocation.
func (m *Machine) Free() Resources { return m.Capacity.Sub(m.Allocated) }

// Devices is the number of GPU devices.
func (m *Machine) Devices() int { return len(m.DeviceUsed) }

// TaskKey names a task: its job and its index in the job.
type TaskKey struct {
	Job   string
	Index uint32
}

func (k TaskKey) String() string { return fmt.Sprintf("%s/%d", k.Job, k.Index) }

// TaskState is the lifecycle state of a task.
type TaskState uint8

const (
	TaskPending   TaskState = 1
	TaskAssigned  TaskState = 2
	TaskRunning   TaskState = 3
	TaskSucceeded TaskState = 4
	TaskFailed    TaskState = 5
	TaskLost      TaskState = 6
	TaskPreempted TaskState = 7
	TaskKilled    TaskState = 8
)

var taskStateNames = [...]string{"", "pending", "assigned", "running", "succeeded", "failed", "lost", "preempted", "killed"}

func (s TaskState) String() string {
	if int(s) < len(taskStateNames) && s != 0 {
		return taskStateNames[s]
	}
	return fmt.Sprintf("TaskState(%d)", uint8(s))
}

// HoldsResources reports whether a task in this state occupies its machine.
func (s TaskState) HoldsResources() bool { return s == TaskAssigned || s == TaskRunning }

// Terminal reports whether the task will never run again as this attempt.
func (s TaskState) Terminal() bool {
	return s == TaskSucceeded || s == TaskFailed || s == TaskKilled || s == TaskLost || s == TaskPreempted
}

// Task is the part of a task that placement depends on.
type Task struct {
	Key       TaskKey
	Scheduler string
	// Tenant is the job's tenant (quota is charged to it).
	Tenant    string
	Priority  int32
	State     TaskState
	Machine   string // set while HoldsResources
	Resources Resources
	Devices   []DeviceShare
	// Attempt is bumped on every placement; agents are fenced by it.
	Attempt uint32
	// From the job's template; shared, never mutated.
	Constraints   []Constraint
	MaxPerMachine uint32
	// Pin is the one machine a task of a system job may run on (issue
	// 13); empty for every other task.
	Pin string
}

// Clone returns a copy that can be changed without touching t.
func (t *Task) Clone() *Task { return t.CloneInto(nil) }

// CloneInto is Clone writing the copy into dst (nil: a new Task).
func (t *Task) CloneInto(dst *Task) *Task {
	if dst == nil {
		dst = new(Task)
	}
	*dst = *t
	dst.Devices = append([]DeviceShare(nil), t.Devices...)
	return dst
}

// Priority bands, as in Borg.
const (
	PriorityBestEffort int32 = 0
	PriorityBatch      int32 = 100
	PriorityProduction int32 = 200
)

// Band is a priority band.
type Band uint8

const (
	BandBestEffort Band = iota
	BandBatch
	BandProduction
)

// BandOf returns the band of a priority.
func BandOf(p int32) Band {
	switch {
	case p >= PriorityProduction:
		return BandProduction
	case p >= PriorityBatch:
		return BandBatch
	}
	return BandBestEffort
}

func (b Band) String() string {
	return [...]string{"best-effort", "batch", "production"}[b]
}

// CanPreempt reports whether a task of priority claimant may evict one of
// priority victim: strictly lower priority, and production is never
// preempted (so production never preempts production).
func CanPreempt(claimant, victim int32) bool {
	return victim < claimant && BandOf(victim) != BandProduction
}
