package agent

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/omegacell/omegacell/proto/credentials"
)

// DefaultServer is the cell server address used when neither --server nor
// CELL_ADDR is given.
const DefaultServer = "127.0.0.1:7070"

// Command is `cell agent`: the node agent of this machine, or with
// --simulate N a fleet of N simulated machines.
func Command() *cobra.Command {
	var (
		server, name, labels, dataDir          string
		cpu, memory, disk, gpuModel, gpuMemory string
		gpus, simulate                         int
		profile, cgroupRoot, metrics           string
		heartbeat, usageInterval, stopGrace    time.Duration
		keepFinished                           time.Duration
		maxFinished                            int
		credDir                                string
		insecure, stopTasksOnExit              bool
	)
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Run the node agent of this machine (or --simulate N machines)",
		Long: `Run the node agent: register this machine with the cell, heartbeat over
NATS, run the tasks placed here as real processes (logs under --data,
cgroup v2 limits where available) and report their states.

Stopping the agent (SIGTERM, Ctrl-C) leaves its tasks running: an agent
started again on the same --data adopts them (same pids, same attempts,
logs continue) if it is back within the server's grace period (10 s by
default); otherwise the server marks the machine down and places the tasks
elsewhere, and the restarted agent stops what it left. An agent upgrade is
not an outage. --stop-tasks-on-exit stops every task before exiting
instead.

With --simulate N, run N simulated machines in this process instead: same
protocol, tasks "run" for their duration_ms without a process. --profile
shapes the fleet as key=value pairs (` + ProfileKeys + `); the
defaults are ` + DefaultProfileString + `. For example:
  cell agent --simulate 10000 --profile zones=3,racks=10,gpu-fraction=0.1,gpu-model=A100`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// The root command configures slog.Default (--log-level).
			log := slog.Default()
			// Found once the other flags were checked.
			creds := func() (credentials.Client, error) {
				return credentials.Client{Insecure: insecure}.Resolve(credDir)
			}
			var err error
			ctx, stop := signal.NotifyContext(cmp.Or(cmd.Context(), context.Background()), os.Interrupt, syscall.SIGTERM)
			defer stop()
			if simulate > 0 {
				for _, f := range []string{"stop-tasks-on-exit", "labels", "data", "cpu", "memory", "disk", "gpus", "gpu-model", "gpu-memory", "cgroup-root", "stop-grace", "keep-finished", "max-finished-attempts"} {
					if cmd.Flags().Changed(f) {
						return fmt.Errorf("--%s describes a real machine; with --simulate use --profile (%s)", f, ProfileKeys)
					}
				}
				p, err := ParseProfile(profile)
				if err != nil {
					return err
				}
				creds, err := creds()
				if err != nil {
					return err
				}
				sim, err := NewSimulation(SimConfig{
					Server: server, Credentials: creds, Prefix: cmp.Or(name, "sim"), Machines: simulate, Profile: p,
					Heartbeat: heartbeat, UsageInterval: usageInterval, MetricsListen: metrics, Logger: log,
				})
				if err != nil {
					return err
				}
				return sim.Run(ctx)
			}
			if simulate < 0 {
				return fmt.Errorf("--simulate %d: want a number of machines", simulate)
			}
			if cmd.Flags().Changed("profile") {
				return fmt.Errorf("--profile shapes simulated machines; give --simulate N too")
			}
			cfg := Config{
				Server: server, Name: name, DataDir: dataDir, GPUs: gpus, GPUModel: gpuModel,
				Heartbeat: heartbeat, UsageInterval: usageInterval, StopGrace: stopGrace,
				CgroupRoot: cgroupRoot, MetricsListen: metrics, Logger: log,
				KeepFinished: keepFinished, MaxFinishedAttempts: maxFinished,
				StopTasksOnExit: stopTasksOnExit,
			}
			if keepFinished <= 0 {
				return fmt.Errorf("--keep-finished %v: want a positive duration", keepFinished)
			}
			if maxFinished <= 0 {
				return fmt.Errorf("--max-finished-attempts %d: want a positive number", maxFinished)
			}
			if cfg.Labels, err = ParseLabels(labels); err != nil {
				return err
			}
			if cpu != "" {
				if cfg.CPUMilli, err = ParseCPU(cpu); err != nil {
					return fmt.Errorf("--cpu: %w", err)
				}
			}
			for _, q := range []struct {
				flag, value string
				dst         *int64
			}{{"memory", memory, &cfg.MemoryBytes}, {"disk", disk, &cfg.DiskBytes}, {"gpu-memory", gpuMemory, &cfg.GPUMemoryBytes}} {
				if q.value != "" {
					if *q.dst, err = ParseBytes(q.value); err != nil {
						return fmt.Errorf("--%s: %w", q.flag, err)
					}
				}
			}
			if cfg.Credentials, err = creds(); err != nil {
				return err
			}
			a, err := New(ctx, cfg)
			if err != nil {
				return err
			}
			return a.Run(ctx)
		},
	}
	f := cmd.Flags()
	f.StringVar(&server, "server", cmp.Or(os.Getenv("CELL_ADDR"), DefaultServer), "cell server gRPC address (env CELL_ADDR)")
	f.StringVar(&credDir, "credentials", "", "credential bundle directory (ca.pem, cert.pem, key.pem) of agent/NAME, or with --simulate of the fleet (cell credentials issue --role agent [--fleet]); env "+credentials.Env)
	f.BoolVar(&insecure, "insecure", false, "connect without TLS or credentials (only to a cell started with --insecure)")
	f.StringVar(&name, "name", "", "machine id (default: host name); with --simulate, the machine name prefix (default sim)")
	f.StringVar(&labels, "labels", "", "machine labels, e.g. zone=a,rack=r1")
	f.StringVar(&dataDir, "data", DefaultDataDir, "directory for task working directories and logs")
	f.StringVar(&cpu, "cpu", "", "CPU capacity in cores (8) or millicores (7500m); default: all CPUs")
	f.StringVar(&memory, "memory", "", "memory capacity (e.g. 16Gi); default: MemTotal")
	f.StringVar(&disk, "disk", "", "disk capacity (e.g. 100Gi); default: space available in --data")
	f.IntVar(&gpus, "gpus", -1, "number of GPUs; default: detected with nvidia-smi")
	f.StringVar(&gpuModel, "gpu-model", "", "GPU model label (gpu.model); default: detected")
	f.StringVar(&gpuMemory, "gpu-memory", "", "memory per GPU (e.g. 80Gi); default: detected")
	f.IntVar(&simulate, "simulate", 0, "run this many simulated machines instead of this machine's agent")
	f.StringVar(&profile, "profile", "", "simulated fleet shape: key=value,... ("+ProfileKeys+")")
	f.DurationVar(&heartbeat, "heartbeat", 0, "heartbeat interval (default: the server's, normally 1s)")
	f.DurationVar(&usageInterval, "usage-interval", DefaultUsageInterval, "how often heartbeats carry usage samples")
	f.DurationVar(&stopGrace, "stop-grace", DefaultStopGrace, "time between SIGTERM and SIGKILL when stopping a task")
	f.BoolVar(&stopTasksOnExit, "stop-tasks-on-exit", false, "stop every task (SIGTERM, --stop-grace, SIGKILL) when the agent exits, instead of leaving them to the next agent on --data")
	f.StringVar(&metrics, "metrics", "", "Prometheus /metrics listen address (empty: off)")
	f.DurationVar(&keepFinished, "keep-finished", DefaultKeepFinished, "how long the directories and logs of finished task attempts are kept")
	f.IntVar(&maxFinished, "max-finished-attempts", DefaultMaxFinishedAttempts, "at most this many finished attempts' directories are kept, newest first")
	f.StringVar(&cgroupRoot, "cgroup-root", DefaultCgroupRoot, "cgroup v2 mount for task limits ('-' disables limits)")
	return cmd
}
