package txn_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/omegacell/omegacell/txn"
)

// quotaCell is the cell every quota case starts from:
//
//	m1  8 cores, 32 GiB, 4 GPUs        m2  8 cores, 32 GiB, no GPU
//	capacity 16 cores, 64 GiB, 4 GPUs
//
// Tenants:
//
//	ml    production 2 cores 8 GiB 1 GPU (guaranteed);
//	      batch 4 cores 16 GiB 2 GPUs, may borrow 4 cores 8 GiB 1 GPU
//	web   batch 4 cores 16 GiB, no GPU, no borrowing
//	free  no quota
//
// Reserved by quotas: 10 cores, 40 GiB, 3 GPUs; idle 6 cores, 24 GiB, 1 GPU.
func quotaCell() *cell {
	c := newCell()
	c.addMachine("m1", nil, res(8, 32, 0, 4000))
	c.addMachine("m2", nil, res(8, 32, 0, 0))
	return c
}

func quotaTenants() []txn.Tenant {
	ml := txn.Tenant{Name: "ml", Weight: 1, MaxBand: txn.BandProduction}
	ml.Quota[txn.BandProduction] = &txn.Quota{Nominal: res(2, 8, 0, 1000)}
	ml.Quota[txn.BandBatch] = &txn.Quota{Nominal: res(4, 16, 0, 2000), BorrowLimit: res(4, 8, 0, 1000)}
	web := txn.Tenant{Name: "web", Weight: 3, MaxBand: txn.BandBatch}
	web.Quota[txn.BandBatch] = &txn.Quota{Nominal: res(4, 16, 0, 0)}
	return []txn.Tenant{ml, web}
}

// tenantTask adds a pending task of a tenant.
func (c *cell) tenantTask(job string, index uint32, tenant string, priority int32, r txn.Resources) *txn.Task {
	t := c.addTask(job, index, priority, r)
	t.Tenant = tenant
	return t
}

// running adds a task of a tenant running on a machine (placed before
// quotas are installed: the setup is not what is tested).
func (c *cell) running(job, tenant string, priority int32, r txn.Resources, machine string) {
	c.tenantTask(job, 0, tenant, priority, r)
	c.place(key(job, 0), machine)
	c.setRunning(key(job, 0))
}

type quotaCase struct {
	name    string
	setup   func(c *cell) // before quotas are installed
	claims  []txn.Claim   // resources filled from the task
	preempt []txn.TaskKey
	commit  txn.CommitMode
	want    []txn.Reason
	// wantPreempted lists the victims evicted.
	wantPreempted []txn.TaskKey
	// after checks the ledger once the decision is applied.
	after func(t *testing.T, l *txn.Ledger)
}

func wantUse(tenant string, b txn.Band, inUse txn.Resources) func(t *testing.T, l *txn.Ledger) {
	return func(t *testing.T, l *txn.Ledger) {
		t.Helper()
		if got := l.Use(tenant, b).InUse; got != inUse {
			t.Errorf("%s %s in use %v, want %v", tenant, b, got, inUse)
		}
	}
}

