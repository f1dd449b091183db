package txn

import "fmt"

// CheckInvariant verifies omegacell's invariant over a whole cell: on every
// machine the resources of the tasks holding resources there add up to its
// allocation, which never exceeds capacity, and per GPU device too; every
// task that holds resources names one existing machine; and no task key
// appears twice (a task is never placed twice). The store checks itself
// with it, `cell check` checks a snapshot with it, tests check with it.
func CheckInvariant(machines []*Machine, tasks []*Task) error {
	byID := make(map[string]int, len(machines))
	sum := make([]Resources, len(machines))
	// dev sums shares in 64 bits: shares are uint32, and a corrupt cell
	// must not wrap a device's sum back into range.
	dev := make([][]uint64, len(machines))
	for i, m := range machines {
		if _, dup := byID[m.ID]; dup {
			return fmt.Errorf("machine %s appears twice", m.ID)
		}
		byID[m.ID] = i
		dev[i] = make([]uint64, len(m.DeviceUsed))
	}
	seen := make(map[TaskKey]struct{}, len(tasks))
	for _, t := range tasks {
		if _, dup := seen[t.Key]; dup {
			return fmt.Errorf("task %s appears twice", t.Key)
		}
		seen[t.Key] = struct{}{}
		if !t.State.HoldsResources() {
			if t.State == TaskPending && (t.Machine != "" || len(t.Devices) > 0) {
				return fmt.Errorf("task %s is pending but names machine %s or holds devices %v", t.Key, t.Machine, t.Devices)
			}
			continue
		}
		i, ok := byID[t.Machine]
		if !ok {
			return fmt.Errorf("task %s holds resources on unknown machine %q", t.Key, t.Machine)
		}
		sum[i] = sum[i].Add(t.Resources)
		var gpu int64
		for k, d := range t.Devices {
			for _, e := range t.Devices[:k] {
				if e.Device == d.Device {
					return fmt.Errorf("task %s names device %d twice", t.Key, d.Device)
				}
			}
			if int(d.Device) >= len(dev[i]) {
				return fmt.Errorf("task %s holds device %d of machine %s, which has %d", t.Key, d.Device, t.Machine, len(dev[i]))
			}
			dev[i][d.Device] += uint64(d.Milli)
			gpu += int64(d.Milli)
		}
		if gpu != t.Resources.GPUMilli {
			return fmt.Errorf("task %s holds %d milli-GPU of devices for a request of %d", t.Key, gpu, t.Resources.GPUMilli)
		}
	}
	for i, m := range machines {
		if sum[i] != m.Allocated {
			return fmt.Errorf("machine %s: allocated %v, but its tasks hold %v", m.ID, m.Allocated, sum[i])
		}
		if !m.Allocated.LessOrEqual(m.Capacity) {
			return fmt.Errorf("machine %s: allocated %v exceeds capacity %v", m.ID, m.Allocated, m.Capacity)
		}
		for d, used := range dev[i] {
			if used != uint64(m.DeviceUsed[d]) {
				return fmt.Errorf("machine %s device %d: used %d, but its tasks hold %d", m.ID, d, m.DeviceUsed[d], used)
			}
			if used > MilliPerGPU {
				return fmt.Errorf("machine %s device %d: %d milli-GPU exceeds 1000", m.ID, d, used)
			}
		}
	}
	return nil
}
