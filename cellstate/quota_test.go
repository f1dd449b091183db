package cellstate

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
)

func (c *testCell) tenants() cellv1.TenantServiceClient { return cellv1.NewTenantServiceClient(c.conn) }

func (c *testCell) setTenant(tn *cellv1.Tenant) {
	c.t.Helper()
	if _, err := c.tenants().UpdateTenant(ctxT(c.t), &cellv1.UpdateTenantRequest{Tenant: tn}); err != nil {
		c.t.Fatalf("update tenant %s: %v", tn.Name, err)
	}
}

func (c *testCell) job(id string) *cellv1.GetJobResponse {
	c.t.Helper()
	r, err := c.jobs.GetJob(ctxT(c.t), &cellv1.GetJobRequest{IdOrName: id, IncludeTasks: true})
	if err != nil {
		c.t.Fatal(err)
	}
	return r
}

func tenantSpec(name, tenant string, count uint32, cpu int64) *cellv1.JobSpec {
	s := batchSpec(name, count, cpu, gib)
	s.Tenant = tenant
	return s
}

func cores(n int64) *cellv1.QuotaAmounts {
	return &cellv1.QuotaAmounts{CpuMilli: n * 1000, MemoryBytes: 64 * gib}
}

// TestQuotaAdmission: on a real store, a job that can never fit its
// tenant's quota is refused naming the quota; one that fits the quota but
// not the headroom is queued with the reason, has no tasks, and is
// admitted (in submission order, after the jobs queued before it) in the
// revision that frees room; the per-tenant pending cap refuses with
// ResourceExhausted; the queue survives a restart.
func TestQuotaAdmission(t *testing.T) {
	c := newTestCell(t, Options{})
	c.addMachine("m1", nil, 16000, 64*gib, 0)
	c.setTenant(&cellv1.Tenant{Name: "ml", Batch: &cellv1.BandQuota{Nominal: cores(4), MaxPendingTasks: 12}})

	if _, err := c.jobs.SubmitJob(ctxT(t), &cellv1.SubmitJobRequest{Spec: tenantSpec("never", "ml", 5, 1000)}); status.Code(err) != codes.FailedPrecondition ||
		!strings.Contains(err.Error(), "tenant ml: batch CPU quota 4000m, job needs 5000m") {
		t.Fatalf("a job past the quota: %v", err)
	}
	a := c.submit(tenantSpec("a", "ml", 4, 1000))
	if a.State != cellv1.JobState_JOB_STATE_PENDING {
		t.Fatalf("a is %v", a.State)
	}
	b := c.submit(tenantSpec("b", "ml", 2, 1000))
	if b.State != cellv1.JobState_JOB_STATE_QUEUED || b.QueuedReason != "tenant ml: batch CPU quota 4000m, admitted 4000m, job needs 2000m" {
		t.Fatalf("b: %v %q", b.State, b.QueuedReason)
	}
	b2 := c.submit(tenantSpec("b2", "ml", 1, 1000)) // fits after a, but b is first in line
	if b2.State != cellv1.JobState_JOB_STATE_QUEUED || !strings.Contains(b2.QueuedReason, "behind 1 queued batch jobs") {
		t.Fatalf("b2: %v %q", b2.State, b2.QueuedReason)
	}
	// 4 pending + 3 queued + 6 > 12.
	if _, err := c.jobs.SubmitJob(ctxT(t), &cellv1.SubmitJobRequest{Spec: tenantSpec("many", "ml", 6, 100)}); status.Code(err) != codes.ResourceExhausted ||
		!strings.Contains(err.Error(), "cap of 12 pending tasks (4 pending, 3 queued)") {
		t.Fatalf("past the pending cap: %v", err)
	}
	other := c.submit(tenantSpec("other", "web", 8, 1000)) // no quota: not limited
	if other.State != cellv1.JobState_JOB_STATE_PENDING {
		t.Fatalf("other is %v", other.State)
	}
	if r := c.job(b.Id); len(r.Tasks) != 0 {
		t.Fatalf("queued b has %d tasks", len(r.Tasks))
	}
	c.checkInvariant()

	// Queued jobs and their order survive a restart.
	c.restart(Options{})
	for _, j := range []*cellv1.Job{b, b2} {
		if r := c.job(j.Id); r.Job.State != cellv1.JobState_JOB_STATE_QUEUED {
			t.Fatalf("%s after restart: %v", j.Spec.Name, r.Job.State)
		}
	}

	// a's tasks run and finish: room for b (2) and then b2 (1).
	for i := range uint32(4) {
		c.place(a, i, "m1")
	}
	got, err := c.tenants().GetTenant(ctxT(t), &cellv1.GetTenantRequest{Name: "ml"})
	if err != nil {
		t.Fatal(err)
	}
	if u := got.Tenant.Usage.Batch; u.InUse.CpuMilli != 4000 || u.QueuedJobs != 2 || u.QueuedTasks != 3 || u.DominantShare != 0.25 {
		t.Fatalf("ml batch usage %v", u)
	}
	for i := range uint32(3) {
		tk := c.task(a.Id, i)
		c.report("m1", update(a.Id, i, tk.Attempt, cellv1.TaskState_TASK_STATE_SUCCEEDED, 0))
	}
	rb := c.job(b.Id)
	if rb.Job.State != cellv1.JobState_JOB_STATE_PENDING || rb.Job.QueuedReason != "" || len(rb.Tasks) != 2 || !strings.Contains(rb.Job.Message, "admitted after") {
		t.Fatalf("b after a's tasks ended: %v %q %q, %d tasks", rb.Job.State, rb.Job.QueuedReason, rb.Job.Message, len(rb.Tasks))
	}
	if r := c.job(b2.Id); r.Job.State != cellv1.JobState_JOB_STATE_PENDING {
		t.Fatalf("b2 after a's tasks ended: %v %q", r.Job.State, r.Job.QueuedReason)
	}
	c.checkInvariant()

	// A stopped queued job leaves its queue.
	c.submit(tenantSpec("c", "ml", 2, 1000))
	d := c.submit(tenantSpec("d", "ml", 1, 1000))
	if d.State != cellv1.JobState_JOB_STATE_QUEUED {
		t.Fatalf("d is %v", d.State)
	}
	if _, err := c.jobs.StopJob(ctxT(t), &cellv1.StopJobRequest{IdOrName: "c"}); err != nil {
		t.Fatal(err)
	}
	// Room for d? 1 (a) + 2 (b) + 1 (b2) = 4: d waits on them, not on c.
	if r := c.job(d.Id); r.Job.State != cellv1.JobState_JOB_STATE_QUEUED || strings.Contains(r.Job.QueuedReason, "behind") {
		t.Fatalf("d after c stopped: %v %q", r.Job.State, r.Job.QueuedReason)
	}
	c.checkInvariant()
}

