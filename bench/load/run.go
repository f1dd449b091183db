package load

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"os"
	"runtime"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/grpc"

	"github.com/omegacell/omegacell/agent"
	"github.com/omegacell/omegacell/cellserver"
	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
	"github.com/omegacell/omegacell/proto/credentials"
	"github.com/omegacell/omegacell/proto/identity"
	"github.com/omegacell/omegacell/schedulers/policy/builtin"
	"github.com/omegacell/omegacell/schedulers/sdk"
)

// Config is one benchmark run.
type Config struct {
	Workload *Workload // validated, overrides applied
	// Schedulers is the number of instances of each of the workload's
	// schedulers (default 1).
	Schedulers int
	// Server is an external cell server (host:port); empty starts one in
	// this process.
	Server string
	// ServerMetrics is the external server's /metrics URL, for the store's
	// figures; without it an external run reports none.
	ServerMetrics string
	// Replicas > 1 runs the in-process cell as a replicated cell of that
	// many servers (cellserver.StartLocalCluster; issue 15): the fleet,
	// the schedulers and the benchmark dial all of them and follow the
	// leader; the store's figures are the leader's.
	Replicas int
	// DataDir holds the in-process store (default: a temporary directory,
	// removed afterwards).
	DataDir string
	// UnsafeNoSync skips the store's fsync (in-process only), to show what
	// durability costs. Reported figures are synced unless this is set.
	UnsafeNoSync bool
	// Insecure runs without TLS: the in-process cell with --insecure, or
	// an external one started so. Otherwise every part connects with
	// mutual TLS under its own identity: issued in memory by the
	// in-process cell's CA, or requested from an external cell with the
	// admin bundle Credentials names (credentials.Find).
	Insecure    bool
	Credentials string
	// Timeout bounds setup and each phase (default 10 min).
	Timeout time.Duration
	// SampleInterval is the placement-rate sampling period (default 1 s).
	SampleInterval time.Duration
	// Submitters is how many submissions a burst phase keeps in flight
	// (default 8).
	Submitters int
	// Progress receives a progress bar per phase (nil: none).
	Progress io.Writer
	// CPUProfile receives the CPU profile of the measured window (nil: not
	// written; components are measured either way).
	CPUProfile io.Writer
	// Logger receives the cell's, the fleet's and the schedulers' logs
	// (default: discarded).
	Logger *slog.Logger
}

// ErrInvariant is returned (wrapped) with the report when the end-of-run
// verification failed.
var ErrInvariant = errors.New("invariant broken")

// Run starts the cell (or connects to Config.Server), the simulated fleet
// and the schedulers, runs the workload's phases, verifies the invariant
// and reports. The report is returned whenever the run got as far as
// verifying, also with an error wrapping ErrInvariant.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	cfg.Schedulers = cmp.Or(cfg.Schedulers, 1)
	cfg.Timeout = cmp.Or(cfg.Timeout, 10*time.Minute)
	cfg.SampleInterval = cmp.Or(cfg.SampleInterval, time.Second)
	cfg.Submitters = cmp.Or(cfg.Submitters, 8)
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Workload == nil {
		return nil, errors.New("load: Config.Workload is nil")
	}
	if err := cfg.Workload.Validate(); err != nil {
		return nil, fmt.Errorf("workload %s: %w", cfg.Workload.Name, err)
	}
	if cfg.Server != "" && cfg.UnsafeNoSync {
		return nil, errors.New("--unsafe-no-sync applies to an in-process cell, not to --server")
	}
	switch {
	case cfg.Replicas > 1 && cfg.Server != "":
		return nil, errors.New("--replicas applies to an in-process cell, not to --server (give --server every address of a replicated cell: a,b,c)")
	case cfg.Replicas > 1 && cfg.Insecure:
		return nil, errors.New("--replicas: a replicated cell needs its PKI (not --insecure)")
	case cfg.Replicas < 0 || cfg.Replicas > 7:
		return nil, fmt.Errorf("--replicas %d: from 1 to 7", cfg.Replicas)
	}
	p, err := newPlan(cfg.Workload, cfg.Schedulers)
	if err != nil {
		return nil, err
	}
	r := &rig{cfg: cfg, plan: p, run: runID()}
	defer r.close()
	if err := r.setUp(ctx); err != nil {
		return nil, err
	}
	return r.drive(ctx)
}

// rig is the running benchmark: the cell, the fleet, the schedulers, the
// observer.
type rig struct {
	cfg  Config
	plan *plan
	run  string // names this run's jobs and machines

	server  *cellserver.Server   // the in-process cell's (first) server
	servers []*cellserver.Server // all of them (Config.Replicas)
	addr    string
	tempDir string
	conn    *grpc.ClientConn
	admin   credentials.Client // the benchmark's own connection
	jobs    cellv1.JobServiceClient
	storeM  gatherer
	schedM  *prometheus.Registry
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	obs     *observer
	obsStop context.CancelFunc
	tracks  []*jobTrack
}

