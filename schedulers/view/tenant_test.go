package view

import (
	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
	"maps"
	"testing"

	"github.com/omegacell/omegacell/txn"
)

// TestTenantUsage follows a tenant's usage through placement, a job whose
// tasks arrive before it, task ends, machine state changes and Reset.
func TestTenantUsage(t *testing.T) {
	v := New()
	capM := txn.Resources{CPUMilli: 8000, MemoryBytes: 64, GPUMilli: 8000}
	v.PutMachine(txn.NewMachine("m1", nil, capM))
	v.PutMachine(txn.NewMachine("m2", nil, capM))
	if got := v.ReadyCapacity(); got != capM.Add(capM) {
		t.Fatalf("capacity %v, want two machines'", got)
	}
	changes := func() (map[string]txn.Resources, bool) {
		got := map[string]txn.Resources{}
		c := v.TenantChanges(func(name string, u txn.Resources, _ uint32) { got[name] = u })
		return got, c
	}
	if _, c := changes(); !c {
		t.Error("capacity change not reported")
	}
	a := JobInfo{ID: "a", Scheduler: "s", Tenant: "ml", Count: 2, Resources: txn.Resources{CPUMilli: 1000, MemoryBytes: 2}}
	v.PutJob(a)
	t0, t1 := a.NewTask(0), a.NewTask(1)
	v.PutTask(t0)
	v.PutTask(t1)
	if got, _ := changes(); len(got) != 0 {
		t.Errorf("pending tasks changed usage: %v", got)
	}
	place := func(tk *txn.Task, m string) *txn.Task {
		n := tk.Clone()
		n.State, n.Machine = txn.TaskAssigned, m
		v.PutTask(n)
		return n
	}
	p0 := place(t0, "m1")
	place(t1, "m2")
	if got, _ := changes(); !maps.Equal(got, map[string]txn.Resources{"ml": {CPUMilli: 2000, MemoryBytes: 4}}) {
		t.Errorf("after placing two tasks: %v", got)
	}
	// A job whose task arrives first counts under "" until it is known.
	b := JobInfo{ID: "b", Scheduler: "s", Tenant: "web", Count: 1, Resources: txn.Resources{GPUMilli: 1000}}
	early := b.NewTask(0)
	early.Tenant = "" // as the stream sends it: the job names the tenant
	place(early, "m1")
	if u := v.TenantUsage(""); u.GPUMilli != 1000 {
		t.Errorf("unknown job's usage under \"\": %v", u)
	}
	v.PutJob(b)
	if u, w := v.TenantUsage(""), v.TenantUsage("web"); !u.IsZero() || w.GPUMilli != 1000 {
		t.Errorf("after PutJob: \"\" %v, web %v", u, w)
	}
	done := p0.Clone()
	done.State, done.Machine = txn.TaskSucceeded, ""
	v.PutTask(done)
	if u := v.TenantUsage("ml"); u != (txn.Resources{CPUMilli: 1000, MemoryBytes: 2}) {
		t.Errorf("after a task ended: %v", u)
	}
	changes()
	down := v.Machine("m2").Clone()
	down.State = txn.MachineDown
	v.PutMachine(down)
	if _, c := changes(); !c || v.ReadyCapacity() != capM {
		t.Errorf("machine down: changed %v, capacity %v", c, v.ReadyCapacity())
	}
	v.SetTenantWeight("ml", 3)
	if got, _ := changes(); len(got) != 1 || v.TenantWeight("ml") != 3 || v.TenantWeight("web") != 1 {
		t.Errorf("weight change: %v, weights %d %d", got, v.TenantWeight("ml"), v.TenantWeight("web"))
	}
	v.Reset()
	got, c := changes()
	if !c || len(got) != 2 || !got["ml"].IsZero() || !got["web"].IsZero() {
		t.Errorf("after Reset: %v (capacity changed %v), want ml and web with nothing", got, c)
	}
}

// TestTenantFromStream: a tenant change of the watch sets the weight and
// the quota the view's ledger holds (a txn.QuotaState).
func TestTenantFromStream(t *testing.T) {
	v := New()
	err := v.ApplyChange(&cellv1.Change{Object: &cellv1.Change_Tenant{Tenant: &cellv1.Tenant{
		Name: "ml", Weight: 3, Batch: &cellv1.BandQuota{Nominal: &cellv1.QuotaAmounts{GpuMilli: 8000}},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	if v.TenantWeight("ml") != 3 {
		t.Errorf("weight %d, want 3", v.TenantWeight("ml"))
	}
	var qs txn.QuotaState = v
	if q := qs.Ledger().Quota("ml", txn.BandBatch); q == nil || q.Nominal.GPUMilli != 8000 {
		t.Errorf("ledger quota %+v, want 8 GPUs nominal", q)
	}
	if err := v.ApplyChange(&cellv1.Change{Object: &cellv1.Change_Tenant{Tenant: &cellv1.Tenant{}}}); err == nil {
		t.Error("a tenant without a name was accepted")
	}
}
