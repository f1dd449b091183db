package cellstate

import (
	"fmt"
	"sort"
	"strings"

	"github.com/omegacell/omegacell/txn"
)

// checkInvariant verifies the cell invariant on s: on every machine the
// resources of the tasks holding resources there add up to its allocation,
// which never exceeds capacity, per GPU device too; and every task holds
// resources on at most one machine (a task is never placed twice: tasks are
// keyed, so this is each live task naming one existing machine).
func checkInvariant(s *state) error {
	sum := make(map[string]txn.Resources, len(s.machines))
	dev := make(map[string][]uint32, len(s.machines))
	for id, m := range s.machines {
		dev[id] = make([]uint32, len(m.m.DeviceUsed))
	}
	for _, j := range s.jobs {
		for _, t := range j.tasks {
			if !t.t.State.HoldsResources() {
				if t.t.Machine != "" && t.t.State == txn.TaskPending {
					return fmt.Errorf("task %s is pending but names machine %s", t.t.Key, t.t.Machine)
				}
				continue
			}
			m := s.machines[t.t.Machine]
			if m == nil {
				return fmt.Errorf("task %s holds resources on unknown machine %q", t.t.Key, t.t.Machine)
			}
			sum[t.t.Machine] = sum[t.t.Machine].Add(t.t.Resources)
			for _, d := range t.t.Devices {
				if int(d.Device) >= len(dev[t.t.Machine]) {
					return fmt.Errorf("task %s holds device %d of machine %s, which has %d", t.t.Key, d.Device, t.t.Machine, len(dev[t.t.Machine]))
				}
				dev[t.t.Machine][d.Device] += d.Milli
			}
		}
	}
	for id, m := range s.machines {
		if sum[id] != m.m.Allocated {
			return fmt.Errorf("machine %s: allocated %v, but its tasks hold %v", id, m.m.Allocated, sum[id])
		}
		if !m.m.Allocated.LessOrEqual(m.m.Capacity) {
			return fmt.Errorf("machine %s: allocated %v exceeds capacity %v", id, m.m.Allocated, m.m.Capacity)
		}
		for d, used := range dev[id] {
			if used != m.m.DeviceUsed[d] {
				return fmt.Errorf("machine %s device %d: used %d, but its tasks hold %d", id, d, m.m.DeviceUsed[d], used)
			}
			if used > txn.MilliPerGPU {
				return fmt.Errorf("machine %s device %d: %d milli-GPU exceeds 1000", id, d, used)
			}
		}
	}
	return nil
}

// CheckInvariant verifies the invariant on the store's current state.
func (s *Store) CheckInvariant() error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return checkInvariant(s.st)
}

func joinSorted(set map[string]bool) string {
	names := make([]string, 0, len(set))
	for n := range set {
		names = append(names, n)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}