func quotaCases() []quotaCase {
	ok, quota := txn.ReasonOK, txn.ReasonQuotaExceeded
	batch, prod := txn.PriorityBatch, txn.PriorityProduction
	return []quotaCase{
		{name: "batch within nominal quota", setup: func(c *cell) { c.tenantTask("a", 0, "ml", batch, res(4, 16, 0, 2000)) },
			claims: []txn.Claim{{Task: key("a", 0), Machine: "m1"}}, want: []txn.Reason{ok},
			after: wantUse("ml", txn.BandBatch, res(4, 16, 0, 2000))},
		{name: "batch borrows idle capacity above nominal", setup: func(c *cell) {
			c.running("r", "ml", batch, res(4, 4, 0, 0), "m1")
			c.tenantTask("a", 0, "ml", batch, res(2, 1, 0, 0))
		}, claims: []txn.Claim{{Task: key("a", 0), Machine: "m2"}}, want: []txn.Reason{ok},
			after: func(t *testing.T, l *txn.Ledger) {
				if got := l.Borrowed("ml", txn.BandBatch); got != res(2, 0, 0, 0) {
					t.Errorf("borrowed %v, want 2 cores", got)
				}
				if got := l.Idle(); got != res(4, 24, 0, 1000) {
					t.Errorf("idle %v, want 4 cores 24 GiB 1 GPU", got)
				}
			}},
		{name: "batch past the borrow limit", setup: func(c *cell) {
			c.running("r", "ml", batch, res(4, 4, 0, 0), "m1")
			c.tenantTask("a", 0, "ml", batch, res(5, 1, 0, 0))
		}, claims: []txn.Claim{{Task: key("a", 0), Machine: "m2"}}, want: []txn.Reason{quota}},
		{name: "batch borrowing needs idle capacity", setup: func(c *cell) {
			c.running("r", "ml", batch, res(4, 4, 0, 0), "m1")
			c.running("f", "free", batch, res(4, 1, 0, 0), "m2")
			c.running("g", "free", batch, res(2, 1, 0, 0), "m2") // idle cpu now 0
			c.tenantTask("a", 0, "ml", batch, res(1, 1, 0, 0))
		}, claims: []txn.Claim{{Task: key("a", 0), Machine: "m2"}}, want: []txn.Reason{quota}},
		{name: "best-effort use is idle for borrowing", setup: func(c *cell) {
			c.running("r", "ml", batch, res(4, 4, 0, 0), "m1")
			c.running("f", "free", 0, res(6, 1, 0, 0), "m2")
			c.tenantTask("a", 0, "ml", batch, res(2, 1, 0, 0))
		}, claims: []txn.Claim{{Task: key("a", 0), Machine: "m2"}}, want: []txn.Reason{ok}},
		{name: "batch without borrow limit stops at nominal", setup: func(c *cell) {
			c.running("r", "web", batch, res(4, 4, 0, 0), "m1")
			c.tenantTask("a", 0, "web", batch, res(1, 1, 0, 0))
		}, claims: []txn.Claim{{Task: key("a", 0), Machine: "m2"}}, want: []txn.Reason{quota}},
		{name: "a kind left out of the quota allows none", setup: func(c *cell) { c.tenantTask("a", 0, "web", batch, res(1, 1, 0, 500)) },
			claims: []txn.Claim{{Task: key("a", 0), Machine: "m1"}}, want: []txn.Reason{quota}},
		{name: "production within its guarantee", setup: func(c *cell) { c.tenantTask("p", 0, "ml", prod, res(2, 8, 0, 1000)) },
			claims: []txn.Claim{{Task: key("p", 0), Machine: "m1"}}, want: []txn.Reason{ok}},
		{name: "production never borrows", setup: func(c *cell) { c.tenantTask("p", 0, "ml", prod, res(3, 1, 0, 0)) },
			claims: []txn.Claim{{Task: key("p", 0), Machine: "m1"}}, want: []txn.Reason{quota}},
		{name: "best-effort has no quota", setup: func(c *cell) { c.tenantTask("b", 0, "web", 0, res(8, 32, 0, 4000)) },
			claims: []txn.Claim{{Task: key("b", 0), Machine: "m1"}}, want: []txn.Reason{ok},
			after: wantUse("web", txn.BandBestEffort, res(8, 32, 0, 4000))},
		{name: "a tenant without quota is not limited", setup: func(c *cell) {
			c.tenantTask("a", 0, "free", batch, res(8, 32, 0, 4000))
			c.tenantTask("a", 1, "free", prod, res(8, 32, 0, 0))
		}, claims: []txn.Claim{{Task: key("a", 0), Machine: "m1"}, {Task: key("a", 1), Machine: "m2"}}, want: []txn.Reason{ok, ok}},
		{name: "earlier claims of the transaction count", setup: func(c *cell) {
			for i := range uint32(3) {
				c.tenantTask("a", i, "ml", batch, res(3, 1, 0, 0))
			}
		}, claims: []txn.Claim{{Task: key("a", 0), Machine: "m1"}, {Task: key("a", 1), Machine: "m2"}, {Task: key("a", 2), Machine: "m2"}},
			want: []txn.Reason{ok, ok, quota}, after: wantUse("ml", txn.BandBatch, res(6, 2, 0, 0))},
		{name: "a claim refused for fit takes no quota", setup: func(c *cell) {
			c.tenantTask("a", 0, "ml", batch, res(4, 1, 0, 1000)) // m2 has no GPU
			c.tenantTask("a", 1, "ml", batch, res(8, 1, 0, 0))    // all of nominal + borrow limit
		}, claims: []txn.Claim{{Task: key("a", 0), Machine: "m2"}, {Task: key("a", 1), Machine: "m2"}},
			want: []txn.Reason{txn.ReasonInsufficientGPU, ok}},
		{name: "all-or-nothing: a quota refusal aborts", commit: txn.CommitAllOrNothing, setup: func(c *cell) {
			c.tenantTask("a", 0, "ml", batch, res(1, 1, 0, 0))
			c.tenantTask("p", 0, "ml", prod, res(3, 1, 0, 0))
		}, claims: []txn.Claim{{Task: key("a", 0), Machine: "m1"}, {Task: key("p", 0), Machine: "m2"}},
			want: []txn.Reason{txn.ReasonAborted, quota}, after: wantUse("ml", txn.BandBatch, txn.Resources{})},
		{name: "a failed gang gives its quota back", setup: func(c *cell) {
			c.tenantTask("g", 0, "ml", batch, res(3, 1, 0, 0))
			c.tenantTask("g", 1, "ml", batch, res(3, 40, 0, 0)) // fits no machine
			c.gangs = map[string]bool{"g": true}
			c.tenantTask("a", 0, "ml", batch, res(4, 1, 0, 0))
		}, claims: []txn.Claim{{Task: key("g", 0), Machine: "m1"}, {Task: key("g", 1), Machine: "m1"}, {Task: key("a", 0), Machine: "m2"}},
			want: []txn.Reason{txn.ReasonAborted, txn.ReasonInsufficientMemory, ok}, after: wantUse("ml", txn.BandBatch, res(4, 1, 0, 0))},
		{name: "preemption restores the victim's quota to the claim", setup: func(c *cell) {
			c.running("r", "ml", batch, res(8, 4, 0, 0), "m1") // nominal 4 + borrowed 4: at the limit
			c.tenantTask("a", 0, "ml", 150, res(2, 1, 0, 0))
		}, claims: []txn.Claim{{Task: key("a", 0), Machine: "m1"}}, preempt: []txn.TaskKey{key("r", 0)},
			want: []txn.Reason{ok}, wantPreempted: []txn.TaskKey{key("r", 0)}, after: wantUse("ml", txn.BandBatch, res(2, 1, 0, 0))},
		{name: "without the preemption the same claim exceeds quota", setup: func(c *cell) {
			c.running("r", "ml", batch, res(8, 4, 0, 0), "m1")
			c.tenantTask("a", 0, "ml", 150, res(2, 1, 0, 0))
		}, claims: []txn.Claim{{Task: key("a", 0), Machine: "m2"}}, want: []txn.Reason{quota}},
		{name: "release on task end", setup: func(c *cell) {
			c.running("r", "ml", batch, res(8, 4, 0, 0), "m1")
			nt, nm, err := txn.Transition(c, key("r", 0), txn.TaskSucceeded)
			if err != nil {
				panic(err)
			}
			c.install(nt, nm)
			c.tenantTask("a", 0, "ml", batch, res(4, 16, 0, 2000))
		}, claims: []txn.Claim{{Task: key("a", 0), Machine: "m1"}}, want: []txn.Reason{ok}},
		{name: "reclaim: a quota owner preempts a borrower at equal priority", setup: func(c *cell) {
			c.running("r", "ml", batch, res(3, 1, 0, 0), "m1")
			c.tenantTask("r2", 0, "ml", batch, res(3, 1, 0, 0))
			c.place(key("r2", 0), "m1") // ml: 6 cores, borrowing 2
			c.tenantTask("w", 0, "web", batch, res(4, 1, 0, 0))
		}, claims: []txn.Claim{{Task: key("w", 0), Machine: "m1"}}, preempt: []txn.TaskKey{key("r2", 0)},
			want: []txn.Reason{ok}, wantPreempted: []txn.TaskKey{key("r2", 0)}, after: func(t *testing.T, l *txn.Ledger) {
				wantUse("ml", txn.BandBatch, res(3, 1, 0, 0))(t, l)
				wantUse("web", txn.BandBatch, res(4, 1, 0, 0))(t, l)
			}},
		{name: "reclaim: a tenant within its quota is not preempted", setup: func(c *cell) {
			c.running("r", "ml", batch, res(3, 1, 0, 0), "m1")
			c.running("f", "free", batch, res(3, 1, 0, 0), "m1")
			c.tenantTask("w", 0, "web", batch, res(4, 1, 0, 0))
		}, claims: []txn.Claim{{Task: key("w", 0), Machine: "m1"}}, preempt: []txn.TaskKey{key("r", 0)},
			want: []txn.Reason{txn.ReasonInsufficientCPU}},
		{name: "reclaim: only while the victim's tenant still borrows", setup: func(c *cell) {
			c.running("r", "ml", batch, res(3, 1, 0, 0), "m1")
			c.tenantTask("r2", 0, "ml", batch, res(3, 1, 0, 0))
			c.place(key("r2", 0), "m1") // ml borrows 2 cores: one victim ends that
			c.tenantTask("w", 0, "web", batch, res(4, 1, 0, 0))
		}, claims: []txn.Claim{{Task: key("w", 0), Machine: "m1"}}, preempt: []txn.TaskKey{key("r", 0), key("r2", 0)},
			want: []txn.Reason{ok}, wantPreempted: []txn.TaskKey{key("r", 0)}},
		{name: "reclaim: a tenant without batch quota may not reclaim", setup: func(c *cell) {
			c.running("r", "ml", batch, res(3, 1, 0, 0), "m1")
			c.tenantTask("r2", 0, "ml", batch, res(3, 1, 0, 0))
			c.place(key("r2", 0), "m1")
			c.tenantTask("f", 0, "free", batch, res(4, 1, 0, 0))
		}, claims: []txn.Claim{{Task: key("f", 0), Machine: "m1"}}, preempt: []txn.TaskKey{key("r2", 0)},
			want: []txn.Reason{txn.ReasonInsufficientCPU}},
	}
}

