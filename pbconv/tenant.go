package pbconv

import (
	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
	"github.com/omegacell/omegacell/txn"
)

// Amounts converts a quota's amounts (nil: none).
func Amounts(a *cellv1.QuotaAmounts) txn.Resources {
	return txn.Resources{CPUMilli: a.GetCpuMilli(), MemoryBytes: a.GetMemoryBytes(), GPUMilli: a.GetGpuMilli()}
}

// AmountsPB converts amounts under quota (disk is not).
func AmountsPB(r txn.Resources) *cellv1.QuotaAmounts {
	return &cellv1.QuotaAmounts{CpuMilli: r.CPUMilli, MemoryBytes: r.MemoryBytes, GpuMilli: r.GPUMilli}
}

// Band converts an API band (unspecified: batch, the default max band).
func Band(b cellv1.PriorityBand) txn.Band {
	if b == cellv1.PriorityBand_PRIORITY_BAND_UNSPECIFIED {
		b = cellv1.PriorityBand_PRIORITY_BAND_BATCH
	}
	return txn.Band(b - 1)
}

// BandPB converts a band.
func BandPB(b txn.Band) cellv1.PriorityBand { return cellv1.PriorityBand(b + 1) }

// Tenant converts a tenant's configuration (weight 0 counts as 1).
func Tenant(t *cellv1.Tenant) txn.Tenant {
	out := txn.Tenant{Name: t.GetName(), Weight: max(t.GetWeight(), 1), MaxBand: Band(t.GetMaxBand())}
	for b, q := range map[txn.Band]*cellv1.BandQuota{txn.BandProduction: t.GetProduction(), txn.BandBatch: t.GetBatch()} {
		if q != nil {
			out.Quota[b] = &txn.Quota{Nominal: Amounts(q.GetNominal()), BorrowLimit: Amounts(q.GetBorrowLimit()), MaxPending: q.GetMaxPendingTasks()}
		}
	}
	if q := out.Quota[txn.BandProduction]; q != nil {
		q.BorrowLimit = txn.Resources{} // production does not borrow
	}
	return out
}

// TenantUsage reports a tenant's use of every band from a ledger; queued
// gives the jobs and tasks queued per band.
func TenantUsage(l *txn.Ledger, name string, queued func(txn.Band) (jobs, tasks uint32)) *cellv1.TenantUsage {
	band := func(b txn.Band) *cellv1.BandUsage {
		u := l.Use(name, b)
		qj, qt := queued(b)
		return &cellv1.BandUsage{
			InUse: AmountsPB(u.InUse), Admitted: AmountsPB(u.Admitted), Borrowed: AmountsPB(l.Borrowed(name, b)),
			PendingTasks: u.Pending, QueuedJobs: qj, QueuedTasks: qt,
			DominantShare: txn.DominantShare(u.InUse, l.Capacity()),
		}
	}
	return &cellv1.TenantUsage{Production: band(txn.BandProduction), Batch: band(txn.BandBatch), BestEffort: band(txn.BandBestEffort)}
}
