package txn_test

import (
	"fmt"
	"strings"
	"testing"

	. "github.com/omegacell/omegacell/txn"
)

// explainCell is a cell like `cell dev --simulate 20`: 12 CPU machines in
// zones a and b, 8 machines with 8 H100 each, one of them draining and
// one half used.
func explainCell() []*Machine {
	var ms []*Machine
	for i := range 12 {
		zone := []string{"a", "b"}[i%2]
		ms = append(ms, NewMachine(fmt.Sprintf("cpu-%02d", i), map[string]string{"zone": zone, "rack": fmt.Sprintf("r%d", i/4)},
			Resources{CPUMilli: 16000, MemoryBytes: 64 << 30, DiskBytes: 500 << 30}))
	}
	for i := range 8 {
		m := NewMachine(fmt.Sprintf("gpu-%02d", i), map[string]string{"zone": "a", "rack": "g0", "gpu.model": "H100"},
			Resources{CPUMilli: 64000, MemoryBytes: 512 << 30, DiskBytes: 2 << 40, GPUMilli: 8000})
		ms = append(ms, m)
	}
	ms[12].State = MachineDraining
	busy := ms[13]
	Allocate(busy, Resources{CPUMilli: 8000, MemoryBytes: 64 << 30, GPUMilli: 4000}, []DeviceShare{{0, 1000}, {1, 1000}, {2, 1000}, {3, 1000}})
	Allocate(ms[0], Resources{CPUMilli: 15000, MemoryBytes: 8 << 30}, nil)
	return ms
}

func TestExplainGolden(t *testing.T) {
	cases := []struct {
		name      string
		task      Task
		spreadKey string
		onMachine map[string]uint32
	}{
		{name: "16 GPUs where machines have 8", task: Task{Resources: Resources{CPUMilli: 8000, MemoryBytes: 64 << 30, GPUMilli: 16000}}},
		{name: "gpuModel A100 in an H100 cell", task: Task{Resources: Resources{CPUMilli: 8000, MemoryBytes: 64 << 30, GPUMilli: 8000},
			Constraints: Compile([]Constraint{{Key: "gpu.model", Op: OpIn, Values: []string{"A100"}}})}},
		{name: "zone = mars", task: Task{Resources: Resources{CPUMilli: 1000, MemoryBytes: 1 << 30},
			Constraints: Compile([]Constraint{{Key: "zone", Op: OpIn, Values: []string{"mars"}}})}},
		{name: "fits ever, not now", task: Task{Resources: Resources{CPUMilli: 2000, MemoryBytes: 1 << 30, GPUMilli: 8000}}},
		{name: "cpu memory and max per machine", task: Task{Resources: Resources{CPUMilli: 12000, MemoryBytes: 100 << 30}, MaxPerMachine: 1},
			onMachine: map[string]uint32{"gpu-05": 1, "gpu-06": 1}},
		{name: "constraint by constraint and spread", task: Task{Resources: Resources{CPUMilli: 100},
			Constraints: Compile([]Constraint{{Key: "zone", Op: OpIn, Values: []string{"a"}}, {Key: "gpu.model", Op: OpDoesNotExist}})},
			spreadKey: "host"},
		{name: "fractional GPU", task: Task{Resources: Resources{CPUMilli: 100, GPUMilli: 500}}},
		{name: "too much disk ever", task: Task{Resources: Resources{CPUMilli: 100, DiskBytes: 3 << 40}}},
	}
	var b strings.Builder
	for _, c := range cases {
		e := NewExplainer(&c.task, c.spreadKey)
		for _, m := range explainCell() {
			e.Add(m, c.onMachine[m.ID])
		}
		if e.Now.Fit+sum(e.Now.Refused[:]) != e.Now.Machines || e.Ever.Fit+sum(e.Ever.Refused[:]) != e.Ever.Machines {
			t.Errorf("%s: every machine must be counted once: now %+v ever %+v", c.name, e.Now, e.Ever)
		}
		if e.Ever.Fit < e.Now.Fit {
			t.Errorf("%s: %d machines fit now but only %d ever", c.name, e.Now.Fit, e.Ever.Fit)
		}
		fmt.Fprintf(&b, "%s\n  reason: %s\n  now:    %s\n  ever:   %s\n", c.name, e.Reason(), e.Explain(false), e.Explain(true))
	}
	checkGolden(t, "explain.golden", b.String())
}

func sum(xs []int) int {
	n := 0
	for _, x := range xs {
		n += x
	}
	return n
}

// TestExplainAgreesWithFits checks the explanation against the fit check
// itself on random machines: a machine counts as fitting now exactly when
// the constraints hold, it is ready, under max per machine, and
// FitsAnywhere says so.
func TestExplainAgreesWithFits(t *testing.T) {
	ms := explainCell()
	shapes := []Resources{{CPUMilli: 1000}, {CPUMilli: 2000, GPUMilli: 4000}, {CPUMilli: 100, GPUMilli: 500}, {MemoryBytes: 60 << 30}, {CPUMilli: 16000}}
	for _, r := range shapes {
		task := &Task{Resources: r, Constraints: Compile([]Constraint{{Key: "zone", Op: OpIn, Values: []string{"a"}}})}
		for _, m := range ms {
			e := NewExplainer(task, "")
			e.Add(m, 0)
			want := m.State == MachineReady && task.Constraints[0].Matches(m.Labels) && FitsAnywhere(m, r)
			if (e.Now.Fit == 1) != want {
				t.Errorf("%v on %s: explain says fit=%d, fit check says %v", r, m.ID, e.Now.Fit, want)
			}
		}
	}
}
