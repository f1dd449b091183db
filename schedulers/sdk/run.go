package sdk

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/omegacell/omegacell/pbconv/apicheck"
	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
	"github.com/omegacell/omegacell/proto/cellclient"
	"github.com/omegacell/omegacell/proto/credentials"
	"github.com/omegacell/omegacell/schedulers/view"
	"github.com/omegacell/omegacell/txn"
)

// maxRecvBytes is the server's own send limit.
const maxRecvBytes = cellclient.MaxMessageBytes

// Run runs one scheduler until ctx ends: it registers cfg.Name with the
// cell, follows the cell into a local copy, and places the pending tasks
// of the jobs that name it with cfg.Policy, committing each decision as an
// optimistic transaction. It returns nil when ctx ends, and an error only
// for a bad Config or a cell that refuses the name; an unreachable or
// restarting server is waited for.
func Run(ctx context.Context, cfg Config) error {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return err
	}
	conn := cfg.Conn
	if conn == nil {
		creds, err := cfg.Credentials.Resolve(cfg.CredentialsDir)
		if err != nil {
			return fmt.Errorf("sdk: Config.Credentials: %w", err)
		}
		creds.Log(cfg.Logger, "scheduler "+cfg.Name)
		if conn, err = Dial(cfg.Server, creds); err != nil {
			return err
		}
		defer conn.Close()
	}
	reg, gatherer := cfg.Registerer, prometheus.Gatherer(nil)
	if reg == nil {
		own := prometheus.NewRegistry()
		own.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
		reg, gatherer = own, own
	} else if g, ok := reg.(prometheus.Gatherer); ok {
		gatherer = g
	}
	s, err := newScheduler(cfg, conn, reg)
	if err != nil {
		return err
	}
	if cfg.MetricsAddr != "" {
		stop, err := serveMetrics(cfg, gatherer)
		if err != nil {
			return err
		}
		defer stop()
	}
	if err := s.register(ctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	events := make(chan event, eventBuffer)
	s.events = events
	f := &follower{state: s.state, events: events, log: s.log, m: s.m, rng: rand.New(rand.NewPCG(cfg.Seed, 0x666f6c6c6f776572))}
	wg.Go(func() { f.run(ctx) })
	wg.Go(func() { s.reportStats(ctx) })
	s.loop(ctx)
	cancel()
	wg.Wait()
	return nil
}

// eventBuffer is how many watch responses may wait for the loop while it
// decides or commits.
const eventBuffer = 1024

// Dial returns a client connection to a cell server (host:port), secured
// as c says, that reconnects soon after a server restart. Connecting is
// lazy.
func Dial(addr string, c credentials.Client) (*grpc.ClientConn, error) {
	if addr == "" {
		return nil, errors.New("sdk: server address is empty (want host:port)")
	}
	transport, err := c.DialOption(addr)
	if err != nil {
		return nil, fmt.Errorf("sdk: %w", err)
	}
	conn, err := grpc.NewClient(addr,
		transport,
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxRecvBytes), grpc.MaxCallSendMsgSize(maxRecvBytes)),
		// gRPC's default first reconnect wait is a second; a scheduler
		// should be back soon after a server restart.
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: reconnectInitial, Multiplier: 1.6, Jitter: 0.2, MaxDelay: reconnectMax},
			MinConnectTimeout: 5 * time.Second,
		}))
	if err != nil {
		return nil, fmt.Errorf("sdk: server %q: %w", addr, err)
	}
	return conn, nil
}

// serveMetrics serves GET /metrics of g on cfg.MetricsAddr until stop.
func serveMetrics(cfg Config, g prometheus.Gatherer) (stop func(), err error) {
	lis, err := net.Listen("tcp", cfg.MetricsAddr)
	if err != nil {
		return nil, fmt.Errorf("sdk: Config.MetricsAddr %s: %w", cfg.MetricsAddr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(lis); !errors.Is(err, http.ErrServerClosed) {
			cfg.Logger.Error("metrics server stopped", "err", err)
		}
	}()
	cfg.Logger.Info("scheduler metrics", "name", cfg.Name, "url", "http://"+lis.Addr().String()+"/metrics")
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		<-done
	}, nil
}

// register announces the scheduler's name, waiting for the server to be
// reachable; a refusal (a bad name) is returned.
func (s *scheduler) register(ctx context.Context) error {
	for n := 1; ; n++ {
		cctx, cancel := context.WithTimeout(ctx, callTimeout)
		_, err := s.schedulers.RegisterScheduler(cctx, &cellv1.RegisterSchedulerRequest{Name: s.cfg.Name})
		cancel()
		switch status.Code(err) {
		case codes.OK:
			return nil
		case codes.Unavailable, codes.DeadlineExceeded, codes.ResourceExhausted, codes.Aborted:
			s.log.Warn("cell server not reachable; retrying registration", "name", s.cfg.Name, "err", err)
		default:
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("sdk: register scheduler %q: %w", s.cfg.Name, err)
		}
		t := time.NewTimer(Backoff{Initial: reconnectInitial, Max: reconnectMax}.wait(n, s.jitter.Float64()))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
	}
}

// reportStats sends the figures the loop prepared to the cell, so
// `cell scheduler list` shows them. A failed report is dropped; the next
// one carries totals.
func (s *scheduler) reportStats(ctx context.Context) {
	for {
		select {
		case st := <-s.statsOut:
			req := &cellv1.ReportSchedulerStatsRequest{Name: s.cfg.Name, Stats: st}
			if err := apicheck.ReportSchedulerStats(req); err != nil {
				s.log.Warn("scheduler stats not reported", "err", err)
				continue
			}
			cctx, cancel := context.WithTimeout(ctx, callTimeout)
			_, err := s.schedulers.ReportSchedulerStats(cctx, req)
			cancel()
			if status.Code(err) == codes.NotFound && ctx.Err() == nil {
				// The cell forgot the registration (it was silent past the
				// cell's scheduler TTL, or the cell was reset): register again.
				s.log.Warn("the cell does not know this scheduler; registering again", "name", s.cfg.Name)
				if err := s.register(ctx); err != nil && ctx.Err() == nil {
					s.log.Error("registering again", "err", err)
				}
				continue
			}
			if err != nil && ctx.Err() == nil {
				s.log.Debug("report scheduler stats", "err", err)
			}
		case <-ctx.Done():
			return
		}
	}
}

// newScheduler builds a scheduler's state; Run starts it.
func newScheduler(cfg Config, conn *grpc.ClientConn, reg prometheus.Registerer) (*scheduler, error) {
	now := cfg.Clock.Now()
	m, err := newMetrics(reg, cfg.Name, now)
	if err != nil {
		return nil, err
	}
	q := newQueue()
	if cfg.fairShare() {
		q = newFairQueue()
	}
	return &scheduler{
		cfg:        cfg,
		log:        cfg.Logger.With("scheduler", cfg.Name),
		clock:      cfg.Clock,
		state:      cellv1.NewStateServiceClient(conn),
		jobsAPI:    cellv1.NewJobServiceClient(conn),
		schedulers: cellv1.NewSchedulerServiceClient(conn),
		view:       view.New(),
		rng:        rand.New(rand.NewPCG(cfg.Seed, 0x706f6c696379)),
		jitter:     rand.New(rand.NewPCG(cfg.Seed, 0x6a6974746572)),
		m:          m,
		q:          q,
		notBefore:  make(map[txn.TaskKey]int64),
		helpful:    make(map[string]struct{}),
		touched:    make(map[string]struct{}),
		statsOut:   make(chan *cellv1.SchedulerStats, 1),
		nextStats:  now,
	}, nil
}
