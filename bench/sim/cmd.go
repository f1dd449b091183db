package sim

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
)

// Command is `cell bench sim`: run one simulation, run a sweep, or show a
// workload. cmd/cell mounts it under `cell bench`.
func Command() *cobra.Command {
	root := &cobra.Command{
		Use:   "sim",
		Short: "Omega-style simulator of one cell on the real transaction code",
		Long: `Simulate one cell under a scheduler architecture (monolithic single- or
multi-path, two-level, shared state), with the decision-time model of the
Omega paper (t_job + t_task × tasks) and the very txn validation the store
runs. Workloads are synthetic (built in: ` + strings.Join(BuiltinWorkloads(), ", ") + `, or a YAML/JSON
file) or traces (Google 2011 cluster-data, Alibaba GPU 2023).`,
	}
	root.AddCommand(runCommand(), sweepCommand(), chartCommand(), workloadCommand())
	return root
}

// collectLessOften: a simulation allocates briskly and keeps little, so it
// collects garbage less often than the default, unless GOGC says
// otherwise. (Set in RunE rather than a persistent hook, which would hide
// the hooks of the commands above this one.)
func collectLessOften() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
}

// runFlags are the flags shared by run and sweep.
type runFlags struct {
	workload        string
	googleMachines  []string
	googleTasks     []string
	googleCPU       int64
	googleMemMiB    int64
	alibabaNodes    []string
	alibabaPods     []string
	arch            string
	horizon         string
	seed            uint64
	tJob, tTask     []string
	batchSchedulers int
	conflict        string
	commit          string
	maxAttempts     int
	placement       string
	quiet           bool
	cpuProfile      string
	fgd             fgdFlags
	horizonSet      bool // --horizon was given
	horizonChanged  func() bool
}

func (f *runFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.workload, "workload", "cluster-c", "synthetic workload: built-in name ("+strings.Join(BuiltinWorkloads(), ", ")+") or YAML/JSON file")
	fl.StringVar(&f.arch, "arch", string(SharedState), "architecture: monolithic-single, monolithic-multi, two-level, shared-state")
	fl.StringVar(&f.horizon, "horizon", "1d", "simulated time: seconds or a duration (90m, 24h, 7d)")
	fl.Uint64Var(&f.seed, "seed", 1, "random seed (workload and decisions)")
	fl.StringSliceVar(&f.tJob, "t-job", nil, "t_job per scheduler kind, e.g. service=10,batch=0.1 (a bare number sets every kind; default 0.1)")
	fl.StringSliceVar(&f.tTask, "t-task", nil, "t_task per scheduler kind, as --t-job (default 0.005)")
	fl.IntVar(&f.batchSchedulers, "batch-schedulers", 1, "number of batch schedulers (shared state, two-level)")
	fl.StringVar(&f.conflict, "conflict", "fine", "shared-state conflict detection: fine or coarse")
	fl.StringVar(&f.commit, "commit", "incremental", "shared-state commit mode: incremental or all-or-nothing")
	fl.IntVar(&f.maxAttempts, "max-attempts", 1000, "scheduling attempts before a job is abandoned")
	fl.StringVar(&f.placement, "placement", string(PlacementAuto), "placement: policies (the production batch, service and gpu policies), first-fit (the paper's randomized first fit) or auto (policies except in two-level offers)")
	fl.StringSliceVar(&f.googleMachines, "google-machine-events", nil, "Google 2011 trace machine_events files or directories (replaces --workload)")
	fl.StringSliceVar(&f.googleTasks, "google-task-events", nil, "Google 2011 trace task_events files or directories")
	fl.Int64Var(&f.googleCPU, "google-cpu-scale", DefaultGoogleOptions().CPUScaleMilli, "millicores of a machine of normalised CPU 1.0 in the Google trace")
	fl.Int64Var(&f.googleMemMiB, "google-memory-scale", DefaultGoogleOptions().MemoryScaleMiB, "MiB of a machine of normalised memory 1.0 in the Google trace")
	fl.StringSliceVar(&f.alibabaNodes, "alibaba-nodes", nil, "Alibaba GPU 2023 trace openb_node_list*.csv (replaces --workload)")
	fl.StringSliceVar(&f.alibabaPods, "alibaba-pods", nil, "Alibaba GPU 2023 trace openb_pod_list*.csv files")
	fl.BoolVar(&f.quiet, "quiet", false, "no progress bar")
	fl.StringVar(&f.cpuProfile, "cpuprofile", "", "write a CPU profile (pprof) to this file")
	f.fgd.register(cmd)
	f.horizonChanged = func() bool { return cmd.Flags().Changed("horizon") }
}

