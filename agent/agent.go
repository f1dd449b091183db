package agent

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"time"

	"github.com/omegacell/omegacell/agent/gpu"
	"github.com/omegacell/omegacell/agent/procstat"
	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
	"github.com/omegacell/omegacell/proto/credentials"
)

// Config configures the agent of one real machine. Zero values take the
// defaults named on each field.
type Config struct {
	// Server is the cell server's gRPC address (host:port). Required.
	Server string
	// Credentials say how the agent connects (mutual TLS with its
	// agent/NAME bundle, or --insecure); the zero value finds a bundle as
	// credentials.Find does.
	Credentials credentials.Client
	// Name is the machine id (default: the host name).
	Name string
	// Labels of the machine (zone, rack, ...). gpu.model is added from the
	// GPUs found unless given here or as GPUModel.
	Labels map[string]string
	// DataDir holds the attempts' working directories and logs
	// (default "agent-data").
	DataDir string

	// Capacity overrides; 0 detects (CPUs from the runtime, memory from
	// /proc/meminfo, disk from the space available in DataDir).
	CPUMilli    int64
	MemoryBytes int64
	DiskBytes   int64
	// GPUs overrides the number of GPUs; negative detects with nvidia-smi.
	GPUs           int
	GPUModel       string
	GPUMemoryBytes int64

	// Heartbeat overrides the interval the server asks for (0: the
	// server's).
	Heartbeat time.Duration
	// UsageInterval is how often a heartbeat carries usage (default 5 s).
	UsageInterval time.Duration
	// StopGrace is the time between SIGTERM and SIGKILL (default 10 s).
	StopGrace time.Duration
	// CgroupRoot is the cgroup v2 mount (default /sys/fs/cgroup); "-"
	// disables resource limits.
	CgroupRoot string
	// MetricsListen serves Prometheus /metrics there (empty: off).
	MetricsListen string
	// KeepFinished is how long the directories (and logs) of finished
	// attempts are kept (default 24 h); MaxFinishedAttempts is how many
	// are kept at most, newest first (default 1000).
	KeepFinished        time.Duration
	MaxFinishedAttempts int
	// StopTasksOnExit stops every task (SIGTERM, StopGrace, SIGKILL) when
	// Run returns. Otherwise the tasks keep running under their shims and
	// the next agent on this DataDir adopts them: `cell agent` and `cell
	// dev` leave them running unless --stop-tasks-on-exit is given.
	StopTasksOnExit bool

	Logger *slog.Logger
}

// Defaults of Config.
const (
	DefaultDataDir       = "agent-data"
	DefaultUsageInterval = 5 * time.Second
	DefaultStopGrace     = 10 * time.Second
	DefaultCgroupRoot    = "/sys/fs/cgroup"
	// nvidiaSMITimeout bounds GPU detection (a wedged driver can hang it).
	nvidiaSMITimeout = 10 * time.Second
)

// Agent is the node agent of one real machine.
type Agent struct {
	log         *slog.Logger
	reg         *cellv1.RegisterMachineRequest
	fleet       *fleet
	driver      *driver
	grace       time.Duration
	metricsAddr string
	stopMetrics func()
	rt          *processRuntime
	keep        retention
	stopTasks   bool
}

