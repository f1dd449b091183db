package agent

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
	"github.com/omegacell/omegacell/proto/credentials"
)

// SimConfig configures a simulated fleet.
type SimConfig struct {
	// Server is the cell server's gRPC address. Required.
	Server string
	// Credentials say how the fleet connects: a fleet credential for
	// Prefix (identity.NewFleet), or --insecure; the zero value finds a
	// bundle as credentials.Find does.
	Credentials credentials.Client
	// Prefix names the machines <prefix>-<n> (default "sim").
	Prefix string
	// Machines is how many machines to simulate.
	Machines int
	Profile  Profile
	// Heartbeat overrides the server's interval (0: the server's).
	Heartbeat time.Duration
	// UsageInterval is how often heartbeats carry usage (default 5 s).
	UsageInterval time.Duration
	// RegisterConcurrency bounds registrations in flight (default 64).
	RegisterConcurrency int
	// MetricsListen serves Prometheus /metrics there (empty: off).
	MetricsListen string
	Logger        *slog.Logger
}

// Simulation is a fleet of simulated machines in one process. They speak
// the same protocol as real agents: each is registered, their heartbeats
// go out as one HeartbeatBatch per interval, their tasks are learned from
// one unfiltered watch of the cell and reported through ReportTaskStates.
// A task "runs" for its template's duration_ms, or until stopped when that
// is 0; no process is started.
type Simulation struct {
	log           *slog.Logger
	fleet         *fleet
	driver        *driver
	hb            *heartbeater
	regs          []*cellv1.RegisterMachineRequest
	metricsListen string
}

// NewSimulation builds the fleet; Run connects it.
func NewSimulation(cfg SimConfig) (*Simulation, error) {
	if cfg.Machines <= 0 {
		return nil, fmt.Errorf("simulate: %d machines; want at least 1", cfg.Machines)
	}
	log := cmp.Or(cfg.Logger, slog.Default()).With("simulated_machines", cfg.Machines)
	regs := SimulatedMachines(cmp.Or(cfg.Prefix, "sim"), cfg.Machines, cfg.Profile)
	f := newFleet(log, simRuntime{})
	f.quiet = true
	for _, r := range regs {
		f.add(r)
	}
	usage := simUsage{utilization: cfg.Profile.Utilization, perTask: cfg.Profile.TaskUsage}
	hb := newHeartbeater(log, f, usage, cmp.Or(cfg.UsageInterval, DefaultUsageInterval), cfg.Heartbeat,
		fmt.Sprintf("omegacell simulated fleet %s (%d machines)", cmp.Or(cfg.Prefix, "sim"), cfg.Machines))
	creds, err := useCredentials(log, cfg.Credentials, hb, cmp.Or(cfg.Prefix, "sim"), true)
	if err != nil {
		return nil, err
	}
	d, err := newDriver(log, cfg.Server, creds, f, hb, "")
	if err != nil {
		return nil, err
	}
	d.registerConcurrency = cmp.Or(cfg.RegisterConcurrency, defaultRegisterConcurrency)
	return &Simulation{log: log, fleet: f, driver: d, hb: hb, regs: regs, metricsListen: cfg.MetricsListen}, nil
}

// Run runs the fleet until ctx ends.
func (s *Simulation) Run(ctx context.Context) error {
	s.log.Info("simulating machines", "machines", len(s.regs))
	if s.metricsListen != "" {
		addr, stop, err := serveMetrics(s.metricsListen, s.fleet, s.driver)
		if err != nil {
			return err
		}
		defer stop()
		s.log.Info("serving metrics", "address", addr)
	}
	err := s.driver.run(ctx)
	s.fleet.stopAll()
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// Machines are the registrations of the simulated machines.
func (s *Simulation) Machines() []*cellv1.RegisterMachineRequest { return s.regs }

// Synced is closed once the fleet has read its first snapshot.
func (s *Simulation) Synced() <-chan struct{} { return s.driver.synced }

// SimulatedMachines lays out n machines named <prefix>-<i> as the profile
// says. The layout is a pure function of its arguments.
func SimulatedMachines(prefix string, n int, p Profile) []*cellv1.RegisterMachineRequest {
	width := len(strconv.Itoa(n - 1))
	racks := max(p.Zones, 1) * max(p.RacksPerZone, 1)
	out := make([]*cellv1.RegisterMachineRequest, n)
	for i := range n {
		rack := i % racks
		zone := rack % max(p.Zones, 1)
		labels := map[string]string{
			"zone":      fmt.Sprintf("z%d", zone),
			"rack":      fmt.Sprintf("z%d-r%d", zone, rack/max(p.Zones, 1)),
			"simulated": "true",
		}
		capacity := &cellv1.Resources{CpuMilli: p.CPUMilli, MemoryBytes: p.MemoryBytes, DiskBytes: p.DiskBytes}
		var gpuMemory int64
		if hasGPUs(i, p.GPUFraction) && p.GPUs > 0 {
			capacity.GpuMilli = int64(p.GPUs) * 1000
			gpuMemory = p.GPUMemoryBytes
			labels["gpu.model"] = p.GPUModel
		}
		out[i] = &cellv1.RegisterMachineRequest{
			Id:             fmt.Sprintf("%s-%0*d", prefix, width, i),
			Labels:         labels,
			Capacity:       capacity,
			GpuMemoryBytes: gpuMemory,
		}
	}
	return out
}

// hasGPUs spreads a fraction f of machines evenly: machine i has GPUs when
// ⌊(i+1)·f⌋ > ⌊i·f⌋.
func hasGPUs(i int, f float64) bool {
	return int(float64(i+1)*f) > int(float64(i)*f)
}