// runID is 8 random hex digits.
func runID() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return "r" + hex.EncodeToString(b[:])
}

func (r *rig) setUp(ctx context.Context) error {
	ctx, r.cancel = context.WithCancel(ctx)
	setup, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	defer cancel()
	if err := r.startCell(); err != nil {
		return err
	}
	var err error
	if r.admin, err = r.client(setup, identity.Identity{Role: identity.Admin}); err != nil {
		return err
	}
	withComponent(ctx, compBench, func(context.Context) { r.conn, err = sdk.Dial(r.addr, r.admin) })
	if err != nil {
		return err
	}
	r.jobs = cellv1.NewJobServiceClient(r.conn)
	if err := r.startFleet(ctx, setup); err != nil {
		return err
	}
	if err := r.startSchedulers(ctx, setup); err != nil {
		return err
	}
	obsCtx, stop := context.WithCancel(ctx)
	r.obs, r.obsStop = newObserver(cellv1.NewStateServiceClient(r.conn)), stop
	withComponent(obsCtx, compBench, func(c context.Context) { err = r.obs.start(c) })
	return err
}

// inProcess names the in-process cell in the report.
func inProcess(replicas int) string {
	if replicas > 1 {
		return fmt.Sprintf("in-process, %d replicas", replicas)
	}
	return "in-process"
}

// startCell starts the in-process cell, unless Config.Server names one.
func (r *rig) startCell() error {
	if r.cfg.Server != "" {
		r.addr = r.cfg.Server
		if r.cfg.ServerMetrics != "" {
			r.storeM = scrape(r.cfg.ServerMetrics)
		}
		return nil
	}
	dir := r.cfg.DataDir
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", "cell-bench-load-"); err != nil {
			return err
		}
		r.tempDir = dir
	}
	var err error
	base := cellserver.Config{
		DataDir: dir, Listen: "127.0.0.1:0", NATSListen: "127.0.0.1:-1", NoSync: r.cfg.UnsafeNoSync, Insecure: r.cfg.Insecure,
	}
	withComponent(context.Background(), compServer, func(context.Context) {
		if r.cfg.Replicas > 1 {
			r.servers, err = cellserver.StartLocalCluster(base, r.cfg.Replicas, r.cfg.Logger)
			return
		}
		var s *cellserver.Server
		if s, err = cellserver.Start(base, r.cfg.Logger); err == nil {
			r.servers = []*cellserver.Server{s}
		}
	})
	if err != nil {
		return fmt.Errorf("start the cell: %w", err)
	}
	r.server, r.addr = r.servers[0], cellserver.Addrs(r.servers)
	servers := r.servers
	r.storeM = func(context.Context) ([]*dto.MetricFamily, error) {
		// The store's figures are the committing server's.
		for _, s := range servers {
			if s.Store().IsLeader() {
				return s.Registry().Gather()
			}
		}
		return servers[0].Registry().Gather()
	}
	return nil
}

// startFleet runs the simulated machines and waits until they are
// registered and following the cell.
func (r *rig) startFleet(ctx, setup context.Context) error {
	prefix := "load"
	if r.cfg.Server != "" {
		prefix = "load-" + r.run
	}
	fleet, err := identity.NewFleet(prefix)
	if err != nil {
		return err
	}
	creds, err := r.client(setup, fleet)
	if err != nil {
		return err
	}
	sim, err := agent.NewSimulation(agent.SimConfig{
		Server: r.addr, Credentials: creds, Prefix: prefix, Machines: r.plan.machines, Profile: r.plan.profile, Logger: r.cfg.Logger,
	})
	if err != nil {
		return err
	}
	r.wg.Go(func() {
		withComponent(ctx, compAgents, func(ctx context.Context) {
			if err := sim.Run(ctx); err != nil {
				r.cfg.Logger.Error("simulated fleet stopped", "err", err)
			}
		})
	})
	select {
	case <-sim.Synced():
		return nil
	case <-setup.Done():
		return fmt.Errorf("the simulated fleet of %d machines did not register and sync: %w", r.plan.machines, setup.Err())
	}
}

