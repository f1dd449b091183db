package agent

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// fleetCounters count what the reconcile loop did; read by /metrics.
type fleetCounters struct {
	starts         atomic.Int64
	startFailures  atomic.Int64
	stops          atomic.Int64
	reportsApplied atomic.Int64
	reportsRefused atomic.Int64
	reportErrors   atomic.Int64
	// attemptDirsRemoved counts finished attempts' directories removed.
	attemptDirsRemoved atomic.Int64
}

// serveMetrics serves the agent's Prometheus metrics on listen and returns
// the address it listens on.
func serveMetrics(listen string, f *fleet, d *driver) (string, func(), error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	gauge := func(name, help string, v func() float64) {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "omegacell_agent_" + name, Help: help}, v))
	}
	counter := func(name, help string, v func() float64) {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "omegacell_agent_" + name, Help: help}, v))
	}
	load := func(c *atomic.Int64) func() float64 { return func() float64 { return float64(c.Load()) } }
	machines := len(f.order)
	gauge("machines", "Machines this agent speaks for (1, or the simulated fleet's size).", func() float64 { return float64(machines) })
	gauge("tasks_running", "Task attempts running now, including those being stopped.", func() float64 { return float64(f.runningCount()) })
	counter("task_starts_total", "Task attempts started.", load(&f.counters.starts))
	counter("task_start_failures_total", "Task attempts that could not start.", load(&f.counters.startFailures))
	counter("task_stops_total", "Task attempts stopped because the server moved them on (or at shutdown).", load(&f.counters.stops))
	counter("task_reports_applied_total", "Task state updates the server applied.", load(&f.counters.reportsApplied))
	counter("task_reports_refused_total", "Task state updates the server refused (stale attempt, task moved).", load(&f.counters.reportsRefused))
	counter("task_report_errors_total", "Task state updates that failed to reach the server (retried).", load(&f.counters.reportErrors))
	counter("attempt_dirs_removed_total", "Directories (and logs) of finished attempts removed by the garbage collector.", load(&f.counters.attemptDirsRemoved))
	counter("heartbeats_total", "Machine heartbeats published over NATS.", load(&d.hb.heartbeats))
	counter("heartbeat_messages_total", "NATS messages (heartbeat batches) published.", load(&d.hb.batches))
	counter("heartbeat_bytes_total", "Bytes of heartbeat batches published.", load(&d.hb.bytes))
	counter("server_syncs_total", "Times the agent read its view from the server (start, server restarts).", func() float64 { return float64(d.sessions.Load()) })

	lis, err := net.Listen("tcp", listen)
	if err != nil {
		return "", nil, fmt.Errorf("metrics listen address %q: %w", listen, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(lis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			f.log.Warn("metrics server stopped", "err", err)
		}
	}()
	return lis.Addr().String(), func() { _ = srv.Close() }, nil
}
