package sim

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"

	"github.com/omegacell/omegacell/schedulers/gpu"
	"github.com/omegacell/omegacell/schedulers/view"
	"github.com/omegacell/omegacell/txn"
)

// FGDPolicies are the policies the FGD protocol compares: the production
// GPU policy (learning its target workload from the view, or given the
// trace's typical shapes) and the paper's baselines, as its simulator
// (github.com/hkust-adsl/kubernetes-scheduler-simulator) scores them:
//   - random: a feasible machine uniformly at random;
//   - best-fit: the least CPU and GPU left after placement, each divided
//     by the largest machine's (128 cores, 8 GPUs), weighted equally;
//   - gpu-packing: shared GPUs that are partly used first (the least free
//     first), then machines that are partly used, then idle machines;
//   - dot-product: the smallest dot product of the machine's free
//     (CPU, GPU) and the pod's request, both divided by the machine's
//     capacity;
//   - fgd: the paper's FGD: the gradient against the trace's typical
//     shapes, scored as the simulator does (sigmoid of the gradient in
//     GPUs, rounded to an integer 0..100), ties at random.
//
// The baselines break ties at random, as the Kubernetes scheduler
// framework does, and choose devices with txn.AssignDevices (the most used
// device that fits; FGD its own device gradient).
var FGDPolicies = []string{"omegacell", "omegacell-given", "random", "best-fit", "gpu-packing", "dot-product", "fgd"}

// fgdPlacer decides one pod on the view.
type fgdPlacer func(v *view.View, t *txn.Task, rng *rand.Rand) gpu.Choice

func newFGDPlacer(name string, ft *FGDTrace) (fgdPlacer, error) {
	switch name {
	case "omegacell":
		p := gpu.New()
		return func(v *view.View, t *txn.Task, rng *rand.Rand) gpu.Choice { return gpu.Decide(p, v, t, rng) }, nil
	case "omegacell-given":
		p := gpu.New().WithWorkload(ft.Typical)
		return func(v *view.View, t *txn.Task, rng *rand.Rand) gpu.Choice { return gpu.Decide(p, v, t, rng) }, nil
	case "random":
		return scanPlacer(func(*txn.Machine, txn.Resources, []txn.DeviceShare) float64 { return 0 }), nil
	case "best-fit":
		return scanPlacer(bestFitScore), nil
	case "gpu-packing":
		return scanPlacer(gpuPackingScore), nil
	case "dot-product":
		return scanPlacer(dotProductScore), nil
	case "fgd":
		return fgdPaperPlacer(ft.Typical), nil
	}
	return nil, fmt.Errorf("policy %q: want one of %s", name, strings.Join(FGDPolicies, ", "))
}

// Largest machine of the paper's simulator, the best-fit normaliser.
const (
	maxSpecCPU = 128000
	maxSpecGPU = 8000
)

// scanPlacer scores every feasible ready machine (lower is better) and
// takes the best, ties uniformly at random (reservoir sampling).
func scanPlacer(score func(m *txn.Machine, r txn.Resources, devices []txn.DeviceShare) float64) fgdPlacer {
	return func(v *view.View, t *txn.Task, rng *rand.Rand) gpu.Choice {
		var best gpu.Choice
		bestScore, ties := math.Inf(1), 0
		for _, ord := range v.Candidates(t.Constraints) {
			m := v.MachineAt(ord)
			devices, ok := feasible(m, t)
			if !ok {
				continue
			}
			s := score(m, t.Resources, devices)
			switch {
			case s < bestScore:
				bestScore, ties = s, 1
				best = gpu.Choice{Machine: m.ID, Devices: devices}
			case s == bestScore:
				ties++
				if rng.IntN(ties) == 0 {
					best = gpu.Choice{Machine: m.ID, Devices: devices}
				}
			}
		}
		if best.Machine == "" {
			best.Reason = "fits on no machine"
		}
		return best
	}
}

