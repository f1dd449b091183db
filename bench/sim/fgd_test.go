package sim

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/omegacell/omegacell/txn"
)

func smallFGDTrace(t *testing.T) *FGDTrace {
	t.Helper()
	ft, err := ReadFGDTrace([]string{"testdata/openb-small/openb_node_list_gpu_node.csv"}, []string{"testdata/openb-small/openb_pod_list_default.csv"})
	if err != nil {
		t.Fatal(err)
	}
	return ft
}

// TestFGDProtocolGolden runs the FGD protocol (every policy, seed 42,
// 130%) on a twentieth of the openb trace (61 nodes, 408 pods) and pins
// the figures. Run with -update after an intended change of behaviour.
func TestFGDProtocolGolden(t *testing.T) {
	ft := smallFGDTrace(t)
	var b strings.Builder
	fmt.Fprintf(&b, "%-16s %8s %7s %6s %12s %9s %10s\n", "policy", "arrived", "placed", "failed", "allocated", "alloc %", "fragmented")
	alloc := map[string]float64{}
	for _, p := range FGDPolicies {
		r, err := RunFGD(ft, FGDConfig{Policy: p, Seed: 42, Inflate: 1.3})
		if err != nil {
			t.Fatal(err)
		}
		if r.Placed+r.Failed != r.Arrived || r.ArrivedGPUMilli*10 < r.GPUMilli*13 {
			t.Errorf("%s: arrived %d (%d milli-GPU of %d), placed %d, failed %d", p, r.Arrived, r.ArrivedGPUMilli, r.GPUMilli, r.Placed, r.Failed)
		}
		if n := len(r.Curve); n < 130 || r.Curve[n-1].ArrivedPercent < 130 {
			t.Errorf("%s: curve of %d points", p, n)
		}
		for i := 1; i < len(r.Curve); i++ {
			if c, prev := r.Curve[i], r.Curve[i-1]; c.ArrivedPercent != prev.ArrivedPercent+1 || c.AllocationPercent < prev.AllocationPercent {
				t.Errorf("%s: curve goes from %+v to %+v", p, prev, c)
				break
			}
		}
		alloc[p] = r.Allocation
		fmt.Fprintf(&b, "%-16s %8d %7d %6d %12d %9.2f %10d\n", p, r.Arrived, r.Placed, r.Failed, r.AllocatedGPUMilli, 100*r.Allocation, r.FragmentedGPUMilli)
	}
	if alloc["omegacell"] < alloc["random"] || alloc["omegacell"] < alloc["best-fit"] {
		t.Errorf("production policy %.4f below random %.4f or best fit %.4f", alloc["omegacell"], alloc["random"], alloc["best-fit"])
	}
	got := []byte(b.String())
	path := filepath.Join("testdata", "golden", "fgd-openb-small.txt")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -run TestFGDProtocolGolden -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("figures differ from %s (go test -run TestFGDProtocolGolden -update rewrites them):\n%s", path, got)
	}
}

// The workload is every pod once, in a seeded order, then draws until
// the GPU requested reaches the inflation; seeds give different orders.
func TestFGDArrivals(t *testing.T) {
	ft := smallFGDTrace(t)
	var capacity int64
	for _, m := range ft.Machines {
		capacity += m.Capacity.GPUMilli
	}
	a := ft.Arrivals(42, 1.3)
	seen := map[string]int{}
	var requested int64
	for i, p := range a {
		if i < len(ft.Pods) {
			seen[p.Name]++
		}
		requested += p.Resources.GPUMilli
	}
	if len(seen) != len(ft.Pods) {
		t.Errorf("first %d arrivals hold %d distinct pods", len(ft.Pods), len(seen))
	}
	last := a[len(a)-1].Resources.GPUMilli
	if requested*10 < capacity*13 || (requested-last)*10 >= capacity*13 {
		t.Errorf("requested %d milli-GPU of %d: not the first draw past 130%%", requested, capacity)
	}
	if b := ft.Arrivals(43, 1.3); b[0].Name == a[0].Name && b[1].Name == a[1].Name && b[2].Name == a[2].Name {
		t.Errorf("seeds 42 and 43 start alike: %s %s %s", a[0].Name, a[1].Name, a[2].Name)
	}
	// The protocol's GPU request: num_gpu × 1000 when num_gpu > 1.
	for _, p := range ft.Pods {
		if g := p.Resources.GPUMilli; g > txn.MilliPerGPU && g%txn.MilliPerGPU != 0 {
			t.Errorf("pod %s asks %d milli-GPU", p.Name, g)
		}
	}
}