// New detects the machine, prepares the data directory and resource
// limits. Run connects it to the cell (and serves task logs over NATS).
func New(ctx context.Context, cfg Config) (*Agent, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	if cfg.Name == "" {
		host, err := os.Hostname()
		if err != nil {
			return nil, fmt.Errorf("name: not given and no host name: %w", err)
		}
		cfg.Name = host
	}
	cfg.DataDir = cmp.Or(cfg.DataDir, DefaultDataDir)
	cfg.UsageInterval = cmp.Or(cfg.UsageInterval, DefaultUsageInterval)
	cfg.StopGrace = cmp.Or(cfg.StopGrace, DefaultStopGrace)
	cfg.CgroupRoot = cmp.Or(cfg.CgroupRoot, DefaultCgroupRoot)
	keep := retention{keepFor: cmp.Or(cfg.KeepFinished, DefaultKeepFinished), maxFinished: cmp.Or(cfg.MaxFinishedAttempts, DefaultMaxFinishedAttempts)}
	if err := keep.validate(); err != nil {
		return nil, err
	}
	log = log.With("machine", cfg.Name)

	if err := os.MkdirAll(filepath.Join(cfg.DataDir, "tasks"), 0o755); err != nil {
		return nil, fmt.Errorf("data: %w", err)
	}
	reg, err := detectMachine(ctx, log, cfg)
	if err != nil {
		return nil, err
	}

	var cgroups *cgroupTree
	if cfg.CgroupRoot == "-" {
		log.Warn("resource limits are not enforced: cgroups disabled by configuration")
	} else if cgroups, err = setupCgroups(cfg.CgroupRoot, cfg.Name); err != nil {
		log.Warn("resource limits are not enforced: cgroup v2 is not usable", "reason", err)
	}
	// The attempts an earlier agent left are found now and adopted or
	// stopped once the server's view is known (adopt.go).
	rt, err := newProcessRuntime(log, cfg.DataDir, cfg.StopGrace, cgroups)
	if err != nil {
		return nil, err
	}

	f := newFleet(log, rt)
	f.add(reg)
	hb := newHeartbeater(log, f, newProcUsage(log, "/proc"), cfg.UsageInterval, cfg.Heartbeat, "omegacell agent "+cfg.Name)
	// Task logs are answered over the heartbeat connection, on this
	// machine's own subject, once registration has named NATS.
	hb.onConnect = (&logServer{log: log, tasksDir: rt.tasksDir, machineID: cfg.Name}).attach
	creds, err := useCredentials(log, cfg.Credentials, hb, cfg.Name, false)
	if err != nil {
		return nil, err
	}
	d, err := newDriver(log, cfg.Server, creds, f, hb, cfg.Name)
	if err != nil {
		return nil, err
	}
	a := &Agent{log: log, reg: reg, fleet: f, driver: d, grace: cfg.StopGrace, stopMetrics: func() {}, rt: rt, keep: keep, stopTasks: cfg.StopTasksOnExit}
	if cfg.MetricsListen != "" {
		if a.metricsAddr, a.stopMetrics, err = serveMetrics(cfg.MetricsListen, f, d); err != nil {
			return nil, err
		}
	}
	log.Info("agent ready", "server", cfg.Server, "cpu_milli", reg.Capacity.CpuMilli, "memory_bytes", reg.Capacity.MemoryBytes,
		"disk_bytes", reg.Capacity.DiskBytes, "gpus", reg.Capacity.GpuMilli/1000, "labels", FormatLabels(reg.Labels))
	return a, nil
}

// Run registers the machine and runs its tasks until ctx ends. Then,
// unless StopTasksOnExit, it leaves the tasks running under their shims
// and returns: the next agent on the same data directory adopts them, and
// if none comes back within the server's grace period the server marks the
// machine down and returns its tasks to their schedulers as lost. With
// StopTasksOnExit it stops every task first (SIGTERM, grace, SIGKILL) and
// reports nothing: the missed-heartbeat rule gives the verdict.
func (a *Agent) Run(ctx context.Context) error {
	gcCtx, stopGC := context.WithCancel(ctx)
	gcDone := make(chan struct{})
	go func() {
		defer close(gcDone)
		a.collectLoop(gcCtx, a.rt, a.keep)
	}()
	err := a.driver.run(ctx)
	stopGC()
	<-gcDone
	if a.stopTasks {
		if n := a.fleet.stopAll(); n > 0 {
			a.log.Info("stopping tasks before exit", "tasks", n)
		}
		deadline := time.Now().Add(a.grace + 5*time.Second)
		for a.fleet.runningCount() > 0 && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
	} else if n := a.rt.detachAll(); n > 0 {
		a.log.Info("leaving tasks running; an agent started again on this data directory adopts them", "tasks", n)
	}
	a.stopMetrics()
	return err
}

