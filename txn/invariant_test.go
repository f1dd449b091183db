package txn_test

import (
	"strings"
	"testing"

	"github.com/omegacell/omegacell/txn"
)

// invariantCell is a consistent cell: m1 (2 GPUs) runs a whole-GPU task and
// a half-GPU task, m2 runs a CPU task; one task is pending, one succeeded.
func invariantCell() ([]*txn.Machine, []*txn.Task) {
	c := newCell()
	c.addMachine("m1", nil, res(8, 32, 100, 2000))
	c.addMachine("m2", nil, res(8, 32, 100, 0))
	c.addTask("whole", 0, 100, res(2, 4, 10, 1000))
	c.addTask("half", 0, 100, res(1, 2, 0, 500))
	c.addTask("cpu", 0, 100, res(4, 8, 0, 0))
	c.addTask("wait", 0, 100, res(1, 1, 0, 0))
	c.addTask("done", 0, 100, res(1, 1, 0, 0))
	c.place(key("whole", 0), "m1")
	c.place(key("half", 0), "m1")
	c.place(key("cpu", 0), "m2")
	c.place(key("done", 0), "m2")
	c.install(must(txn.Transition(c, key("done", 0), txn.TaskSucceeded)))
	var ms []*txn.Machine
	for _, id := range sortedKeys(c.machines, nil) {
		ms = append(ms, c.machines[id])
	}
	var ts []*txn.Task
	for _, k := range sortedKeys(c.tasks, nil) {
		ts = append(ts, c.tasks[k])
	}
	return ms, ts
}

func must(t *txn.Task, m *txn.Machine, err error) (*txn.Task, *txn.Machine) {
	if err != nil {
		panic(err)
	}
	return t, m
}

func TestCheckInvariant(t *testing.T) {
	find := func(ts []*txn.Task, job string) *txn.Task {
		for _, t := range ts {
			if t.Key.Job == job {
				return t
			}
		}
		panic(job)
	}
	tests := []struct {
		name    string
		corrupt func(ms []*txn.Machine, ts []*txn.Task) ([]*txn.Machine, []*txn.Task)
		wantErr string // "" means consistent
	}{
		{"consistent", func(ms []*txn.Machine, ts []*txn.Task) ([]*txn.Machine, []*txn.Task) { return ms, ts }, ""},
		{"empty cell", func([]*txn.Machine, []*txn.Task) ([]*txn.Machine, []*txn.Task) { return nil, nil }, ""},
		{"machine twice", func(ms []*txn.Machine, ts []*txn.Task) ([]*txn.Machine, []*txn.Task) {
			return append(ms, ms[1]), ts
		}, "machine m2 appears twice"},
		{"task twice", func(ms []*txn.Machine, ts []*txn.Task) ([]*txn.Machine, []*txn.Task) {
			return ms, append(ts, find(ts, "cpu"))
		}, "task cpu/0 appears twice"},
		{"pending task names a machine", func(ms []*txn.Machine, ts []*txn.Task) ([]*txn.Machine, []*txn.Task) {
			find(ts, "wait").Machine = "m2"
			return ms, ts
		}, "task wait/0 is pending but names machine m2"},
		{"task on an unknown machine", func(ms []*txn.Machine, ts []*txn.Task) ([]*txn.Machine, []*txn.Task) {
			return ms[:1], ts
		}, `task cpu/0 holds resources on unknown machine "m2"`},
		{"task holds a device that does not exist", func(ms []*txn.Machine, ts []*txn.Task) ([]*txn.Machine, []*txn.Task) {
			find(ts, "whole").Devices[0].Device = 5
			return ms, ts
		}, "task whole/0 holds device 5 of machine m1, which has 2"},
		{"devices do not add up to the request", func(ms []*txn.Machine, ts []*txn.Task) ([]*txn.Machine, []*txn.Task) {
			find(ts, "half").Resources.GPUMilli = 250
			return ms, ts
		}, "task half/0 holds 500 milli-GPU of devices for a request of 250"},
		{"allocation differs from the tasks", func(ms []*txn.Machine, ts []*txn.Task) ([]*txn.Machine, []*txn.Task) {
			ms[1].Allocated.CPUMilli++
			return ms, ts
		}, "machine m2: allocated"},
		{"a task placed twice counts twice", func(ms []*txn.Machine, ts []*txn.Task) ([]*txn.Machine, []*txn.Task) {
			twin := find(ts, "cpu").Clone()
			twin.Key.Index = 1
			return ms, append(ts, twin)
		}, "machine m2: allocated"},
		{"allocation over capacity", func(ms []*txn.Machine, ts []*txn.Task) ([]*txn.Machine, []*txn.Task) {
			ms[1].Capacity.CPUMilli = 1000
			return ms, ts
		}, "machine m2: allocated cpu=4000m mem=8589934592 disk=0 gpu=0m exceeds capacity"},
		{"device use differs from the shares", func(ms []*txn.Machine, ts []*txn.Task) ([]*txn.Machine, []*txn.Task) {
			ms[0].DeviceUsed[1] = 400
			return ms, ts
		}, "machine m1 device 1: used 400, but its tasks hold 500"},
		{"device over 1000", func(ms []*txn.Machine, ts []*txn.Task) ([]*txn.Machine, []*txn.Task) {
			// half/0 moves onto whole/0's device: sums agree, the device does not.
			find(ts, "half").Devices[0].Device = 0
			ms[0].DeviceUsed[0], ms[0].DeviceUsed[1] = 1500, 0
			return ms, ts
		}, "machine m1 device 0: 1500 milli-GPU exceeds 1000"},
		{"device shares that wrap a 32-bit counter", func(ms []*txn.Machine, ts []*txn.Task) ([]*txn.Machine, []*txn.Task) {
			// Two tasks of 2^31 milli-GPU each on device 0, which claims to
			// be unused: 2^31 + 2^31 is 0 in 32 bits.
			const big = 1 << 31
			m := txn.NewMachine("m3", nil, txn.Resources{CPUMilli: 1000, MemoryBytes: gib, GPUMilli: 1 << 33})
			m.DeviceUsed = []uint32{0}
			m.Allocated.GPUMilli = 2 * big
			for i := range uint32(2) {
				ts = append(ts, &txn.Task{Key: txn.TaskKey{Job: "wrap", Index: i}, State: txn.TaskRunning, Machine: "m3",
					Resources: txn.Resources{GPUMilli: big}, Devices: []txn.DeviceShare{{Device: 0, Milli: big}}})
			}
			return append(ms, m), ts
		}, "machine m3 device 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ms, ts := tt.corrupt(invariantCell())
			err := txn.CheckInvariant(ms, ts)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("CheckInvariant: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("CheckInvariant = %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}

// checkCellInvariant runs txn.CheckInvariant on a cell.
func checkCellInvariant(c *cell) []string {
	ms := make([]*txn.Machine, 0, len(c.machines))
	for _, m := range c.machines {
		ms = append(ms, m)
	}
	ts := make([]*txn.Task, 0, len(c.tasks))
	for _, t := range c.tasks {
		ts = append(ts, t)
	}
	if err := txn.CheckInvariant(ms, ts); err != nil {
		return []string{"txn.CheckInvariant: " + err.Error()}
	}
	return nil
}
