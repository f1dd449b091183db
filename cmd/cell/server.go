package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"
	"google.golang.org/grpc"

	"github.com/omegacell/omegacell/cellstate"
)

// serverConfig is what `cell server` (and `cell dev`) run.
type serverConfig struct {
	dataDir      string
	listen       string
	metrics      string
	natsURL      string // external NATS; empty embeds one
	natsListen   string // embedded NATS address
	grace        time.Duration
	heartbeat    time.Duration
	logRetention uint64
	noSync       bool
}

func newServerCommand() *cobra.Command {
	var c serverConfig
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run the cell-state store and its gRPC API",
		Long: `Runs the cell-state store (Pebble in --data), its gRPC API on --listen, Prometheus
metrics on --metrics, and an embedded NATS server on loopback for agents'
heartbeats (or uses --nats to point at an external NATS cluster).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := startServer(c, slog.Default())
			if err != nil {
				return err
			}
			return s.wait(cmd.Context())
		},
	}
	f := cmd.Flags()
	f.StringVar(&c.dataDir, "data", "./cell-data", "directory of the store (Pebble)")
	f.StringVar(&c.listen, "listen", "127.0.0.1:7070", "gRPC listen address")
	f.StringVar(&c.metrics, "metrics", "127.0.0.1:7071", "Prometheus /metrics listen address (empty: off)")
	f.StringVar(&c.natsURL, "nats", "", "external NATS URL (nats://host:4222); empty embeds a NATS server")
	f.StringVar(&c.natsListen, "nats-listen", "127.0.0.1:-1", "embedded NATS listen address (port -1: any free port)")
	f.DurationVar(&c.grace, "grace", 10*time.Second, "silence after which a machine is marked down and its tasks are lost")
	f.DurationVar(&c.heartbeat, "heartbeat", time.Second, "heartbeat interval agents are told to use")
	f.Uint64Var(&c.logRetention, "log-retention", 100_000, "revisions of change log kept for watchers")
	f.BoolVar(&c.noSync, "unsafe-no-sync", false, "skip fsync on commit (benchmarks only: acknowledged commits can be lost)")
	return cmd
}

// runningServer is a started cell server; stop it with close.
type runningServer struct {
	log      *slog.Logger
	store    *cellstate.Store
	grpc     *grpc.Server
	lis      net.Listener
	http     *http.Server
	natsSrv  *server.Server
	nc       *nats.Conn
	liveness *cellstate.Liveness
	errc     chan error
	addr     string
	natsURL  string
	reg      *prometheus.Registry
}

func startServer(c serverConfig, log *slog.Logger) (_ *runningServer, err error) {
	s := &runningServer{log: log, errc: make(chan error, 3), reg: prometheus.NewRegistry()}
	defer func() {
		if err != nil {
			s.close()
		}
	}()
	s.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics := cellstate.NewMetrics(s.reg)
	if err := os.MkdirAll(c.dataDir, 0o755); err != nil {
		return nil, fmt.Errorf("--data: %w", err)
	}
	s.store, err = cellstate.Open(cellstate.Options{
		Dir: filepath.Join(c.dataDir, "store"), NoSync: c.noSync, LogRetention: c.logRetention, Logger: log, Metrics: metrics,
	})
	if err != nil {
		return nil, err
	}
	s.natsURL = c.natsURL
	if s.natsURL == "" {
		if s.natsURL, err = s.embedNATS(c); err != nil {
			return nil, err
		}
	}
	s.nc, err = nats.Connect(s.natsURL, nats.Name("cell-server"), nats.MaxReconnects(-1))
	if err != nil {
		return nil, fmt.Errorf("connect to NATS at %s: %w", s.natsURL, err)
	}
	s.liveness, err = cellstate.StartLiveness(s.store, cellstate.LivenessOptions{Conn: s.nc, Grace: c.grace, Metrics: metrics})
	if err != nil {
		return nil, err
	}
	api := cellstate.NewServer(s.store, cellstate.ServerOptions{Liveness: s.liveness, NATSURL: s.natsURL, HeartbeatInterval: c.heartbeat})
	s.grpc = api.GRPCServer()
	if s.lis, err = net.Listen("tcp", c.listen); err != nil {
		return nil, fmt.Errorf("--listen %s: %w", c.listen, err)
	}
	s.addr = s.lis.Addr().String()
	go func() { s.errc <- s.grpc.Serve(s.lis) }()
	if c.metrics != "" {
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{}))
		ml, err := net.Listen("tcp", c.metrics)
		if err != nil {
			return nil, fmt.Errorf("--metrics %s: %w", c.metrics, err)
		}
		s.http = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go func() {
			if err := s.http.Serve(ml); !errors.Is(err, http.ErrServerClosed) {
				s.errc <- err
			}
		}()
		log.Info("metrics", "url", "http://"+ml.Addr().String()+"/metrics")
	}
	log.Info("cell server ready", "grpc", s.addr, "nats", s.natsURL, "data", c.dataDir, "revision", s.store.Revision())
	return s, nil
}

func (s *runningServer) embedNATS(c serverConfig) (string, error) {
	host, port, err := splitHostPort(c.natsListen)
	if err != nil {
		return "", fmt.Errorf("--nats-listen: %w", err)
	}
	ns, err := server.NewServer(&server.Options{Host: host, Port: port, NoSigs: true, MaxPayload: 8 << 20})
	if err != nil {
		return "", fmt.Errorf("embedded NATS: %w", err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		return "", errors.New("embedded NATS did not start within 10s")
	}
	s.natsSrv = ns
	return ns.ClientURL(), nil
}

// wait serves until ctx ends or something fails, then shuts down.
func (s *runningServer) wait(ctx context.Context) error {
	var err error
	select {
	case <-ctx.Done():
		s.log.Info("shutting down")
	case err = <-s.errc:
		s.log.Error("server failed", "err", err)
	}
	s.close()
	return err
}

func (s *runningServer) close() {
	if s.store != nil {
		s.store.CloseWatchers()
	}
	if s.grpc != nil {
		done := make(chan struct{})
		go func() { s.grpc.GracefulStop(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			s.grpc.Stop()
		}
	}
	if s.http != nil {
		s.http.Close()
	}
	if s.liveness != nil {
		s.liveness.Close()
	}
	if s.nc != nil {
		s.nc.Close()
	}
	if s.natsSrv != nil {
		s.natsSrv.Shutdown()
	}
	if s.store != nil {
		if err := s.store.Close(); err != nil {
			s.log.Error("closing store", "err", err)
		}
	}
}

func splitHostPort(addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	var port int
	if _, err := fmt.Sscanf(p, "%d", &port); err != nil {
		return "", 0, fmt.Errorf("port %q: %w", p, err)
	}
	return host, port, nil
}