func TestValidateQuota(t *testing.T) {
	var golden strings.Builder
	for _, tt := range quotaCases() {
		t.Run(tt.name, func(t *testing.T) {
			c := quotaCell()
			tt.setup(c)
			c.withQuotas(quotaTenants()...)
			claims := slices.Clone(tt.claims)
			for i := range claims {
				tk := c.tasks[claims[i].Task]
				claims[i].Resources = tk.Resources
				claims[i].Devices, _ = txn.AssignDevices(c.machines[claims[i].Machine], tk.Resources.GPUMilli)
			}
			commit := tt.commit
			if commit == 0 {
				commit = txn.CommitIncremental
			}
			tx := &txn.Transaction{Scheduler: "batch", Conflict: txn.ConflictFine, Commit: commit, Claims: claims, Preemptions: tt.preempt}
			before := c.clone()
			d := txn.Validate(c, tx)
			if diff := before.diff(c); diff != "" {
				t.Fatalf("Validate mutated its input state:\n%s", diff)
			}
			fmt.Fprintf(&golden, "== %s\n", tt.name)
			got := make([]txn.Reason, len(d.Results))
			for i, r := range d.Results {
				got[i] = r.Reason
				fmt.Fprintf(&golden, "claim %d %s: %s %s\n", i, claims[i].Task, r.Reason, r.Detail)
			}
			for _, e := range d.PreemptionErrors {
				fmt.Fprintf(&golden, "preemption: %s\n", e)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("reasons = %v, want %v (%v)", got, tt.want, d.Results)
			}
			if !slices.Equal(d.Preempted, tt.wantPreempted) && len(d.Preempted)+len(tt.wantPreempted) > 0 {
				t.Errorf("preempted = %v, want %v (errors %q)", d.Preempted, tt.wantPreempted, d.PreemptionErrors)
			}
			checkOutcome(t, c, tx, d)
			txn.Apply(c, d)
			if bad := checkLedger(c); len(bad) > 0 {
				t.Errorf("ledger after apply:\n%s", strings.Join(bad, "\n"))
			}
			if tt.after != nil {
				tt.after(t, c.ledger)
			}
		})
	}
	checkGolden(t, "quota.golden", golden.String())
}

