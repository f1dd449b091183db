package agent

import (
	"flag"
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files")

func TestParseLabels(t *testing.T) {
	tests := []struct {
		in      string
		want    map[string]string
		wantErr string
	}{
		{"", map[string]string{}, ""},
		{"zone=a,rack=r1", map[string]string{"zone": "a", "rack": "r1"}, ""},
		{" zone=a , team/x=ml ", map[string]string{"zone": "a", "team/x": "ml"}, ""},
		{"empty=", map[string]string{"empty": ""}, ""},
		{"zone", nil, `"zone" is not key=value`},
		{"=a", nil, `key ""`},
		{"zone=a,zone=b", nil, `"zone" given twice`},
		{"zo ne=a", nil, `key "zo ne"`},
		{"zone=a=b", nil, "contains '='"},
		{"-zone=a", nil, `key "-zone"`},
		{strings.Repeat("k", 64) + "=a", nil, "1-63"},
		{"k=" + strings.Repeat("v", 254), nil, "longer than 253"},
	}
	for _, tt := range tests {
		got, err := ParseLabels(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseLabels(%q) error = %v, want %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseLabels(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
		if back, _ := ParseLabels(FormatLabels(got)); !reflect.DeepEqual(back, got) {
			t.Errorf("FormatLabels(%v) does not parse back: %v", got, back)
		}
	}
}

func TestParseQuantities(t *testing.T) {
	cpu := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"8", 8000, true}, {"0.5", 500, true}, {"7500m", 7500, true}, {"0", 0, true},
		{"-1", 0, false}, {"1x", 0, false}, {"m", 0, false}, {"NaN", 0, false}, {"1e300", 0, false},
	}
	for _, tt := range cpu {
		got, err := ParseCPU(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseCPU(%q) = %d, %v; want %d ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
	bytes := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"1048576", 1 << 20, true}, {"512Mi", 512 << 20, true}, {"16Gi", 16 << 30, true}, {"1Ti", 1 << 40, true},
		{"1.5G", 1_500_000_000, true}, {"2K", 2000, true}, {"0.5Ki", 512, true},
		{"-1Gi", 0, false}, {"Gi", 0, false}, {"16GB", 0, false}, {"99999999Ti", 0, false},
	}
	for _, tt := range bytes {
		got, err := ParseBytes(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseBytes(%q) = %d, %v; want %d ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func TestParseProfile(t *testing.T) {
	p, err := ParseProfile("zones=2,racks=3,cpu=16,memory=64Gi,gpu-fraction=0.5,gpus=4,gpu-model=A100,gpu-memory=40Gi,utilization=0.8,task-usage=false")
	if err != nil {
		t.Fatal(err)
	}
	want := Profile{Zones: 2, RacksPerZone: 3, CPUMilli: 16000, MemoryBytes: 64 << 30, DiskBytes: 1 << 40,
		GPUFraction: 0.5, GPUs: 4, GPUModel: "A100", GPUMemoryBytes: 40 << 30, Utilization: 0.8, TaskUsage: false}
	if p != want {
		t.Fatalf("ParseProfile = %+v, want %+v", p, want)
	}
	if p, err := ParseProfile(""); err != nil || p != DefaultProfile() {
		t.Fatalf("empty profile = %+v, %v; want the default", p, err)
	}
	// Reset every field away from the default, then parse the documented
	// default string: it must say exactly what DefaultProfile is.
	if p, err := ParseProfile("zones=9,racks=9,cpu=1,memory=1Gi,disk=1Gi,gpu-fraction=1,gpus=1,gpu-model=X,gpu-memory=1Gi,utilization=1,task-usage=false," + DefaultProfileString); err != nil || p != DefaultProfile() {
		t.Fatalf("DefaultProfileString parses to %+v, %v; want DefaultProfile %+v", p, err, DefaultProfile())
	}
	for in, wantErr := range map[string]string{
		"zones=0":          "zones",
		"racks=x":          "racks",
		"gpu-fraction=1.5": "gpu-fraction",
		"gpus=-1":          "gpus",
		"gpu-model=":       "gpu-model",
		"cpu=0":            "cpu and memory must be positive",
		"colour=blue":      `unknown key "colour"`,
		"zones":            "not key=value",
		"task-usage=maybe": "task-usage",
	} {
		if _, err := ParseProfile(in); err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Errorf("ParseProfile(%q) error = %v, want %q", in, err, wantErr)
		}
	}
}

// The layout of a simulated fleet is pinned by a golden file.
func TestSimulatedMachinesGolden(t *testing.T) {
	p, err := ParseProfile("zones=2,racks=2,gpu-fraction=0.3,gpus=8,gpu-model=H100,cpu=32,memory=128Gi")
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, m := range SimulatedMachines("sim", 12, p) {
		fmt.Fprintf(&b, "%s cpu=%d mem=%d gpu=%d gpumem=%d %s\n", m.Id, m.Capacity.CpuMilli, m.Capacity.MemoryBytes,
			m.Capacity.GpuMilli, m.GpuMemoryBytes, FormatLabels(m.Labels))
	}
	const golden = "testdata/simulated_machines.golden"
	if *update {
		if err := os.WriteFile(golden, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if b.String() != string(want) {
		t.Fatalf("layout changed (go test -run SimulatedMachinesGolden -update to accept):\n%s\nwant:\n%s", b.String(), want)
	}
}

func TestSimulatedFleetProportions(t *testing.T) {
	p := DefaultProfile()
	regs := SimulatedMachines("sim", 10_000, p)
	gpus, racks, zones := 0, map[string]int{}, map[string]int{}
	ids := map[string]bool{}
	for _, m := range regs {
		if m.Capacity.GpuMilli > 0 {
			gpus++
		}
		racks[m.Labels["rack"]]++
		zones[m.Labels["zone"]]++
		ids[m.Id] = true
	}
	if len(ids) != 10_000 || regs[0].Id != "sim-0000" || regs[9999].Id != "sim-9999" {
		t.Fatalf("ids not unique sim-0000..sim-9999: %d unique, first %s, last %s", len(ids), regs[0].Id, regs[9999].Id)
	}
	if gpus != 2500 {
		t.Fatalf("%d GPU machines, want a quarter of 10,000", gpus)
	}
	if len(zones) != p.Zones || len(racks) != p.Zones*p.RacksPerZone {
		t.Fatalf("%d zones and %d racks, want %d and %d", len(zones), len(racks), p.Zones, p.Zones*p.RacksPerZone)
	}
	for rack, n := range racks {
		if n < 833 || n > 834 {
			t.Fatalf("rack %s has %d machines, want 10,000/12 ± 1", rack, n)
		}
	}
}