// traceHorizon is the simulated time for a trace run, and says on stderr
// what the trace replay leaves out: without --horizon an Alibaba trace
// runs to its last arrival (plus a day for the last pods to be placed),
// so that every pod is offered; a Google trace is read up to --horizon.
func (f *runFlags) traceHorizon(cmd *cobra.Command, tr *Trace, horizon float64) float64 {
	w := cmd.ErrOrStderr()
	if len(f.alibabaNodes) > 0 && !f.horizonSet {
		horizon = max(horizon, tr.LastArrival()+day)
		fmt.Fprintf(w, "trace %s: the whole trace, %d jobs up to %s; horizon %s (set --horizon to cut it)\n",
			tr.Name(), tr.Jobs(), formatSeconds(tr.LastArrival()), formatSeconds(horizon))
	} else {
		fmt.Fprintf(w, "trace %s: %d jobs up to the horizon %s\n", tr.Name(), tr.Jobs(), formatSeconds(horizon))
	}
	for _, reason := range slices.Sorted(maps.Keys(tr.Skipped)) {
		fmt.Fprintf(w, "trace %s: left out %d: %s\n", tr.Name(), tr.Skipped[reason], reason)
	}
	return horizon
}

// config builds the run configuration from the flags.
func (f *runFlags) config() (Config, error) {
	cfg := DefaultConfig()
	var err error
	if cfg.Arch, err = ParseArch(f.arch); err != nil {
		return cfg, fmt.Errorf("--arch: %w", err)
	}
	f.horizonSet = f.horizonChanged != nil && f.horizonChanged()
	if cfg.Horizon, err = ParseHorizon(f.horizon); err != nil {
		return cfg, fmt.Errorf("--horizon: %w", err)
	}
	cfg.Seed = f.seed
	if err := setTimings(cfg.Timing, f.tJob, true); err != nil {
		return cfg, fmt.Errorf("--t-job: %w", err)
	}
	if err := setTimings(cfg.Timing, f.tTask, false); err != nil {
		return cfg, fmt.Errorf("--t-task: %w", err)
	}
	cfg.BatchSchedulers = f.batchSchedulers
	if cfg.Conflict, err = ParseConflict(f.conflict); err != nil {
		return cfg, fmt.Errorf("--conflict: %w", err)
	}
	if cfg.Commit, err = ParseCommit(f.commit); err != nil {
		return cfg, fmt.Errorf("--commit: %w", err)
	}
	cfg.MaxAttempts = f.maxAttempts
	if cfg.Placement, err = ParsePlacement(f.placement); err != nil {
		return cfg, fmt.Errorf("--placement: %w", err)
	}
	return cfg, cfg.Validate()
}

// setTimings applies "kind=seconds" (or a bare number for every kind).
func setTimings(t map[string]Timing, specs []string, job bool) error {
	for _, spec := range specs {
		kinds := []string{KindBatch, KindService, KindGPU}
		value := spec
		if k, v, ok := strings.Cut(spec, "="); ok {
			if _, known := t[k]; !known {
				return fmt.Errorf("%q: unknown scheduler kind %q (batch, service, gpu)", spec, k)
			}
			kinds, value = []string{k}, v
		}
		x, err := strconv.ParseFloat(value, 64)
		if err != nil || x < 0 {
			return fmt.Errorf("%q: %q is not a non-negative number of seconds", spec, value)
		}
		for _, k := range kinds {
			tm := t[k]
			if job {
				tm.JobSeconds = x
			} else {
				tm.TaskSeconds = x
			}
			t[k] = tm
		}
	}
	return nil
}

// ParseHorizon parses seconds ("3600") or a duration with h, m, s or d
// (days) units ("7d", "36h").
func ParseHorizon(s string) (float64, error) {
	if x, err := strconv.ParseFloat(s, 64); err == nil {
		return x, nil
	}
	if d, ok := strings.CutSuffix(s, "d"); ok {
		x, err := strconv.ParseFloat(d, 64)
		if err != nil {
			return 0, fmt.Errorf("%q is not a number of days", s)
		}
		return x * day, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is neither seconds nor a duration such as 90m, 24h or 7d", s)
	}
	return d.Seconds(), nil
}