// checkLedger compares the cell's incremental ledger with one rebuilt
// from scratch, and checks that no tenant is above its quota (plus, in
// batch, its borrow limit).
func checkLedger(c *cell) []string {
	if c.ledger == nil {
		return nil
	}
	var bad []string
	want := rebuildLedger(c)
	if c.ledger.Capacity() != want.Capacity() || c.ledger.Idle() != want.Idle() {
		bad = append(bad, fmt.Sprintf("capacity %v idle %v, rebuilt %v %v", c.ledger.Capacity(), c.ledger.Idle(), want.Capacity(), want.Idle()))
	}
	names := map[string]bool{}
	want.Tenants(func(t txn.Tenant, _ bool) { names[t.Name] = true })
	c.ledger.Tenants(func(t txn.Tenant, _ bool) { names[t.Name] = true })
	for n := range names {
		for b := txn.BandBestEffort; b < txn.NumBands; b++ {
			if got, w := c.ledger.Use(n, b), want.Use(n, b); got != w {
				bad = append(bad, fmt.Sprintf("tenant %s %s: use %+v, rebuilt %+v", n, b, got, w))
			}
			q := c.ledger.Quota(n, b)
			if q == nil {
				continue
			}
			limit := q.Nominal
			if b == txn.BandBatch {
				limit = limit.Add(q.BorrowLimit)
			}
			if u := c.ledger.Use(n, b).InUse; !noDisk(u).LessOrEqual(noDisk(limit)) {
				bad = append(bad, fmt.Sprintf("tenant %s %s: in use %v above quota %v", n, b, u, limit))
			}
		}
	}
	slices.Sort(bad)
	return bad
}

