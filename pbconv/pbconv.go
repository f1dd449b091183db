package pbconv

import (
	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
	"github.com/omegacell/omegacell/txn"
)

// Resources converts API resources (nil is zero).
func Resources(r *cellv1.Resources) txn.Resources {
	if r == nil {
		return txn.Resources{}
	}
	return txn.Resources{CPUMilli: r.CpuMilli, MemoryBytes: r.MemoryBytes, DiskBytes: r.DiskBytes, GPUMilli: r.GpuMilli}
}

// ResourcesPB converts resources to the API type.
func ResourcesPB(r txn.Resources) *cellv1.Resources {
	return &cellv1.Resources{CpuMilli: r.CPUMilli, MemoryBytes: r.MemoryBytes, DiskBytes: r.DiskBytes, GpuMilli: r.GPUMilli}
}

// Devices converts API device shares.
func Devices(ds []*cellv1.DeviceShare) []txn.DeviceShare {
	if len(ds) == 0 {
		return nil
	}
	out := make([]txn.DeviceShare, len(ds))
	for i, d := range ds {
		out[i] = txn.DeviceShare{Device: d.GetDevice(), Milli: d.GetMilli()}
	}
	return out
}

// DevicesPB converts device shares to the API type.
func DevicesPB(ds []txn.DeviceShare) []*cellv1.DeviceShare {
	if len(ds) == 0 {
		return nil
	}
	out := make([]*cellv1.DeviceShare, len(ds))
	for i, d := range ds {
		out[i] = &cellv1.DeviceShare{Device: d.Device, Milli: d.Milli}
	}
	return out
}

// TaskKey converts a task reference.
func TaskKey(r *cellv1.TaskRef) txn.TaskKey {
	return txn.TaskKey{Job: r.GetJobId(), Index: r.GetIndex()}
}

// TaskRef converts a task key to the API type.
func TaskRef(k txn.TaskKey) *cellv1.TaskRef { return &cellv1.TaskRef{JobId: k.Job, Index: k.Index} }

// Constraints converts API constraints (ops share numbering).
func Constraints(cs []*cellv1.Constraint) []txn.Constraint {
	if len(cs) == 0 {
		return nil
	}
	out := make([]txn.Constraint, len(cs))
	for i, c := range cs {
		out[i] = txn.Constraint{Key: c.GetKey(), Op: txn.Op(c.GetOp()), Values: c.GetValues()}
	}
	return out
}

// ConstraintsPB converts constraints to the API type.
func ConstraintsPB(cs []txn.Constraint) []*cellv1.Constraint {
	if len(cs) == 0 {
		return nil
	}
	out := make([]*cellv1.Constraint, len(cs))
	for i, c := range cs {
		out[i] = &cellv1.Constraint{Key: c.Key, Op: cellv1.ConstraintOp(c.Op), Values: c.Values}
	}
	return out
}

// Machine converts an API machine to the placement model.
func Machine(m *cellv1.Machine) *txn.Machine {
	used := m.GetDeviceUsedMilli()
	capacity := Resources(m.GetCapacity())
	if n := int(capacity.GPUMilli / txn.MilliPerGPU); len(used) != n {
		fixed := make([]uint32, n)
		copy(fixed, used)
		used = fixed
	} else {
		used = append([]uint32(nil), used...)
	}
	return &txn.Machine{
		ID:         m.GetId(),
		Labels:     m.GetLabels(),
		Capacity:   capacity,
		Allocated:  Resources(m.GetAllocated()),
		DeviceUsed: used,
		State:      txn.MachineState(m.GetState()),
		Seq:        m.GetSeq(),
	}
}

// MachineInto writes the placement fields of m into an API machine,
// leaving the others (heartbeat, usage, ...) as they are.
func MachineInto(dst *cellv1.Machine, m *txn.Machine) {
	dst.Id = m.ID
	dst.Labels = m.Labels
	dst.Capacity = ResourcesPB(m.Capacity)
	dst.Allocated = ResourcesPB(m.Allocated)
	dst.DeviceUsedMilli = append([]uint32(nil), m.DeviceUsed...)
	dst.State = cellv1.MachineState(m.State)
	dst.Seq = m.Seq
}

