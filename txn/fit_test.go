package txn_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/omegacell/omegacell/txn"
)

// gpuBox is an 8-core, 32 GiB, 100 GiB disk machine with four GPU devices
// used as given, and Allocated set to match (plus allocated CPU/memory/disk).
func gpuBox(allocated txn.Resources, deviceUsed ...uint32) *txn.Machine {
	m := txn.NewMachine("m", nil, res(8, 32, 100, 4000))
	copy(m.DeviceUsed, deviceUsed)
	m.Allocated = allocated
	for _, u := range m.DeviceUsed {
		m.Allocated.GPUMilli += int64(u)
	}
	return m
}

func shares(pairs ...uint32) []txn.DeviceShare {
	var out []txn.DeviceShare
	for i := 0; i < len(pairs); i += 2 {
		out = append(out, txn.DeviceShare{Device: pairs[i], Milli: pairs[i+1]})
	}
	return out
}

func TestFits(t *testing.T) {
	none := txn.Resources{}
	tests := []struct {
		name    string
		machine *txn.Machine
		req     txn.Resources
		devices []txn.DeviceShare
		want    txn.Reason
	}{
		{"empty machine, cpu and memory", gpuBox(none), res(8, 32, 100, 0), nil, txn.ReasonOK},
		{"cpu exactly free", gpuBox(res(6, 0, 0, 0)), res(2, 0, 0, 0), nil, txn.ReasonOK},
		{"cpu one milli over", gpuBox(res(6, 0, 0, 0)), txn.Resources{CPUMilli: 2001}, nil, txn.ReasonInsufficientCPU},
		{"memory over", gpuBox(res(0, 31, 0, 0)), res(0, 2, 0, 0), nil, txn.ReasonInsufficientMemory},
		{"disk over", gpuBox(res(0, 0, 99, 0)), res(0, 0, 2, 0), nil, txn.ReasonInsufficientDisk},
		{"cpu is reported before memory", gpuBox(res(8, 32, 0, 0)), res(1, 1, 0, 0), nil, txn.ReasonInsufficientCPU},
		{"gpu over total free", gpuBox(none, 1000, 1000, 1000, 0), res(0, 1, 0, 2000), shares(3, 1000, 2, 1000), txn.ReasonInsufficientGPU},
		{"gpu on a machine without devices", txn.NewMachine("cpu", nil, res(8, 32, 0, 0)), res(1, 1, 0, 500), shares(0, 500), txn.ReasonInsufficientGPU},
		{"whole gpus on free devices", gpuBox(none, 1000, 0, 500, 0), res(1, 1, 0, 2000), shares(1, 1000, 3, 1000), txn.ReasonOK},
		{"whole gpu on a partly used device", gpuBox(none, 0, 0, 500, 0), res(1, 1, 0, 1000), shares(2, 1000), txn.ReasonInsufficientGPU},
		{"fraction on a shared device", gpuBox(none, 500, 0, 0, 0), res(1, 1, 0, 500), shares(0, 500), txn.ReasonOK},
		{"fraction overflows its device", gpuBox(none, 600, 0, 0, 0), res(1, 1, 0, 500), shares(0, 500), txn.ReasonInsufficientGPU},
		{"gpu request without devices", gpuBox(none), res(1, 1, 0, 1000), nil, txn.ReasonInvalidDevices},
		{"devices without gpu request", gpuBox(none), res(1, 1, 0, 0), shares(0, 1000), txn.ReasonInvalidDevices},
		{"device out of range", gpuBox(none), res(1, 1, 0, 1000), shares(4, 1000), txn.ReasonInvalidDevices},
		{"same device twice", gpuBox(none), res(1, 1, 0, 2000), shares(1, 1000, 1, 1000), txn.ReasonInvalidDevices},
		{"whole request split in halves", gpuBox(none), res(1, 1, 0, 1000), shares(0, 500, 1, 500), txn.ReasonInvalidDevices},
		{"fraction split over two devices", gpuBox(none), res(1, 1, 0, 600), shares(0, 300, 1, 300), txn.ReasonInvalidDevices},
		{"shares short of the request", gpuBox(none), res(1, 1, 0, 2000), shares(0, 1000), txn.ReasonInvalidDevices},
		{"fraction share of the wrong size", gpuBox(none), res(1, 1, 0, 500), shares(0, 400), txn.ReasonInvalidDevices},
		{"zero-milli share", gpuBox(none), res(1, 1, 0, 500), shares(0, 0, 1, 500), txn.ReasonInvalidDevices},
		{"zero request fits a full machine", gpuBox(res(8, 32, 100, 0), 1000, 1000, 1000, 1000), txn.Resources{}, nil, txn.ReasonOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := tt.machine.Clone()
			if got := txn.Fits(tt.machine, tt.req, tt.devices); got != tt.want {
				t.Errorf("Fits(%v, %v) = %v, want %v", tt.req, tt.devices, got, tt.want)
			}
			if tt.machine.Allocated != before.Allocated || !slices.Equal(tt.machine.DeviceUsed, before.DeviceUsed) {
				t.Errorf("Fits changed the machine: %+v -> %+v", before, tt.machine)
			}
		})
	}
}