func noDisk(r txn.Resources) txn.Resources { r.DiskBytes = 0; return r }

func TestLedgerAdmit(t *testing.T) {
	batch := txn.BandBatch
	for _, tt := range []struct {
		name   string
		setup  func(c *cell)
		tenant string
		band   txn.Band
		need   txn.Resources
		want   txn.Admission
		why    string
	}{
		{name: "no quota", tenant: "free", band: batch, need: res(100, 1, 0, 0), want: txn.Admit},
		{name: "fits nominal", tenant: "ml", band: batch, need: res(4, 16, 0, 2000), want: txn.Admit},
		{name: "never: past quota and borrow limit", tenant: "ml", band: batch, need: res(1, 1, 0, 4000), want: txn.Never,
			why: "tenant ml: batch GPU quota 2000m (+1000m borrowable), job needs 4000m"},
		{name: "never: production does not borrow", tenant: "ml", band: txn.BandProduction, need: res(3, 1, 0, 0), want: txn.Never,
			why: "tenant ml: production CPU quota 2000m, job needs 3000m"},
		{name: "queued behind admitted work", setup: func(c *cell) { c.tenantTask("p", 0, "web", txn.PriorityBatch, res(4, 1, 0, 0)) },
			tenant: "web", band: batch, need: res(1, 1, 0, 0), want: txn.Queue,
			why: "tenant web: batch CPU quota 4000m, admitted 4000m, job needs 1000m"},
		{name: "admitted by borrowing idle capacity", setup: func(c *cell) { c.tenantTask("p", 0, "ml", txn.PriorityBatch, res(4, 1, 0, 0)) },
			tenant: "ml", band: batch, need: res(3, 1, 0, 0), want: txn.Admit},
		{name: "queued: nothing idle to borrow", setup: func(c *cell) {
			c.tenantTask("p", 0, "ml", txn.PriorityBatch, res(4, 1, 0, 0))
			c.running("f", "free", txn.PriorityBatch, res(6, 1, 0, 0), "m2")
		}, tenant: "ml", band: batch, need: res(1, 1, 0, 0), want: txn.Queue,
			why: "tenant ml: batch CPU quota 4000m, admitted 4000m, job needs 1000m, idle to borrow 0m"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := quotaCell()
			if tt.setup != nil {
				tt.setup(c)
			}
			c.withQuotas(quotaTenants()...)
			got, why := c.ledger.Admit(tt.tenant, tt.band, tt.need)
			if got != tt.want || why != tt.why {
				t.Errorf("Admit = %v %q, want %v %q", got, why, tt.want, tt.why)
			}
		})
	}
}

