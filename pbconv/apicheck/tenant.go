package apicheck

import (
	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
	"github.com/omegacell/omegacell/proto/limits"
)

// MaxTenantWeight bounds Tenant.weight (weighted DRF divides by it).
const MaxTenantWeight = 1000

// CreateTenant checks a tenant to create.
func CreateTenant(r *cellv1.CreateTenantRequest) error { return tenant("tenant", r.GetTenant()) }

// UpdateTenant checks a tenant's new configuration.
func UpdateTenant(r *cellv1.UpdateTenantRequest) error { return tenant("tenant", r.GetTenant()) }

// GetTenant checks the name asked for.
func GetTenant(r *cellv1.GetTenantRequest) error { return tenantName("name", r.GetName()) }

func tenantName(f, name string) error {
	if !limits.TenantName.MatchString(name) {
		return fail(f, "%s is not a tenant name (1-63 lowercase letters, digits, '-', starting and ending alphanumeric)", limits.Quote(name))
	}
	return nil
}

func tenant(f string, t *cellv1.Tenant) error {
	if t == nil {
		return fail(f, "is required")
	}
	if err := tenantName(f+".name", t.Name); err != nil {
		return err
	}
	switch {
	case t.MaxBand < cellv1.PriorityBand_PRIORITY_BAND_UNSPECIFIED || t.MaxBand > cellv1.PriorityBand_PRIORITY_BAND_PRODUCTION:
		return fail(f+".max_band", "unknown band %d", t.MaxBand)
	case t.Weight > MaxTenantWeight:
		return fail(f+".weight", "%d: at most %d", t.Weight, MaxTenantWeight)
	}
	if err := bandQuota(f+".production", t.Production); err != nil {
		return err
	}
	if t.Production.GetBorrowLimit() != nil && (t.Production.BorrowLimit.CpuMilli != 0 || t.Production.BorrowLimit.MemoryBytes != 0 || t.Production.BorrowLimit.GpuMilli != 0) {
		return fail(f+".production.borrow_limit", "production quota is a guarantee and does not borrow")
	}
	return bandQuota(f+".batch", t.Batch)
}

func bandQuota(f string, q *cellv1.BandQuota) error {
	if q == nil {
		return nil
	}
	if err := amounts(f+".nominal", q.Nominal); err != nil {
		return err
	}
	if err := amounts(f+".borrow_limit", q.BorrowLimit); err != nil {
		return err
	}
	if q.MaxPendingTasks > limits.MaxTenantPendingTasks {
		return fail(f+".max_pending_tasks", "%d: at most %d", q.MaxPendingTasks, limits.MaxTenantPendingTasks)
	}
	return nil
}

// amounts checks quota amounts: non-negative and within what a cell can
// hold (a quota may exceed today's cell; it may not overflow sums).
func amounts(f string, a *cellv1.QuotaAmounts) error {
	switch {
	case a == nil:
		return nil
	case a.CpuMilli < 0 || a.CpuMilli > limits.MaxQuotaCPUMilli:
		return fail(f+".cpu_milli", "%d: want 0..%d", a.CpuMilli, int64(limits.MaxQuotaCPUMilli))
	case a.MemoryBytes < 0 || a.MemoryBytes > limits.MaxQuotaBytes:
		return fail(f+".memory_bytes", "%d: want 0..%d", a.MemoryBytes, int64(limits.MaxQuotaBytes))
	case a.GpuMilli < 0 || a.GpuMilli > limits.MaxQuotaGPUMilli:
		return fail(f+".gpu_milli", "%d: want 0..%d", a.GpuMilli, int64(limits.MaxQuotaGPUMilli))
	}
	return nil
}
