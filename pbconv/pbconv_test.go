package pbconv

import (
	"reflect"
	"testing"

	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
	"github.com/omegacell/omegacell/txn"
)

func TestTransactionRoundTrip(t *testing.T) {
	tests := []*txn.Transaction{
		{Scheduler: "batch", DecidedAt: 7, Conflict: txn.ConflictFine, Commit: txn.CommitIncremental,
			Claims: []txn.Claim{{Task: txn.TaskKey{Job: "j", Index: 3}, Machine: "m1", Resources: txn.Resources{CPUMilli: 100, MemoryBytes: 1 << 20}, SeenSeq: 4}}},
		{Scheduler: "gpu", Conflict: txn.ConflictCoarse, Commit: txn.CommitAllOrNothing,
			Claims: []txn.Claim{{Task: txn.TaskKey{Job: "g"}, Machine: "m2", Resources: txn.Resources{GPUMilli: 2000},
				Devices: []txn.DeviceShare{{Device: 0, Milli: 1000}, {Device: 3, Milli: 1000}}}},
			Preemptions: []txn.TaskKey{{Job: "v", Index: 1}}},
	}
	for _, tx := range tests {
		if got := Transaction(CommitRequest(tx)); !reflect.DeepEqual(got, tx) {
			t.Errorf("round trip:\n got  %+v\n want %+v", got, tx)
		}
	}
}

// TestTransactionDefaults: unspecified modes are fine-grained and
// incremental.
func TestTransactionDefaults(t *testing.T) {
	tx := Transaction(&cellv1.CommitRequest{Scheduler: "s"})
	if tx.Conflict != txn.ConflictFine || tx.Commit != txn.CommitIncremental {
		t.Fatalf("defaults: %v %v", tx.Conflict, tx.Commit)
	}
}

func TestMachineAndTaskRoundTrip(t *testing.T) {
	m := txn.NewMachine("m1", map[string]string{"zone": "a"}, txn.Resources{CPUMilli: 4000, MemoryBytes: 1 << 30, GPUMilli: 2000})
	m.Allocated = txn.Resources{CPUMilli: 500, GPUMilli: 500}
	m.DeviceUsed[1] = 500
	pb := &cellv1.Machine{GpuMemoryBytes: 42}
	MachineInto(pb, m)
	if got := Machine(pb); !reflect.DeepEqual(got, m) || pb.GpuMemoryBytes != 42 {
		t.Fatalf("machine round trip: %+v, want %+v", got, m)
	}
	// A device list that disagrees with the GPU capacity is sized to it.
	pb.DeviceUsedMilli = []uint32{1}
	if got := Machine(pb); len(got.DeviceUsed) != 2 || got.DeviceUsed[0] != 1 {
		t.Fatalf("device list not sized to capacity: %v", got.DeviceUsed)
	}

	tmpl := &cellv1.TaskTemplate{MaxPerMachine: 2, Constraints: []*cellv1.Constraint{{Key: "zone", Op: cellv1.ConstraintOp_CONSTRAINT_OP_IN, Values: []string{"a"}}}}
	task := &txn.Task{Key: txn.TaskKey{Job: "j", Index: 1}, Scheduler: "service", Priority: 200, State: txn.TaskAssigned, Machine: "m1",
		Resources: txn.Resources{CPUMilli: 500, GPUMilli: 500}, Devices: []txn.DeviceShare{{Device: 1, Milli: 500}}, Attempt: 2,
		Constraints: Constraints(tmpl.Constraints), MaxPerMachine: 2}
	tpb := &cellv1.Task{}
	TaskInto(tpb, task)
	if got := Task(tpb, tmpl); !reflect.DeepEqual(got, task) {
		t.Fatalf("task round trip: %+v, want %+v", got, task)
	}
}
