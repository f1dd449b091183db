package cellserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"

	"github.com/omegacell/omegacell/cellstate"
	"github.com/omegacell/omegacell/pki"
	"github.com/omegacell/omegacell/proto/buildinfo"
	"github.com/omegacell/omegacell/proto/credentials"
	"github.com/omegacell/omegacell/replication"
	"github.com/omegacell/omegacell/webui"
)

// Config is what a cell server runs with.
type Config struct {
	DataDir      string        // the store lives in DataDir/store
	Listen       string        // gRPC listen address (port 0: any)
	Metrics      string        // Prometheus listen address; empty: off
	NATSURL      string        // external NATS; empty embeds one
	NATSListen   string        // embedded NATS address (port -1: any)
	Grace        time.Duration // silence before a machine is down (default 10 s)
	Heartbeat    time.Duration // interval agents are told (default 1 s)
	LogRetention uint64        // revisions of change log kept (default: the store's)
	NoSync       bool          // skip fsync (benchmarks only)
	// CheckpointRevisions bounds the log a recovery replays (default: the
	// store's).
	CheckpointRevisions uint64
	// Insecure turns transport security off: no TLS on gRPC and NATS, no
	// authentication, every caller is admin. Logged as a warning.
	Insecure bool
	// TLSSANs are extra host names and IP addresses of the server's
	// certificate (besides loopback, localhost, the host name and the
	// listen addresses' hosts).
	TLSSANs []string
	// Bounds on what the cell keeps (0: the store's defaults; see
	// cellstate.Options): finished jobs' retention, the cell's pending
	// tasks, silent schedulers' TTL and the registered schedulers.
	JobRetention    time.Duration
	MaxPendingTasks int
	SchedulerTTL    time.Duration
	MaxSchedulers   int
	// Cluster makes the server one replica of a replicated cell (zero:
	// single server; cluster.go).
	Cluster ClusterConfig
}

// RegisterLimitFlags adds the flags of the bounds on what the cell keeps
// (shared by `cell server` and `cell dev`).
func (c *Config) RegisterLimitFlags(f interface {
	DurationVar(p *time.Duration, name string, value time.Duration, usage string)
	IntVar(p *int, name string, value int, usage string)
}) {
	f.DurationVar(&c.JobRetention, "job-retention", cellstate.DefaultJobRetention,
		"how long a finished job (succeeded, failed, stopped) and its tasks are kept before they are deleted (negative: forever)")
	f.IntVar(&c.MaxPendingTasks, "max-pending-tasks", cellstate.DefaultMaxPendingTasks,
		"pending tasks the cell holds at most; SubmitJob beyond it is refused (negative: no cap)")
	f.DurationVar(&c.SchedulerTTL, "scheduler-ttl", cellstate.DefaultSchedulerTTL,
		"silence after which a scheduler without live jobs is forgotten (negative: never)")
	f.IntVar(&c.MaxSchedulers, "max-schedulers", cellstate.DefaultMaxSchedulers,
		"registered schedulers the cell holds at most, builtins included (negative: no cap)")
}

// Server is a started cell server; stop it with Close (or Wait).
type Server struct {
	log      *slog.Logger
	store    *cellstate.Store
	grpc     *grpc.Server
	lis      net.Listener
	http     *http.Server
	natsSrv  *server.Server
	nc       *nats.Conn
	hbConn   *nats.Conn // heartbeats only, so a flood delays nothing else
	liveness *cellstate.Liveness
	errc     chan error
	addr     string
	metrics  string
	natsURL  string
	reg      *prometheus.Registry
	pki      *pki.Cell              // nil when insecure
	revoked  *cellstate.Revocations // nil when insecure
	natsAuth *natsAuth              // nil when insecure or external NATS
	repl     *replication.Node      // nil in single-server mode
	raftz    atomic.Bool            // raftLeaders is reading (cluster mode)
	storeDir string
	ui       *webui.UI // the web view (nil when metrics are off)
	uiConn   *grpc.ClientConn
}

