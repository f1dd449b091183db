package sim

import (
	"cmp"
	"slices"

	"github.com/omegacell/omegacell/schedulers/fair"
	"github.com/omegacell/omegacell/txn"
)

// Tenants (issue 12). When the workload declares tenants, the cell counts
// what each tenant's tasks hold (every change of a task goes through
// cell.PutTask or cell.retireTask), a sample event records each tenant's
// dominant share every Config.SampleSeconds, and with Config.Order drf
// every scheduler's queue is a fair.Queue: band, then weighted DRF across
// tenants, then FIFO by priority within a tenant, exactly the order of the
// production batch and GPU schedulers (schedulers/sdk with package fair).

// tenantBook is the cell's per-tenant usage.
type tenantBook struct {
	names   []string // declared, in workload order
	weights map[string]uint32
	use     map[string]txn.Resources
}

func newTenantBook(ts []Tenant) *tenantBook {
	b := &tenantBook{weights: make(map[string]uint32, len(ts)), use: make(map[string]txn.Resources, len(ts))}
	for _, t := range ts {
		b.names = append(b.names, t.Name)
		b.weights[t.Name] = max(t.Weight, 1)
	}
	return b
}

// change moves a task's hold from old to nt (either may be nil).
func (b *tenantBook) change(tenant string, old, nt *txn.Task) {
	if old != nil && old.State.HoldsResources() {
		b.use[tenant] = b.use[tenant].Sub(old.Resources)
	}
	if nt != nil && nt.State.HoldsResources() {
		b.use[tenant] = b.use[tenant].Add(nt.Resources)
	}
}

// TenantSeries is each tenant's dominant share of the cell over time, and
// Jain's fairness index of the shares divided by the weights.
type TenantSeries struct {
	Times []float64 `json:"times"`
	// Jain[i] is Jain's index at Times[i] over the tenants' dominant
	// shares divided by their weights (1: every tenant holds exactly its
	// weighted share).
	Jain    []float64      `json:"jain"`
	Tenants []TenantResult `json:"tenants"`
}

// TenantResult is one tenant's shares.
type TenantResult struct {
	Name   string `json:"name"`
	Weight uint32 `json:"weight"`
	// Entitlement is the tenant's weight over the sum of the weights: its
	// dominant share under weighted DRF when every tenant saturates the
	// cell on the same dominant resource.
	Entitlement float64 `json:"entitlement"`
	// Shares[i] is the dominant share at Times[i].
	Shares []float64 `json:"shares"`
	// MeanShare is the mean of the samples after the warm-up (the first
	// quarter of the run).
	MeanShare float64 `json:"mean_share"`
}

// sample records every tenant's dominant share now and schedules the next
// sample.
func (s *sim) sample() {
	b, ts := s.cell.tenants, s.tenantSeries
	ts.Times = append(ts.Times, s.now)
	weighted := make([]float64, len(b.names))
	for i, name := range b.names {
		share := fair.DominantShare(b.use[name], s.cell.capacity)
		ts.Tenants[i].Shares = append(ts.Tenants[i].Shares, share)
		weighted[i] = share / float64(b.weights[name])
	}
	ts.Jain = append(ts.Jain, fair.Jain(weighted))
	s.agenda.push(event{at: s.now + s.sampleEvery(), kind: evSample})
}

func (s *sim) sampleEvery() float64 {
	if s.cfg.SampleSeconds > 0 {
		return s.cfg.SampleSeconds
	}
	return s.cfg.Horizon / 240
}

