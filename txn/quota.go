package txn

import (
	"fmt"
	"slices"
	"strings"
)

// Tenancy: quotas per tenant and band, enforced by [Validate] (see the
// package doc, "Quota").

// NumBands is the number of priority bands.
const NumBands = 3

// Quota is a tenant's quota in one band. DiskBytes of its amounts is not
// under quota and ignored.
type Quota struct {
	// Nominal is guaranteed (production) or nominal (batch).
	Nominal Resources
	// BorrowLimit (batch only) is how far above Nominal the tenant may go
	// by borrowing idle capacity.
	BorrowLimit Resources
	// MaxPending caps the tenant's pending and queued tasks in the band
	// (0: no per-tenant cap). Admission's business, not Validate's.
	MaxPending uint32
}

// Tenant is what an admin decided about a tenant.
type Tenant struct {
	Name string
	// Weight for weighted DRF; 0 counts as 1.
	Weight  uint32
	MaxBand Band
	// Quota per band; nil: the band is not limited. Best-effort never has
	// one (ignored if set).
	Quota [NumBands]*Quota
}

// BandUse is a tenant's use of one band.
type BandUse struct {
	// InUse is held by assigned and running tasks: what Validate checks.
	InUse Resources
	// Admitted is requested by live tasks (pending, assigned, running):
	// what admission checks.
	Admitted Resources
	// Pending counts pending tasks.
	Pending uint32
}

// Ledger is the quota state of a cell: each tenant's quotas and use per
// band, the capacity of the cell (machines not down) and the capacity
// reserved by quotas. The store and the simulator keep one in their
// State, feeding it every task and machine version they install
// ([Ledger.AccountTask], [Ledger.AccountMachine]); schedulers may keep one
// in their copy the same way. A State offers it to [Validate] by
// implementing [QuotaState]. Not safe for concurrent mutation.
type Ledger struct {
	tenants map[string]*tenantEntry
	// quotas counts the tenant bands with a quota: without any, Validate
	// has nothing to check (and skips the overlay).
	quotas   int
	capacity Resources
	// reserved is, per kind, the sum over tenants and the production and
	// batch bands of max(nominal, in use) where the band has a quota and
	// in use where it has none (see the package doc, "idle").
	reserved Resources
}

type tenantEntry struct {
	cfg     Tenant
	created bool // SetTenant was called (not only seen through tasks)
	use     [NumBands]BandUse
}

// NewLedger returns an empty ledger.
func NewLedger() *Ledger { return &Ledger{tenants: make(map[string]*tenantEntry)} }

func (l *Ledger) entry(name string) *tenantEntry {
	e := l.tenants[name]
	if e == nil {
		e = &tenantEntry{cfg: Tenant{Name: name, Weight: 1, MaxBand: BandBatch}}
		l.tenants[name] = e
	}
	return e
}

// SetTenant installs a tenant's configuration, keeping its use.
func (l *Ledger) SetTenant(t Tenant) {
	e := l.entry(t.Name)
	for b := BandBatch; b < NumBands; b++ {
		l.reserved = l.reserved.Sub(e.reservedBy(b))
		if e.cfg.Quota[b] != nil {
			l.quotas--
		}
	}
	t.Quota[BandBestEffort] = nil
	e.cfg, e.created = t, true
	for b := BandBatch; b < NumBands; b++ {
		l.reserved = l.reserved.Add(e.reservedBy(b))
		if t.Quota[b] != nil {
			l.quotas++
		}
	}
}

// Tenant returns a tenant's configuration and whether it was set; a
// tenant never set has the defaults (weight 1, max band batch, no quota).
func (l *Ledger) Tenant(name string) (Tenant, bool) {
	if e := l.tenants[name]; e != nil {
		return e.cfg, e.created
	}
	return Tenant{Name: name, Weight: 1, MaxBand: BandBatch}, false
}

// Quota returns a tenant's quota in a band, nil if it has none.
func (l *Ledger) Quota(name string, b Band) *Quota {
	if e := l.tenants[name]; e != nil && b != BandBestEffort {
		return e.cfg.Quota[b]
	}
	return nil
}