func start(c Config, log *slog.Logger) (_ *Server, err error) {
	s := &Server{log: log, errc: make(chan error, 3), reg: prometheus.NewRegistry()}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	s.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics := cellstate.NewMetrics(s.reg)
	if err := os.MkdirAll(c.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("--data: %w", err)
	}
	s.storeDir = filepath.Join(c.DataDir, "store")
	s.store, err = cellstate.Open(cellstate.Options{
		Dir: s.storeDir, NoSync: c.NoSync, LogRetention: c.LogRetention, Logger: log, Metrics: metrics,
		CheckpointRevisions: c.CheckpointRevisions,
		JobRetention:        c.JobRetention, MaxPendingTasks: c.MaxPendingTasks, SchedulerTTL: c.SchedulerTTL, MaxSchedulers: c.MaxSchedulers,
	})
	if err != nil {
		return nil, err
	}
	if c.Cluster.enabled() {
		// A replica commits nothing (not even the collector's or the
		// liveness check's changes) before it joined the cell.
		s.store.EnableReplication(nil, nil)
	}
	if c.Insecure {
		s.log.Warn(credentials.InsecureWarning, "part", "cell server")
	} else if err := s.setUpPKI(c); err != nil {
		return nil, err
	}
	s.natsURL = c.NATSURL
	if s.natsURL == "" {
		if s.natsURL, err = s.embedNATS(c); err != nil {
			return nil, err
		}
		s.closeRevokedOnNATS()
	}
	s.nc, err = nats.Connect(s.natsURL, append(s.natsOptions(), nats.Name("cell-server"), nats.MaxReconnects(-1))...)
	if err != nil {
		return nil, fmt.Errorf("connect to NATS at %s: %w", s.natsURL, err)
	}
	s.hbConn, err = nats.Connect(s.natsURL, append(s.natsOptions(), nats.Name("cell-server-heartbeats"), nats.MaxReconnects(-1),
		// Drops are counted and handled by the liveness check (every
		// machine gets a fresh grace); logging each one would flood the log.
		nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}))...)
	if err != nil {
		return nil, fmt.Errorf("connect to NATS at %s: %w", s.natsURL, err)
	}
	s.liveness, err = cellstate.StartLiveness(s.store, cellstate.LivenessOptions{Conn: s.hbConn, Grace: c.Grace, Metrics: metrics})
	if err != nil {
		return nil, err
	}
	// Task logs travel over the server's NATS connection to each machine's
	// agent (request/reply); the server dials no address a client gave it.
	api := cellstate.NewServer(s.store, cellstate.ServerOptions{Version: buildinfo.Version(), Liveness: s.liveness, NATSURL: s.natsURL, HeartbeatInterval: c.Heartbeat,
		Insecure: c.Insecure, Revocations: s.revoked, Signer: s.signer(), Logs: cellstate.LogOptions{Conn: s.nc}})
	s.grpc = api.GRPCServer(s.grpcCreds()...)
	if s.lis, err = net.Listen("tcp", c.Listen); err != nil {
		return nil, fmt.Errorf("--listen %s: %w", c.Listen, err)
	}
	s.addr = s.lis.Addr().String()
	if c.Cluster.enabled() {
		if c.NATSURL != "" {
			return nil, errors.New("--peers: cluster mode clusters the embedded NATS servers; it cannot use --nats")
		}
		if err := s.startReplication(c); err != nil {
			return nil, err
		}
	}
	go func() { s.errc <- s.grpc.Serve(s.lis) }()
	if c.Metrics != "" {
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{}))
		if err := s.startWebView(mux, api, metrics); err != nil {
			return nil, err
		}
		ml, err := net.Listen("tcp", c.Metrics)
		if err != nil {
			return nil, fmt.Errorf("--metrics %s: %w", c.Metrics, err)
		}
		s.http = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go func() {
			if err := s.http.Serve(ml); !errors.Is(err, http.ErrServerClosed) {
				s.errc <- err
			}
		}()
		s.metrics = ml.Addr().String()
		log.Info("metrics and web view", "metrics", "http://"+s.metrics+"/metrics", "web", s.WebURL())
	}
	log.Info("cell server ready", "grpc", s.addr, "nats", s.natsURL, "data", c.DataDir, "revision", s.store.Revision())
	return s, nil
}

func (s *Server) embedNATS(c Config) (string, error) {
	host, port, err := splitHostPort(c.NATSListen)
	if err != nil {
		return "", fmt.Errorf("--nats-listen: %w", err)
	}
	opts := embeddedNATSOptions(host, port)
	if err := s.secureNATS(opts); err != nil {
		return "", err
	}
	if c.Cluster.enabled() {
		if err := s.clusterNATS(c, opts); err != nil {
			return "", err
		}
	}
	ns, err := server.NewServer(opts)
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

// Wait serves until ctx ends or something fails, then shuts down.
func (s *Server) Wait(ctx context.Context) error {
	var err error
	select {
	case <-ctx.Done():
		s.log.Info("shutting down")
	case err = <-s.errc:
		s.log.Error("server failed", "err", err)
	}
	s.Close()
	return err
}

// Close shuts everything down: watchers first, then gRPC (gracefully, for
// at most 5 s), metrics, liveness, NATS and the store.
func (s *Server) Close() {
	s.closeWebView()
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
	if s.lis != nil {
		// Serve closes it, but a Start that failed before serving
		// (cluster mode: restarting on a fetched snapshot) never served.
		s.lis.Close()
	}
	if s.http != nil {
		s.http.Close()
	}
	if s.repl != nil {
		s.repl.Close()
	}
	if s.liveness != nil {
		s.liveness.Close()
	}
	if s.hbConn != nil {
		s.hbConn.Close()
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

// Addr is the gRPC address the server listens on.
func (s *Server) Addr() string { return s.addr }

// MetricsAddr is the address /metrics is served on ("" when off).
func (s *Server) MetricsAddr() string { return s.metrics }

// NATSURL is the NATS server agents publish to.
func (s *Server) NATSURL() string { return s.natsURL }

// Store is the cell-state store.
func (s *Server) Store() *cellstate.Store { return s.store }

// Registry is the server's Prometheus registry.
func (s *Server) Registry() *prometheus.Registry { return s.reg }

// embeddedNATSOptions configure the embedded NATS server. Core NATS has no
// per-connection publish rate limit (nats-server v2.15 offers payload,
// pending, subscription and connection limits, per server and per
// account/user; rate limits exist only for JetStream consumers' delivery),
// so the limits set here bound what one connection can make the server
// hold, and the cell server protects itself: a dedicated heartbeat
// connection with its own pending limits, decoding that drops unknown
// machines without allocating, and a liveness rule that never marks a
// machine down on silence the server caused (see cellstate.Liveness).
func embeddedNATSOptions(host string, port int) *server.Options {
	return &server.Options{
		Host: host, Port: port, NoSigs: true,
		// Heartbeat batches are at most 1 MB; room for other messages.
		MaxPayload: 8 << 20,
		// Bytes the NATS server buffers for one slow subscriber before it
		// cuts that connection off (it never blocks publishers).
		MaxPending: 64 << 20,
		// An agent needs a handful of subscriptions; this bounds what one
		// connection can register.
		MaxSubs: 65_536,
		// Connections (agents, schedulers' none, tools).
		MaxConn: 65_536,
		// A subscriber that does not read its socket for this long is cut
		// off rather than held.
		WriteDeadline: 10 * time.Second,
	}
}
