package sim

import (
	"math"
	"strings"
	"testing"
)

// TestFairnessDRF runs the fairness workload for an hour: under weighted
// DRF every tenant's dominant share ends within 3 points of its weight's
// share and Jain's index is near 1; in arrival order it is not.
func TestFairnessDRF(t *testing.T) {
	w, err := LoadWorkload("fairness")
	if err != nil {
		t.Fatal(err)
	}
	run := func(order Order) *Result {
		cfg := DefaultConfig()
		cfg.Horizon, cfg.Order, cfg.Placement = 3600, order, PlacementPolicies
		r, err := Run(cfg, NewSynthetic(w, cfg.Seed, cfg.Horizon))
		if err != nil {
			t.Fatal(err)
		}
		if r.TenantSeries == nil || len(r.TenantSeries.Tenants) != 3 || len(r.TenantSeries.Times) < 200 {
			t.Fatalf("%s: tenant series %+v", order, r.TenantSeries)
		}
		return r
	}
	drf, fifo := run(OrderDRF), run(OrderFIFO)
	for _, ts := range drf.TenantSeries.Tenants {
		if math.Abs(ts.MeanShare-ts.Entitlement) > 0.03 {
			t.Errorf("drf: tenant %s (weight %d) mean dominant share %.3f, want %.3f ± 0.03", ts.Name, ts.Weight, ts.MeanShare, ts.Entitlement)
		}
	}
	if j := jainMean(drf); j < 0.98 {
		t.Errorf("drf: Jain's index %.3f, want ≥ 0.98", j)
	}
	if j := jainMean(fifo); j > 0.9 {
		t.Errorf("fifo: Jain's index %.3f, want < 0.9 (arrival order ignores weights)", j)
	}
	if g := shareGap(fifo); g < 0.1 {
		t.Errorf("fifo: share gap %.3f, want ≥ 0.1", g)
	}
}

func TestTenantValidation(t *testing.T) {
	base := `name: t
machines: [{count: 1, cpu_milli: 1000, memory_mib: 1024}]
job_types:
  - {name: a, scheduler: batch, priority: 100, tenant: %s, interarrival_seconds: {dist: constant, value: 1}, tasks_per_job: {dist: constant, value: 1}, duration_seconds: {dist: constant, value: 1}, cpu_milli: {dist: constant, value: 1}, memory_mib: {dist: constant, value: 1}}
`
	cases := []struct {
		tenants, jobTenant, want string
	}{
		{"tenants: [{name: x, weight: 1}]", "z", `tenant: "z" is not one of the workload's tenants`},
		{"tenants: [{name: x}, {name: x}]", "x", `tenants[1].name: "x" appears twice`},
		{"tenants: [{name: x, weight: 1001}]", "x", "tenants[0].weight: 1001 is above 1000"},
		{"tenants: [{weight: 2}]", "x", "tenants[0].name: missing"},
		{"tenants: [{name: x, weight: 3}]", "x", ""},
	}
	for _, tc := range cases {
		doc := strings.Replace(base, "%s", tc.jobTenant, 1) + tc.tenants + "\n"
		_, err := ParseWorkload([]byte(doc), "test")
		if tc.want == "" {
			if err != nil {
				t.Errorf("%s: %v", tc.tenants, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err %v, want %q", tc.tenants, err, tc.want)
		}
	}
	cfg := DefaultConfig()
	cfg.Arch, cfg.Order = TwoLevel, OrderDRF
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "order") {
		t.Errorf("two-level with drf: %v, want an order error", err)
	}
}

// TestWorkloadQuotaIsEnforced: a batch quota in the workload file caps its
// tenant (txn.Validate refuses claims past it, as in the store), and the
// other tenants take the rest.
func TestWorkloadQuotaIsEnforced(t *testing.T) {
	w, err := LoadWorkload("fairness")
	if err != nil {
		t.Fatal(err)
	}
	// 10% of the cell's 3,200 cores, nothing to borrow.
	w.Tenants[2].Batch = &Quota{CPUMilli: 320_000, MemoryMiB: 1 << 30}
	if err := w.Validate(); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Horizon, cfg.Order, cfg.Placement = 1800, OrderDRF, PlacementPolicies
	r, err := Run(cfg, NewSynthetic(w, cfg.Seed, cfg.Horizon))
	if err != nil {
		t.Fatal(err)
	}
	capped := r.TenantSeries.Tenants[2]
	for i, s := range capped.Shares {
		if s > 0.1+1e-9 {
			t.Fatalf("tenant %s at %.0fs: share %.4f above its 10%% quota", capped.Name, r.TenantSeries.Times[i], s)
		}
	}
	if capped.MeanShare < 0.09 {
		t.Errorf("tenant %s: mean share %.3f, want about its 10%% quota", capped.Name, capped.MeanShare)
	}
	// The weights 1 and 2 of the others split the remaining 90%.
	a, b := r.TenantSeries.Tenants[0].MeanShare, r.TenantSeries.Tenants[1].MeanShare
	if math.Abs(a+b-0.9) > 0.03 || math.Abs(b/a-2) > 0.3 {
		t.Errorf("uncapped tenants' shares %.3f and %.3f, want about 0.30 and 0.60", a, b)
	}
	bad := *w
	bad.Tenants = append([]Tenant(nil), w.Tenants...)
	bad.Tenants[0].Production = &Quota{CPUMilli: 1, BorrowCPUMilli: 1}
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "production quota does not borrow") {
		t.Errorf("production borrow limit: %v", err)
	}
}