// Use returns a tenant's use of a band.
func (l *Ledger) Use(name string, b Band) BandUse {
	if e := l.tenants[name]; e != nil {
		return e.use[b]
	}
	return BandUse{}
}

// Tenants calls f for every tenant the ledger knows (set or seen through
// tasks), in no order.
func (l *Ledger) Tenants(f func(t Tenant, created bool)) {
	for _, e := range l.tenants {
		f(e.cfg, e.created)
	}
}

// HasQuotas reports whether any tenant has a quota.
func (l *Ledger) HasQuotas() bool { return l.quotas > 0 }

// Capacity is the capacity of the cell's machines that are not down.
func (l *Ledger) Capacity() Resources { return l.capacity }

// Idle is the capacity neither held by production or batch tasks nor
// reserved by the unused part of a quota (see the package doc); negative
// amounts count as none.
func (l *Ledger) Idle() Resources { return floor0(l.capacity.Sub(l.reserved)) }

// Borrowed is the part of a tenant's in-use above its nominal quota in a
// band (zero without a quota).
func (l *Ledger) Borrowed(name string, b Band) Resources {
	q := l.Quota(name, b)
	if q == nil {
		return Resources{}
	}
	return floor0(l.Use(name, b).InUse.Sub(q.Nominal))
}

// DominantShare is the largest fraction of the cell's capacity that a
// tenant's in-use of a band takes, over CPU, memory and GPU (Ghodsi et
// al., NSDI 2011); 0 on an empty cell.
func DominantShare(inUse, capacity Resources) float64 {
	var s float64
	for _, k := range [...][2]int64{
		{inUse.CPUMilli, capacity.CPUMilli}, {inUse.MemoryBytes, capacity.MemoryBytes}, {inUse.GPUMilli, capacity.GPUMilli},
	} {
		if k[1] > 0 {
			s = max(s, float64(k[0])/float64(k[1]))
		}
	}
	return s
}

// ProductionOvercommit is by how much, per kind, the production quotas
// of all tenants exceed the cell's capacity (zero when they fit): a
// guarantee the cell cannot keep.
func (l *Ledger) ProductionOvercommit() Resources {
	var sum Resources
	for _, e := range l.tenants {
		if q := e.cfg.Quota[BandProduction]; q != nil {
			sum = sum.Add(q.Nominal)
		}
	}
	sum.DiskBytes = 0
	return floor0(sum.Sub(l.capacity))
}

// AccountTask moves a task's use from its old version to its new one;
// either may be nil (a new task, a deleted one).
func (l *Ledger) AccountTask(old, nt *Task) {
	if old != nil {
		l.account(old, -1)
	}
	if nt != nil {
		l.account(nt, 1)
	}
}

func (l *Ledger) account(t *Task, sign int64) {
	live := t.State == TaskPending || t.State.HoldsResources()
	if !live {
		return
	}
	e := l.entry(t.Tenant)
	b := BandOf(t.Priority)
	u := &e.use[b]
	r := quotaKinds(t.Resources)
	if sign < 0 {
		r = Resources{}.Sub(r)
	}
	u.Admitted = u.Admitted.Add(r)
	if t.State == TaskPending {
		if sign > 0 {
			u.Pending++
		} else {
			u.Pending--
		}
		return
	}
	l.addInUse(e, b, r)
}

// addInUse changes a band's in-use and keeps reserved right.
func (l *Ledger) addInUse(e *tenantEntry, b Band, r Resources) {
	if b == BandBestEffort {
		e.use[b].InUse = e.use[b].InUse.Add(r)
		return
	}
	before := e.reservedBy(b)
	e.use[b].InUse = e.use[b].InUse.Add(r)
	l.reserved = l.reserved.Add(e.reservedBy(b).Sub(before))
}

// reservedBy is what band b of a tenant takes of the cell for borrowing:
// max(nominal, in use) per kind with a quota, in use without.
func (e *tenantEntry) reservedBy(b Band) Resources {
	u := e.use[b].InUse
	if q := e.cfg.Quota[b]; q != nil {
		return maxRes(q.Nominal, u)
	}
	return u
}

