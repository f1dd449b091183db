package procstat

import (
	"fmt"
	"os"
	"os/exec"
	"testing"
	"time"
)

const goldenRoot = "testdata/proc"

func TestParseStat(t *testing.T) {
	tests := []struct {
		name    string
		line    string
		want    Process
		wantErr bool
	}{
		{
			name: "comm with spaces and parentheses",
			line: "4242 (we(ird) name) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 50 0 0 20 0 3 0 987654 104857600 2560 18446744073709551615",
			want: Process{PID: 4242, PPID: 1, PGRP: 4242, CPUTicks: 300, StartTicks: 987654, RSSBytes: 2560 * 4096},
		},
		{
			name: "child in its parent's group",
			line: "77 (sleep) S 4242 4242 4242 0 -1 0 0 0 0 0 3 4 0 0 20 0 1 0 1000 5000 10 0",
			want: Process{PID: 77, PPID: 4242, PGRP: 4242, CPUTicks: 7, StartTicks: 1000, RSSBytes: 10 * 4096},
		},
		{name: "too few fields", line: "99 (short) S 1 99", wantErr: true},
		{name: "no comm", line: "99 short S 1 99", wantErr: true},
		{name: "bad utime", line: "77 (x) S 1 1 1 0 -1 0 0 0 0 0 u 4 0 0 20 0 1 0 1000 5000 10 0", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseStat([]byte(tt.line), 4096)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("ParseStat = %+v, want an error", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Fatalf("ParseStat = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestScanSkipsUnreadable(t *testing.T) {
	procs, err := Scan(goldenRoot)
	if err != nil {
		t.Fatal(err)
	}
	if len(procs) != 1 || procs[0].PID != 4242 {
		t.Fatalf("Scan = %+v, want only pid 4242 (pid 99 is malformed)", procs)
	}
}

func TestReadMachineGolden(t *testing.T) {
	m, err := ReadMachine(goldenRoot)
	if err != nil {
		t.Fatal(err)
	}
	want := Machine{
		CPUs:              2,
		TotalTicks:        1000 + 50 + 300 + 8000 + 200 + 10 + 20 + 5, // guest excluded
		IdleTicks:         8000 + 200,
		MemTotalBytes:     16384000 * 1024,
		MemAvailableBytes: 8192000 * 1024,
	}
	if m != want {
		t.Fatalf("ReadMachine = %+v, want %+v", m, want)
	}
	if got, want := m.MemUsedBytes(), int64(8192000*1024); got != want {
		t.Fatalf("MemUsedBytes = %d, want %d", got, want)
	}
}

func TestRates(t *testing.T) {
	tests := []struct {
		name          string
		before, after uint64
		elapsed       time.Duration
		want          int64
	}{
		{"one core busy", 0, 100, time.Second, 1000},
		{"half a core over two seconds", 10, 110, 2 * time.Second, 500},
		{"counter went backwards", 100, 50, time.Second, 0},
		{"no time passed", 0, 100, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := CPUMilli(tt.before, tt.after, tt.elapsed); got != tt.want {
				t.Fatalf("CPUMilli = %d, want %d", got, tt.want)
			}
		})
	}
	before := Machine{CPUs: 4, TotalTicks: 1000, IdleTicks: 800}
	after := Machine{CPUs: 4, TotalTicks: 1400, IdleTicks: 1000} // half busy
	if got := MachineCPUMilli(before, after); got != 2000 {
		t.Fatalf("MachineCPUMilli = %d, want 2000 (half of 4 CPUs)", got)
	}
}

func TestGroupTotals(t *testing.T) {
	got := GroupTotals([]Process{
		{PID: 1, PGRP: 1, CPUTicks: 5, RSSBytes: 100},
		{PID: 2, PGRP: 2, CPUTicks: 7, RSSBytes: 10},
		{PID: 3, PGRP: 2, CPUTicks: 1, RSSBytes: 20},
	})
	want := map[int]Process{1: {PGRP: 1, CPUTicks: 5, RSSBytes: 100}, 2: {PGRP: 2, CPUTicks: 8, RSSBytes: 30}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("GroupTotals = %v, want %v", got, want)
	}
}

func TestTreeTotals(t *testing.T) {
	// 10 is the shim (it reaped children worth 4 ticks); 11 the task; 12 a
	// setsid grandchild in another group; 13 an orphan re-parented to the
	// shim; 20 and 21 are outside the tree.
	procs := []Process{
		{PID: 10, PPID: 1, PGRP: 10, CPUTicks: 1000, ChildCPUTicks: 4, RSSBytes: 1 << 20},
		{PID: 11, PPID: 10, PGRP: 11, CPUTicks: 5, ChildCPUTicks: 2, RSSBytes: 100},
		{PID: 12, PPID: 11, PGRP: 12, CPUTicks: 7, RSSBytes: 10},
		{PID: 13, PPID: 10, PGRP: 13, CPUTicks: 1, RSSBytes: 20},
		{PID: 20, PPID: 1, PGRP: 20, CPUTicks: 50, RSSBytes: 1},
		{PID: 21, PPID: 20, PGRP: 11, CPUTicks: 50, RSSBytes: 1},
	}
	got := TreeTotals(procs, []int{10, 99})
	want := map[int]Process{10: {PID: 10, PGRP: 10, CPUTicks: 4 + 5 + 2 + 7 + 1, RSSBytes: 130}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("TreeTotals = %v, want %v", got, want)
	}
	if got, want := fmt.Sprint(Descendants(procs, 10)), "[11 13 12]"; got != want {
		t.Fatalf("Descendants = %s, want %s", got, want)
	}
}

// The helper child touches 64 MiB and spins on the CPU until killed.
const helperEnv = "PROCSTAT_TEST_HELPER"

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "spin" {
		ballast := make([]byte, 64<<20)
		for i := range ballast {
			ballast[i] = byte(i)
		}
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			ballast[0]++
		}
		os.Exit(int(ballast[1]))
	}
	os.Exit(m.Run())
}

func TestSampleRealChild(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"=spin")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	pid := cmd.Process.Pid

	var first Process
	deadline := time.Now().Add(10 * time.Second)
	for {
		p, err := ReadProcess("/proc", pid)
		if err != nil {
			t.Fatal(err)
		}
		if p.RSSBytes >= 64<<20 {
			first = p
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("child RSS stayed at %d bytes, want at least 64 MiB", p.RSSBytes)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if first.PPID != os.Getpid() {
		t.Fatalf("child PPID = %d, want the test process %d", first.PPID, os.Getpid())
	}
	// Wait for 500 ms of CPU time: the shared test machine may give the
	// child little of a core, and the kernel charges CPU in 10 ms ticks,
	// so a shorter window reads a tick or two over one core (1,130
	// millicores was seen after 100 ms).
	start := time.Now()
	var second Process
	for {
		var err error
		if second, err = ReadProcess("/proc", pid); err != nil {
			t.Fatal(err)
		}
		if second.CPUTicks >= first.CPUTicks+50 {
			break
		}
		if time.Since(start) > 10*time.Second {
			t.Fatalf("spinning child used %d ticks in 10s", second.CPUTicks-first.CPUTicks)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if second.StartTicks != first.StartTicks {
		t.Fatalf("start ticks changed from %d to %d for the same process", first.StartTicks, second.StartTicks)
	}
	// One thread spins: between none and one core.
	if milli := CPUMilli(first.CPUTicks, second.CPUTicks, time.Since(start)); milli <= 0 || milli > 1100 {
		t.Fatalf("spinning child used %d millicores, want (0, 1100]", milli)
	}
	procs, err := Scan("/proc")
	if err != nil {
		t.Fatal(err)
	}
	groups := GroupTotals(procs)
	if g, ok := groups[second.PGRP]; !ok || g.RSSBytes < 64<<20 {
		t.Fatalf("group %d totals = %+v, want RSS of the child included", second.PGRP, g)
	}

	m1, err := ReadMachine("/proc")
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	m2, err := ReadMachine("/proc")
	if err != nil {
		t.Fatal(err)
	}
	if m2.CPUs < 1 || m2.MemTotalBytes <= 0 || m2.MemUsedBytes() <= 0 {
		t.Fatalf("machine reading %+v is not plausible", m2)
	}
	if busy := MachineCPUMilli(m1, m2); busy <= 0 || busy > int64(m2.CPUs)*1000 {
		t.Fatalf("machine busy CPU = %d millicores while a child spins, want (0, %d]", busy, m2.CPUs*1000)
	}
}