// source opens the trace named by the flags, or the synthetic workload.
func (f *runFlags) source(cfg Config) (Source, error) {
	switch {
	case len(f.googleMachines) > 0 || len(f.googleTasks) > 0:
		o := DefaultGoogleOptions()
		o.MachineEvents, o.TaskEvents = f.googleMachines, f.googleTasks
		o.CPUScaleMilli, o.MemoryScaleMiB, o.Horizon = f.googleCPU, f.googleMemMiB, cfg.Horizon
		return ReadGoogleTrace(o)
	case len(f.alibabaNodes) > 0 || len(f.alibabaPods) > 0:
		// The whole trace unless --horizon says otherwise (see traceHorizon).
		horizon := cfg.Horizon
		if !f.horizonSet {
			horizon = 0
		}
		return ReadAlibabaTrace(AlibabaOptions{Nodes: f.alibabaNodes, Pods: f.alibabaPods, Horizon: horizon})
	}
	w, err := LoadWorkload(f.workload)
	if err != nil {
		return nil, err
	}
	return NewSynthetic(w, cfg.Seed, cfg.Horizon), nil
}

// startProfile starts the CPU profile if asked; the returned func stops it.
func (f *runFlags) startProfile() (func(), error) {
	if f.cpuProfile == "" {
		return func() {}, nil
	}
	out, err := os.Create(f.cpuProfile)
	if err != nil {
		return nil, fmt.Errorf("--cpuprofile: %w", err)
	}
	if err := pprof.StartCPUProfile(out); err != nil {
		out.Close()
		return nil, fmt.Errorf("--cpuprofile: %w", err)
	}
	return func() { pprof.StopCPUProfile(); out.Close() }, nil
}

// progress returns a progress bar over total simulated seconds on stderr,
// or nil when quiet or stderr is not a terminal.
func progress(quiet bool, total float64, what string) *progressbar.ProgressBar {
	if quiet {
		return nil
	}
	if st, err := os.Stderr.Stat(); err != nil || st.Mode()&os.ModeCharDevice == 0 {
		return nil
	}
	return progressbar.NewOptions64(int64(total),
		progressbar.OptionSetWriter(os.Stderr),
		progressbar.OptionSetDescription(what),
		progressbar.OptionSetItsString("sim s"),
		progressbar.OptionShowIts(),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionThrottle(200*time.Millisecond),
		progressbar.OptionClearOnFinish(),
	)
}

// cpuSeconds is the CPU time this process has used (user + system).
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return tv(ru.Utime) + tv(ru.Stime)
}

func runCommand() *cobra.Command {
	var f runFlags
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Simulate one cell under one architecture and print its metrics",
		Example: `  cell bench sim run --workload cluster-c --arch shared-state --horizon 7d
  cell bench sim run --arch two-level --t-job service=100 --horizon 1d --json
  cell bench sim run --alibaba-nodes openb_node_list_gpu_node.csv --alibaba-pods openb_pod_list_default.csv
  cell bench sim run --protocol fgd --alibaba-nodes openb_node_list_gpu_node.csv --alibaba-pods openb_pod_list_default.csv --inflate 1.3 --seed 42 --policies all`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if f.fgd.protocol != "" {
				return f.runFGD(cmd, asJSON)
			}
			cfg, err := f.config()
			if err != nil {
				return err
			}
			src, err := f.source(cfg)
			if err != nil {
				return err
			}
			if tr, ok := src.(*Trace); ok {
				cfg.Horizon = f.traceHorizon(cmd, tr, cfg.Horizon)
			}
			collectLessOften()
			stop, err := f.startProfile()
			if err != nil {
				return err
			}
			defer stop()
			if bar := progress(f.quiet, cfg.Horizon, string(cfg.Arch)); bar != nil {
				cfg.Progress = func(s float64) { _ = bar.Set64(int64(s)) }
				defer bar.Finish()
			}
			cpu0, wall0 := cpuSeconds(), time.Now()
			r, err := Run(cfg, src)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "simulated %s in %.1fs of CPU (%.1fs wall), %d events\n",
				formatSeconds(cfg.Horizon), cpuSeconds()-cpu0, time.Since(wall0).Seconds(), r.Events)
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(r)
			}
			return printResult(cmd.OutOrStdout(), r)
		},
	}
	f.register(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	return cmd
}