// AccountMachine moves a machine's capacity from its old version to its
// new one; either may be nil. Machines that are down add nothing.
func (l *Ledger) AccountMachine(old, nm *Machine) {
	if old != nil && old.State != MachineDown {
		l.capacity = l.capacity.Sub(quotaKinds(old.Capacity))
	}
	if nm != nil && nm.State != MachineDown {
		l.capacity = l.capacity.Add(quotaKinds(nm.Capacity))
	}
}

// Admission is the outcome of [Ledger.Admit].
type Admission uint8

const (
	// Admit: the job fits the tenant's headroom now.
	Admit Admission = 1
	// Queue: the job fits the quota but not the headroom now.
	Queue Admission = 2
	// Never: the job does not fit the quota (plus borrow limit) even with
	// nothing else of the tenant running.
	Never Admission = 3
)

// Admit decides whether a job of the tenant, band and total request
// (all its tasks) is admitted now, queued, or can never be. Admission
// counts what the tenant's live tasks request (BandUse.Admitted), so an
// admitted job's pending tasks keep their room; a batch job may be
// admitted into the borrow limit when idle capacity covers the excess.
// The reason names the quota, e.g. "tenant ml: batch GPU quota 64000m,
// admitted 64000m, job needs 8000m".
func (l *Ledger) Admit(tenant string, b Band, need Resources) (Admission, string) {
	q := l.Quota(tenant, b)
	if q == nil {
		return Admit, ""
	}
	need = quotaKinds(need)
	limit := q.Nominal
	if b == BandBatch {
		limit = limit.Add(q.BorrowLimit)
	}
	if k, ok := exceeds(need, limit); ok {
		return Never, fmt.Sprintf("tenant %s: %s %s quota %s%s, job needs %s", tenant, b, k.name, k.fmt(q.Nominal), borrowNote(b, q, k), k.fmt(need))
	}
	admitted := l.Use(tenant, b).Admitted
	after := admitted.Add(need)
	if _, over := exceeds(after, q.Nominal); !over {
		return Admit, ""
	}
	k, over := exceeds(after, limit)
	if !over && b == BandBatch {
		// Borrowing: the excess over nominal must be idle now.
		extra := floor0(after.Sub(q.Nominal)).Sub(floor0(admitted.Sub(q.Nominal)))
		if kk, short := exceeds(extra, l.Idle()); short {
			return Queue, fmt.Sprintf("tenant %s: batch %s quota %s, admitted %s, job needs %s, idle to borrow %s", tenant, kk.name, kk.fmt(q.Nominal), kk.fmt(admitted), kk.fmt(need), kk.fmt(l.Idle()))
		}
		return Admit, ""
	}
	if !over {
		k, _ = exceeds(after, q.Nominal)
	}
	return Queue, fmt.Sprintf("tenant %s: %s %s quota %s%s, admitted %s, job needs %s", tenant, b, k.name, k.fmt(q.Nominal), borrowNote(b, q, k), k.fmt(admitted), k.fmt(need))
}

func borrowNote(b Band, q *Quota, k kind) string {
	if b != BandBatch || k.get(q.BorrowLimit) == 0 {
		return ""
	}
	return " (+" + k.fmt(q.BorrowLimit) + " borrowable)"
}

// kind is one resource kind under quota.
type kind struct {
	name string
	get  func(Resources) int64
	unit string
}

func (k kind) fmt(r Resources) string {
	v := k.get(r)
	if k.unit == "bytes" {
		switch {
		case v != 0 && v%(1<<30) == 0:
			return fmt.Sprintf("%dGi", v>>30)
		case v != 0 && v%(1<<20) == 0:
			return fmt.Sprintf("%dMi", v>>20)
		}
		return fmt.Sprintf("%d bytes", v)
	}
	return fmt.Sprintf("%d%s", v, k.unit)
}

var quotaKindList = [...]kind{
	{"CPU", func(r Resources) int64 { return r.CPUMilli }, "m"},
	{"memory", func(r Resources) int64 { return r.MemoryBytes }, "bytes"},
	{"GPU", func(r Resources) int64 { return r.GPUMilli }, "m"},
}