// startTenants sets up the book and the series when the source declares
// tenants.
func (s *sim) startTenants() {
	src, ok := s.src.(interface{ Tenants() []Tenant })
	if !ok || len(src.Tenants()) == 0 {
		return
	}
	s.cell.tenants = newTenantBook(src.Tenants())
	for _, t := range src.Tenants() {
		tt := t.txnTenant()
		s.cell.ledger.SetTenant(tt)
		if s.cell.mirror != nil {
			s.cell.mirror.v.PutTenant(tt)
		}
	}
	s.tenantSeries = &TenantSeries{}
	var sum uint32
	for _, name := range s.cell.tenants.names {
		sum += s.cell.tenants.weights[name]
	}
	for _, name := range s.cell.tenants.names {
		w := s.cell.tenants.weights[name]
		s.tenantSeries.Tenants = append(s.tenantSeries.Tenants, TenantResult{Name: name, Weight: w, Entitlement: float64(w) / float64(sum)})
	}
	s.agenda.push(event{at: 0, kind: evSample})
}

// finishTenants computes the mean shares after the warm-up.
func (s *sim) finishTenants() *TenantSeries {
	ts := s.tenantSeries
	if ts == nil {
		return nil
	}
	from := s.cfg.Horizon / 4
	for i := range ts.Tenants {
		var sum float64
		n := 0
		for k, at := range ts.Times {
			if at >= from {
				sum += ts.Tenants[i].Shares[k]
				n++
			}
		}
		if n > 0 {
			ts.Tenants[i].MeanShare = sum / float64(n)
		}
	}
	return ts
}

// jainMean is the mean Jain index after the warm-up (1 without tenants).
func jainMean(r *Result) float64 {
	ts := r.TenantSeries
	if ts == nil {
		return 0
	}
	from := r.HorizonSeconds / 4
	var sum float64
	n := 0
	for k, at := range ts.Times {
		if at >= from {
			sum += ts.Jain[k]
			n++
		}
	}
	if n == 0 {
		return 0
	}
	return sum / float64(n)
}

// shareGap is the largest distance between a tenant's mean dominant share
// and its entitlement.
func shareGap(r *Result) float64 {
	if r.TenantSeries == nil {
		return 0
	}
	var gap float64
	for _, t := range r.TenantSeries.Tenants {
		gap = max(gap, abs(t.MeanShare-t.Entitlement))
	}
	return gap
}

func abs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}

// fairLess is the within-tenant order of the sim's DRF queue: higher
// priority, then earlier submission, then id.
func fairLess(a, b *job) bool {
	return cmp.Or(cmp.Compare(b.spec.Priority, a.spec.Priority), cmp.Compare(a.submitted, b.submitted), cmp.Compare(a.spec.ID, b.spec.ID)) < 0
}

// syncFair feeds a DRF queue the book's usage and the cell's capacity;
// with few tenants, all of them on every pop.
func (q *jobQueue) syncFair(b *tenantBook, capacity txn.Resources) {
	q.fair.SetCapacity(capacity)
	for _, name := range b.names {
		q.fair.SetUsage(name, b.use[name])
		if held := q.held[name]; len(held) > 0 && !q.atQuota(held[0]) {
			for _, j := range held {
				q.fair.Push(name, j.spec.Priority, j)
			}
			delete(q.held, name)
		}
	}
}

// atQuota reports whether one more task of j would take its tenant past
// its band's quota plus borrow limit (the ledger's use now; txn.Validate
// makes the real check at commit).
func (q *jobQueue) atQuota(j *job) bool {
	l := q.cell.ledger
	b := txn.BandOf(j.spec.Priority)
	quota := l.Quota(j.spec.Tenant, b)
	if quota == nil {
		return false
	}
	limit := quota.Nominal
	if b == txn.BandBatch {
		limit = limit.Add(quota.BorrowLimit)
	}
	after := l.Use(j.spec.Tenant, b).InUse.Add(j.spec.resources(0))
	after.DiskBytes, limit.DiskBytes = 0, 0
	return !after.LessOrEqual(limit)
}

// newFairQueue returns a DRF queue weighted as the book says.
func newFairQueue(b *tenantBook) *fair.Queue[*job] {
	q := fair.NewQueue(fairLess)
	for _, name := range slices.Sorted(func(yield func(string) bool) {
		for _, n := range b.names {
			if !yield(n) {
				return
			}
		}
	}) {
		q.SetWeight(name, b.weights[name])
	}
	return q
}
