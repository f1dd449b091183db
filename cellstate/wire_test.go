package cellstate

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"google.golang.org/protobuf/proto"

	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
	"github.com/omegacell/omegacell/txn"
)

// TestWireEncodersMatchGeneratedCode: the hand-written encoders decode to
// exactly what the generated code would produce, for random records
// including zero, negative and maximal values.
func TestWireEncodersMatchGeneratedCode(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	pick := func(vs ...int64) int64 { return vs[rng.IntN(len(vs))] }
	str := func() string { return []string{"", "x", "m-0001", "ünïcode"}[rng.IntN(4)] }
	for i := range 2000 {
		gpus := int(pick(0, 1, 8))
		m := &machine{
			m: &txn.Machine{
				ID:         fmt.Sprintf("m%d", i),
				Labels:     map[string]string{"zone": str(), "rack": "r1", "gpu.model": str()},
				Capacity:   txn.Resources{CPUMilli: pick(1, 64000), MemoryBytes: pick(1, 1<<50), DiskBytes: pick(0, 1<<40), GPUMilli: int64(gpus) * 1000},
				Allocated:  txn.Resources{CPUMilli: pick(0, 5), MemoryBytes: pick(0, 7)},
				DeviceUsed: make([]uint32, gpus),
				State:      txn.MachineState(1 + rng.IntN(3)),
				Seq:        uint64(pick(1, 1<<40)),
			},
			gpuMemoryBytes: pick(0, 80<<30),
			modRev:         uint64(pick(0, 1, 1<<62)),
		}
		for d := range m.m.DeviceUsed {
			m.m.DeviceUsed[d] = uint32(pick(0, 300, 1000))
		}
		if rng.IntN(5) == 0 {
			m.m.Labels = nil
		}
		m.labelsWire = appendLabels(nil, m.m.Labels)
		checkWire(t, appendMachineRecord(nil, m), m.pb(), &cellv1.Machine{})

		tk := &task{
			t: &txn.Task{
				Key: txn.TaskKey{Job: "0b7e6c52-8f3e-4e43-9f5e-3a1c2f0d9b11", Index: uint32(pick(0, 1, 99999))}, Scheduler: str(),
				Priority: int32(pick(0, 100, 200, -1)), State: txn.TaskState(1 + rng.IntN(8)), Machine: str(),
				Resources: txn.Resources{CPUMilli: pick(0, 100), MemoryBytes: pick(0, 1<<30), GPUMilli: pick(0, 500, 2000)},
				Attempt:   uint32(pick(0, 3)),
			},
			exitCode: int32(pick(0, 1, -9, 137)), message: str(), submitTime: pick(0, 1795309788030521742),
			assignTime: pick(0, 17), startTime: pick(0, 18), finishTime: pick(0, 19), failures: uint32(pick(0, 2)),
			notBefore: pick(0, 20), lastMachine: str(), modRev: uint64(pick(0, 9)),
		}
		if rng.IntN(2) == 0 {
			tk.t.Devices = []txn.DeviceShare{{Device: 0, Milli: 1000}, {Device: uint32(pick(1, 7)), Milli: uint32(pick(1, 1000))}}
		}
		checkWire(t, appendTaskRecord(nil, tk), tk.pb(), &cellv1.Task{})
	}
}

func checkWire(t *testing.T, got []byte, want proto.Message, into proto.Message) {
	t.Helper()
	if err := proto.Unmarshal(got, into); err != nil {
		t.Fatalf("hand-encoded bytes do not decode: %v", err)
	}
	if !proto.Equal(into, want) {
		t.Fatalf("hand-encoded record differs:\n got  %v\n want %v", into, want)
	}
}
