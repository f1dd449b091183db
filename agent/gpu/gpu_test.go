package gpu

import (
	"context"
	"errors"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		out     string
		want    []Device
		wantErr string
	}{
		{
			name: "two devices",
			out:  "0, NVIDIA A100-SXM4-80GB, 81920\n1, NVIDIA A100-SXM4-80GB, 81920\n",
			want: []Device{{0, "NVIDIA A100-SXM4-80GB", 81920 << 20}, {1, "NVIDIA A100-SXM4-80GB", 81920 << 20}},
		},
		{name: "no devices", out: "\n", want: nil},
		{name: "missing field", out: "0, Tesla T4\n", wantErr: "line 1: 2 fields"},
		{name: "bad memory", out: "0, Tesla T4, [N/A]\n", wantErr: "memory.total"},
		{name: "bad index", out: "x, Tesla T4, 15360\n", wantErr: "index"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse([]byte(tt.out))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Parse error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("Parse = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestModel(t *testing.T) {
	tests := map[string]string{
		"NVIDIA H100 80GB HBM3":    "H100",
		"NVIDIA A100-SXM4-80GB":    "A100",
		"Tesla V100-SXM2-32GB":     "V100",
		"Tesla T4":                 "T4",
		"NVIDIA L40S":              "L40S",
		"NVIDIA GeForce RTX 4090":  "RTX-4090",
		"NVIDIA RTX A6000":         "RTX-A6000",
		"NVIDIA H200":              "H200",
		"NVIDIA":                   "NVIDIA",
		"":                         "",
		"Quadro RTX 8000":          "RTX-8000",
		"NVIDIA TITAN RTX":         "TITAN-RTX",
		"NVIDIA GH200 480GB":       "GH200",
		"NVIDIA H100 PCIe":         "H100",
		"NVIDIA A10":               "A10",
		"NVIDIA B200":              "B200",
		"NVIDIA A800-SXM4-80GB":    "A800",
		"NVIDIA H800 PCIe":         "H800",
		"Tesla P100-PCIE-16GB":     "P100",
		"NVIDIA A100 80GB PCIe":    "A100",
		"NVIDIA RTX 6000 Ada Gen.": "RTX-6000",
	}
	for name, want := range tests {
		if got := Model(name); got != want {
			t.Errorf("Model(%q) = %q, want %q", name, got, want)
		}
	}
}

// The fake nvidia-smi is a real executable found on PATH and run as a child
// process, exactly as on a GPU machine.
func TestDetectWithFakeNvidiaSMI(t *testing.T) {
	t.Setenv("PATH", abs(t, "testdata/bin"))
	devices, err := Detect(context.Background(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	want := []Device{{0, "NVIDIA H100 80GB HBM3", 81559 << 20}, {1, "NVIDIA H100 80GB HBM3", 81559 << 20}}
	if !reflect.DeepEqual(devices, want) {
		t.Fatalf("Detect = %+v, want %+v", devices, want)
	}
}

func TestDetectWithoutNvidiaSMI(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	if _, err := Detect(context.Background(), 5*time.Second); !errors.Is(err, ErrNoNvidiaSMI) {
		t.Fatalf("Detect error = %v, want ErrNoNvidiaSMI", err)
	}
}

func TestDetectReportsDriverFailure(t *testing.T) {
	t.Setenv("PATH", abs(t, "testdata/broken"))
	_, err := Detect(context.Background(), 5*time.Second)
	if err == nil || !strings.Contains(err.Error(), "couldn't communicate with the NVIDIA driver") {
		t.Fatalf("Detect error = %v, want nvidia-smi's own message", err)
	}
}

func abs(t *testing.T, dir string) string {
	t.Helper()
	p, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
