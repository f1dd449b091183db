package sim

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/omegacell/omegacell/txn"
)

// Axis is the parameter a sweep varies along its x axis.
type Axis string

const (
	AxisTJobService     Axis = "t_job_service"
	AxisTTaskService    Axis = "t_task_service"
	AxisTJobBatch       Axis = "t_job_batch"
	AxisTTaskBatch      Axis = "t_task_batch"
	AxisBatchSchedulers Axis = "batch_schedulers"
	AxisConflict        Axis = "conflict"
	AxisCommit          Axis = "commit"
	AxisPlacement       Axis = "placement"
	AxisOrder           Axis = "order"
)

// Axes lists every sweepable parameter.
func Axes() []Axis {
	return []Axis{AxisTJobService, AxisTTaskService, AxisTJobBatch, AxisTTaskBatch, AxisBatchSchedulers, AxisConflict, AxisCommit, AxisPlacement, AxisOrder}
}

// ParseAxis parses an axis name.
func ParseAxis(s string) (Axis, error) {
	for _, a := range Axes() {
		if string(a) == s {
			return a, nil
		}
	}
	names := make([]string, 0, len(Axes()))
	for _, a := range Axes() {
		names = append(names, string(a))
	}
	return "", fmt.Errorf("axis %q: want one of %s", s, strings.Join(names, ", "))
}

// Categorical reports whether the axis takes names rather than numbers.
func (a Axis) Categorical() bool {
	return a == AxisConflict || a == AxisCommit || a == AxisPlacement || a == AxisOrder
}

// LogScale reports whether the axis is best drawn on a log scale (decision
// times span orders of magnitude, as in the paper's figures).
func (a Axis) LogScale() bool { return strings.HasPrefix(string(a), "t_") }

// Sweep is a set of runs: every series (a combination of architecture,
// conflict mode, commit mode and number of batch schedulers) at every value
// of the axis, all on the same workload and seed, so every run sees the
// very same jobs.
type Sweep struct {
	Name     string
	Workload string // built-in name or file
	Base     Config
	Axis     Axis
	Values   []string

	Archs           []Arch
	Conflicts       []txn.ConflictMode
	Commits         []txn.CommitMode
	BatchSchedulers []int

	// Charts are the metrics drawn (default ChartMetrics).
	Charts []string
}

// Point is one run of a sweep.
type Point struct {
	Series string  `json:"series"`
	X      float64 `json:"x"`      // the axis value, or its position for a categorical axis
	XName  string  `json:"x_name"` // the axis value as written
	Result *Result `json:"result"`
}

// SweepResult is a sweep with its runs, in series-major order.
type SweepResult struct {
	Name     string  `json:"experiment"`
	Workload string  `json:"workload"`
	Axis     Axis    `json:"axis"`
	Points   []Point `json:"points"`
}

// series is one combination of the series dimensions.
type series struct {
	label           string
	arch            Arch
	conflict        txn.ConflictMode
	commit          txn.CommitMode
	batchSchedulers int
}

// plan expands the sweep into its series; dimensions with one value are
// fixed, the others name the series.
func (sw *Sweep) plan() []series {
	archs := orDefault(sw.Archs, sw.Base.Arch)
	conflicts := orDefault(sw.Conflicts, sw.Base.Conflict)
	commits := orDefault(sw.Commits, sw.Base.Commit)
	batch := orDefault(sw.BatchSchedulers, sw.Base.BatchSchedulers)
	var out []series
	for _, a := range archs {
		for _, cf := range conflicts {
			for _, cm := range commits {
				for _, b := range batch {
					var parts []string
					if len(archs) > 1 {
						parts = append(parts, string(a))
					}
					if len(conflicts) > 1 {
						parts = append(parts, ConflictName(cf))
					}
					if len(commits) > 1 {
						parts = append(parts, CommitName(cm))
					}
					if len(batch) > 1 {
						parts = append(parts, strconv.Itoa(b)+" batch")
					}
					label := strings.Join(parts, ", ")
					if label == "" {
						label = string(a)
					}
					out = append(out, series{label, a, cf, cm, b})
				}
			}
		}
	}
	return out
}

func orDefault[T any](vs []T, def T) []T {
	if len(vs) == 0 {
		return []T{def}
	}
	return vs
}

