package sim

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/omegacell/omegacell/schedulers/gpu"
	"github.com/omegacell/omegacell/schedulers/view"
	"github.com/omegacell/omegacell/txn"
)

// The FGD protocol is the main experiment of Weng et al., "Beware of
// Fragmentation: Scheduling GPU-Sharing Workloads with Fragmentation
// Gradient Descent", USENIX ATC 2023 (Fig. 9a), on the Alibaba openb
// trace: the cell is every node of the node list; the workload is every
// pod of the pod list in a seeded random order, extended by pods drawn
// uniformly at random (with replacement) from the list until the GPU
// requested reaches Inflate times the cell's GPU capacity. Pods arrive
// one at a time and never leave; a pod that fits nowhere is dropped
// (failed) and the next one comes. The metric is the GPU allocation ratio
// (allocated ÷ total milli-GPU), recorded as the arrived GPU request grows.
//
// Each pod is placed by one policy ([FGDPolicies]): the production GPU
// policy through its researcher's API (gpu.Decide, then gpu.Commit, which
// is txn.Validate and txn.Apply on a schedulers/view copy of the cell), or
// one of the paper's baselines on the same view and the same txn fit.

// FGDConfig is one run of the FGD protocol.
type FGDConfig struct {
	// Policy is one of FGDPolicies.
	Policy string
	Seed   uint64
	// Inflate is the GPU requested at the end, as a multiple of the
	// cell's GPU capacity (the paper: 1.3).
	Inflate float64
	// MaxPods, if positive, stops after that many arrivals (small test
	// runs); the result says so in Cut.
	MaxPods int
}

// CurvePoint is the allocation when the arrived GPU request first reached
// a whole percent of the cell's capacity.
type CurvePoint struct {
	ArrivedPercent    int     `json:"arrived_percent"`
	AllocationPercent float64 `json:"allocation_percent"`
}

// FGDResult is the outcome of one run.
type FGDResult struct {
	Policy   string `json:"policy"`
	Seed     uint64 `json:"seed"`
	Machines int    `json:"machines"`
	// GPUMilli is the cell's GPU capacity.
	GPUMilli int64 `json:"gpu_milli"`
	// TracePods is the pod list's size; Arrived the pods that arrived
	// (the list plus the draws); Placed and Failed split them.
	TracePods int `json:"trace_pods"`
	Arrived   int `json:"arrived"`
	Placed    int `json:"placed"`
	Failed    int `json:"failed"`
	// ArrivedGPUMilli is the GPU the arrived pods requested.
	ArrivedGPUMilli   int64   `json:"arrived_gpu_milli"`
	AllocatedGPUMilli int64   `json:"allocated_gpu_milli"`
	Allocation        float64 `json:"allocation"`
	// FragmentedGPUMilli is FGD's fragmentation measure at the end: the
	// expected idle milli-GPU that a GPU pod of the trace's typical shapes
	// (those covering 95% of the GPU pods) could not use.
	FragmentedGPUMilli int64 `json:"fragmented_gpu_milli"`
	// IdleGPUMilli is the idle GPU at the end; IdleBehindCPU the part of
	// it on machines with less than 4 cores free.
	IdleGPUMilli  int64 `json:"idle_gpu_milli"`
	IdleBehindCPU int64 `json:"idle_gpu_milli_behind_cpu"`
	// Curve is the allocation against the arrived workload (Fig. 9a).
	Curve []CurvePoint `json:"curve"`
	// WallSeconds and CPUSeconds are the run's wall and process CPU time;
	// DecisionMicros the mean wall time of one placement decision,
	// DecisionMicrosMax the longest, DecisionCPUMicros the mean process
	// CPU time of one (on a loaded machine wall times include waiting for
	// a core).
	WallSeconds       float64 `json:"wall_seconds"`
	CPUSeconds        float64 `json:"cpu_seconds"`
	DecisionMicros    float64 `json:"decision_micros"`
	DecisionMicrosMax float64 `json:"decision_micros_max"`
	DecisionCPUMicros float64 `json:"decision_cpu_micros"`
	// Cut says what part of the protocol was left out (MaxPods), if any.
	Cut string `json:"cut,omitempty"`
}

// FGDTrace is the cell and the pods of the FGD protocol.
type FGDTrace struct {
	Machines []*txn.Machine
	// Pods are the pod list's requests and constraints, in file order.
	Pods []FGDPod
	// Typical is the fragmentation measure's target workload: the pod
	// list's most common shapes covering 95% of its pods.
	Typical gpu.Workload
}

// FGDPod is one pod of the list.
type FGDPod struct {
	Name        string
	Resources   txn.Resources
	Constraints []txn.Constraint
}

// ReadFGDTrace reads the node and pod lists of the Alibaba GPU trace for
// the FGD protocol: every pod, scheduled in the trace or not, and its GPU
// request as the protocol defines it (num_gpu × 1000 milli when num_gpu >
// 1, gpu_milli when it is 1, else none).
func ReadFGDTrace(nodes, pods []string) (*FGDTrace, error) {
	t, err := ReadAlibabaTrace(AlibabaOptions{Nodes: nodes, Pods: pods, AllPods: true})
	if err != nil {
		return nil, err
	}
	ft := &FGDTrace{Machines: t.machines}
	counts := map[txn.Resources]int{}
	for _, it := range t.items {
		if it.Job == nil {
			continue
		}
		ft.Pods = append(ft.Pods, FGDPod{Name: it.Job.ID, Resources: it.Job.Resources, Constraints: it.Job.Constraints})
		counts[it.Job.Resources]++
	}
	if len(ft.Pods) == 0 {
		return nil, fmt.Errorf("alibaba trace: no pods in %v", pods)
	}
	shapes := make([]view.Shape, 0, len(counts))
	for r, n := range counts {
		shapes = append(shapes, view.Shape{Resources: r, Tasks: n})
	}
	sortShapes(shapes)
	ft.Typical = gpu.LearnWorkload(shapes, gpu.DefaultCoverage)
	return ft, nil
}