// TestQuotaCommit: the store applies txn's quota rule at commit: a claim
// past the quota fails with QUOTA_EXCEEDED, and a batch claim of a quota
// owner may preempt a borrower's task (reclaim).
func TestQuotaCommit(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := newTestCell(t, Options{Metrics: NewMetrics(reg)})
	c.addMachine("m1", nil, 8000, 64*gib, 0)
	c.setTenant(&cellv1.Tenant{Name: "ml", Batch: &cellv1.BandQuota{Nominal: cores(4)}})
	c.setTenant(&cellv1.Tenant{Name: "ops", Batch: &cellv1.BandQuota{Nominal: cores(0), BorrowLimit: cores(8)}})
	// ops borrows 4 cores: idle is 8 - 4 (ml's unused nominal) = 4.
	ops := c.submit(tenantSpec("ops", "ops", 4, 1000))
	if ops.State != cellv1.JobState_JOB_STATE_PENDING {
		t.Fatalf("ops: %v %q", ops.State, ops.QueuedReason)
	}
	for i := range uint32(4) {
		c.place(ops, i, "m1")
	}
	got, err := c.tenants().GetTenant(ctxT(t), &cellv1.GetTenantRequest{Name: "ops"})
	if err != nil || got.Tenant.Usage.Batch.Borrowed.CpuMilli != 4000 {
		t.Fatalf("ops borrowed: %v %v", got, err)
	}
	// ml runs 4 tasks within its nominal quota; m1 is full.
	ml := c.submit(tenantSpec("ml", "ml", 4, 1000))
	for i := range uint32(4) {
		c.place(ml, i, "m1")
	}
	// The admin raises ml's quota to 8 cores: 4 of them are held by ops's
	// borrowed tasks, which ml reclaims by preemption at equal priority.
	c.setTenant(&cellv1.Tenant{Name: "ml", Batch: &cellv1.BandQuota{Nominal: cores(8)}})
	ml2 := c.submit(tenantSpec("ml2", "ml", 1, 1000))
	r, err := c.state.Commit(ctxT(t), &cellv1.CommitRequest{Scheduler: "batch",
		Claims:      []*cellv1.Claim{claim(ml2.Id, 0, "m1", ml2.Spec.Task.Resources)},
		Preemptions: []*cellv1.TaskRef{{JobId: ops.Id, Index: 0}}})
	if err != nil || r.Accepted != 1 || len(r.Preempted) != 1 || len(r.PreemptionErrors) != 0 {
		t.Fatalf("reclaim: %v %v", r, err)
	}
	if tk := c.task(ops.Id, 0); tk.State != cellv1.TaskState_TASK_STATE_PENDING {
		t.Fatalf("victim is %v", tk.State)
	}
	// ops cannot take it back, not even on a new 2-core machine: ml's
	// unused nominal quota (3 cores) is not idle.
	c.addMachine("m2", nil, 2000, 8*gib, 0)
	r, err = c.state.Commit(ctxT(t), &cellv1.CommitRequest{Scheduler: "batch",
		Claims: []*cellv1.Claim{claim(ops.Id, 0, "m2", ops.Spec.Task.Resources)}})
	if err != nil || r.Accepted != 0 || r.Results[0].Outcome != cellv1.ClaimOutcome_CLAIM_OUTCOME_QUOTA_EXCEEDED ||
		!strings.Contains(r.Results[0].Detail, "tenant ops: batch CPU quota 0m, in use 3000m, claim 1000m: borrowing 1000m, idle 0m") {
		t.Fatalf("claim past quota: %v %v", r, err)
	}
	c.checkInvariant()

	// The per-tenant metrics.
	for _, m := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"omegacell_tenant_preemptions_caused_total", map[string]string{"tenant": "ml"}, 1},
		{"omegacell_tenant_preemptions_suffered_total", map[string]string{"tenant": "ops"}, 1},
		{"omegacell_tenant_borrowed", map[string]string{"tenant": "ops", "band": "batch", "resource": "cpu_millicores"}, 3000},
		{"omegacell_tenant_in_use", map[string]string{"tenant": "ml", "band": "batch", "resource": "cpu_millicores"}, 5000},
		{"omegacell_tenant_quota", map[string]string{"tenant": "ml", "band": "batch", "resource": "cpu_millicores"}, 8000},
		{"omegacell_tenant_borrow_limit", map[string]string{"tenant": "ops", "band": "batch", "resource": "cpu_millicores"}, 8000},
		{"omegacell_tenant_pending_tasks", map[string]string{"tenant": "ops", "band": "batch"}, 1},
		{"omegacell_tenant_dominant_share", map[string]string{"tenant": "ml", "band": "batch"}, 5.0 / 10},
		{"omegacell_tenant_weight", map[string]string{"tenant": "ml"}, 1},
		{"omegacell_production_quota_overcommit", map[string]string{"resource": "cpu_millicores"}, 0},
	} {
		if got, ok := metricValue(t, reg, m.name, m.labels); !ok || got != m.want {
			t.Errorf("%s%v = %v (found %v), want %v", m.name, m.labels, got, ok, m.want)
		}
	}
}

