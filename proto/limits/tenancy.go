package limits

// Bounds on tenants' quotas (issue 12). A quota may exceed the cell (it
// is nominal), but every sum of quotas must stay far from overflowing
// int64: a million tenants at these bounds still fit.
const (
	MaxQuotaCPUMilli      = 1 << 40 // a billion cores
	MaxQuotaBytes         = 1 << 60 // an exabyte
	MaxQuotaGPUMilli      = 1 << 40 // a billion GPUs
	MaxTenantPendingTasks = 10_000_000
)
