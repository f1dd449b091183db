package agent

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
)

func TestCgroupLimitValues(t *testing.T) {
	cpu := map[int64]string{
		0:     "max 100000",
		-5:    "max 100000",
		1:     "1000 100000", // the kernel's minimum quota
		250:   "25000 100000",
		1000:  "100000 100000",
		2500:  "250000 100000",
		64000: "6400000 100000",
	}
	for milli, want := range cpu {
		if got := cpuMax(milli); got != want {
			t.Errorf("cpuMax(%d) = %q, want %q", milli, got, want)
		}
	}
	mem := map[int64]string{0: "max", 512 << 20: "536870912"}
	for b, want := range mem {
		if got := memoryMax(b); got != want {
			t.Errorf("memoryMax(%d) = %q, want %q", b, got, want)
		}
	}
	for in, want := range map[string]string{"node-1.example": "node-1.example", "a/b c": "a_b_c", "": "agent", "..": "agent"} {
		if got := cgroupName(in); got != want {
			t.Errorf("cgroupName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestCgroupSetupSaysWhyNot(t *testing.T) {
	_, err := setupCgroups(t.TempDir(), "m1")
	if err == nil || !strings.Contains(err.Error(), "is not a cgroup v2 file system") {
		t.Fatalf("setupCgroups on a plain directory: %v, want 'not a cgroup v2 file system'", err)
	}
	if _, err := setupCgroups(filepath.Join(t.TempDir(), "missing"), "m1"); err == nil {
		t.Fatal("setupCgroups on a missing directory succeeded")
	}
}

// TestCgroupLimitsEnforced runs where /sys/fs/cgroup is a writable cgroup
// v2 hierarchy with cpu and memory delegable (a root CI container, a
// systemd machine with delegation); elsewhere it is skipped.
func TestCgroupLimitsEnforced(t *testing.T) {
	tree, err := setupCgroups(DefaultCgroupRoot, "omegacell-test")
	if err != nil {
		t.Skipf("cgroup v2 not usable here: %v", err)
	}
	r := newRuntimeOn(t, t.TempDir(), time.Second)
	r.cgroups = tree
	spec := shellSpec(0, "sleep 60")
	spec.task.Resources = &cellv1.Resources{CpuMilli: 500, MemoryBytes: 64 << 20}
	s := startAttempt(t, r, spec)
	cg := s.h.cgroup
	for file, want := range map[string]string{"cpu.max": "50000 100000", "memory.max": "67108864"} {
		data, err := os.ReadFile(filepath.Join(cg.dir, file))
		if err != nil || strings.TrimSpace(string(data)) != want {
			t.Fatalf("%s = %q (%v), want %q", file, data, err, want)
		}
	}
	procs, _ := os.ReadFile(filepath.Join(cg.dir, "cgroup.procs"))
	if pid, _ := s.h.pids(); !slices.Contains(strings.Fields(string(procs)), strconv.Itoa(pid)) {
		t.Fatalf("task pid %d not in its cgroup's procs %q", pid, procs)
	}
	s.h.stop()
	s.wait(t)
	if _, err := os.Stat(cg.dir); !os.IsNotExist(err) {
		t.Fatalf("cgroup %s not removed after the task ended: %v", cg.dir, err)
	}

	// A task over its memory limit is killed by the kernel and reported as
	// out of memory.
	spec = shellSpec(1, `x=$(head -c 200000000 /dev/zero | tr '\0' 'x'); echo survived`)
	spec.task.Resources = &cellv1.Resources{CpuMilli: 1000, MemoryBytes: 32 << 20}
	res := startAttempt(t, r, spec).wait(t)
	if res.state != failed || !strings.Contains(res.message, "out of memory") {
		t.Fatalf("result = %+v, want FAILED out of memory", res)
	}
	_ = syscall.Rmdir(tree.dir)
}
