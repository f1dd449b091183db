package gpu

import (
	"github.com/omegacell/omegacell/schedulers/policy"
	"github.com/omegacell/omegacell/schedulers/view"
	"github.com/omegacell/omegacell/txn"
)

// demand is one GPU request size of the target workload and its weight
// (per mille of the workload's tasks).
type demand struct {
	milli  int64
	weight int64
}

// workload is the target workload fragmentation is measured against.
type workload []demand

// workloadOf weighs the cell's GPU requests by how many tasks make them;
// a cell without GPU tasks is measured against the request being placed.
func workloadOf(reqs []view.GPURequest, fallback int64) workload {
	var total int64
	for _, r := range reqs {
		total += int64(r.Tasks)
	}
	var w workload
	for _, r := range reqs {
		if wt := int64(r.Tasks) * 1000 / total; wt > 0 {
			w = append(w, demand{milli: r.Milli, weight: wt})
		}
	}
	if len(w) == 0 && fallback > 0 {
		w = workload{{milli: fallback, weight: 1000}}
	}
	return w
}

// fragmentation is the expected GPU milli on devices used as given that
// the workload's tasks cannot use (FGD's F_n(M)), in milli × per mille.
func (w workload) fragmentation(used []uint32) int64 {
	var f int64
	for _, d := range w {
		f += d.weight * fragmentFor(used, d.milli)
	}
	return f
}

// fragmentFor is the free GPU milli a task asking for milli cannot use.
func fragmentFor(used []uint32, milli int64) int64 {
	var free, unusable int64
	whole := int64(0)
	for _, u := range used {
		f := int64(txn.MilliPerGPU) - int64(u)
		free += f
		switch {
		case u == 0:
			whole++
		case milli >= txn.MilliPerGPU || f < milli:
			unusable += f
		}
	}
	if milli >= txn.MilliPerGPU && whole < milli/txn.MilliPerGPU {
		return free
	}
	return unusable
}

// Score layout: the fragmentation gradient dominates, then the change of
// stranded GPU milli, then the CPU and memory fit. The shifts keep each
// term's range clear of the next for machines of up to 64 devices; values
// beyond are clamped.
const (
	gradientShift = 36
	strandedShift = 19
	maxGradient   = 1 << (62 - gradientShift)
	maxStranded   = 1 << (gradientShift - strandedShift - 1)
	maxDevicesBuf = 64
)

// score ranks machine m for one more task t, lower is better: the growth
// of the workload's fragmentation if t lands there with the devices
// txn.AssignDevices picks, then the growth of stranded GPU milli, then the
// CPU and memory left free. Tasks without GPUs rank GPU machines last.
func (w workload) score(m *txn.Machine, t *txn.Task) int64 {
	fit := fitTerm(m, t)
	if t.Resources.GPUMilli == 0 {
		if m.Devices() > 0 {
			return int64(maxGradient) << gradientShift
		}
		return fit
	}
	devices, ok := txn.AssignDevices(m, t.Resources.GPUMilli)
	if !ok {
		return int64(maxGradient) << gradientShift
	}
	return w.scoreDevices(m, devices, fit)
}

// scoreDevices is [workload.score] for a GPU task taking devices on m, fit
// being its CPU and memory term.
func (w workload) scoreDevices(m *txn.Machine, devices []txn.DeviceShare, fit int64) int64 {
	var buf [maxDevicesBuf]uint32
	after := buf[:0]
	if m.Devices() > maxDevicesBuf {
		after = make([]uint32, 0, m.Devices())
	}
	after = append(after, m.DeviceUsed...)
	for _, d := range devices {
		after[d.Device] += d.Milli
	}
	gradient := clamp(w.fragmentation(after)-w.fragmentation(m.DeviceUsed), maxGradient)
	stranded := clamp(txn.StrandedGPUMilli(&txn.Machine{DeviceUsed: after})-txn.StrandedGPUMilli(m), maxStranded)
	return gradient<<gradientShift + stranded<<strandedShift + fit
}

// fitTerm is the CPU and memory fractions m would have free after t,
// scaled below the stranded term.
func fitTerm(m *txn.Machine, t *txn.Task) int64 {
	free := m.Free().Sub(t.Resources)
	return (policy.Fraction(free.CPUMilli, m.Capacity.CPUMilli) + policy.Fraction(free.MemoryBytes, m.Capacity.MemoryBytes)) >> 3
}

func clamp(x, limit int64) int64 {
	return max(-limit+1, min(x, limit-1))
}
