package cellstate

import (
	"context"
	"maps"
	"slices"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/omegacell/omegacell/cellstate/authz"
	"github.com/omegacell/omegacell/pbconv"
	"github.com/omegacell/omegacell/pbconv/apicheck"
	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
	"github.com/omegacell/omegacell/proto/identity"
	"github.com/omegacell/omegacell/txn"
)

// Tenants: what an admin decided about each tenant (weight, highest band,
// quotas per band). They change rarely and are read on every submit, so
// the commit loop publishes them as an immutable map behind an atomic
// pointer: a submit's authorization reads its tenant's band without the
// store's lock (which the loop holds across each group commit's fsync).
// The same configuration lives in the state's txn.Ledger, which txn
// enforces at commit and admission reads at submit (quota.go).
//
// Durable as objects under tp/<name> (the field numbers of the former
// TenantPolicy, so older data directories load), written in the batch of
// the revision that set them; also a Change of that revision's watch
// entry (schedulers see weights and quotas), which recovery ignores.

var prefixTenant = []byte("tp/")

func tenantKey(name string) []byte { return append(append([]byte(nil), prefixTenant...), name...) }

// DefaultMaxBand is the band of a tenant nobody created.
const DefaultMaxBand = cellv1.PriorityBand_PRIORITY_BAND_BATCH

type tenantConfigs struct {
	p atomic.Pointer[map[string]*cellv1.Tenant]
}

func (t *tenantConfigs) get(name string) *cellv1.Tenant {
	if m := t.p.Load(); m != nil {
		return (*m)[name]
	}
	return nil
}

func (t *tenantConfigs) all() map[string]*cellv1.Tenant {
	if m := t.p.Load(); m != nil {
		return *m
	}
	return nil
}

// put installs a tenant version (commit loop, or recovery).
func (t *tenantConfigs) put(p *cellv1.Tenant) {
	next := maps.Clone(t.all())
	if next == nil {
		next = make(map[string]*cellv1.Tenant)
	}
	next[p.Name] = p
	t.p.Store(&next)
}

// tenantMaxBand is the highest band tenant may submit at.
func (s *Store) tenantMaxBand(tenant string) txn.Band {
	return pbconv.Band(s.st.tenants.get(tenant).GetMaxBand())
}

// putTenant installs a tenant version in the configs and the ledger.
func (s *state) putTenant(p *cellv1.Tenant) {
	s.tenants.put(p)
	s.ledger.SetTenant(pbconv.Tenant(p))
}

type setTenantOp struct {
	t        *cellv1.Tenant
	create   bool   // AlreadyExists if the tenant exists
	expected uint64 // non-zero: the mod_revision the tenant must still have
}

func (o setTenantOp) run(s *state) (any, error) {
	old := s.tenants.get(o.t.Name)
	switch {
	case o.create && old != nil:
		return nil, status.Errorf(codes.AlreadyExists, "tenant.name: tenant %q exists (revision %d); update it instead", o.t.Name, old.ModRevision)
	case o.expected != 0 && old.GetModRevision() != o.expected:
		return nil, status.Errorf(codes.FailedPrecondition, "expected_mod_revision: tenant %q is at revision %d, not %d (changed meanwhile; read it again)", o.t.Name, old.GetModRevision(), o.expected)
	}
	p := proto.Clone(o.t).(*cellv1.Tenant)
	p.Usage = nil
	if old != nil {
		p.ModRevision = old.ModRevision
		if proto.Equal(old, p) {
			return s.tenantWithUsage(old), nil
		}
	}
	p.ModRevision = s.changes.rev
	s.putTenant(p)
	s.changes.tenants = append(s.changes.tenants, p)
	return s.tenantWithUsage(p), nil
}

