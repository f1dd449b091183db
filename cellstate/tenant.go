package cellstate

import (
	"context"
	"maps"
	"slices"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"
	"google.golang.org/protobuf/proto"

	"github.com/omegacell/omegacell/cellstate/authz"
	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
	"github.com/omegacell/omegacell/proto/limits"
	"github.com/omegacell/omegacell/txn"
)

// Tenant policies: what an admin decided about each tenant (today the
// highest priority band its users may submit at; tenancy adds weights and
// quotas to the same message). They change rarely and are read on every
// submit, so the commit loop publishes them as an immutable map behind an
// atomic pointer: a submit reads its tenant's band without the store's
// lock (which the loop holds across each group commit's fsync).
//
// Durable as objects under tp/<name>, written in the batch of the revision
// that set them, like scheduler registrations; not part of the watch
// stream.

var prefixTenant = []byte("tp/")

func tenantKey(name string) []byte { return append(append([]byte(nil), prefixTenant...), name...) }

// DefaultMaxBand is the band of a tenant without a policy.
const DefaultMaxBand = cellv1.PriorityBand_PRIORITY_BAND_BATCH

type tenantPolicies struct {
	p atomic.Pointer[map[string]*cellv1.TenantPolicy]
}

func (t *tenantPolicies) get(name string) *cellv1.TenantPolicy {
	if m := t.p.Load(); m != nil {
		return (*m)[name]
	}
	return nil
}

func (t *tenantPolicies) all() map[string]*cellv1.TenantPolicy {
	if m := t.p.Load(); m != nil {
		return *m
	}
	return nil
}

// put installs a policy version (commit loop, or recovery).
func (t *tenantPolicies) put(p *cellv1.TenantPolicy) {
	next := maps.Clone(t.all())
	if next == nil {
		next = make(map[string]*cellv1.TenantPolicy)
	}
	next[p.Name] = p
	t.p.Store(&next)
}

// bandOf converts the API's band to txn's (unspecified: the default).
func bandOf(b cellv1.PriorityBand) txn.Band {
	if b == cellv1.PriorityBand_PRIORITY_BAND_UNSPECIFIED {
		b = DefaultMaxBand
	}
	return txn.Band(b - 1)
}

// tenantMaxBand is the highest band tenant may submit at.
func (s *Store) tenantMaxBand(tenant string) txn.Band {
	return bandOf(s.st.tenants.get(tenant).GetMaxBand())
}

type setTenantOp struct{ p *cellv1.TenantPolicy }

func (o setTenantOp) run(s *state) (any, error) {
	old := s.tenants.get(o.p.Name)
	if old != nil && old.MaxBand == o.p.MaxBand {
		return old, nil
	}
	p := proto.Clone(o.p).(*cellv1.TenantPolicy)
	p.ModRevision = s.changes.rev
	s.tenants.put(p)
	s.changes.tenants = append(s.changes.tenants, p)
	return p, nil
}

func writeTenants(wb *pebble.Batch, ps []*cellv1.TenantPolicy) error {
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
	return scanObjects(s, prefixTenant, func() *cellv1.TenantPolicy { return &cellv1.TenantPolicy{} }, s.st.tenants.put)
}

// SetTenantPolicy creates or replaces a tenant's policy.
func (s *Store) SetTenantPolicy(ctx context.Context, p *cellv1.TenantPolicy) (*cellv1.TenantPolicy, uint64, error) {
	res, rev, err := s.do(ctx, setTenantOp{p: p})
	if err != nil {
		return nil, 0, err
	}
	return res.(*cellv1.TenantPolicy), rev, nil
}

// TenantPolicies lists the policies by name.
func (s *Store) TenantPolicies() []*cellv1.TenantPolicy {
	m := s.st.tenants.all()
	out := make([]*cellv1.TenantPolicy, 0, len(m))
	for _, n := range slices.Sorted(maps.Keys(m)) {
		out = append(out, m[n])
	}
	return out
}

// ---------------------------------------------------------- TenantService

func (s *Server) SetTenantPolicy(ctx context.Context, r *cellv1.SetTenantPolicyRequest) (*cellv1.SetTenantPolicyResponse, error) {
	if _, err := s.authorize(ctx, cellv1.TenantService_SetTenantPolicy_FullMethodName, nil); err != nil {
		return nil, err
	}
	p := r.GetPolicy()
	switch {
	case p == nil:
		return nil, invalid("policy", "is required")
	case !limits.SchedulerName.MatchString(p.Name):
		return nil, invalid("policy.name", "%q is not a tenant name (lowercase letters, digits, '-', at most 63)", clipValue(p.Name))
	case p.MaxBand < cellv1.PriorityBand_PRIORITY_BAND_UNSPECIFIED || p.MaxBand > cellv1.PriorityBand_PRIORITY_BAND_PRODUCTION:
		return nil, invalid("policy.max_band", "unknown band %d", p.MaxBand)
	}
	p = &cellv1.TenantPolicy{Name: p.Name, MaxBand: p.MaxBand}
	if p.MaxBand == cellv1.PriorityBand_PRIORITY_BAND_UNSPECIFIED {
		p.MaxBand = DefaultMaxBand
	}
	out, rev, err := s.store.SetTenantPolicy(ctx, p)
	if err != nil {
		return nil, grpcError(err)
	}
	return &cellv1.SetTenantPolicyResponse{Policy: out, Revision: rev}, nil
}

func (s *Server) ListTenantPolicies(ctx context.Context, _ *cellv1.ListTenantPoliciesRequest) (*cellv1.ListTenantPoliciesResponse, error) {
	c, err := s.authorize(ctx, cellv1.TenantService_ListTenantPolicies_FullMethodName, nil)
	if err != nil {
		return nil, err
	}
	rev := s.store.Revision()
	all := s.store.TenantPolicies()
	if c.access == authz.Own {
		all = slices.DeleteFunc(all, func(p *cellv1.TenantPolicy) bool { return !c.id.InTenant(p.Name) })
	}
	return &cellv1.ListTenantPoliciesResponse{Policies: all, Revision: rev}, nil
}

// clipValue bounds a client's value quoted in an error.
func clipValue(s string) string {
	if len(s) <= 100 {
		return s
	}
	return s[:100] + "…"
}