func TestLedgerShares(t *testing.T) {
	c := quotaCell()
	c.running("r", "ml", txn.PriorityBatch, res(4, 8, 0, 2000), "m1")
	c.withQuotas(quotaTenants()...)
	if got := txn.DominantShare(c.ledger.Use("ml", txn.BandBatch).InUse, c.ledger.Capacity()); got != 0.5 {
		t.Errorf("dominant share %v, want 0.5 (2 of 4 GPUs)", got)
	}
	if got := c.ledger.ProductionOvercommit(); !got.IsZero() {
		t.Errorf("overcommit %v with 2 production cores of 16", got)
	}
	big := quotaTenants()
	big[1].Quota[txn.BandProduction] = &txn.Quota{Nominal: res(15, 1, 0, 0)}
	c.withQuotas(big...)
	if got := c.ledger.ProductionOvercommit(); got != res(1, 0, 0, 0) {
		t.Errorf("overcommit %v, want 1 core", got)
	}
	// A machine going down takes its capacity out of the cell.
	m := c.machines["m2"].Clone()
	m.State = txn.MachineDown
	c.PutMachine(m)
	if got := c.ledger.Capacity(); got != res(8, 32, 0, 4000) {
		t.Errorf("capacity %v after m2 went down", got)
	}
}

// TestPropertyQuotas runs the property test's random workload with
// tenants and quotas: after every step the cell invariant holds, the
// incremental ledger equals one rebuilt from scratch, and no tenant is
// ever above its quota (plus, in batch, its borrow limit).
func TestPropertyQuotas(t *testing.T) {
	const steps = 3000
	w := newWorkload(rand.New(rand.NewPCG(20110330, 12)))
	w.tenants = []string{"ml", "web", "ops", "ops", "ml", "web", "free"}
	for range 8 { // a small cell, full most of the time: borrowing and reclaiming happen
		w.addMachine(8)
	}
	ml := txn.Tenant{Name: "ml", Weight: 3}
	ml.Quota[txn.BandProduction] = &txn.Quota{Nominal: res(4, 16, 0, 2000)}
	ml.Quota[txn.BandBatch] = &txn.Quota{Nominal: res(10, 30, 0, 6000), BorrowLimit: res(20, 40, 0, 8000)}
	web := txn.Tenant{Name: "web", Weight: 1}
	web.Quota[txn.BandBatch] = &txn.Quota{Nominal: res(10, 30, 0, 2000)}
	web.Quota[txn.BandProduction] = &txn.Quota{Nominal: res(4, 10, 0, 0)}
	// ops lives on borrowed capacity: the others reclaim it.
	ops := txn.Tenant{Name: "ops", Weight: 1}
	ops.Quota[txn.BandBatch] = &txn.Quota{BorrowLimit: res(100, 200, 0, 40000)} // all it runs is borrowed
	w.c.withQuotas(ml, web, ops)
	for range 30 {
		w.submit(8)
	}
	w.refreshView()
	for step := range steps {
		var bad []string
		action := w.pick(100)
		switch {
		case action < 45:
			bad = w.commit(w.transaction(12))
		case action < 55:
			if tx := w.reclaimTx(); tx != nil {
				w.stats["reclaim_tx"]++
				bad = w.commit(tx)
			} else {
				w.stats["reclaim_none"]++
			}
		case action < 95:
			bad = w.transitions(6)
		case action < 97:
			w.changeMachine()
		default:
			w.submit(8)
		}
		for w.pending() < 100 {
			w.submit(8)
		}
		if len(w.c.tasks) > 300 {
			w.forgetFinished()
		}
		if w.chance(25) {
			w.refreshView()
		}
		bad = append(bad, checkInvariant(w.c)...)
		bad = append(bad, checkLedger(w.c)...)
		if len(bad) > 0 {
			t.Fatalf("step %d (action %d):\n%s", step, action, strings.Join(bad, "\n"))
		}
	}
	t.Logf("stats: %v", w.stats)
	for _, k := range []string{"accepted", "preempted", "quota_exceeded", "reclaimed"} {
		if w.stats[k] < 5 {
			t.Errorf("only %d %s in %d steps: the workload does not exercise it", w.stats[k], k, steps)
		}
	}
}