// feasible reports whether t fits on m (state, constraints, txn.Fits with
// txn.AssignDevices' devices) and with which devices.
func feasible(m *txn.Machine, t *txn.Task) ([]txn.DeviceShare, bool) {
	if m.State != txn.MachineReady {
		return nil, false
	}
	if _, unmet := txn.FirstUnmet(t.Constraints, m.Labels); unmet {
		return nil, false
	}
	devices, ok := txn.AssignDevices(m, t.Resources.GPUMilli)
	if !ok || txn.Fits(m, t.Resources, devices) != txn.ReasonOK {
		return nil, false
	}
	return devices, true
}

func bestFitScore(m *txn.Machine, r txn.Resources, _ []txn.DeviceShare) float64 {
	free := m.Free()
	return 0.5*float64(free.CPUMilli-r.CPUMilli)/maxSpecCPU + 0.5*float64(m.Capacity.GPUMilli-m.Allocated.GPUMilli-r.GPUMilli)/maxSpecGPU
}

// gpuPackingScore: pods without GPUs score the same everywhere; a GPU pod
// prefers shared devices (the least free on the devices it takes), then
// fully free devices on a partly used machine (the fewer the better), then
// an idle machine (the more devices the worse).
func gpuPackingScore(m *txn.Machine, r txn.Resources, devices []txn.DeviceShare) float64 {
	if r.GPUMilli == 0 {
		return 0
	}
	idle := 0
	for _, u := range m.DeviceUsed {
		if u == 0 {
			idle++
		}
	}
	if idle == m.Devices() {
		return 200 + float64(idle)
	}
	fresh, freeOnUsed := 0, int64(0)
	for _, d := range devices {
		u := m.DeviceUsed[d.Device]
		if u == 0 {
			fresh++
		}
		freeOnUsed += txn.MilliPerGPU - int64(u)
	}
	if fresh > 0 {
		return 100 + float64(fresh)
	}
	return float64(freeOnUsed) / txn.MilliPerGPU
}

func dotProductScore(m *txn.Machine, r txn.Resources, _ []txn.DeviceShare) float64 {
	free := m.Free()
	cpuCap, gpuCap := float64(m.Capacity.CPUMilli), float64(max(m.Capacity.GPUMilli, 1))
	return (float64(free.CPUMilli)/cpuCap)*(float64(r.CPUMilli)/cpuCap) +
		(float64(m.Capacity.GPUMilli-m.Allocated.GPUMilli)/gpuCap)*(float64(r.GPUMilli)/gpuCap)
}

// fgdPaperPlacer is the paper's FGD: for each feasible machine (and, for
// a fractional pod, each device that fits) the growth of fragmentation
// against the typical shapes, turned into the simulator's integer score
// int(100 × sigmoid(-gradient / 1000 milli-GPU)); the highest score wins,
// ties at random.
func fgdPaperPlacer(typical gpu.Workload) fgdPlacer {
	return func(v *view.View, t *txn.Task, rng *rand.Rand) gpu.Choice {
		var best gpu.Choice
		bestScore, ties := int64(-1), 0
		r := t.Resources
		for _, ord := range v.Candidates(t.Constraints) {
			m := v.MachineAt(ord)
			devices, ok := feasible(m, t)
			if !ok {
				continue
			}
			before := typical.Fragmentation(m)
			options := [][]txn.DeviceShare{devices}
			if r.GPUMilli > 0 && r.GPUMilli < txn.MilliPerGPU {
				options = options[:0]
				for i, u := range m.DeviceUsed {
					if int64(u)+r.GPUMilli <= txn.MilliPerGPU {
						options = append(options, []txn.DeviceShare{{Device: uint32(i), Milli: uint32(r.GPUMilli)}})
					}
				}
			}
			score, pick := int64(-1), devices
			for _, d := range options {
				c := m.Clone()
				txn.Allocate(c, r, d)
				grad := float64(typical.Fragmentation(c)-before) / gpu.WeightScale
				s := int64(100 / (1 + math.Exp(grad/1000)))
				if s > score {
					score, pick = s, d
				}
			}
			switch {
			case score > bestScore:
				bestScore, ties = score, 1
				best = gpu.Choice{Machine: m.ID, Devices: pick}
			case score == bestScore:
				ties++
				if rng.IntN(ties) == 0 {
					best = gpu.Choice{Machine: m.ID, Devices: pick}
				}
			}
		}
		if best.Machine == "" {
			best.Reason = "fits on no machine"
		}
		return best
	}
}