func TestAssignDevices(t *testing.T) {
	tests := []struct {
		name     string
		used     []uint32
		gpuMilli int64
		want     []txn.DeviceShare
		wantOK   bool
	}{
		{"no gpu needs no devices", []uint32{1000, 1000}, 0, nil, true},
		{"negative request", []uint32{0, 0}, -500, nil, false},
		{"one whole gpu takes the lowest free device", []uint32{1000, 0, 0}, 1000, shares(1, 1000), true},
		{"whole gpus skip partly used devices", []uint32{0, 300, 0, 0}, 2000, shares(0, 1000, 2, 1000), true},
		{"whole gpus: too few wholly free devices", []uint32{0, 300, 0, 999}, 3000, nil, false},
		{"all devices", []uint32{0, 0}, 2000, shares(0, 1000, 1, 1000), true},
		{"fraction prefers the fullest device it fits on", []uint32{0, 250, 500, 750}, 250, shares(3, 250), true},
		{"fraction skips a device it would overflow", []uint32{0, 250, 500, 750}, 500, shares(2, 500), true},
		{"fraction ties go to the lowest device", []uint32{0, 400, 400}, 500, shares(1, 500), true},
		{"fraction uses a free device when nothing shares", []uint32{1000, 0, 0}, 500, shares(1, 500), true},
		{"fraction exactly fills a device", []uint32{0, 600}, 400, shares(1, 400), true},
		{"fraction fits nowhere", []uint32{600, 700}, 500, nil, false},
		{"no devices at all", nil, 500, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := txn.NewMachine("m", nil, txn.Resources{CPUMilli: 1000, MemoryBytes: gib, GPUMilli: int64(len(tt.used)) * txn.MilliPerGPU})
			copy(m.DeviceUsed, tt.used)
			got, ok := txn.AssignDevices(m, tt.gpuMilli)
			if ok != tt.wantOK || !slices.Equal(got, tt.want) {
				t.Fatalf("AssignDevices(%v, %d) = %v, %v; want %v, %v", tt.used, tt.gpuMilli, got, ok, tt.want, tt.wantOK)
			}
			if ok && tt.gpuMilli > 0 {
				// What AssignDevices picks, Fits accepts.
				for _, u := range m.DeviceUsed {
					m.Allocated.GPUMilli += int64(u)
				}
				if r := txn.Fits(m, txn.Resources{GPUMilli: tt.gpuMilli}, got); r != txn.ReasonOK {
					t.Errorf("Fits refuses the devices AssignDevices picked: %v", r)
				}
			}
		})
	}
}

func TestFitsAnywhere(t *testing.T) {
	tests := []struct {
		name    string
		machine *txn.Machine
		req     txn.Resources
		want    bool
	}{
		{"cpu only fits", gpuBox(res(4, 0, 0, 0)), res(4, 1, 0, 0), true},
		{"cpu only too big", gpuBox(res(4, 0, 0, 0)), res(5, 1, 0, 0), false},
		{"fraction on a partly used device", gpuBox(txn.Resources{}, 1000, 1000, 1000, 500), res(1, 1, 0, 500), true},
		{"whole gpu with only fractions free", gpuBox(txn.Resources{}, 1000, 500, 500, 500), res(1, 1, 0, 1000), false},
		{"two whole gpus", gpuBox(txn.Resources{}, 1000, 0, 500, 0), res(1, 1, 0, 2000), true},
		{"gpu fits but cpu does not", gpuBox(res(8, 0, 0, 0)), res(1, 1, 0, 500), false},
		{"gpu on a cpu-only machine", txn.NewMachine("c", nil, res(8, 32, 0, 0)), res(1, 1, 0, 500), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := txn.FitsAnywhere(tt.machine, tt.req); got != tt.want {
				t.Errorf("FitsAnywhere(%v) = %v, want %v", tt.req, got, tt.want)
			}
		})
	}
}