// MetricsAddress is where /metrics is served ("" when off).
func (a *Agent) MetricsAddress() string { return a.metricsAddr }

// Registration is what the agent registers: id, labels, capacity and GPU
// memory.
func (a *Agent) Registration() *cellv1.RegisterMachineRequest { return a.reg }

// Synced is closed once the agent has read its view from the server.
func (a *Agent) Synced() <-chan struct{} { return a.driver.synced }

// detectMachine builds the registration of this machine from the host and
// the overrides.
func detectMachine(ctx context.Context, log *slog.Logger, cfg Config) (*cellv1.RegisterMachineRequest, error) {
	labels := maps.Clone(cfg.Labels)
	if labels == nil {
		labels = make(map[string]string)
	}
	capacity := &cellv1.Resources{CpuMilli: cfg.CPUMilli, MemoryBytes: cfg.MemoryBytes, DiskBytes: cfg.DiskBytes}
	if capacity.CpuMilli == 0 {
		capacity.CpuMilli = int64(runtime.NumCPU()) * 1000
	}
	if capacity.MemoryBytes == 0 {
		m, err := procstat.ReadMachine("/proc")
		if err != nil {
			return nil, fmt.Errorf("memory: not given and not detected: %w", err)
		}
		capacity.MemoryBytes = m.MemTotalBytes
	}
	if capacity.DiskBytes == 0 {
		var st syscall.Statfs_t
		if err := syscall.Statfs(cfg.DataDir, &st); err != nil {
			return nil, fmt.Errorf("disk: not given and not detected: %w", err)
		}
		capacity.DiskBytes = int64(st.Bavail) * st.Bsize
	}
	gpus, model, gpuMemory := cfg.GPUs, "", int64(0)
	if gpus < 0 {
		devices, err := gpu.Detect(ctx, nvidiaSMITimeout)
		switch {
		case errors.Is(err, gpu.ErrNoNvidiaSMI):
			gpus = 0
		case err != nil:
			log.Warn("GPU detection failed; registering no GPUs", "err", err)
			gpus = 0
		default:
			gpus = len(devices)
			model, gpuMemory = summarizeGPUs(log, devices)
		}
	}
	if cfg.GPUModel != "" {
		model = cfg.GPUModel
	}
	if cfg.GPUMemoryBytes > 0 {
		gpuMemory = cfg.GPUMemoryBytes
	}
	capacity.GpuMilli = int64(gpus) * 1000
	if gpus > 0 && model != "" {
		if _, set := labels["gpu.model"]; !set || cfg.GPUModel != "" {
			labels["gpu.model"] = model
		}
	}
	if gpus == 0 {
		gpuMemory = 0
	}
	for name, v := range map[string]int64{"cpu": capacity.CpuMilli, "memory": capacity.MemoryBytes, "disk": capacity.DiskBytes} {
		if v < 0 {
			return nil, fmt.Errorf("%s: capacity %d is negative", name, v)
		}
	}
	return &cellv1.RegisterMachineRequest{Id: cfg.Name, Labels: labels, Capacity: capacity, GpuMemoryBytes: gpuMemory}, nil
}

// summarizeGPUs returns the model label and the per-device memory of a
// machine's GPUs: the model of the first device (with a warning when they
// differ, as the cell models one GPU model per machine) and the smallest
// memory, which every device offers.
func summarizeGPUs(log *slog.Logger, devices []gpu.Device) (string, int64) {
	if len(devices) == 0 {
		return "", 0
	}
	model, memory := gpu.Model(devices[0].Name), devices[0].MemoryBytes
	for _, d := range devices[1:] {
		if m := gpu.Model(d.Name); m != model {
			log.Warn("GPUs of different models; labelling the machine with the first", "first", model, "other", m)
		}
		memory = min(memory, d.MemoryBytes)
	}
	return model, memory
}