// Runs is the number of runs the sweep makes.
func (sw *Sweep) Runs() int { return len(sw.plan()) * len(sw.Values) }

// configure returns the configuration of one run.
func (sw *Sweep) configure(s series, value string) (Config, float64, error) {
	cfg := sw.Base
	cfg.Timing = map[string]Timing{}
	for k, v := range sw.Base.Timing {
		cfg.Timing[k] = v
	}
	cfg.Arch, cfg.Conflict, cfg.Commit, cfg.BatchSchedulers = s.arch, s.conflict, s.commit, s.batchSchedulers
	if sw.Axis.Categorical() {
		switch sw.Axis {
		case AxisConflict:
			m, err := ParseConflict(value)
			if err != nil {
				return cfg, 0, err
			}
			cfg.Conflict = m
		case AxisCommit:
			m, err := ParseCommit(value)
			if err != nil {
				return cfg, 0, err
			}
			cfg.Commit = m
		case AxisPlacement:
			p, err := ParsePlacement(value)
			if err != nil {
				return cfg, 0, err
			}
			cfg.Placement = p
		case AxisOrder:
			o, err := ParseOrder(value)
			if err != nil {
				return cfg, 0, err
			}
			cfg.Order = o
		}
		return cfg, float64(slices.Index(sw.Values, value)), nil
	}
	x, err := strconv.ParseFloat(value, 64)
	if err != nil || math.IsNaN(x) || math.IsInf(x, 0) || x < 0 {
		return cfg, 0, fmt.Errorf("axis %s: value %q is not a non-negative number", sw.Axis, value)
	}
	setTiming := func(kind string, job bool) {
		t := cfg.Timing[kind]
		if job {
			t.JobSeconds = x
		} else {
			t.TaskSeconds = x
		}
		cfg.Timing[kind] = t
	}
	switch sw.Axis {
	case AxisTJobService:
		setTiming(KindService, true)
	case AxisTTaskService:
		setTiming(KindService, false)
	case AxisTJobBatch:
		setTiming(KindBatch, true)
	case AxisTTaskBatch:
		setTiming(KindBatch, false)
	case AxisBatchSchedulers:
		if x != math.Trunc(x) || x < 1 {
			return cfg, 0, fmt.Errorf("axis %s: value %q is not a positive whole number", sw.Axis, value)
		}
		cfg.BatchSchedulers = int(x)
	}
	return cfg, x, nil
}

// Validate checks every run's configuration before any runs.
func (sw *Sweep) Validate() error {
	if _, err := ParseAxis(string(sw.Axis)); err != nil {
		return err
	}
	if len(sw.Values) == 0 {
		return fmt.Errorf("sweep %s: no values for axis %s", sw.Name, sw.Axis)
	}
	for _, s := range sw.plan() {
		for _, v := range sw.Values {
			cfg, _, err := sw.configure(s, v)
			if err != nil {
				return fmt.Errorf("sweep %s: %w", sw.Name, err)
			}
			if err := cfg.Validate(); err != nil {
				return fmt.Errorf("sweep %s, series %q, %s=%s: %w", sw.Name, s.label, sw.Axis, v, err)
			}
		}
	}
	return nil
}

// Run makes every run of the sweep, one after another. progress, if set,
// is told the simulated seconds done so far out of the total.
func (sw *Sweep) Run(w *Workload, progress func(done, total float64)) (*SweepResult, error) {
	if err := sw.Validate(); err != nil {
		return nil, err
	}
	out := &SweepResult{Name: sw.Name, Workload: w.Name, Axis: sw.Axis}
	total := float64(sw.Runs()) * sw.Base.Horizon
	var done float64
	for _, s := range sw.plan() {
		for _, v := range sw.Values {
			cfg, x, err := sw.configure(s, v)
			if err != nil {
				return nil, err
			}
			if progress != nil {
				base := done
				cfg.Progress = func(sim float64) { progress(base+sim, total) }
			}
			r, err := Run(cfg, NewSynthetic(w, cfg.Seed, cfg.Horizon))
			if err != nil {
				return nil, fmt.Errorf("sweep %s, series %q, %s=%s: %w", sw.Name, s.label, sw.Axis, v, err)
			}
			done += cfg.Horizon
			out.Points = append(out.Points, Point{Series: s.label, X: x, XName: v, Result: r})
		}
	}
	return out, nil
}