func TestAllocateRelease(t *testing.T) {
	m := gpuBox(txn.Resources{}, 0, 0, 0, 0)
	req := res(2, 4, 10, 2000)
	devs := shares(1, 1000, 3, 1000)
	txn.Allocate(m, req, devs)
	if m.Allocated != req || !slices.Equal(m.DeviceUsed, []uint32{0, 1000, 0, 1000}) {
		t.Fatalf("after Allocate: allocated %v devices %v", m.Allocated, m.DeviceUsed)
	}
	frac := res(1, 1, 0, 300)
	txn.Allocate(m, frac, shares(0, 300))
	if err := txn.Release(m, req, devs); err != nil {
		t.Fatalf("Release of an allocated claim: %v", err)
	}
	if m.Allocated != frac || !slices.Equal(m.DeviceUsed, []uint32{300, 0, 0, 0}) {
		t.Fatalf("after Release: allocated %v devices %v", m.Allocated, m.DeviceUsed)
	}

	refused := []struct {
		name    string
		r       txn.Resources
		devices []txn.DeviceShare
		wantErr string
	}{
		{"more cpu than allocated", res(2, 0, 0, 0), nil, "exceeds its allocation"},
		{"more memory than allocated", res(0, 2, 0, 0), nil, "exceeds its allocation"},
		{"more gpu than allocated", res(0, 0, 0, 1000), shares(0, 1000), "exceeds its allocation"},
		{"more of a device than used", res(0, 0, 0, 300), shares(1, 300), "device 1"},
		{"device out of range", res(0, 0, 0, 300), shares(7, 300), "device 7"},
		{"same device twice beyond its use", txn.Resources{GPUMilli: 300}, shares(0, 200, 0, 200), "device 0"},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			c := m.Clone()
			err := txn.Release(c, tt.r, tt.devices)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), "machine m") {
				t.Fatalf("Release(%v, %v) = %v, want an error naming machine m and %q", tt.r, tt.devices, err, tt.wantErr)
			}
			if c.Allocated != m.Allocated || !slices.Equal(c.DeviceUsed, m.DeviceUsed) {
				t.Fatalf("a refused Release changed the machine: %v %v", c.Allocated, c.DeviceUsed)
			}
		})
	}
}

func TestStrandedGPUMilli(t *testing.T) {
	tests := []struct {
		used []uint32
		want int64
	}{
		{nil, 0},
		{[]uint32{0, 0}, 0},
		{[]uint32{1000, 1000}, 0},
		{[]uint32{500, 0, 750, 1000}, 750},
	}
	for _, tt := range tests {
		m := txn.NewMachine("m", nil, txn.Resources{CPUMilli: 1, MemoryBytes: 1, GPUMilli: int64(len(tt.used)) * txn.MilliPerGPU})
		copy(m.DeviceUsed, tt.used)
		if got := txn.StrandedGPUMilli(m); got != tt.want {
			t.Errorf("StrandedGPUMilli(%v) = %d, want %d", tt.used, got, tt.want)
		}
	}
}

func TestMachineCloneIsIndependent(t *testing.T) {
	m := gpuBox(res(1, 1, 0, 0), 500)
	c := m.Clone()
	c.DeviceUsed[0] = 0
	c.Allocated = txn.Resources{}
	if m.DeviceUsed[0] != 500 || m.Allocated.CPUMilli != 1000 {
		t.Fatalf("changing a clone changed the original: %+v", m)
	}
	if got := m.Free(); got != (txn.Resources{CPUMilli: 7000, MemoryBytes: 31 * gib, DiskBytes: 100 * gib, GPUMilli: 3500}) {
		t.Fatalf("Free() = %v", got)
	}
}