func formatSeconds(s float64) string {
	if s >= day && s == float64(int(s/day))*day {
		return fmt.Sprintf("%dd", int(s/day))
	}
	return (time.Duration(s * float64(time.Second))).String()
}

// printResult prints a result as tables.
func printResult(w io.Writer, r *Result) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "%s on %s (%d machines), %s, seed %d, conflict %s, commit %s\n\n", r.Arch, r.Workload, r.Machines,
		formatSeconds(r.HorizonSeconds), r.Seed, r.Conflict, r.Commit)
	fmt.Fprintln(tw, "scheduler\tbusyness\tmean\twasted\ttxns\tconflicted\tconflict fraction\tclaims\tclaim conflicts\tno fit\t")
	for _, s := range r.Schedulers {
		fmt.Fprintf(tw, "%s\t%.4f\t%.4f\t%.4f\t%d\t%d\t%.4f\t%d\t%d\t%d\t\n", s.Name, s.Busyness, s.BusynessMean, s.WastedBusyness,
			s.Transactions, s.Conflicted, s.ConflictFraction, s.Claims, s.ClaimConflicts, s.NoFit)
	}
	fmt.Fprintln(tw, "\njobs\tsubmitted\tscheduled\tabandoned\tunscheduled\twait mean\twait p90\tunattempted\tscheduled in (mean)\tp90\t")
	for _, j := range r.JobTypes {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%.3fs\t%.3fs\t%d\t%.3fs\t%.3fs\t\n", j.Type, j.Submitted, j.Scheduled, j.Abandoned,
			j.Unscheduled, j.WaitMean, j.WaitP90, j.Unattempted, j.ScheduleMean, j.ScheduleP90)
	}
	c := r.Cell
	fmt.Fprintf(tw, "\nutilisation: cpu %.3f, memory %.3f", c.CPUUtilisation, c.MemoryUtilisation)
	if c.GPUAllocation > 0 {
		fmt.Fprintf(tw, ", gpu allocation %.3f, gpu stranded %.3f", c.GPUAllocation, c.GPUStranded)
	}
	fmt.Fprintf(tw, "\n%d tasks placed\n", r.TasksPlaced)
	return tw.Flush()
}

