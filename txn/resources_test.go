package txn_test

import (
	"strings"
	"testing"

	"github.com/omegacell/omegacell/txn"
)

func TestResourcesArithmetic(t *testing.T) {
	a := txn.Resources{CPUMilli: 1, MemoryBytes: 2, DiskBytes: 3, GPUMilli: 4}
	b := txn.Resources{CPUMilli: 10, MemoryBytes: 20, DiskBytes: 30, GPUMilli: 40}
	if got := a.Add(b); got != (txn.Resources{CPUMilli: 11, MemoryBytes: 22, DiskBytes: 33, GPUMilli: 44}) {
		t.Errorf("Add = %v", got)
	}
	if got := b.Sub(a); got != (txn.Resources{CPUMilli: 9, MemoryBytes: 18, DiskBytes: 27, GPUMilli: 36}) {
		t.Errorf("Sub = %v", got)
	}
	if !a.LessOrEqual(b) || b.LessOrEqual(a) || !a.LessOrEqual(a) {
		t.Errorf("LessOrEqual is not a per-kind <=")
	}
	for _, kind := range []txn.Resources{{CPUMilli: 1}, {MemoryBytes: 1}, {DiskBytes: 1}, {GPUMilli: 1}} {
		if kind.LessOrEqual(txn.Resources{}) {
			t.Errorf("%v <= zero", kind)
		}
		if kind.IsZero() {
			t.Errorf("%v IsZero", kind)
		}
	}
	if !(txn.Resources{}).IsZero() {
		t.Errorf("zero is not IsZero")
	}
	if got, want := a.String(), "cpu=1m mem=2 disk=3 gpu=4m"; got != want {
		t.Errorf("String = %q, want %q", got, want)
	}
}

func TestValidateRequest(t *testing.T) {
	tests := []struct {
		name      string
		r         txn.Resources
		wantField string // "" means valid
	}{
		{"cpu only", txn.Resources{CPUMilli: 1}, ""},
		{"memory only", txn.Resources{MemoryBytes: 1}, ""},
		{"gpu only", txn.Resources{GPUMilli: 1000}, ""},
		{"fraction", res(1, 1, 1, 250), ""},
		{"largest fraction", res(1, 1, 0, 999), ""},
		{"several whole gpus", res(1, 1, 0, 8000), ""},
		{"negative cpu", txn.Resources{CPUMilli: -1, MemoryBytes: 1}, "resources.cpu_milli"},
		{"negative memory", txn.Resources{CPUMilli: 1, MemoryBytes: -1}, "resources.memory_bytes"},
		{"negative disk", txn.Resources{CPUMilli: 1, DiskBytes: -1}, "resources.disk_bytes"},
		{"negative gpu", txn.Resources{CPUMilli: 1, GPUMilli: -500}, "resources.gpu_milli"},
		{"nothing", txn.Resources{}, "resources:"},
		{"disk alone is nothing", txn.Resources{DiskBytes: gib}, "resources:"},
		{"one and a half gpus", res(1, 1, 0, 1500), "resources.gpu_milli"},
		{"just over one gpu", res(1, 1, 0, 1001), "resources.gpu_milli"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := txn.ValidateRequest(tt.r)
			checkFieldError(t, err, tt.wantField)
		})
	}
}

func TestValidateCapacity(t *testing.T) {
	tests := []struct {
		name      string
		r         txn.Resources
		wantField string
	}{
		{"cpu and memory", res(1, 1, 0, 0), ""},
		{"with disk and gpus", res(64, 512, 1000, 8000), ""},
		{"no cpu", res(0, 1, 0, 0), "capacity.cpu_milli"},
		{"negative cpu", txn.Resources{CPUMilli: -1, MemoryBytes: 1}, "capacity.cpu_milli"},
		{"no memory", res(1, 0, 0, 0), "capacity.memory_bytes"},
		{"negative disk", txn.Resources{CPUMilli: 1, MemoryBytes: 1, DiskBytes: -1}, "capacity.disk_bytes"},
		{"negative gpu", txn.Resources{CPUMilli: 1, MemoryBytes: 1, GPUMilli: -1000}, "capacity.gpu_milli"},
		{"fractional gpu", res(1, 1, 0, 500), "capacity.gpu_milli"},
		{"gpu and a half", res(1, 1, 0, 1500), "capacity.gpu_milli"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkFieldError(t, txn.ValidateCapacity(tt.r), tt.wantField)
		})
	}
}

// checkFieldError wants err nil if field is "", else an error that starts
// with field.
func checkFieldError(t *testing.T, err error, field string) {
	t.Helper()
	switch {
	case field == "" && err != nil:
		t.Fatalf("unexpected error: %v", err)
	case field != "" && err == nil:
		t.Fatalf("no error, want one naming %s", field)
	case field != "" && !strings.HasPrefix(err.Error(), field):
		t.Fatalf("error %q does not name %s", err, field)
	}
}
