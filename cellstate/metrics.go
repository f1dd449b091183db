package cellstate

import (
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/omegacell/omegacell/txn"
)

// Metrics are the store's Prometheus metrics. A nil *Metrics records
// nothing.
type Metrics struct {
	pebble            *pebbleMemory
	commitLatency     *prometheus.HistogramVec
	transactions      *prometheus.CounterVec
	claims            *prometheus.CounterVec
	roundOps          prometheus.Histogram
	roundRevs         prometheus.Histogram
	roundDuration     prometheus.Histogram
	revision          prometheus.Gauge
	machines          *prometheus.GaugeVec
	heartbeats        prometheus.Counter
	badMessages       prometheus.Counter
	usageCPU          *prometheus.GaugeVec
	usageMem          *prometheus.GaugeVec
	reservedCPU       *prometheus.GaugeVec
	reservedMem       *prometheus.GaugeVec
	checkpoints       prometheus.Counter
	ckptObjects       prometheus.Counter
	unknownHeartbeats prometheus.Counter
	droppedHeartbeats prometheus.Counter
	gcJobs            prometheus.Counter
	gcTasks           prometheus.Counter
	gcReleases        prometheus.Counter
	authDenied        *prometheus.CounterVec // see authorize.go
	// Per tenant (tenant_metrics.go).
	tenants         *tenantCollector
	preemptCaused   *prometheus.CounterVec
	preemptSuffered *prometheus.CounterVec
}

// NewMetrics creates the metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		commitLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "omegacell_store_commit_latency_seconds",
			Help:    "Time from an operation being queued to it being durable and answered, by operation.",
			Buckets: prometheus.ExponentialBuckets(50e-6, 2, 18),
		}, []string{"op"}),
		transactions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "omegacell_store_transactions_total",
			Help: "Committed scheduler transactions by result: accepted (all claims), partial, conflicted (none accepted), rejected (error).",
		}, []string{"scheduler", "result"}),
		claims: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "omegacell_store_claims_total",
			Help: "Claims by scheduler and outcome (accepted or the conflict reason).",
		}, []string{"scheduler", "outcome"}),
		roundOps: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "omegacell_store_group_commit_operations",
			Help:    "Operations per group commit (one synced Pebble batch).",
			Buckets: prometheus.ExponentialBuckets(1, 2, 12),
		}),
		roundRevs: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "omegacell_store_group_commit_revisions",
			Help:    "Revisions written per group commit.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 12),
		}),
		roundDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "omegacell_store_group_commit_seconds",
			Help:    "Duration of one group commit: validation, encoding and the synced write.",
			Buckets: prometheus.ExponentialBuckets(50e-6, 2, 18),
		}),
		revision: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "omegacell_store_revision",
			Help: "Current durable revision of the cell.",
		}),
		machines: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "omegacell_machines",
			Help: "Machines by state.",
		}, []string{"state"}),
		heartbeats: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "omegacell_heartbeats_total",
			Help: "Machine heartbeats received over NATS.",
		}),
		badMessages: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "omegacell_nats_bad_messages_total",
			Help: "Heartbeats (or whole NATS messages) refused as malformed.",
		}),
		usageCPU: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "omegacell_machine_used_cpu_millicores",
			Help: "CPU used on a machine, as last sampled by its agent.",
		}, []string{"machine"}),
		usageMem: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "omegacell_machine_used_memory_bytes",
			Help: "Memory used on a machine, as last sampled by its agent.",
		}, []string{"machine"}),
		reservedCPU: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "omegacell_machine_reserved_cpu_millicores",
			Help: "CPU reserved by tasks on a machine.",
		}, []string{"machine"}),
		reservedMem: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "omegacell_machine_reserved_memory_bytes",
			Help: "Memory reserved by tasks on a machine.",
		}, []string{"machine"}),
		checkpoints: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "omegacell_store_checkpoints_total",
			Help: "Checkpoints of the current objects written to Pebble.",
		}),
		ckptObjects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "omegacell_store_checkpoint_objects_total",
			Help: "Objects written by checkpoints.",
		}),
		authDenied: newAuthDenied(),
	}
	m.gcJobs = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "omegacell_store_deleted_jobs_total",
		Help: "Finished jobs deleted after their retention.",
	})
	m.gcTasks = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "omegacell_store_deleted_tasks_total",
		Help: "Tasks deleted with their finished jobs.",
	})
	m.gcReleases = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "omegacell_store_memory_releases_total",
		Help: "Times the store gave memory back to the OS after deleting at least 100,000 tasks since the last time.",
	})
	m.unknownHeartbeats = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "omegacell_heartbeats_unknown_machine_total",
		Help: "Heartbeats naming a machine that is not registered, dropped.",
	})
	m.droppedHeartbeats = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "omegacell_heartbeats_dropped_messages_total",
		Help: "Heartbeat messages NATS dropped because the server's subscription fell behind (a flood); machines got a fresh grace.",
	})
	reg.MustRegister(m.authDenied, m.unknownHeartbeats, m.droppedHeartbeats, m.gcJobs, m.gcTasks, m.gcReleases, m.checkpoints, m.ckptObjects, m.commitLatency, m.transactions, m.claims, m.roundOps, m.roundRevs, m.roundDuration,
		m.revision, m.machines, m.heartbeats, m.badMessages, m.usageCPU, m.usageMem, m.reservedCPU, m.reservedMem,
		liveHeapGauge())
	m.pebble = newPebbleMemory()
	reg.MustRegister(m.pebble)
	m.tenants, m.preemptCaused, m.preemptSuffered = newTenantMetrics()
	reg.MustRegister(m.tenants, m.preemptCaused, m.preemptSuffered)
	return m
}

