package txn

import "fmt"

// Fits is THE fit check of omegacell: does a request r, taking the given GPU
// device shares, fit on m as m is now? It returns ReasonOK or the first
// resource that does not fit. State, constraints and sequence numbers are
// [Validate]'s business, not this function's.
func Fits(m *Machine, r Resources, devices []DeviceShare) Reason {
	free := m.Free()
	switch {
	case r.CPUMilli > free.CPUMilli:
		return ReasonInsufficientCPU
	case r.MemoryBytes > free.MemoryBytes:
		return ReasonInsufficientMemory
	case r.DiskBytes > free.DiskBytes:
		return ReasonInsufficientDisk
	case r.GPUMilli > free.GPUMilli:
		return ReasonInsufficientGPU
	}
	if r.GPUMilli == 0 && len(devices) == 0 {
		return ReasonOK
	}
	if !devicesShapeValid(m, r.GPUMilli, devices) {
		return ReasonInvalidDevices
	}
	for _, d := range devices {
		if m.DeviceUsed[d.Device]+d.Milli > MilliPerGPU {
			return ReasonInsufficientGPU
		}
	}
	return ReasonOK
}

// FitsAnywhere reports whether r fits on m with some choice of devices: the
// question a policy asks before it picks devices with [AssignDevices].
func FitsAnywhere(m *Machine, r Resources) bool {
	if r.GPUMilli == 0 {
		return Fits(m, r, nil) == ReasonOK
	}
	d, ok := AssignDevices(m, r.GPUMilli)
	return ok && Fits(m, r, d) == ReasonOK
}

// devicesShapeValid checks that shares name existing, distinct devices and
// add up to gpuMilli: whole devices (1000 each) for requests of one or more
// GPUs, exactly one share for a fractional request.
func devicesShapeValid(m *Machine, gpuMilli int64, devices []DeviceShare) bool {
	var sum int64
	for i, d := range devices {
		if int(d.Device) >= len(m.DeviceUsed) || d.Milli == 0 {
			return false
		}
		for _, e := range devices[:i] {
			if e.Device == d.Device {
				return false
			}
		}
		if gpuMilli >= MilliPerGPU && d.Milli != MilliPerGPU {
			return false
		}
		sum += int64(d.Milli)
	}
	if gpuMilli < MilliPerGPU && len(devices) != 1 {
		return false
	}
	return sum == gpuMilli
}

// AssignDevices picks GPU device shares for a request of gpuMilli on m, or
// reports that none exist. Whole-GPU requests take the lowest-numbered
// wholly free devices. A fractional request takes the most-used device it
// still fits on (best fit), which keeps whole devices free for whole-GPU
// requests; policies with their own device choice build shares themselves
// and check them with [Fits].
func AssignDevices(m *Machine, gpuMilli int64) ([]DeviceShare, bool) {
	if gpuMilli <= 0 {
		return nil, gpuMilli == 0
	}
	if gpuMilli < MilliPerGPU {
		best, bestUsed := -1, uint32(0)
		for i, used := range m.DeviceUsed {
			if int64(used)+gpuMilli <= MilliPerGPU && (best < 0 || used > bestUsed) {
				best, bestUsed = i, used
			}
		}
		if best < 0 {
			return nil, false
		}
		return []DeviceShare{{Device: uint32(best), Milli: uint32(gpuMilli)}}, true
	}
	want := int(gpuMilli / MilliPerGPU)
	out := make([]DeviceShare, 0, want)
	for i, used := range m.DeviceUsed {
		if used == 0 {
			out = append(out, DeviceShare{Device: uint32(i), Milli: MilliPerGPU})
			if len(out) == want {
				return out, true
			}
		}
	}
	return nil, false
}

// Allocate adds a claim's resources and device shares to m. The caller owns
// m (a clone) and has checked [Fits].
func Allocate(m *Machine, r Resources, devices []DeviceShare) {
	m.Allocated = m.Allocated.Add(r)
	for _, d := range devices {
		m.DeviceUsed[d.Device] += d.Milli
	}
}

// Release removes a task's resources and device shares from m. The caller
// owns m (a clone). Releasing more than is allocated is a bookkeeping bug
// and returns an error rather than letting counters go negative.
func Release(m *Machine, r Resources, devices []DeviceShare) error {
	if !r.LessOrEqual(m.Allocated) {
		return fmt.Errorf("txn: release of %v from machine %s exceeds its allocation %v", r, m.ID, m.Allocated)
	}
	for i, d := range devices {
		// A device named more than once is released once per share, so
		// its use must cover the sum of those shares.
		total := uint64(d.Milli)
		for _, e := range devices[:i] {
			if e.Device == d.Device {
				total += uint64(e.Milli)
			}
		}
		if int(d.Device) >= len(m.DeviceUsed) || uint64(m.DeviceUsed[d.Device]) < total {
			return fmt.Errorf("txn: release of device %d (%dm) from machine %s exceeds its use", d.Device, total, m.ID)
		}
	}
	m.Allocated = m.Allocated.Sub(r)
	for _, d := range devices {
		m.DeviceUsed[d.Device] -= d.Milli
	}
	return nil
}

// StrandedGPUMilli is the GPU capacity on m that is free but sits on
// partially used devices, so no whole-GPU request can use it: the
// fragmentation measure of the GPU policy and the simulator.
func StrandedGPUMilli(m *Machine) int64 {
	var s int64
	for _, used := range m.DeviceUsed {
		if used > 0 && used < MilliPerGPU {
			s += int64(MilliPerGPU - used)
		}
	}
	return s
}