// reclaimTx is what a scheduler reclaiming borrowed quota commits, from
// its (possibly stale) view: a pending batch task of a tenant with a batch
// quota, claimed on the machine of a running batch task of another tenant
// that borrows, preempting that task (and, sometimes, a second one).
func (w *workload) reclaimTx() *txn.Transaction {
	l := w.view.ledger
	var victims, claimants []*txn.Task
	for _, k := range w.keys {
		t := w.view.tasks[k]
		if t == nil || txn.BandOf(t.Priority) != txn.BandBatch || l.Quota(t.Tenant, txn.BandBatch) == nil {
			continue
		}
		switch {
		case t.State.HoldsResources() && !l.Borrowed(t.Tenant, txn.BandBatch).IsZero():
			victims = append(victims, t)
		case t.State == txn.TaskPending:
			claimants = append(claimants, t)
		}
	}
	if len(victims) == 0 || len(claimants) == 0 {
		return nil
	}
	v := victims[w.pick(len(victims))]
	m := w.view.machines[v.Machine]
	free := m.Clone() // the machine as if the victim were gone
	_ = txn.Release(free, v.Resources, v.Devices)
	var c *txn.Task
	start := w.pick(len(claimants))
	for i := range claimants {
		if t := claimants[(start+i)%len(claimants)]; t.Tenant != v.Tenant && !w.view.gangs[t.Key.Job] && txn.FitsAnywhere(free, t.Resources) {
			c = t
			break
		}
	}
	if c == nil {
		return nil
	}
	tx := &txn.Transaction{Scheduler: c.Scheduler, Conflict: txn.ConflictFine, Commit: txn.CommitMode(1 + w.pick(2)),
		Claims: []txn.Claim{{Task: c.Key, Machine: v.Machine, Resources: c.Resources, SeenSeq: m.Seq}}, Preemptions: []txn.TaskKey{v.Key}}
	tx.Claims[0].Devices, _ = txn.AssignDevices(free, c.Resources.GPUMilli)
	if k := victims[w.pick(len(victims))].Key; k != v.Key && w.chance(30) {
		tx.Preemptions = append(tx.Preemptions, k)
	}
	return tx
}

// BenchmarkValidateQuota is BenchmarkValidate's fine mode with the pending
// tasks spread over 10 tenants, each under a batch quota that admits
// them (every claim checked, 10% of them borrowing idle capacity): the
// cost of quota checks per claim against BenchmarkValidate/*/fine.
func BenchmarkValidateQuota(b *testing.B) {
	c := benchCell(10000, 1000)
	var tenants []txn.Tenant
	for i := range 10 {
		tn := txn.Tenant{Name: fmt.Sprintf("t%d", i), Weight: 1}
		tn.Quota[txn.BandBatch] = &txn.Quota{Nominal: res(90, 180, 0, 100000), BorrowLimit: res(20, 40, 0, 10000)}
		tenants = append(tenants, tn)
	}
	for k, t := range c.tasks {
		t.Tenant = tenants[int(k.Index)%len(tenants)].Name
	}
	c.withQuotas(tenants...)
	for _, n := range []int{1, 100, 1000} {
		tx := benchTransaction(c, n, txn.ConflictFine)
		if d := txn.Validate(c, tx); d.Accepted != n {
			b.Fatalf("benchmark transaction: only %d of %d claims accepted: %v", d.Accepted, n, d.Results[0])
		}
		b.Run(fmt.Sprintf("claims=%d/fine", n), func(b *testing.B) {
			b.ReportAllocs()
			iterations := 0
			for b.Loop() {
				txn.Validate(c, tx)
				iterations++
			}
			b.ReportMetric(float64(iterations*n)/b.Elapsed().Seconds(), "claims/s")
		})
	}
}