// exceeds returns the first kind under quota where a exceeds b.
func exceeds(a, b Resources) (kind, bool) {
	switch {
	case a.CPUMilli > b.CPUMilli:
		return quotaKindList[0], true
	case a.MemoryBytes > b.MemoryBytes:
		return quotaKindList[1], true
	case a.GPUMilli > b.GPUMilli:
		return quotaKindList[2], true
	}
	return kind{}, false
}

func quotaKinds(r Resources) Resources { r.DiskBytes = 0; return r }

func floor0(r Resources) Resources {
	return Resources{max(r.CPUMilli, 0), max(r.MemoryBytes, 0), max(r.DiskBytes, 0), max(r.GPUMilli, 0)}
}

func maxRes(a, b Resources) Resources {
	return Resources{max(a.CPUMilli, b.CPUMilli), max(a.MemoryBytes, b.MemoryBytes), max(a.DiskBytes, b.DiskBytes), max(a.GPUMilli, b.GPUMilli)}
}

// QuotaState is a State that keeps a [Ledger]; [Validate] enforces quotas
// only against such a State (a State without one, or with a nil Ledger,
// has no quotas).
type QuotaState interface {
	State
	Ledger() *Ledger
}

// ---------------------------------------------------------------- Validate

// quotaOverlay is a transaction's private change to the ledger: what its
// victims gave back and its claims took, per tenant and band. Each
// tenant and band the transaction touches is looked up in the ledger
// once (ovEntry); the claims of a tenant then cost no map lookup beyond
// the entry's.
type quotaOverlay struct {
	l        *Ledger
	m        map[tenantBand]*ovEntry
	last     *ovEntry // the entry of the previous lookup (claims come in runs of one job)
	lastKey  tenantBand
	reserved Resources // change to l.reserved
}

type tenantBand struct {
	tenant string
	band   Band
}

// ovEntry is one tenant and band on the overlay.
type ovEntry struct {
	q     *Quota    // nil: not limited
	inUse Resources // the ledger's in-use plus the transaction's changes
}

func (o *quotaOverlay) entry(tenant string, b Band) *ovEntry {
	k := tenantBand{tenant, b}
	if o.last != nil && o.lastKey == k {
		return o.last
	}
	e := o.m[k]
	if e == nil {
		e = &ovEntry{}
		if te := o.l.tenants[tenant]; te != nil {
			e.inUse = te.use[b].InUse
			if b != BandBestEffort {
				e.q = te.cfg.Quota[b]
			}
		}
		if o.m == nil {
			o.m = make(map[tenantBand]*ovEntry)
		}
		o.m[k] = e
	}
	o.last, o.lastKey = e, k
	return e
}

// add changes a tenant's in-use on the overlay by r.
func (o *quotaOverlay) add(tenant string, b Band, r Resources) {
	o.addTo(o.entry(tenant, b), b, r)
}

func (o *quotaOverlay) addTo(e *ovEntry, b Band, r Resources) {
	r = quotaKinds(r)
	after := e.inUse.Add(r)
	switch {
	case b == BandBestEffort:
	case e.q == nil:
		o.reserved = o.reserved.Add(r)
	default:
		o.reserved = o.reserved.Add(maxRes(e.q.Nominal, after).Sub(maxRes(e.q.Nominal, e.inUse)))
	}
	e.inUse = after
}

func (o *quotaOverlay) idle() Resources {
	return floor0(o.l.capacity.Sub(o.l.reserved.Add(o.reserved)))
}

// borrowing reports whether a tenant's in-use of a band on the overlay is
// above its nominal quota in a kind that r takes.
func (o *quotaOverlay) borrowing(tenant string, b Band, r Resources) bool {
	e := o.entry(tenant, b)
	if e.q == nil {
		return false
	}
	u, n := e.inUse, e.q.Nominal
	return (r.CPUMilli > 0 && u.CPUMilli > n.CPUMilli) ||
		(r.MemoryBytes > 0 && u.MemoryBytes > n.MemoryBytes) ||
		(r.GPUMilli > 0 && u.GPUMilli > n.GPUMilli)
}