func TestFGDCommands(t *testing.T) {
	nodes, pods := "testdata/openb-small/openb_node_list_gpu_node.csv", "testdata/openb-small/openb_pod_list_default.csv"
	cmd := Command()
	var out, errOut bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs([]string{"run", "--protocol", "fgd", "--alibaba-nodes", nodes, "--alibaba-pods", pods, "--seed", "42", "--policies", "omegacell,random", "--max-pods", "100"})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "omegacell") || !strings.Contains(out.String(), "random") || !strings.Contains(errOut.String(), "stopped after 100 of") {
		t.Errorf("run: stdout\n%s\nstderr\n%s", out.String(), errOut.String())
	}
	dir := t.TempDir()
	sweepOut, err := execute(t, "sweep", "--protocol", "fgd", "--alibaba-nodes", nodes, "--alibaba-pods", pods, "--seeds", "42-43,50",
		"--policies", "omegacell,best-fit", "--out", dir, "--formats", "png", "--quiet")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(sweepOut, "| omegacell | 3 |") || !strings.Contains(sweepOut, "| best-fit | 3 |") {
		t.Errorf("sweep table:\n%s", sweepOut)
	}
	for _, f := range []string{"fgd-openb.csv", "fgd-openb.json", "fgd-openb-allocation.png"} {
		if st, err := os.Stat(filepath.Join(dir, f)); err != nil || st.Size() == 0 {
			t.Errorf("%s: %v", f, err)
		}
	}
	for _, bad := range [][]string{
		{"run", "--protocol", "fgd"},
		{"run", "--protocol", "fgd", "--alibaba-nodes", nodes, "--alibaba-pods", pods, "--policies", "tetris"},
		{"run", "--protocol", "fgd", "--alibaba-nodes", nodes, "--alibaba-pods", pods, "--inflate", "0"},
		{"run", "--protocol", "omega", "--alibaba-nodes", nodes, "--alibaba-pods", pods},
		{"sweep", "--protocol", "fgd", "--alibaba-nodes", nodes, "--alibaba-pods", pods, "--seeds", "51-42"},
	} {
		if _, err := execute(t, bad...); err == nil {
			t.Errorf("%v: accepted", bad)
		}
	}
}

// A trace run without --horizon covers the whole trace and says so; one
// with a horizon that cuts pods says how many it left out.
func TestTraceRunCoversTheWholeTrace(t *testing.T) {
	nodes, pods := "testdata/openb-small/openb_node_list_gpu_node.csv", "testdata/openb-small/openb_pod_list_default.csv"
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "the whole trace, 350 jobs"},
		{[]string{"--horizon", "1d"}, "pod created after the horizon"},
	} {
		cmd := Command()
		var out, errOut bytes.Buffer
		cmd.SetOut(&out)
		cmd.SetErr(&errOut)
		cmd.SetArgs(append([]string{"run", "--alibaba-nodes", nodes, "--alibaba-pods", pods, "--quiet"}, tc.args...))
		if err := cmd.Execute(); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(errOut.String(), tc.want) {
			t.Errorf("%v: stderr lacks %q:\n%s", tc.args, tc.want, errOut.String())
		}
	}
}