// Experiments are the sweeps that reproduce the Omega paper's figures (see
// bench/README.md), by name.
func Experiments() map[string]Sweep {
	tjob := []string{"0.01", "0.1", "1", "10", "100"}
	// Architectures are compared with the same placement everywhere, the
	// paper's randomized first fit (two-level offers cannot run the
	// policies); so are conflict modes, because the production policies
	// conflict too rarely on these cells to tell the modes apart (bench/
	// README.md shows both). The other experiments run the policies.
	firstFit := DefaultConfig()
	firstFit.Placement = PlacementFirstFit
	base := DefaultConfig()
	heavyBatch := DefaultConfig()
	heavyBatch.Timing = map[string]Timing{
		KindBatch:   {JobSeconds: 2, TaskSeconds: 0.005},
		KindService: {JobSeconds: 0.1, TaskSeconds: 0.005},
		KindGPU:     {JobSeconds: 0.1, TaskSeconds: 0.005},
	}
	return map[string]Sweep{
		// Sections 4.1-4.3: every architecture as the service scheduler's
		// decision time grows.
		"architectures": {
			Name: "architectures", Workload: "cluster-c", Base: firstFit,
			Axis: AxisTJobService, Values: tjob,
			Archs: Archs(),
			Charts: []string{"wait_mean_batch", "wait_mean_service", "wait_p90_batch", "busyness_batch", "busyness_service",
				"conflict_fraction_service", "abandoned_batch", "unscheduled_batch", "unscheduled_service"},
		},
		// Section 5 (figure 12): conflict detection and commit modes.
		"conflict-modes": {
			Name: "conflict-modes", Workload: "cluster-c", Base: firstFit,
			Axis: AxisTJobService, Values: tjob,
			Archs:     []Arch{SharedState},
			Conflicts: []txn.ConflictMode{txn.ConflictFine, txn.ConflictCoarse},
			Commits:   []txn.CommitMode{txn.CommitIncremental, txn.CommitAllOrNothing},
			Charts: []string{"conflict_fraction_service", "conflict_fraction_batch", "busyness_service", "busyness_batch",
				"wait_mean_batch", "wait_mean_service"},
		},
		// Section 4.3 (figures 9 and 10): several batch schedulers sharing a
		// batch load that keeps one of them busy.
		"batch-schedulers": {
			Name: "batch-schedulers", Workload: "cluster-c", Base: heavyBatch,
			Axis: AxisBatchSchedulers, Values: []string{"1", "2", "3", "4", "6", "8"},
			Archs:  []Arch{SharedState},
			Charts: []string{"busyness_batch", "conflict_fraction_batch", "wait_mean_batch", "wait_p90_batch"},
		},
		// GPU allocation and fragmentation: the paper's first fit against
		// the production policies (the gpu policy is fragmentation-aware)
		// on a cell with fractional-GPU jobs.
		// Issue 12: three tenants with weights 1, 2 and 3 saturating a cell,
		// arrival order against weighted DRF: each tenant's dominant share
		// over time against its weight, and Jain's index of the weighted
		// shares.
		"fairness": {
			Name: "fairness", Workload: "fairness", Base: fairnessBase(),
			Axis: AxisOrder, Values: []string{string(OrderFIFO), string(OrderDRF)},
			Archs:  []Arch{SharedState},
			Charts: []string{"jain_mean", "share_gap"},
		},
		"gpu-placement": {
			Name: "gpu-placement", Workload: "gpu-cluster", Base: base,
			Axis: AxisPlacement, Values: []string{"first-fit", "policies"},
			Archs:  []Arch{SharedState, MonolithicMulti},
			Charts: []string{"gpu_allocation", "gpu_stranded", "abandoned_gpu", "wait_mean_gpu", "busyness_gpu"},
		},
	}
}

// ExperimentNames lists the experiments, sorted.
func ExperimentNames() []string {
	var names []string
	for n := range Experiments() {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// fairnessBase is the fairness experiment's configuration: four simulated
// hours with the production policies.
func fairnessBase() Config {
	c := DefaultConfig()
	c.Horizon = 4 * 3600
	c.Placement = PlacementPolicies
	return c
}