// startSchedulers registers every instance's name (so that jobs naming it
// are accepted at once), runs each with sdk.Run, and waits until each has
// read its copy of the cell.
func (r *rig) startSchedulers(ctx, setup context.Context) error {
	r.schedM = prometheus.NewRegistry()
	reg := cellv1.NewSchedulerServiceClient(r.conn)
	ready := make(chan string, len(r.plan.schedulers))
	for _, in := range r.plan.schedulers {
		if _, err := reg.RegisterScheduler(setup, &cellv1.RegisterSchedulerRequest{Name: in.name}); err != nil {
			return fmt.Errorf("register scheduler %s: %w", in.name, err)
		}
		pol, err := builtin.Lookup(in.policy)
		if err != nil {
			return err
		}
		h := fnv.New64a()
		h.Write([]byte(in.name))
		id, err := identity.New(identity.Scheduler, in.name)
		if err != nil {
			return err
		}
		creds, err := r.client(setup, id)
		if err != nil {
			return err
		}
		cfg := sdk.Config{Server: r.addr, Credentials: creds, Name: in.name, Policy: pol, Seed: h.Sum64(), Registerer: r.schedM, Logger: r.cfg.Logger,
			Ready: func(uint64) { ready <- in.name }}
		r.wg.Go(func() {
			withComponent(ctx, compSchedPrefix+in.name, func(ctx context.Context) {
				if err := sdk.Run(ctx, cfg); err != nil {
					r.cfg.Logger.Error("scheduler stopped", "scheduler", in.name, "err", err)
				}
			})
		})
	}
	for live := 0; live < len(r.plan.schedulers); live++ {
		select {
		case <-ready:
		case <-setup.Done():
			return fmt.Errorf("%d of %d schedulers did not read the cell: %w", len(r.plan.schedulers)-live, len(r.plan.schedulers), setup.Err())
		}
	}
	return nil
}

// close stops everything the rig started, newest first.
func (r *rig) close() {
	if r.obsStop != nil {
		r.obsStop()
		<-r.obs.done
	}
	if r.cancel != nil {
		r.cancel()
	}
	r.wg.Wait()
	if r.conn != nil {
		r.conn.Close()
	}
	for _, s := range r.servers {
		s.Close()
	}
	if r.tempDir != "" {
		os.RemoveAll(r.tempDir)
	}
}

// drive runs the phases, then verifies the cell.
func (r *rig) drive(ctx context.Context) (*Report, error) {
	rep := &Report{
		Workload: r.plan.workload, Server: cmp.Or(r.cfg.Server, inProcess(r.cfg.Replicas)), Synced: !r.cfg.UnsafeNoSync, Insecure: r.cfg.Insecure,
		Machines: r.plan.machines, SchedulersPer: r.cfg.Schedulers, GOMAXPROCS: runtime.GOMAXPROCS(0), NumCPU: runtime.NumCPU(),
		Started: time.Now(), LoadAverage: [2]float64{loadAverage(), 0},
	}
	for _, in := range r.plan.schedulers {
		rep.Schedulers = append(rep.Schedulers, in.name+" ("+in.policy+")")
	}
	lastMeasured := -1
	for i, ph := range r.plan.phases {
		if ph.measure {
			lastMeasured = i
		}
	}
	var cpu *cpuWindow
	for i := range r.plan.phases {
		ph := &r.plan.phases[i]
		if ph.measure && cpu == nil {
			cpu = startCPU(r.cfg.CPUProfile)
		}
		pr, err := r.runPhase(ctx, ph)
		if err != nil {
			if cpu != nil {
				_, _ = cpu.stop()
			}
			return nil, fmt.Errorf("phase %s: %w", ph.name, err)
		}
		if ph.measure {
			rep.Phases = append(rep.Phases, *pr)
		}
		if i == lastMeasured {
			f, err := cpu.stop()
			if err != nil {
				return nil, err
			}
			rep.CPU = &f
		}
	}
	rep.ObserverResnapshots = r.obs.resnapshots.Load()
	r.obsStop()
	<-r.obs.done
	ver, err := r.verify(ctx)
	if err != nil {
		return nil, err
	}
	rep.Verification = ver
	rep.TotalSeconds = time.Since(rep.Started).Seconds()
	rep.LoadAverage[1] = loadAverage()
	if !ver.OK {
		return rep, fmt.Errorf("%w: %s", ErrInvariant, ver.Problems[0])
	}
	return rep, nil
}

// verify reads the cell and checks it (see verify).
func (r *rig) verify(ctx context.Context) (Verification, error) {
	var snap *cellSnapshot
	var err error
	withComponent(ctx, compBench, func(ctx context.Context) {
		snap, err = readSnapshot(ctx, cellv1.NewStateServiceClient(r.conn))
	})
	if err != nil {
		return Verification{}, fmt.Errorf("verify: %w", err)
	}
	jobs := make([]expectedJob, len(r.tracks))
	for i, t := range r.tracks {
		jobs[i] = expectedJob{name: t.name, id: t.id, tasks: t.tasks}
	}
	return verify(snap, jobs), nil
}