// sortShapes orders shapes as view.View.Shapes does: most common first.
func sortShapes(s []view.Shape) {
	slices.SortFunc(s, func(a, b view.Shape) int {
		return cmp.Or(cmp.Compare(b.Tasks, a.Tasks), cmp.Compare(a.Resources.GPUMilli, b.Resources.GPUMilli),
			cmp.Compare(a.Resources.CPUMilli, b.Resources.CPUMilli), cmp.Compare(a.Resources.MemoryBytes, b.Resources.MemoryBytes))
	})
}

// Arrivals is the protocol's workload for a seed: the pods in a random
// order, then draws with replacement until the GPU requested reaches
// inflate × capacity.
func (ft *FGDTrace) Arrivals(seed uint64, inflate float64) []FGDPod {
	rng := rand.New(rand.NewPCG(seed, 0x46474439)) // "FGD9"
	out := slices.Clone(ft.Pods)
	rng.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	var capacity, requested int64
	for _, m := range ft.Machines {
		capacity += m.Capacity.GPUMilli
	}
	for _, p := range out {
		requested += p.Resources.GPUMilli
	}
	target := int64(inflate * float64(capacity))
	for requested < target {
		p := ft.Pods[rng.IntN(len(ft.Pods))]
		out = append(out, p)
		requested += p.Resources.GPUMilli
	}
	return out
}

// RunFGD runs the protocol once.
func RunFGD(ft *FGDTrace, cfg FGDConfig) (*FGDResult, error) {
	place, err := newFGDPlacer(cfg.Policy, ft)
	if err != nil {
		return nil, err
	}
	if cfg.Inflate <= 0 {
		return nil, fmt.Errorf("fgd: inflate %v must be positive", cfg.Inflate)
	}
	start, cpuStart := time.Now(), cpuSeconds()
	v := view.New()
	res := &FGDResult{Policy: cfg.Policy, Seed: cfg.Seed, Machines: len(ft.Machines), TracePods: len(ft.Pods)}
	for _, m := range ft.Machines {
		v.PutMachine(m.Clone())
		res.GPUMilli += m.Capacity.GPUMilli
	}
	v.SetRevision(1)
	arrivals := ft.Arrivals(cfg.Seed, cfg.Inflate)
	if cfg.MaxPods > 0 && cfg.MaxPods < len(arrivals) {
		res.Cut = fmt.Sprintf("stopped after %d of %d arrivals (--max-pods)", cfg.MaxPods, len(arrivals))
		arrivals = arrivals[:cfg.MaxPods]
	}
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x706c6163)) // "plac": the policy's stream
	var decide time.Duration
	var decideCPU float64
	nextPercent := 1
	for i, pod := range arrivals {
		job := view.JobInfo{ID: fmt.Sprintf("%s#%d", pod.Name, i), Scheduler: gpu.Name, Priority: txn.PriorityBatch, Count: 1,
			Resources: pod.Resources, Constraints: pod.Constraints, State: view.JobPending}
		v.PutJob(job)
		task := job.NewTask(0)
		v.PutTask(task)
		t0, c0 := time.Now(), cpuSeconds()
		choice := place(v, task, rng)
		d := time.Since(t0)
		decideCPU += cpuSeconds() - c0
		decide += d
		res.DecisionMicrosMax = max(res.DecisionMicrosMax, float64(d.Microseconds()))
		res.Arrived++
		res.ArrivedGPUMilli += pod.Resources.GPUMilli
		if choice.Machine == "" {
			res.Failed++
			v.RemoveJob(job.ID)
		} else {
			if err := gpu.Commit(v, task, choice); err != nil {
				return nil, fmt.Errorf("fgd %s: pod %d (%s): %w", cfg.Policy, i, pod.Name, err)
			}
			res.Placed++
			res.AllocatedGPUMilli += pod.Resources.GPUMilli
		}
		for res.ArrivedGPUMilli*100 >= int64(nextPercent)*res.GPUMilli {
			res.Curve = append(res.Curve, CurvePoint{ArrivedPercent: nextPercent, AllocationPercent: percent(res.AllocatedGPUMilli, res.GPUMilli)})
			nextPercent++
		}
	}
	res.Allocation = float64(res.AllocatedGPUMilli) / float64(max(res.GPUMilli, 1))
	for _, m := range v.Machines() {
		idle := m.Capacity.GPUMilli - m.Allocated.GPUMilli
		res.IdleGPUMilli += idle
		if m.Free().CPUMilli < 4000 {
			res.IdleBehindCPU += idle
		}
		res.FragmentedGPUMilli += ft.Typical.Fragmentation(m) / gpu.WeightScale
	}
	res.WallSeconds, res.CPUSeconds = time.Since(start).Seconds(), cpuSeconds()-cpuStart
	if res.Arrived > 0 {
		res.DecisionMicros = float64(decide.Microseconds()) / float64(res.Arrived)
		res.DecisionCPUMicros = decideCPU * 1e6 / float64(res.Arrived)
	}
	return res, nil
}

func percent(part, whole int64) float64 {
	if whole <= 0 {
		return 0
	}
	return float64(part) * 100 / float64(whole)
}