func sweepCommand() *cobra.Command {
	var f runFlags
	var (
		experiment, axis, out string
		values, archs         []string
		conflicts, commits    []string
		batchCounts           []int
		chartNames, formats   []string
	)
	cmd := &cobra.Command{
		Use:   "sweep",
		Short: "Run a parameter sweep and write CSV, JSON and charts",
		Long: `Run every series (architectures × conflict modes × commit modes × numbers of
batch schedulers) at every value of one axis, on one synthetic workload and
seed, and write <out>/<name>.csv, <name>.json and one chart per metric
(<name>-<metric>.png and .svg). --experiment picks a preset that reproduces
a figure of the Omega paper (` + strings.Join(ExperimentNames(), ", ") + `); other flags override it.`,
		Example: `  cell bench sim sweep --experiment architectures --horizon 1d --out bench/out
  cell bench sim sweep --axis t_job_service --values 0.1,1,10,100 --archs two-level,shared-state
  cell bench sim sweep --protocol fgd --alibaba-nodes openb_node_list_gpu_node.csv --alibaba-pods openb_pod_list_default.csv --seeds 42-51 --policies all --out bench/out`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if f.fgd.protocol != "" {
				return f.sweepFGD(cmd, out, formats)
			}
			fl := cmd.Flags()
			sw := Sweep{Name: "sweep", Workload: f.workload, Axis: AxisTJobService}
			if experiment != "" {
				preset, ok := Experiments()[experiment]
				if !ok {
					return fmt.Errorf("--experiment: %q is not one of %s", experiment, strings.Join(ExperimentNames(), ", "))
				}
				sw = preset
			}
			base, err := f.config()
			if err != nil {
				return err
			}
			if experiment == "" {
				sw.Base = base
			} else {
				// Flags given explicitly override the preset's base.
				mergeBase(&sw.Base, base, fl.Changed)
			}
			if fl.Changed("workload") || sw.Workload == "" {
				sw.Workload = f.workload
			}
			if fl.Changed("axis") {
				if sw.Axis, err = ParseAxis(axis); err != nil {
					return fmt.Errorf("--axis: %w", err)
				}
			}
			if fl.Changed("values") {
				sw.Values = values
			}
			if fl.Changed("archs") {
				if sw.Archs, err = parseEach("--archs", archs, ParseArch); err != nil {
					return err
				}
			}
			if fl.Changed("conflicts") {
				if sw.Conflicts, err = parseEach("--conflicts", conflicts, ParseConflict); err != nil {
					return err
				}
			}
			if fl.Changed("commits") {
				if sw.Commits, err = parseEach("--commits", commits, ParseCommit); err != nil {
					return err
				}
			}
			if fl.Changed("batch-scheduler-counts") {
				sw.BatchSchedulers = batchCounts
			}
			if err := sw.Validate(); err != nil {
				return err
			}
			w, err := LoadWorkload(sw.Workload)
			if err != nil {
				return err
			}
			collectLessOften()
			stop, err := f.startProfile()
			if err != nil {
				return err
			}
			defer stop()
			var report func(done, total float64)
			if bar := progress(f.quiet, float64(sw.Runs())*sw.Base.Horizon, sw.Name); bar != nil {
				report = func(done, _ float64) { _ = bar.Set64(int64(done)) }
				defer bar.Finish()
			}
			cpu0 := cpuSeconds()
			res, err := sw.Run(w, report)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "%d runs of %s in %.1fs of CPU\n", sw.Runs(), formatSeconds(sw.Base.Horizon), cpuSeconds()-cpu0)
			if !fl.Changed("charts") && len(sw.Charts) > 0 {
				chartNames = sw.Charts
			}
			return writeSweep(cmd.OutOrStdout(), res, out, chartNames, formats)
		},
	}
	f.register(cmd)
	fl := cmd.Flags()
	fl.StringVar(&experiment, "experiment", "", "preset sweep: "+strings.Join(ExperimentNames(), ", "))
	fl.StringVar(&axis, "axis", string(AxisTJobService), "parameter on the x axis: "+axisNames())
	fl.StringSliceVar(&values, "values", []string{"0.01", "0.1", "1", "10", "100"}, "axis values")
	fl.StringSliceVar(&archs, "archs", nil, "architectures, one series each (default: --arch)")
	fl.StringSliceVar(&conflicts, "conflicts", nil, "conflict modes, one series each (default: --conflict)")
	fl.StringSliceVar(&commits, "commits", nil, "commit modes, one series each (default: --commit)")
	fl.IntSliceVar(&batchCounts, "batch-scheduler-counts", nil, "numbers of batch schedulers, one series each (default: --batch-schedulers)")
	fl.StringVar(&out, "out", "bench/out", "directory for the CSV, JSON and charts")
	fl.StringSliceVar(&chartNames, "charts", ChartMetrics, "metrics to chart (see the CSV header; default: the experiment's, else these)")
	fl.StringSliceVar(&formats, "formats", []string{"png", "svg"}, "chart formats")
	return cmd
}

func axisNames() string {
	var names []string
	for _, a := range Axes() {
		names = append(names, string(a))
	}
	return strings.Join(names, ", ")
}

// mergeBase copies into a preset's base configuration the run settings
// whose flags were given.
func mergeBase(dst *Config, flags Config, changed func(string) bool) {
	if changed("arch") {
		dst.Arch = flags.Arch
	}
	if changed("horizon") {
		dst.Horizon = flags.Horizon
	}
	if changed("seed") {
		dst.Seed = flags.Seed
	}
	if changed("t-job") || changed("t-task") {
		for k, t := range flags.Timing {
			d := dst.Timing[k]
			if changed("t-job") {
				d.JobSeconds = t.JobSeconds
			}
			if changed("t-task") {
				d.TaskSeconds = t.TaskSeconds
			}
			dst.Timing[k] = d
		}
	}
	if changed("batch-schedulers") {
		dst.BatchSchedulers = flags.BatchSchedulers
	}
	if changed("conflict") {
		dst.Conflict = flags.Conflict
	}
	if changed("commit") {
		dst.Commit = flags.Commit
	}
	if changed("max-attempts") {
		dst.MaxAttempts = flags.MaxAttempts
	}
	if changed("placement") {
		dst.Placement = flags.Placement
	}
}

