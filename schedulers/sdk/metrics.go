package sdk

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
)

// metrics are a scheduler's Prometheus metrics, named after the figures of
// the Omega paper (Schwarzkopf et al., EuroSys 2013, §4): busyness,
// conflict fraction, decision time, job wait time and attempts per job.
// Every metric carries the constant label scheduler=<name>.
type metrics struct {
	busyness         prometheus.Gauge
	busySeconds      prometheus.Counter
	conflictFraction prometheus.Gauge
	decisionSeconds  prometheus.Histogram
	commitSeconds    prometheus.Histogram
	commitsInFlight  prometheus.Gauge
	claims           *prometheus.CounterVec // by outcome: accepted or the conflict reason
	transactions     *prometheus.CounterVec // by result
	preemptions      prometheus.Counter
	jobWait          *prometheus.HistogramVec // by until: first_attempt, placed
	attemptsPerJob   prometheus.Histogram
	unschedulable    prometheus.Counter
	queueJobs        *prometheus.GaugeVec // by state: ready, waiting, parked
	queueTasks       prometheus.Gauge
	viewRevision     prometheus.Gauge
	resnapshots      *prometheus.CounterVec // by reason
	watchRestarts    *prometheus.CounterVec // by reason

	// The window and totals behind the figures reported to the cell;
	// only the scheduling loop touches them.
	window           *window
	transactionCount uint64
	acceptedCount    uint64
	conflictedCount  uint64
}

// Transaction results (label result of transactions_total).
const (
	resultAccepted   = "accepted"   // every claim accepted
	resultPartial    = "partial"    // some accepted, some conflicted
	resultConflicted = "conflicted" // none accepted
	resultFailed     = "failed"     // the Commit call itself failed
)

func newMetrics(reg prometheus.Registerer, name string, start time.Time) (*metrics, error) {
	reg = prometheus.WrapRegistererWith(prometheus.Labels{"scheduler": name}, reg)
	const ns, sub = "omegacell", "scheduler"
	m := &metrics{window: newWindow(start)}
	var err error
	gauge := func(dst *prometheus.Gauge, metric, help string) {
		if err == nil {
			*dst, err = register(reg, prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: metric, Help: help}))
		}
	}
	counter := func(dst *prometheus.Counter, metric, help string) {
		if err == nil {
			*dst, err = register(reg, prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: metric, Help: help}))
		}
	}
	counterVec := func(dst **prometheus.CounterVec, metric, help string, label string) {
		if err == nil {
			*dst, err = register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: metric, Help: help}, []string{label}))
		}
	}
	histogram := func(dst *prometheus.Histogram, metric, help string, buckets []float64) {
		if err == nil {
			*dst, err = register(reg, prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub, Name: metric, Help: help, Buckets: buckets}))
		}
	}
	gauge(&m.busyness, "busyness", "Omega's scheduler busyness: fraction of the last minute spent deciding and committing.")
	counter(&m.busySeconds, "busy_seconds_total", "Seconds spent deciding (in the policy) and committing; its rate is the busyness.")
	gauge(&m.conflictFraction, "conflict_fraction", "Omega's conflict fraction: conflicted claims per accepted claim over the last minute.")
	histogram(&m.decisionSeconds, "decision_seconds", "Time the policy took for one scheduling attempt of one job.",
		prometheus.ExponentialBuckets(10e-6, 4, 11))
	histogram(&m.commitSeconds, "commit_seconds", "Round trip of one Commit call.", prometheus.ExponentialBuckets(100e-6, 4, 9))
	gauge(&m.commitsInFlight, "commits_in_flight",
		"Commit calls sent and not yet counted in claims_total (0 or 1): a placement seen on the watch while this is 0 has been counted.")
	counterVec(&m.claims, "claims_total",
		"Claims committed, by outcome: accepted, or the reason of the conflict (insufficient_cpu, seq_changed, aborted, ...).", "outcome")
	counterVec(&m.transactions, "transactions_total",
		"Transactions committed, by result: accepted (all claims), partial, conflicted (none), failed (the call failed).", "result")
	counter(&m.preemptions, "preemptions_total", "Tasks this scheduler's transactions evicted.")
	if err == nil {
		m.jobWait, err = register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub, Name: "job_wait_seconds",
			Help:    "Omega's job wait time: from submission until the first scheduling attempt (until=first_attempt) and until every task was placed (until=placed).",
			Buckets: prometheus.ExponentialBuckets(1e-3, 4, 10)}, []string{"until"}))
	}
	histogram(&m.attemptsPerJob, "attempts_per_job", "Scheduling attempts a job took until all its tasks were placed.",
		[]float64{1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 64, 128})
	counter(&m.unschedulable, "jobs_unschedulable_total", "Times a job was marked unschedulable and parked (Omega's abandoned jobs).")
	if err == nil {
		m.queueJobs, err = register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "queue_jobs",
			Help: "Jobs with pending tasks, by state: ready (to try now), waiting (backoff or restart delay), parked (unschedulable)."},
			[]string{"state"}))
	}
	gauge(&m.queueTasks, "queue_tasks", "Pending tasks of the scheduler's jobs.")
	gauge(&m.viewRevision, "view_revision", "Cell revision of the scheduler's local copy.")
	counterVec(&m.resnapshots, "snapshots_total",
		"Snapshots read into the local copy, by reason: start, compacted (the watch fell behind the change log), cell-changed (another cell, or a restarted server, answered).", "reason")
	counterVec(&m.watchRestarts, "watch_restarts_total",
		"Watch streams restarted, by reason: unavailable (server gone), silent (no progress), compacted, cell-changed, error.", "reason")
	if err != nil {
		return nil, fmt.Errorf("sdk: metrics of scheduler %q: %w", name, err)
	}
	// Zero series exist from the start, so rates and ratios are defined
	// before the first event.
	for _, r := range []string{resultAccepted, resultPartial, resultConflicted, resultFailed} {
		m.transactions.WithLabelValues(r)
	}
	m.claims.WithLabelValues(outcomeName(cellv1.ClaimOutcome_CLAIM_OUTCOME_ACCEPTED))
	for _, u := range []string{"first_attempt", "placed"} {
		m.jobWait.WithLabelValues(u)
	}
	return m, nil
}

