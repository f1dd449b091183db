package load

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/omegacell/omegacell/proto/credentials"
)

// Command is `cell bench load`; cmd/cell mounts it under `cell bench`.
func Command() *cobra.Command {
	var (
		workload      string
		o             Overrides
		cfg           Config
		asJSON, quiet bool
		cpuProfile    string
		verbose       bool
	)
	cmd := &cobra.Command{
		Use:   "load",
		Short: "End-to-end throughput and latency of a cell, scheduler_perf style",
		Long: `Run a cell (in this process, or --server), a fleet of simulated machines
and the workload's schedulers, submit the workload's jobs through the gRPC
API, and measure placements per second (sampled every second), submit→placed
latency, the store's commit latency and group commits, conflicts per
scheduler and CPU per component; then verify the invariant (no machine over
capacity, every task placed exactly once) and exit non-zero if it is broken.

Workloads: ` + strings.Join(BuiltinWorkloads(), ", ") + `, or a YAML/JSON file (see bench/load/workloads).
The schedulers, the simulated fleet and (without --server) the cell all run
in this process; CPU is split between them by pprof labels.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cmd.SilenceUsage = true // the flags parsed; what fails now is the run
			w, err := LoadWorkload(workload)
			if err != nil {
				return err
			}
			if err := w.Apply(o); err != nil {
				return fmt.Errorf("workload %s: %w", w.Name, err)
			}
			cfg.Workload = w
			level := slog.LevelWarn
			if verbose {
				level = slog.LevelInfo
			}
			cfg.Logger = slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: level}))
			if !quiet {
				cfg.Progress = os.Stderr
			}
			if cpuProfile != "" {
				f, err := os.Create(cpuProfile)
				if err != nil {
					return fmt.Errorf("--cpuprofile: %w", err)
				}
				defer f.Close()
				cfg.CPUProfile = f
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			rep, err := Run(ctx, cfg)
			if rep != nil {
				if werr := writeReport(cmd.OutOrStdout(), rep, asJSON); werr != nil {
					return werr
				}
			}
			return err
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&workload, "workload", "basic", "workload: "+strings.Join(BuiltinWorkloads(), ", ")+", or a YAML/JSON file")
	fl.StringVar(&cfg.Server, "server", "", "an external cell server (host:port); default: start one in this process")
	fl.BoolVar(&cfg.Insecure, "insecure", false, "run without TLS (the in-process cell with --insecure; or an external cell started so), to measure what security costs")
	fl.StringVar(&cfg.Credentials, "credentials", "", "with --server: the admin bundle (default $"+credentials.Env+", then ./"+credentials.DefaultDir+")")
	fl.StringVar(&cfg.ServerMetrics, "server-metrics", "", "with --server: its /metrics URL, for the store's figures")
	fl.IntVar(&o.Machines, "machines", 0, "simulated machines (default: the workload's)")
	fl.IntVar(&o.Tasks, "tasks", 0, "tasks of the measured burst phases, proportions kept (default: the workload's)")
	fl.IntVar(&o.TasksPerJob, "tasks-per-job", 0, "tasks per job of the measured phases' non-gang groups (default: the workload's)")
	fl.IntVar(&cfg.Schedulers, "schedulers", 1, "instances of each of the workload's schedulers")
	fl.DurationVar(&o.Duration, "duration", 0, "duration of the rate phases (default: the workload's)")
	fl.Float64Var(&o.Rate, "rate", 0, "jobs per second of the rate phases (default: the workload's)")
	fl.DurationVar(&cfg.SampleInterval, "sample-interval", time.Second, "placement-rate sampling period")
	fl.DurationVar(&cfg.Timeout, "timeout", 10*time.Minute, "limit on setup and on each phase")
	fl.IntVar(&cfg.Replicas, "replicas", 1, "servers of the in-process cell: 3 runs a replicated cell (JetStream R3) and measures through its leader")
	fl.StringVar(&cfg.DataDir, "data", "", "directory of the in-process store (default: a temporary one, removed)")
	fl.BoolVar(&cfg.UnsafeNoSync, "unsafe-no-sync", false, "skip fsync in the in-process store, to show what durability costs (figures are then not durable placements)")
	fl.BoolVar(&asJSON, "json", false, "write the report as JSON")
	fl.BoolVar(&quiet, "quiet", false, "no progress bar")
	fl.StringVar(&cpuProfile, "cpuprofile", "", "write the CPU profile of the measured phases (pprof) to this file")
	fl.BoolVar(&verbose, "verbose", false, "log the cell's, fleet's and schedulers' info messages to stderr")
	return cmd
}

func writeReport(w io.Writer, rep *Report, asJSON bool) error {
	if !asJSON {
		return rep.WriteText(w)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}