// Task converts an API task and its job's template to the placement model.
func Task(t *cellv1.Task, tmpl *cellv1.TaskTemplate) *txn.Task {
	return &txn.Task{
		Key:           txn.TaskKey{Job: t.GetJobId(), Index: t.GetIndex()},
		Scheduler:     t.GetScheduler(),
		Priority:      t.GetPriority(),
		State:         txn.TaskState(t.GetState()),
		Machine:       t.GetMachineId(),
		Resources:     Resources(t.GetResources()),
		Devices:       Devices(t.GetDevices()),
		Attempt:       t.GetAttempt(),
		Constraints:   Constraints(tmpl.GetConstraints()),
		MaxPerMachine: tmpl.GetMaxPerMachine(),
		Pin:           t.GetPinnedMachineId(),
	}
}

// TaskInto writes the placement fields of t into an API task.
func TaskInto(dst *cellv1.Task, t *txn.Task) {
	dst.JobId = t.Key.Job
	dst.Index = t.Key.Index
	dst.Scheduler = t.Scheduler
	dst.Priority = t.Priority
	dst.State = cellv1.TaskState(t.State)
	dst.MachineId = t.Machine
	dst.Resources = ResourcesPB(t.Resources)
	dst.Devices = DevicesPB(t.Devices)
	dst.Attempt = t.Attempt
	dst.PinnedMachineId = t.Pin
}

// Claim converts an API claim.
func Claim(c *cellv1.Claim) txn.Claim {
	return txn.Claim{
		Task:      TaskKey(c.GetTask()),
		Machine:   c.GetMachineId(),
		Resources: Resources(c.GetResources()),
		Devices:   Devices(c.GetDevices()),
		SeenSeq:   c.GetSeenSeq(),
	}
}

// ClaimPB converts a claim to the API type.
func ClaimPB(c txn.Claim) *cellv1.Claim {
	return &cellv1.Claim{
		Task:      TaskRef(c.Task),
		MachineId: c.Machine,
		Resources: ResourcesPB(c.Resources),
		Devices:   DevicesPB(c.Devices),
		SeenSeq:   c.SeenSeq,
	}
}

// Transaction converts a commit request. Unspecified modes default to
// fine-grained, incremental.
func Transaction(r *cellv1.CommitRequest) *txn.Transaction {
	tx := &txn.Transaction{
		Scheduler: r.GetScheduler(),
		DecidedAt: r.GetDecidedAtRevision(),
		Conflict:  txn.ConflictFine,
		Commit:    txn.CommitIncremental,
		Claims:    make([]txn.Claim, len(r.GetClaims())),
	}
	if r.GetConflictMode() == cellv1.ConflictMode_CONFLICT_MODE_COARSE {
		tx.Conflict = txn.ConflictCoarse
	}
	if r.GetCommitMode() == cellv1.CommitMode_COMMIT_MODE_ALL_OR_NOTHING {
		tx.Commit = txn.CommitAllOrNothing
	}
	for i, c := range r.GetClaims() {
		tx.Claims[i] = Claim(c)
	}
	for _, p := range r.GetPreemptions() {
		tx.Preemptions = append(tx.Preemptions, TaskKey(p))
	}
	return tx
}

// CommitRequest converts a transaction to the API type.
func CommitRequest(tx *txn.Transaction) *cellv1.CommitRequest {
	r := &cellv1.CommitRequest{
		Scheduler:         tx.Scheduler,
		DecidedAtRevision: tx.DecidedAt,
		ConflictMode:      cellv1.ConflictMode(tx.Conflict),
		CommitMode:        cellv1.CommitMode(tx.Commit),
		Claims:            make([]*cellv1.Claim, len(tx.Claims)),
	}
	for i, c := range tx.Claims {
		r.Claims[i] = ClaimPB(c)
	}
	for _, p := range tx.Preemptions {
		r.Preemptions = append(r.Preemptions, TaskRef(p))
	}
	return r
}
