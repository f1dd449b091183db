package sim

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseHorizon(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want float64
		err  bool
	}{
		{"3600", 3600, false},
		{"90m", 5400, false},
		{"36h", 129600, false},
		{"7d", 604800, false},
		{"0.5d", 43200, false},
		{"a week", 0, true},
		{"xd", 0, true},
	} {
		got, err := ParseHorizon(tc.in)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("ParseHorizon(%q) = %v, %v; want %v, error %v", tc.in, got, err, tc.want, tc.err)
		}
	}
}

func TestSetTimings(t *testing.T) {
	tm := DefaultConfig().Timing
	if err := setTimings(tm, []string{"0.5", "service=10"}, true); err != nil {
		t.Fatal(err)
	}
	if tm[KindBatch].JobSeconds != 0.5 || tm[KindGPU].JobSeconds != 0.5 || tm[KindService].JobSeconds != 10 || tm[KindService].TaskSeconds != 0.005 {
		t.Errorf("timings %+v", tm)
	}
	for _, bad := range []string{"web=1", "service=fast", "-1"} {
		if err := setTimings(tm, []string{bad}, true); err == nil {
			t.Errorf("setTimings(%q) accepted", bad)
		}
	}
}

func execute(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := Command()
	var out, errOut bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs(args)
	err := cmd.Execute()
	return out.String(), err
}

func TestRunCommand(t *testing.T) {
	out, err := execute(t, "run", "--workload", "testdata/small.yaml", "--horizon", "30m", "--arch", "two-level", "--t-job", "service=2", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var r Result
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("%v in %s", err, out)
	}
	if r.Arch != "two-level" || r.HorizonSeconds != 1800 || r.Timing[KindService].JobSeconds != 2 || r.Workload != "small" || r.Placement != "first-fit" {
		t.Errorf("result %+v", r)
	}

	out, err = execute(t, "run", "--alibaba-nodes", "testdata/alibaba/openb_node_list_gpu_node.csv",
		"--alibaba-pods", "testdata/alibaba/openb_pod_list_default.csv", "--horizon", "1h")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "gpu allocation") || !strings.Contains(out, "alibaba-gpu-2023") {
		t.Errorf("table output lacks the GPU metrics:\n%s", out)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"run", "--arch", "ring"}, "--arch"},
		{[]string{"run", "--horizon", "soon"}, "--horizon"},
		{[]string{"run", "--conflict", "medium"}, "--conflict"},
		{[]string{"run", "--arch", "two-level", "--placement", "policies"}, "two-level offer"},
		{[]string{"run", "--workload", "nowhere.yaml"}, "nowhere.yaml"},
	} {
		if _, err := execute(t, tc.args...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want one mentioning %q", tc.args, err, tc.want)
		}
	}
}

func TestSweepCommandWritesFiles(t *testing.T) {
	dir := t.TempDir()
	out, err := execute(t, "sweep", "--workload", "testdata/small.yaml", "--horizon", "20m", "--axis", "conflict",
		"--values", "fine,coarse", "--archs", "shared-state", "--charts", "conflict_fraction_service,busyness_batch",
		"--formats", "png", "--out", dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"sweep.csv", "sweep.json", "sweep-busyness_batch.png"}
	for _, f := range want {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("%s not written: %v", f, err)
		}
		if !strings.Contains(out, f) {
			t.Errorf("output does not list %s:\n%s", f, out)
		}
	}
	charts := filepath.Join(dir, "again")
	out, err = execute(t, "chart", filepath.Join(dir, "sweep.json"), "--out", charts, "--charts", "busyness_batch", "--formats", "svg")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(charts, "sweep-busyness_batch.svg")); err != nil || !strings.Contains(out, "sweep-busyness_batch.svg") {
		t.Errorf("chart did not redraw sweep-busyness_batch.svg: %v\n%s", err, out)
	}
	if _, err := execute(t, "sweep", "--experiment", "no-such", "--out", dir); err == nil || !strings.Contains(err.Error(), "architectures") {
		t.Errorf("unknown experiment: %v, want an error listing the experiments", err)
	}
}

func TestWorkloadCommand(t *testing.T) {
	out, err := execute(t, "workload", "gpu-cluster")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"1000 machines", "6200 GPUs", "inference", "offered gpu load"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}