// tenantWithUsage returns a copy of a tenant's configuration with its
// current usage.
func (s *state) tenantWithUsage(p *cellv1.Tenant) *cellv1.Tenant {
	out := proto.Clone(p).(*cellv1.Tenant)
	out.Usage = pbconv.TenantUsage(s.ledger, p.Name, func(b txn.Band) (uint32, uint32) {
		q := s.queue(tenantBand{p.Name, b})
		return uint32(len(q.jobs)), q.tasks
	})
	return out
}

func writeTenants(wb *pebble.Batch, ps []*cellv1.Tenant) error {
	for _, p := range ps {
		v, err := proto.Marshal(p)
		if err == nil {
			err = wb.Set(tenantKey(p.Name), v, nil)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (s *Store) recoverTenants() error {
	return scanObjects(s, prefixTenant, func() *cellv1.Tenant { return &cellv1.Tenant{} }, s.st.putTenant)
}

// CreateTenant creates a tenant (AlreadyExists if it exists).
func (s *Store) CreateTenant(ctx context.Context, t *cellv1.Tenant) (*cellv1.Tenant, uint64, error) {
	return s.setTenant(ctx, setTenantOp{t: t, create: true})
}

// UpdateTenant replaces a tenant's configuration, creating it if needed;
// a non-zero expected is the mod_revision it must still have.
func (s *Store) UpdateTenant(ctx context.Context, t *cellv1.Tenant, expected uint64) (*cellv1.Tenant, uint64, error) {
	return s.setTenant(ctx, setTenantOp{t: t, expected: expected})
}

func (s *Store) setTenant(ctx context.Context, op setTenantOp) (*cellv1.Tenant, uint64, error) {
	res, rev, err := s.do(ctx, op)
	if err != nil {
		return nil, 0, err
	}
	return res.(*cellv1.Tenant), rev, nil
}

// Tenant returns a tenant with its usage, the revision, and whether it
// was created (one nobody created has the defaults).
func (s *Store) Tenant(name string) (*cellv1.Tenant, uint64, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	p := s.st.tenants.get(name)
	created := p != nil
	if p == nil {
		p = &cellv1.Tenant{Name: name, Weight: 1, MaxBand: DefaultMaxBand}
	}
	return s.st.tenantWithUsage(p), s.st.rev, created
}

// Tenants lists the created tenants by name, with usage, and the revision.
func (s *Store) Tenants() ([]*cellv1.Tenant, uint64) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.st.tenantList(), s.st.rev
}

func (s *state) tenantList() []*cellv1.Tenant {
	m := s.tenants.all()
	out := make([]*cellv1.Tenant, 0, len(m))
	for _, n := range slices.Sorted(maps.Keys(m)) {
		out = append(out, s.tenantWithUsage(m[n]))
	}
	return out
}

// CellCapacity is the capacity of the machines not down, as quota and
// dominant shares count it.
func (s *Store) CellCapacity() txn.Resources {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.st.ledger.Capacity()
}

// ---------------------------------------------------------- TenantService

func (s *Server) CreateTenant(ctx context.Context, r *cellv1.CreateTenantRequest) (*cellv1.CreateTenantResponse, error) {
	if _, err := s.authorize(ctx, cellv1.TenantService_CreateTenant_FullMethodName, nil); err != nil {
		return nil, err
	}
	if err := checked(apicheck.CreateTenant(r)); err != nil {
		return nil, err
	}
	out, rev, err := s.store.CreateTenant(ctx, normalTenant(r.Tenant))
	if err != nil {
		return nil, grpcError(err)
	}
	s.store.warnOvercommit()
	return &cellv1.CreateTenantResponse{Tenant: out, Revision: rev}, nil
}

func (s *Server) UpdateTenant(ctx context.Context, r *cellv1.UpdateTenantRequest) (*cellv1.UpdateTenantResponse, error) {
	if _, err := s.authorize(ctx, cellv1.TenantService_UpdateTenant_FullMethodName, nil); err != nil {
		return nil, err
	}
	if err := checked(apicheck.UpdateTenant(r)); err != nil {
		return nil, err
	}
	out, rev, err := s.store.UpdateTenant(ctx, normalTenant(r.Tenant), r.ExpectedModRevision)
	if err != nil {
		return nil, grpcError(err)
	}
	s.store.warnOvercommit()
	return &cellv1.UpdateTenantResponse{Tenant: out, Revision: rev}, nil
}

func (s *Server) GetTenant(ctx context.Context, r *cellv1.GetTenantRequest) (*cellv1.GetTenantResponse, error) {
	if err := checked(apicheck.GetTenant(r)); err != nil {
		return nil, err
	}
	if _, err := s.authorize(ctx, cellv1.TenantService_GetTenant_FullMethodName, func(identity.Identity) *authz.Facts {
		return &authz.Facts{Tenant: r.Name}
	}); err != nil {
		return nil, err
	}
	t, rev, _ := s.store.Tenant(r.Name)
	return &cellv1.GetTenantResponse{Tenant: t, Revision: rev, CellCapacity: pbconv.AmountsPB(s.store.CellCapacity())}, nil
}

func (s *Server) ListTenants(ctx context.Context, _ *cellv1.ListTenantsRequest) (*cellv1.ListTenantsResponse, error) {
	c, err := s.authorize(ctx, cellv1.TenantService_ListTenants_FullMethodName, nil)
	if err != nil {
		return nil, err
	}
	all, rev := s.store.Tenants()
	if c.access == authz.Own {
		all = slices.DeleteFunc(all, func(p *cellv1.Tenant) bool { return !c.id.InTenant(p.Name) })
	}
	return &cellv1.ListTenantsResponse{Tenants: all, Revision: rev, CellCapacity: pbconv.AmountsPB(s.store.CellCapacity())}, nil
}

// normalTenant keeps what an admin sets: the server's fields are dropped,
// defaults filled in, and production's borrow limit cleared (production
// quota is a guarantee and does not borrow).
func normalTenant(t *cellv1.Tenant) *cellv1.Tenant {
	out := &cellv1.Tenant{Name: t.Name, MaxBand: t.MaxBand, Weight: t.Weight, Production: t.Production, Batch: t.Batch}
	if out.MaxBand == cellv1.PriorityBand_PRIORITY_BAND_UNSPECIFIED {
		out.MaxBand = DefaultMaxBand
	}
	if out.Weight == 0 {
		out.Weight = 1
	}
	if p := out.Production; p != nil && p.BorrowLimit != nil {
		out.Production = &cellv1.BandQuota{Nominal: p.Nominal, MaxPendingTasks: p.MaxPendingTasks}
	}
	return out
}

// warnOvercommit logs when production quotas exceed the cell's capacity:
// a guarantee the cell cannot keep (also the metric
// omegacell_production_quota_overcommit). Checked when the store opens
// and whenever a tenant changes.
func (s *Store) warnOvercommit() {
	if over := s.ProductionOvercommit(); !over.IsZero() {
		s.log.Warn("production quotas exceed the cell's capacity: the guarantee cannot be kept",
			"over_cpu_milli", over.CPUMilli, "over_memory_bytes", over.MemoryBytes, "over_gpu_milli", over.GPUMilli)
	}
}

// ProductionOvercommit is by how much the production quotas exceed the
// capacity of the machines not down (zero when they fit).
func (s *Store) ProductionOvercommit() txn.Resources {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.st.ledger.ProductionOvercommit()
}

// clipValue bounds a client's value quoted in an error.
func clipValue(s string) string {
	if len(s) <= 100 {
		return s
	}
	return s[:100] + "…"
}

// appendTenantChange appends a watch Change carrying a tenant.
func appendTenantChange(buf []byte, t *cellv1.Tenant) ([]byte, error) {
	return marshal.MarshalAppend(buf, &cellv1.WatchResponse{Changes: []*cellv1.Change{{Object: &cellv1.Change_Tenant{Tenant: t}}}})
}
