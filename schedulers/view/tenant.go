package view

import "github.com/omegacell/omegacell/txn"

// Tenants: what each tenant's jobs hold in the cell, the capacity of the
// ready machines, and tenants' fair-share weights, for the weighted DRF
// order of the batch and GPU schedulers (package schedulers/fair). Usage
// counts every resource-holding task of every scheduler: fair share is
// across the cell, not per scheduler. A job whose tenant is not yet known
// (its tasks arrived first) counts under "" until [View.PutJob] names it.

// tenants is the view's per-tenant bookkeeping.
type tenants struct {
	use      map[string]txn.Resources
	weight   map[string]uint32
	capacity txn.Resources // of ready machines
	// changed names tenants whose usage or weight changed since the last
	// [View.TenantChanges]; capChanged says the capacity did.
	changed    map[string]struct{}
	capChanged bool
}

func (ts *tenants) charge(tenant string, r txn.Resources, sign int64) {
	if ts.use == nil {
		ts.use = make(map[string]txn.Resources)
		ts.changed = make(map[string]struct{})
	}
	u := ts.use[tenant]
	u.CPUMilli += sign * r.CPUMilli
	u.MemoryBytes += sign * r.MemoryBytes
	u.DiskBytes += sign * r.DiskBytes
	u.GPUMilli += sign * r.GPUMilli
	if u.IsZero() {
		delete(ts.use, tenant)
	} else {
		ts.use[tenant] = u
	}
	ts.changed[tenant] = struct{}{}
}

func (ts *tenants) machineChanged(old, m *txn.Machine) {
	var was, is txn.Resources
	if old != nil && old.State == txn.MachineReady {
		was = old.Capacity
	}
	if m != nil && m.State == txn.MachineReady {
		is = m.Capacity
	}
	if was != is {
		ts.capacity = ts.capacity.Sub(was).Add(is)
		ts.capChanged = true
	}
}

// TenantUsage is what tenant's jobs hold in the cell (tasks assigned or
// running), across every scheduler.
func (v *View) TenantUsage(tenant string) txn.Resources { return v.tenants.use[tenant] }

// ReadyCapacity is the total capacity of the ready machines: the cell that
// dominant shares are measured against.
func (v *View) ReadyCapacity() txn.Resources { return v.tenants.capacity }

// TenantWeight is a tenant's fair-share weight (1 unless set).
func (v *View) TenantWeight(tenant string) uint32 {
	if w, ok := v.tenants.weight[tenant]; ok {
		return w
	}
	return 1
}

// SetTenantWeight sets a tenant's fair-share weight (0 means 1).
func (v *View) SetTenantWeight(tenant string, w uint32) {
	w = max(w, 1)
	if v.TenantWeight(tenant) == w {
		return
	}
	if v.tenants.weight == nil {
		v.tenants.weight = make(map[string]uint32)
	}
	v.tenants.weight[tenant] = w
	if v.tenants.changed == nil {
		v.tenants.changed = make(map[string]struct{})
	}
	v.tenants.changed[tenant] = struct{}{}
}

// TenantChanges calls tenant for every tenant whose usage or weight
// changed since the last call (in no particular order), and reports
// whether the ready capacity changed; it then forgets the changes.
func (v *View) TenantChanges(tenant func(name string, usage txn.Resources, weight uint32)) (capacityChanged bool) {
	for name := range v.tenants.changed {
		tenant(name, v.tenants.use[name], v.TenantWeight(name))
	}
	clear(v.tenants.changed)
	capacityChanged, v.tenants.capChanged = v.tenants.capChanged, false
	return capacityChanged
}

// PutTenant installs a tenant's configuration (from the snapshot or the
// watch): its quotas into the ledger, its weight for fair share.
func (v *View) PutTenant(t txn.Tenant) {
	v.ledger.SetTenant(t)
	v.SetTenantWeight(t.Name, t.Weight)
}

// Ledger implements txn.QuotaState: the quotas and their use in this
// copy, kept as the store keeps its own, so txn.Validate on the view
// refuses what the store would refuse for quota.
func (v *View) Ledger() *txn.Ledger { return v.ledger }

// Tenants lists the tenants holding resources now, with what they hold.
func (v *View) Tenants() map[string]txn.Resources { return v.tenants.use }
