package sdk

import (
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/omegacell/omegacell/cellstate"
	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
	"github.com/omegacell/omegacell/schedulers/batch"
	"github.com/omegacell/omegacell/schedulers/gpu"
	"github.com/omegacell/omegacell/txn"
)

// End-to-end tests of issue 12 on a real cell: the store on Pebble behind
// its gRPC server on loopback, the built-in schedulers run by the SDK,
// machines registered through the API.

func (c *testCell) createTenant(tn *cellv1.Tenant) {
	c.t.Helper()
	if _, err := cellv1.NewTenantServiceClient(c.conn).UpdateTenant(ctxT(c.t), &cellv1.UpdateTenantRequest{Tenant: tn}); err != nil {
		c.t.Fatalf("tenant %s: %v", tn.Name, err)
	}
}

func tenantJob(name, scheduler, tenant string, priority int32, count uint32, cpu, gpuMilli int64) *cellv1.JobSpec {
	s := jobSpec(name, scheduler, priority, count, cpu, gib, gpuMilli)
	s.Tenant = tenant
	return s
}

// cpuByTenant sums the CPU held (assigned or running) per tenant.
func (c *testCell) cpuByTenant() (map[string]int64, int) {
	s := c.snapshot()
	tenantOf := map[string]string{}
	for _, j := range s.jobs {
		tenantOf[j.Id] = j.Spec.Tenant
	}
	out := map[string]int64{}
	pending := 0
	for _, tk := range s.tasks {
		switch tk.State {
		case cellv1.TaskState_TASK_STATE_ASSIGNED, cellv1.TaskState_TASK_STATE_RUNNING:
			out[tenantOf[tk.JobId]] += tk.Resources.CpuMilli
		case cellv1.TaskState_TASK_STATE_PENDING:
			pending++
		}
	}
	return out, pending
}

// TestWeightedFairShareOnARealCell: tenants with weights 1 and 3 each
// submit twice the cell; the batch scheduler fills it in weighted DRF
// order, so their dominant shares settle within 5 points of 25% and 75%
// (arrival order would have given the first tenant all of it).
func TestWeightedFairShareOnARealCell(t *testing.T) {
	c := newTestCell(t, cellstate.Options{})
	const machines, cores = 8, 8
	for i := range machines {
		c.addMachine(fmt.Sprintf("m%d", i), nil, cores*1000, 64*gib, 0)
	}
	c.createTenant(&cellv1.Tenant{Name: "light", Weight: 1})
	c.createTenant(&cellv1.Tenant{Name: "heavy", Weight: 3})
	c.register("batch")
	// The light tenant submits first: arrival order would favour it.
	for i := range 2 * machines * cores {
		c.submit(tenantJob(fmt.Sprint("light-", i), "batch", "light", 100, 1, 1000, 0))
	}
	for i := range 2 * machines * cores {
		c.submit(tenantJob(fmt.Sprint("heavy-", i), "batch", "heavy", 100, 1, 1000, 0))
	}
	startScheduler(t, c, Config{Name: "batch", Policy: batch.New(), Seed: 1})
	capacity := float64(machines * cores * 1000)
	var shares map[string]float64
	eventually(t, 20*time.Second, "cell full", func() (bool, string) {
		use, pending := c.cpuByTenant()
		shares = map[string]float64{"light": float64(use["light"]) / capacity, "heavy": float64(use["heavy"]) / capacity}
		return use["light"]+use["heavy"] == int64(capacity), fmt.Sprintf("shares %v, %d pending", shares, pending)
	})
	for tenant, want := range map[string]float64{"light": 0.25, "heavy": 0.75} {
		if math.Abs(shares[tenant]-want) > 0.05 {
			t.Errorf("tenant %s: dominant share %.3f, want %.2f ± 0.05", tenant, shares[tenant], want)
		}
	}
	t.Logf("dominant shares: light %.3f (weight 1), heavy %.3f (weight 3)", shares["light"], shares["heavy"])
	c.checkInvariant()
}