// metricValue is the value of the series of a metric with the labels.
func metricValue(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) (float64, bool) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, l := range m.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			for k, v := range labels {
				if have[k] != v {
					continue series
				}
			}
			if m.GetCounter() != nil {
				return m.GetCounter().GetValue(), true
			}
			return m.GetGauge().GetValue(), true
		}
	}
	return 0, false
}

// TestTenantsInSnapshotAndWatch: schedulers see tenants' weights, quotas
// and use in a snapshot, and tenant changes in the watch; an agent's
// machine watch carries none.
func TestTenantsInSnapshotAndWatch(t *testing.T) {
	c := newTestCell(t, Options{})
	c.addMachine("m1", nil, 8000, 64*gib, 0)
	c.setTenant(&cellv1.Tenant{Name: "ml", Weight: 3, Batch: &cellv1.BandQuota{Nominal: cores(4)}})
	job := c.submit(tenantSpec("a", "ml", 1, 1000))
	c.place(job, 0, "m1")

	stream, err := c.state.Snapshot(ctxT(t), &cellv1.SnapshotRequest{ChunkSize: 1})
	if err != nil {
		t.Fatal(err)
	}
	var tenants []*cellv1.Tenant
	var head uint64
	for {
		chunk, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		tenants, head = append(tenants, chunk.Tenants...), chunk.Revision
		if chunk.Last {
			break
		}
	}
	if len(tenants) != 1 || tenants[0].Weight != 3 || tenants[0].Batch.Nominal.CpuMilli != 4000 || tenants[0].Usage.Batch.InUse.CpuMilli != 1000 {
		t.Fatalf("snapshot tenants %v", tenants)
	}

	watch := func(machine string) (found []*cellv1.Tenant) {
		w, err := c.state.Watch(ctxT(t), &cellv1.WatchRequest{StartRevision: 0, MachineId: machine, ProgressIntervalMs: 20})
		if err != nil {
			t.Fatal(err)
		}
		for {
			r, err := w.Recv()
			if err != nil {
				t.Fatal(err)
			}
			for _, ch := range r.Changes {
				if tn := ch.GetTenant(); tn != nil {
					found = append(found, tn)
				}
			}
			if r.ProgressNotify && r.Revision >= head {
				return found
			}
		}
	}
	if got := watch(""); len(got) != 1 || got[0].Name != "ml" || got[0].Weight != 3 {
		t.Errorf("watch tenant changes %v", got)
	}
	if got := watch("m1"); len(got) != 0 {
		t.Errorf("a machine watch got tenant changes %v", got)
	}
}

