package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/omegacell/omegacell/agent"
	"github.com/omegacell/omegacell/cellserver"
	"github.com/omegacell/omegacell/cli"
	"github.com/omegacell/omegacell/proto/credentials"
	"github.com/omegacell/omegacell/proto/identity"
	"github.com/omegacell/omegacell/schedulers/policy/builtin"
	"github.com/omegacell/omegacell/schedulers/sdk"
)

// devConfig is what `cell dev` runs.
type devConfig struct {
	server     cellserver.Config
	simulate   int
	profile    string
	localAgent bool
	// stopTasks: Ctrl-C stops the local agent's tasks too.
	stopTasks bool
}

func newDevCommand() *cobra.Command {
	var c devConfig
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run a complete local cell in one process: store, NATS, schedulers, agents",
		Long: `Runs a whole cell in this process: the store (Pebble in --data), an embedded
NATS server, the three built-in schedulers (batch, service, gpu), a real agent
on this machine that runs tasks as processes, and with --simulate N that many
simulated machines (a quarter of them with 8 H100 GPUs by default). Ctrl-C
stops the cell cleanly and leaves the tasks the local agent runs running
(under their shims, as a restarted agent would); running it again on the
same --data picks the cell up where it was, with those tasks still running
as the same attempts (within --grace of the restart, or they are placed
again). --stop-tasks-on-exit stops them at Ctrl-C instead.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDev(cmd.Context(), c, slog.Default(), cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	f.StringVar(&c.server.DataDir, "data", "./cell-data", "directory of the cell's state (store, agent work dirs)")
	f.StringVar(&c.server.Listen, "listen", "127.0.0.1:7070", "gRPC listen address")
	f.StringVar(&c.server.Metrics, "metrics", "127.0.0.1:7071", "Prometheus /metrics address of the server and schedulers (empty: off)")
	f.StringVar(&c.server.NATSListen, "nats-listen", "127.0.0.1:-1", "embedded NATS listen address")
	f.DurationVar(&c.server.Grace, "grace", 10*time.Second, "silence after which a machine is marked down")
	c.server.RegisterLimitFlags(f)
	f.IntVar(&c.simulate, "simulate", 0, "also run this many simulated machines")
	f.StringVar(&c.profile, "profile", "", "shape of the simulated machines, e.g. zones=3,racks=4,gpu-fraction=0.25,gpu-model=H100 (see cell agent --help)")
	f.BoolVar(&c.localAgent, "local-agent", true, "run a real agent on this machine")
	f.BoolVar(&c.stopTasks, "stop-tasks-on-exit", false, "stop the local agent's tasks at Ctrl-C (default: leave them running for the next cell dev on --data)")
	f.BoolVar(&c.server.Insecure, "insecure", false, "no TLS and no authentication (trusted machines only; logged as a warning)")
	f.StringSliceVar(&c.server.TLSSANs, "tls-san", nil, "extra host names or IP addresses for the server's certificate")
	return cmd
}

// runDev starts the cell, runs until ctx ends or a part fails, then stops
// every part and waits for it.
func runDev(ctx context.Context, c devConfig, log *slog.Logger, out interface{ Write([]byte) (int, error) }) error {
	profile := agent.DefaultProfile()
	if c.profile != "" {
		p, err := agent.ParseProfile(c.profile)
		if err != nil {
			return fmt.Errorf("--profile: %w", err)
		}
		profile = p
	}
	if c.simulate < 0 {
		return fmt.Errorf("--simulate: %d is negative", c.simulate)
	}
	srv, err := cellserver.Start(c.server, log)
	if err != nil {
		return err
	}
	defer srv.Close()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, 8)
	run := func(name string, fn func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := fn(ctx); err != nil && ctx.Err() == nil {
				errc <- fmt.Errorf("%s: %w", name, err)
			}
		}()
	}
	for _, name := range []string{"batch", "service", "gpu"} {
		pol, err := builtin.Lookup(name)
		if err != nil {
			return err
		}
		creds, err := partCredentials(srv, identity.Scheduler, name)
		if err != nil {
			return err
		}
		cfg := sdk.Config{Server: srv.Addr(), Credentials: creds, Name: name, Policy: pol, Seed: 1, Logger: log, Registerer: srv.Registry()}
		run("scheduler "+name, func(ctx context.Context) error { return sdk.Run(ctx, cfg) })
	}
	if c.localAgent {
		host, _ := os.Hostname()
		name := "local-" + sanitizeName(host)
		creds, err := partCredentials(srv, identity.Agent, name)
		if err != nil {
			return err
		}
		a, err := agent.New(ctx, agent.Config{
			Server: srv.Addr(), Credentials: creds, Name: name, DataDir: filepath.Join(c.server.DataDir, "agent"),
			Labels: map[string]string{"zone": "local", "rack": "local"}, GPUs: -1, Logger: log.With("agent", "local"),
			StopTasksOnExit: c.stopTasks,
		})
		if err != nil {
			return fmt.Errorf("local agent: %w", err)
		}
		run("local agent", a.Run)
	}
	if c.simulate > 0 {
		fleet, err := identity.NewFleet("sim")
		if err != nil {
			return err
		}
		creds, err := srv.Client(fleet)
		if err != nil {
			return err
		}
		sim, err := agent.NewSimulation(agent.SimConfig{Server: srv.Addr(), Credentials: creds, Prefix: "sim", Machines: c.simulate, Profile: profile, Logger: log.With("agent", "simulated")})
		if err != nil {
			return fmt.Errorf("simulated machines: %w", err)
		}
		run("simulated machines", sim.Run)
	}
	printDevBanner(out, c, srv)

	select {
	case <-ctx.Done():
		err = nil
	case err = <-errc:
	}
	cancel()
	wg.Wait()
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	return err
}

func printDevBanner(out interface{ Write([]byte) (int, error) }, c devConfig, srv *cellserver.Server) {
	fmt.Fprintf(out, `omegacell dev cell is up
  store       %s (Pebble), revision %d
  gRPC API    %s
  NATS        %s
  metrics     %s
  schedulers  batch, service, gpu (in this process)
`, filepath.Join(c.server.DataDir, "store"), srv.Store().Revision(), srv.Addr(), srv.NATSURL(), metricsURL(srv.MetricsAddr()))
	if web := srv.WebURL(); web != "" {
		ui := "go run ./cmd/cell ui"
		if web != cli.DefaultWebURL {
			ui += " --web " + web
		}
		if dir := srv.AdminDir(); dir != "" && filepath.Clean(dir) != filepath.Clean(credentials.DefaultDir) {
			ui += " --credentials " + dir
		}
		login := "log in: " + ui + " --open"
		if srv.AdminDir() == "" {
			login = "no login: --insecure"
		}
		fmt.Fprintf(out, "  web view    %s (%s)\n", web, login)
	}
	if c.localAgent {
		fmt.Fprintf(out, "  agent       this machine (tasks run as processes under %s)\n", filepath.Join(c.server.DataDir, "agent"))
	}
	if c.simulate > 0 {
		fmt.Fprintf(out, "  simulated   %d machines\n", c.simulate)
	}
	if dir := srv.AdminDir(); dir != "" {
		fmt.Fprintf(out, "  credentials %s (admin; every part above has its own)\n", dir)
	} else {
		fmt.Fprintf(out, "  credentials none: --insecure, anyone who reaches the ports is admin\n")
	}
	// The commands reach 127.0.0.1:7070 by default; name any other address
	// and credentials found elsewhere than ./cell-data/pki/admin.
	server := ""
	if srv.Addr() != cli.DefaultAddress {
		server = " --server " + srv.Addr()
	}
	if dir := srv.AdminDir(); dir != "" && filepath.Clean(dir) != filepath.Clean(credentials.DefaultDir) {
		server += " --credentials " + dir
	} else if dir == "" {
		server += " --insecure"
	}
	fmt.Fprintf(out, `
Try, in another terminal:
  go run ./cmd/cell machine list%[1]s
  go run ./cmd/cell job run examples/jobs/hello.yaml --wait%[1]s
%[2]s
`, server, ctrlC(c))
}

// ctrlC says what Ctrl-C does to the local agent's tasks.
func ctrlC(c devConfig) string {
	if !c.localAgent || c.stopTasks {
		return "Ctrl-C stops the cell and its tasks."
	}
	return "Ctrl-C stops the cell; its tasks keep running, and cell dev on the same --data picks them up."
}

func metricsURL(addr string) string {
	if addr == "" {
		return "off"
	}
	return "http://" + addr + "/metrics"
}

// partCredentials is the credential of one part cell dev runs: its own
// identity (never admin), issued in memory by the cell's CA.
func partCredentials(srv *cellserver.Server, role identity.Role, name string) (credentials.Client, error) {
	id, err := identity.New(role, name)
	if err != nil {
		return credentials.Client{}, err
	}
	return srv.Client(id)
}

// sanitizeName keeps what a machine id allows.
func sanitizeName(s string) string {
	out := []byte(s)
	for i, ch := range out {
		if !(ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' || ch == '-' || ch == '.') {
			out[i] = '-'
		}
	}
	if len(out) == 0 {
		return "host"
	}
	return string(out)
}