// TestProductionGangPreemptsBestEffortGPUTasks: best-effort 1-GPU tasks
// hold every device; a production gang of 2 × 8 GPUs is placed within 5 s
// by evicting them, the victims show the preempting job and go back to
// pending for their scheduler.
func TestProductionGangPreemptsBestEffortGPUTasks(t *testing.T) {
	c := newTestCell(t, cellstate.Options{})
	for i := range 3 {
		c.addMachine(fmt.Sprintf("g%d", i), map[string]string{"rack": "r0"}, 64000, 512*gib, 8)
	}
	startScheduler(t, c, Config{Name: "gpu", Policy: gpu.New(), Seed: 1})
	be := c.submit(tenantJob("notebooks", "gpu", "research", txn.PriorityBestEffort, 24, 1000, 1000))
	c.waitPlaced(be.Id, 10*time.Second)

	start := time.Now()
	gang := tenantJob("train", "gpu", "ml", txn.PriorityProduction, 2, 8000, 8000)
	gang.Gang = true
	job := c.submit(gang)
	c.waitPlaced(job.Id, 10*time.Second)
	took := time.Since(start)
	if took > 5*time.Second {
		t.Errorf("gang placed after %v, want within 5 s", took)
	}
	t.Logf("production gang placed %v after submission", took.Round(time.Millisecond))
	r := c.getJob(be.Id)
	preempted := 0
	for _, tk := range r.Tasks {
		if tk.PreemptedByJobId == "" {
			continue
		}
		preempted++
		if tk.PreemptedByJobId != job.Id || tk.State != cellv1.TaskState_TASK_STATE_PENDING {
			t.Errorf("victim %d: state %v, preempted by %q; want pending, preempted by %s", tk.Index, tk.State, tk.PreemptedByJobId, job.Id)
		}
		if want := "preempted by job train"; len(tk.Message) < len(want) || tk.Message[:len(want)] != want {
			t.Errorf("victim %d: message %q, want it to start %q", tk.Index, tk.Message, want)
		}
	}
	if preempted != 16 {
		t.Errorf("%d victims, want 16 (two machines' 8 GPUs)", preempted)
	}
	c.checkInvariant()
}

// TestBorrowedQuotaIsReclaimed: a tenant borrowed the whole cell above
// its nominal batch quota; when a tenant with a batch quota of its own
// submits within it, the batch scheduler evicts the borrower's tasks for
// it, and the borrower's victims wait pending (they would borrow again).
func TestBorrowedQuotaIsReclaimed(t *testing.T) {
	c := newTestCell(t, cellstate.Options{})
	for i := range 4 {
		c.addMachine(fmt.Sprintf("m%d", i), nil, 8000, 64*gib, 0)
	}
	cpu := func(n int64) *cellv1.QuotaAmounts {
		return &cellv1.QuotaAmounts{CpuMilli: n * 1000, MemoryBytes: 1 << 40}
	}
	c.createTenant(&cellv1.Tenant{Name: "borrower", Batch: &cellv1.BandQuota{Nominal: cpu(8), BorrowLimit: cpu(32)}})
	startScheduler(t, c, Config{Name: "batch", Policy: batch.New(), Seed: 1})
	fill := c.submit(tenantJob("fill", "batch", "borrower", 100, 16, 2000, 0))
	c.waitPlaced(fill.Id, 10*time.Second)

	c.createTenant(&cellv1.Tenant{Name: "owner", Batch: &cellv1.BandQuota{Nominal: cpu(16)}})
	own := c.submit(tenantJob("own", "batch", "owner", 100, 4, 2000, 0))
	c.waitPlaced(own.Id, 10*time.Second)
	r := c.getJob(fill.Id)
	victims := 0
	for _, tk := range r.Tasks {
		if tk.PreemptedByJobId == own.Id {
			victims++
		}
	}
	if victims != 4 || r.Counts.Pending != 4 {
		t.Errorf("borrower: %d tasks preempted by the owner, %d pending; want 4 and 4", victims, r.Counts.Pending)
	}
	c.checkInvariant()
}