// register registers c, or returns the collector already registered under
// its description: a scheduler run again in the same process (same name,
// same registry) goes on counting where the last run stopped.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	err := reg.Register(c)
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing, nil
		}
	}
	return c, err
}

// outcomeName is a claim outcome as a label value: "accepted",
// "insufficient_cpu", ...
func outcomeName(o cellv1.ClaimOutcome) string {
	return strings.ToLower(strings.TrimPrefix(o.String(), "CLAIM_OUTCOME_"))
}

// busy records time spent on one attempt, ending at end.
func (m *metrics) busy(end time.Time, d time.Duration) {
	m.busySeconds.Add(d.Seconds())
	m.window.addBusy(end, d)
}

// transaction records a commit's outcome.
func (m *metrics) transaction(at time.Time, outcomes []cellv1.ClaimOutcome, preempted int) {
	accepted := 0
	for _, o := range outcomes {
		if o == cellv1.ClaimOutcome_CLAIM_OUTCOME_ACCEPTED {
			accepted++
		}
		m.claims.WithLabelValues(outcomeName(o)).Inc()
	}
	conflicted := len(outcomes) - accepted
	switch {
	case conflicted == 0:
		m.transactions.WithLabelValues(resultAccepted).Inc()
	case accepted == 0:
		m.transactions.WithLabelValues(resultConflicted).Inc()
	default:
		m.transactions.WithLabelValues(resultPartial).Inc()
	}
	m.preemptions.Add(float64(preempted))
	m.window.addClaims(at, accepted, conflicted)
	m.transactionCount++
	m.acceptedCount += uint64(accepted)
	m.conflictedCount += uint64(conflicted)
}

// stats updates the windowed gauges and returns the figures reported to
// the cell at now.
func (m *metrics) stats(now time.Time, queuedJobs, queuedTasks int) *cellv1.SchedulerStats {
	busyness, cf := m.window.figures(now)
	st := &cellv1.SchedulerStats{
		Busyness: busyness, ConflictFraction: cf,
		Transactions: m.transactionCount, ClaimsAccepted: m.acceptedCount, ClaimsConflicted: m.conflictedCount,
		QueuedJobs: uint32(queuedJobs), QueuedTasks: uint32(queuedTasks), ReportTimeUnixNano: now.UnixNano(),
	}
	m.busyness.Set(busyness)
	m.conflictFraction.Set(cf)
	return st
}