func (m *Metrics) setRevision(rev uint64) {
	if m != nil {
		m.revision.Set(float64(rev))
	}
}

func opName(op operation) string {
	switch op.(type) {
	case *commitOp:
		return "commit"
	case *submitOp:
		return "submit_job"
	case *stopOp:
		return "stop_job"
	case agentUpdatesOp:
		return "task_updates"
	case registerMachineOp:
		return "register_machine"
	case drainOp:
		return "drain_machine"
	case drainStepOp:
		return "drain_step"
	case markDownOp:
		return "mark_down"
	case markUpOp:
		return "mark_up"
	case setJobStatusOp:
		return "job_status"
	case registerSchedulerOp:
		return "register_scheduler"
	case reapOp:
		return "kill_tasks_of_finished_jobs"
	case gcJobsOp:
		return "delete_finished_jobs"
	case expireSchedulersOp:
		return "expire_schedulers"
	case setTenantOp:
		return "set_tenant"
	}
	return "other"
}

func (m *Metrics) observeOp(r *request, done time.Time) {
	if m == nil {
		return
	}
	m.commitLatency.WithLabelValues(opName(r.op)).Observe(done.Sub(r.queued).Seconds())
	c, ok := r.op.(*commitOp)
	if !ok {
		return
	}
	sched := c.tx.Scheduler
	if r.err != nil {
		m.transactions.WithLabelValues(sched, "rejected").Inc()
		return
	}
	d := r.result.(*CommitResult).Decision
	m.observePreemptions(r.result.(*CommitResult).preemptions)
	switch {
	case d.Accepted == len(d.Results):
		m.transactions.WithLabelValues(sched, "accepted").Inc()
	case d.Accepted == 0:
		m.transactions.WithLabelValues(sched, "conflicted").Inc()
	default:
		m.transactions.WithLabelValues(sched, "partial").Inc()
	}
	var counts [32]int
	for _, res := range d.Results {
		counts[res.Reason]++
	}
	for reason, n := range counts {
		if n > 0 {
			m.claims.WithLabelValues(sched, txn.Reason(reason).String()).Add(float64(n))
		}
	}
}

func (m *Metrics) observeRound(ops, revs int, d time.Duration, rev uint64) {
	if m == nil {
		return
	}
	m.roundOps.Observe(float64(ops))
	if revs > 0 {
		m.roundRevs.Observe(float64(revs))
		m.roundDuration.Observe(d.Seconds())
	}
	m.revision.Set(float64(rev))
}

func (m *Metrics) checkpoint(objects int) {
	if m != nil {
		m.checkpoints.Inc()
		m.ckptObjects.Add(float64(objects))
	}
}

func (m *Metrics) gcDeleted(jobs, tasks int) {
	if m != nil {
		m.gcJobs.Add(float64(jobs))
		m.gcTasks.Add(float64(tasks))
	}
}

func (m *Metrics) gcReleased() {
	if m != nil {
		m.gcReleases.Inc()
	}
}

func (m *Metrics) attachPebble(db *pebble.DB) {
	if m != nil {
		m.pebble.attach(db)
	}
}

func (m *Metrics) detachPebble(db *pebble.DB) {
	if m != nil {
		m.pebble.detach(db)
	}
}