// TestProductionOvercommitWarns: production quota is a guarantee, so
// production quotas beyond the cell's capacity are logged as a warning
// (when a tenant changes and when the store opens) and exposed as a
// metric.
func TestProductionOvercommitWarns(t *testing.T) {
	var logs syncLog
	reg := prometheus.NewRegistry()
	c := newTestCell(t, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil)), Metrics: NewMetrics(reg)})
	c.addMachine("m1", nil, 4000, 16*gib, 0)
	c.setTenant(&cellv1.Tenant{Name: "ml", Production: &cellv1.BandQuota{Nominal: &cellv1.QuotaAmounts{CpuMilli: 3000, MemoryBytes: 8 * gib}}})
	if strings.Contains(logs.String(), "production quotas exceed") {
		t.Fatalf("warned with 3 of 4 cores guaranteed:\n%s", logs.String())
	}
	c.setTenant(&cellv1.Tenant{Name: "web", Production: &cellv1.BandQuota{Nominal: &cellv1.QuotaAmounts{CpuMilli: 2000}}})
	if !strings.Contains(logs.String(), "production quotas exceed the cell's capacity") || !strings.Contains(logs.String(), "over_cpu_milli=1000") {
		t.Fatalf("no warning with 5 of 4 cores guaranteed:\n%s", logs.String())
	}
	for res, want := range map[string]float64{"cpu_millicores": 1000, "memory_bytes": 0, "gpu_milli": 0} {
		if got, ok := metricValue(t, reg, "omegacell_production_quota_overcommit", map[string]string{"resource": res}); !ok || got != want {
			t.Errorf("overcommit %s = %v (%v), want %v", res, got, ok, want)
		}
	}
}

// syncLog is a log destination tests read while the store writes.
type syncLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *syncLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *syncLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}