// writeSweep writes the CSV, JSON and charts of a sweep into dir and lists
// the files on w.
func writeSweep(w io.Writer, res *SweepResult, dir string, chartNames, formats []string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	files := []string{filepath.Join(dir, res.Name+".csv"), filepath.Join(dir, res.Name+".json")}
	for i, write := range []func(io.Writer) error{res.WriteCSV, res.WriteJSON} {
		out, err := os.Create(files[i])
		if err != nil {
			return err
		}
		if err := write(out); err != nil {
			out.Close()
			return fmt.Errorf("%s: %w", files[i], err)
		}
		if err := out.Close(); err != nil {
			return err
		}
	}
	for _, f := range formats {
		if f != "png" && f != "svg" {
			return fmt.Errorf("--formats: %q is not png or svg", f)
		}
	}
	charts, err := res.WriteCharts(dir, chartNames, formats)
	if err != nil {
		return err
	}
	tenantCharts, err := res.WriteTenantCharts(dir, formats)
	if err != nil {
		return err
	}
	charts = append(charts, tenantCharts...)
	for _, f := range append(files, charts...) {
		fmt.Fprintln(w, f)
	}
	return nil
}

func chartCommand() *cobra.Command {
	var (
		out                 string
		chartNames, formats []string
	)
	cmd := &cobra.Command{
		Use:   "chart SWEEP.json",
		Short: "Redraw the charts of a sweep from its JSON",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			data, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			var res SweepResult
			if err := json.Unmarshal(data, &res); err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			if !cmd.Flags().Changed("charts") {
				if preset, ok := Experiments()[res.Name]; ok && len(preset.Charts) > 0 {
					chartNames = preset.Charts
				}
			}
			files, err := res.WriteCharts(out, chartNames, formats)
			if err != nil {
				return err
			}
			tenantCharts, err := res.WriteTenantCharts(out, formats)
			if err != nil {
				return err
			}
			for _, f := range append(files, tenantCharts...) {
				fmt.Fprintln(cmd.OutOrStdout(), f)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "bench/out", "directory for the charts")
	cmd.Flags().StringSliceVar(&chartNames, "charts", ChartMetrics, "metrics to chart (default: the experiment's, else these)")
	cmd.Flags().StringSliceVar(&formats, "formats", []string{"png", "svg"}, "chart formats: png, svg")
	return cmd
}

func workloadCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "workload NAME|FILE",
		Short: "Show a synthetic workload and the load it offers",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			w, err := LoadWorkload(args[0])
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			capacity := w.TotalCapacity()
			n := 0
			for _, m := range w.Machines {
				n += m.Count
			}
			fmt.Fprintf(out, "%s: %s\n%d machines, %d cores, %d GiB", w.Name, w.Description, n, capacity.CPUMilli/1000, capacity.MemoryBytes>>30)
			if capacity.GPUMilli > 0 {
				fmt.Fprintf(out, ", %d GPUs", capacity.GPUMilli/1000)
			}
			fmt.Fprintf(out, "; prefill %.0f%% of CPU\n", 100*w.Prefill.CPUFraction)
			load, gpuLoad := w.OfferedLoad(), w.OfferedGPULoad()
			tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
			fmt.Fprintln(tw, "job type\tscheduler\tjobs/hour\ttasks/job\tduration\tcpu/task\toffered cpu load\toffered gpu load\t")
			for _, jt := range w.JobTypes {
				fmt.Fprintf(tw, "%s\t%s\t%.0f\t%.1f\t%.0fs\t%.0fm\t%.1f%%\t%.1f%%\t\n", jt.Name, jt.Scheduler, 3600/jt.InterarrivalSeconds.ExpectedValue(),
					jt.TasksPerJob.ExpectedValue(), jt.DurationSeconds.ExpectedValue(), jt.CPUMilli.ExpectedValue(), 100*load[jt.Name], 100*gpuLoad[jt.Name])
			}
			return tw.Flush()
		},
	}
}

// parseEach parses every value of a list flag, naming the flag on error.
func parseEach[T any](flag string, values []string, parse func(string) (T, error)) ([]T, error) {
	out := make([]T, 0, len(values))
	for _, v := range values {
		x, err := parse(v)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", flag, err)
		}
		out = append(out, x)
	}
	return out, nil
}
