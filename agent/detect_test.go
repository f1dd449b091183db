package agent

import (
	"context"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/omegacell/omegacell/agent/gpu"
)

// Detection runs the fake nvidia-smi of agent/gpu/testdata as a real child
// process found on PATH.
func TestDetectMachine(t *testing.T) {
	fake, err := filepath.Abs("gpu/testdata/bin")
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", fake)
	const mib = 1 << 20
	tests := []struct {
		name      string
		cfg       Config
		gpuMilli  int64
		model     string
		gpuMemory int64
		cpu       int64
	}{
		{"detected", Config{GPUs: -1}, 2000, "H100", 81559 * mib, int64(runtime.NumCPU()) * 1000},
		{"model flag wins", Config{GPUs: -1, GPUModel: "H100-SXM"}, 2000, "H100-SXM", 81559 * mib, int64(runtime.NumCPU()) * 1000},
		{"label given by hand wins over detection", Config{GPUs: -1, Labels: map[string]string{"gpu.model": "custom"}}, 2000, "custom", 81559 * mib, int64(runtime.NumCPU()) * 1000},
		{"count override skips nvidia-smi", Config{GPUs: 4, GPUModel: "A100", GPUMemoryBytes: 40 << 30}, 4000, "A100", 40 << 30, int64(runtime.NumCPU()) * 1000},
		{"no GPUs", Config{GPUs: 0, CPUMilli: 1500}, 0, "", 0, 1500},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.Name, tt.cfg.DataDir = "m1", t.TempDir()
			reg, err := detectMachine(context.Background(), discard, tt.cfg)
			if err != nil {
				t.Fatal(err)
			}
			c := reg.Capacity
			if c.GpuMilli != tt.gpuMilli || reg.Labels["gpu.model"] != tt.model || reg.GpuMemoryBytes != tt.gpuMemory || c.CpuMilli != tt.cpu {
				t.Fatalf("registration = %v, want %d milli-GPU of model %q with %d bytes each, %d millicores",
					reg, tt.gpuMilli, tt.model, tt.gpuMemory, tt.cpu)
			}
			if c.MemoryBytes <= 0 || c.DiskBytes <= 0 || reg.Id != "m1" {
				t.Fatalf("registration %v lacks memory, disk or id", reg)
			}
		})
	}
}

func TestDetectMachineWithoutNvidiaSMI(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	reg, err := detectMachine(context.Background(), discard, Config{Name: "m1", DataDir: t.TempDir(), GPUs: -1})
	if err != nil {
		t.Fatal(err)
	}
	if reg.Capacity.GpuMilli != 0 || reg.GpuMemoryBytes != 0 || reg.Labels["gpu.model"] != "" {
		t.Fatalf("registration %v has GPUs on a machine without nvidia-smi", reg)
	}
}

func TestSummarizeMixedGPUs(t *testing.T) {
	model, mem := summarizeGPUs(discard, []gpu.Device{{Index: 0, Name: "NVIDIA A100-SXM4-80GB", MemoryBytes: 80 << 30}, {Index: 1, Name: "NVIDIA A100-PCIE-40GB", MemoryBytes: 40 << 30}})
	if model != "A100" || mem != 40<<30 {
		t.Fatalf("summarizeGPUs = %q, %d; want A100 and the smallest memory", model, mem)
	}
}