// check decides whether task t may take r more of its tenant's quota on
// the overlay, and if so takes it. It reports whether the claim borrows
// (batch above nominal) and the entry to give the quota back to.
func (o *quotaOverlay) check(t *Task, r Resources) (ClaimResult, bool, *ovEntry) {
	b := BandOf(t.Priority)
	e := o.entry(t.Tenant, b)
	q := e.q
	if q == nil {
		o.addTo(e, b, r)
		return ClaimResult{Reason: ReasonOK}, false, e
	}
	r = quotaKinds(r)
	used := e.inUse
	after := used.Add(r)
	k, over := exceeds(after, q.Nominal)
	if !over {
		o.addTo(e, b, r)
		return ClaimResult{Reason: ReasonOK}, false, e
	}
	if b != BandBatch {
		return ClaimResult{ReasonQuotaExceeded, fmt.Sprintf("tenant %s: %s %s quota %s, in use %s, claim %s", t.Tenant, b, k.name, k.fmt(q.Nominal), k.fmt(used), k.fmt(r))}, false, nil
	}
	if k, over := exceeds(after, q.Nominal.Add(q.BorrowLimit)); over {
		return ClaimResult{ReasonQuotaExceeded, fmt.Sprintf("tenant %s: batch %s quota %s + borrow limit %s, in use %s, claim %s", t.Tenant, k.name, k.fmt(q.Nominal), k.fmt(q.BorrowLimit), k.fmt(used), k.fmt(r))}, false, nil
	}
	extra := floor0(after.Sub(q.Nominal)).Sub(floor0(used.Sub(q.Nominal)))
	if k, short := exceeds(extra, o.idle()); short {
		return ClaimResult{ReasonQuotaExceeded, fmt.Sprintf("tenant %s: batch %s quota %s, in use %s, claim %s: borrowing %s, idle %s", t.Tenant, k.name, k.fmt(q.Nominal), k.fmt(used), k.fmt(r), k.fmt(extra), k.fmt(o.idle()))}, false, nil
	}
	o.addTo(e, b, r)
	return ClaimResult{Reason: ReasonOK}, true, e
}

// mayReclaim reports whether a batch claim of tenant claimant may preempt
// victim to reclaim borrowed quota: the victim is batch, of another
// tenant that borrows (above its nominal batch quota in a kind the victim
// holds), and the claimant has a batch quota of its own.
func (o *quotaOverlay) mayReclaim(claimant string, victim *Task) bool {
	if o == nil || claimant == victim.Tenant || BandOf(victim.Priority) != BandBatch || o.entry(claimant, BandBatch).q == nil {
		return false
	}
	return o.borrowing(victim.Tenant, BandBatch, victim.Resources)
}

// String is for debugging and test failures.
func (l *Ledger) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "capacity %v reserved %v;", l.capacity, l.reserved)
	for n, e := range l.tenants {
		fmt.Fprintf(&b, " %s:%v", n, e.use)
	}
	return b.String()
}

// Diff describes how l differs from o in capacity, reservation and each
// tenant's use ("" when they agree): a ledger kept incrementally must
// equal one rebuilt from the same machines, tasks and tenants (the
// store's invariant check compares the two).
func (l *Ledger) Diff(o *Ledger) string {
	var out []string
	if l.capacity != o.capacity || l.reserved != o.reserved {
		out = append(out, fmt.Sprintf("capacity %v reserved %v, want %v %v", l.capacity, l.reserved, o.capacity, o.reserved))
	}
	for _, pair := range [2][2]*Ledger{{l, o}, {o, l}} {
		for name := range pair[0].tenants {
			for b := BandBestEffort; b < NumBands; b++ {
				if a, z := l.Use(name, b), o.Use(name, b); a != z {
					out = append(out, fmt.Sprintf("tenant %s %s: use %+v, want %+v", name, b, a, z))
				}
			}
		}
	}
	if len(out) == 0 {
		return ""
	}
	slices.Sort(out)
	return strings.Join(slices.Compact(out), "; ")
}
