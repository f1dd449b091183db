package cellstate

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/omegacell/omegacell/txn"
)

// Per-tenant metrics (issue 12). Quota, use, borrowed, pending, queued and
// dominant share are read from the state's ledger at scrape time (one read
// lock per scrape, nothing on the commit path); preemptions caused and
// suffered are counted as the store applies them.

var (
	tenantResources = [...]struct {
		name string
		get  func(txn.Resources) int64
	}{
		{"cpu_millicores", func(r txn.Resources) int64 { return r.CPUMilli }},
		{"memory_bytes", func(r txn.Resources) int64 { return r.MemoryBytes }},
		{"gpu_milli", func(r txn.Resources) int64 { return r.GPUMilli }},
	}
	descQuota = prometheus.NewDesc("omegacell_tenant_quota",
		"A tenant's nominal quota in a band (production: guaranteed), by resource; absent without a quota.", []string{"tenant", "band", "resource"}, nil)
	descBorrowLimit = prometheus.NewDesc("omegacell_tenant_borrow_limit",
		"How far above its nominal batch quota a tenant may borrow idle capacity, by resource.", []string{"tenant", "band", "resource"}, nil)
	descInUse = prometheus.NewDesc("omegacell_tenant_in_use",
		"Resources held by a tenant's assigned and running tasks in a band.", []string{"tenant", "band", "resource"}, nil)
	descBorrowed = prometheus.NewDesc("omegacell_tenant_borrowed",
		"The part of a tenant's in-use above its nominal quota in a band.", []string{"tenant", "band", "resource"}, nil)
	descPending = prometheus.NewDesc("omegacell_tenant_pending_tasks",
		"A tenant's pending tasks in a band.", []string{"tenant", "band"}, nil)
	descQueued = prometheus.NewDesc("omegacell_tenant_queued_jobs",
		"A tenant's jobs queued for quota in a band.", []string{"tenant", "band"}, nil)
	descShare = prometheus.NewDesc("omegacell_tenant_dominant_share",
		"The largest fraction of the cell's capacity (machines not down) a tenant's in-use takes of CPU, memory or GPU, per band.", []string{"tenant", "band"}, nil)
	descWeight = prometheus.NewDesc("omegacell_tenant_weight",
		"A tenant's weight for weighted fair share.", []string{"tenant"}, nil)
	descOvercommit = prometheus.NewDesc("omegacell_production_quota_overcommit",
		"By how much the tenants' production quotas exceed the cell's capacity (0: the guarantees can be kept), by resource.", []string{"resource"}, nil)
)

// tenantCollector reports the ledger of the store it is attached to.
type tenantCollector struct {
	store atomic.Pointer[Store]
}

func (c *tenantCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descQuota, descBorrowLimit, descInUse, descBorrowed, descPending, descQueued, descShare, descWeight, descOvercommit} {
		ch <- d
	}
}

func (c *tenantCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.store.Load()
	if s == nil {
		return
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	st := s.st
	l := st.ledger
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	perResource := func(d *prometheus.Desc, r txn.Resources, tenant, band string) {
		for _, k := range tenantResources {
			gauge(d, float64(k.get(r)), tenant, band, k.name)
		}
	}
	over := l.ProductionOvercommit()
	for _, k := range tenantResources {
		gauge(descOvercommit, float64(k.get(over)), k.name)
	}
	capacity := l.Capacity()
	l.Tenants(func(t txn.Tenant, _ bool) {
		gauge(descWeight, float64(max(t.Weight, 1)), t.Name)
		for b := txn.BandBestEffort; b < txn.NumBands; b++ {
			band := b.String()
			u := l.Use(t.Name, b)
			perResource(descInUse, u.InUse, t.Name, band)
			gauge(descPending, float64(u.Pending), t.Name, band)
			gauge(descQueued, float64(len(st.queue(tenantBand{t.Name, b}).jobs)), t.Name, band)
			gauge(descShare, txn.DominantShare(u.InUse, capacity), t.Name, band)
			if q := t.Quota[b]; q != nil {
				perResource(descQuota, q.Nominal, t.Name, band)
				perResource(descBorrowed, l.Borrowed(t.Name, b), t.Name, band)
				if b == txn.BandBatch {
					perResource(descBorrowLimit, q.BorrowLimit, t.Name, band)
				}
			}
		}
	})
}

// newTenantMetrics creates the collector and the preemption counters.
func newTenantMetrics() (*tenantCollector, *prometheus.CounterVec, *prometheus.CounterVec) {
	caused := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "omegacell_tenant_preemptions_caused_total",
		Help: "Tasks preempted for a tenant's claims (the tenant of the highest-priority accepted claim on the victim's machine).",
	}, []string{"tenant"})
	suffered := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "omegacell_tenant_preemptions_suffered_total",
		Help: "A tenant's tasks preempted.",
	}, []string{"tenant"})
	return &tenantCollector{}, caused, suffered
}

// preemption is one applied preemption: who caused it, who suffered it.
type preemption struct{ caused, suffered string }

// preemptionsOf attributes a decision's victims, before it is applied:
// each to the tenant of the highest-priority accepted claim on the
// victim's machine.
func (s *state) preemptionsOf(tx *txn.Transaction, d *txn.Decision) []preemption {
	if len(d.Preempted) == 0 {
		return nil
	}
	type best struct {
		prio   int32
		tenant string
	}
	by := make(map[string]best)
	for i, r := range d.Results {
		if r.Reason != txn.ReasonOK {
			continue
		}
		c := &tx.Claims[i]
		t := s.Task(c.Task)
		if b, ok := by[c.Machine]; !ok || t.Priority > b.prio {
			by[c.Machine] = best{t.Priority, t.Tenant}
		}
	}
	out := make([]preemption, 0, len(d.Preempted))
	for _, k := range d.Preempted {
		v := s.Task(k)
		out = append(out, preemption{caused: by[v.Machine].tenant, suffered: v.Tenant})
	}
	return out
}

func (m *Metrics) observePreemptions(ps []preemption) {
	if m == nil {
		return
	}
	for _, p := range ps {
		m.preemptCaused.WithLabelValues(p.caused).Inc()
		m.preemptSuffered.WithLabelValues(p.suffered).Inc()
	}
}

// attach lets the metrics read the store's ledger.
func (m *Metrics) attach(s *Store) {
	if m != nil {
		m.tenants.store.Store(s)
	}
}
