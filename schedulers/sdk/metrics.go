package sdk

import (
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

func newMetrics(reg prometheus.Registerer, name string, start time.Time) *metrics {
	reg = prometheus.WrapRegistererWith(prometheus.Labels{"scheduler": name}, reg)
	const ns, sub = "omegacell", "scheduler"
	m := &metrics{
		busyness: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "busyness",
			Help: "Omega's scheduler busyness: fraction of the last minute spent deciding and committing."}),
		busySeconds: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "busy_seconds_total",
			Help: "Seconds spent deciding (in the policy) and committing; its rate is the busyness."}),
		conflictFraction: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "conflict_fraction",
			Help: "Omega's conflict fraction: conflicted claims per accepted claim over the last minute."}),
		decisionSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub, Name: "decision_seconds",
			Help:    "Time the policy took for one scheduling attempt of one job.",
			Buckets: prometheus.ExponentialBuckets(10e-6, 4, 11)}),
		commitSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub, Name: "commit_seconds",
			Help:    "Round trip of one Commit call.",
			Buckets: prometheus.ExponentialBuckets(100e-6, 4, 9)}),
		claims: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "claims_total",
			Help: "Claims committed, by outcome: accepted, or the reason of the conflict (insufficient_cpu, seq_changed, aborted, ...)."},
			[]string{"outcome"}),
		transactions: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "transactions_total",
			Help: "Transactions committed, by result: accepted (all claims), partial, conflicted (none), failed (the call failed)."},
			[]string{"result"}),
		preemptions: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "preemptions_total",
			Help: "Tasks this scheduler's transactions evicted."}),
		jobWait: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub, Name: "job_wait_seconds",
			Help:    "Omega's job wait time: from submission until the first scheduling attempt (until=first_attempt) and until every task was placed (until=placed).",
			Buckets: prometheus.ExponentialBuckets(1e-3, 4, 10)}, []string{"until"}),
		attemptsPerJob: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub, Name: "attempts_per_job",
			Help:    "Scheduling attempts a job took until all its tasks were placed.",
			Buckets: []float64{1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 64, 128}}),
		unschedulable: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "jobs_unschedulable_total",
			Help: "Times a job was marked unschedulable and parked (Omega's abandoned jobs)."}),
		queueJobs: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "queue_jobs",
			Help: "Jobs with pending tasks, by state: ready (to try now), waiting (backoff or restart delay), parked (unschedulable)."},
			[]string{"state"}),
		queueTasks: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "queue_tasks",
			Help: "Pending tasks of the scheduler's jobs."}),
		viewRevision: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "view_revision",
			Help: "Cell revision of the scheduler's local copy."}),
		resnapshots: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "snapshots_total",
			Help: "Snapshots read into the local copy, by reason: start, compacted (the watch fell behind the change log)."},
			[]string{"reason"}),
		watchRestarts: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "watch_restarts_total",
			Help: "Watch streams restarted, by reason: unavailable (server gone), silent (no progress), error."},
			[]string{"reason"}),
		window: newWindow(start),
	}
	for _, c := range []prometheus.Collector{m.busyness, m.busySeconds, m.conflictFraction, m.decisionSeconds, m.commitSeconds,
		m.claims, m.transactions, m.preemptions, m.jobWait, m.attemptsPerJob, m.unschedulable, m.queueJobs, m.queueTasks,
		m.viewRevision, m.resnapshots, m.watchRestarts} {
		reg.MustRegister(c)
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
	return m
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
