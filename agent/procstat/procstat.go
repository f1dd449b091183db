package procstat

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// TicksPerSecond is USER_HZ, the unit of CPU times in /proc.
const TicksPerSecond = 100

// Process is one reading of /proc/<pid>/stat.
type Process struct {
	// State is the one-letter state (R, S, D, Z for a zombie, ...).
	State byte
	PID   int
	PPID  int
	// PGRP is the process group; the agent starts each task as the leader
	// of its own group, so a task's processes share its PGRP.
	PGRP int
	// CPUTicks is user plus system time, in USER_HZ ticks.
	CPUTicks uint64
	// ChildCPUTicks is the user plus system time of the children this
	// process waited for (cutime + cstime): the CPU of a process that
	// exited and was reaped moves there, so a tree's total stays monotone.
	ChildCPUTicks uint64
	// StartTicks is when the process started, in ticks after boot; with PID
	// it identifies a process across PID reuse.
	StartTicks uint64
	RSSBytes   int64
}

// ReadProcess reads /proc/<pid>/stat under root.
func ReadProcess(root string, pid int) (Process, error) {
	data, err := os.ReadFile(filepath.Join(root, strconv.Itoa(pid), "stat"))
	if err != nil {
		return Process{}, fmt.Errorf("read stat of pid %d: %w", pid, err)
	}
	p, err := ParseStat(data, os.Getpagesize())
	if err != nil {
		return Process{}, fmt.Errorf("pid %d: %w", pid, err)
	}
	return p, nil
}

// ParseStat parses the content of /proc/<pid>/stat. The command name (field
// 2) is in parentheses and may itself contain spaces and parentheses, so
// fields are counted from the last ')'.
func ParseStat(data []byte, pageSize int) (Process, error) {
	open := bytes.IndexByte(data, '(')
	closing := bytes.LastIndexByte(data, ')')
	if open < 0 || closing < open {
		return Process{}, fmt.Errorf("stat: no (comm) field in %q", truncate(data))
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data[:open])))
	if err != nil {
		return Process{}, fmt.Errorf("stat: pid field: %w", err)
	}
	// rest[0] is field 3 (state).
	rest := strings.Fields(string(data[closing+1:]))
	const (
		ppid      = 4 - 3
		pgrp      = 5 - 3
		utime     = 14 - 3
		stime     = 15 - 3
		cutime    = 16 - 3
		cstime    = 17 - 3
		starttime = 22 - 3
		rss       = 24 - 3
	)
	if len(rest) <= rss {
		return Process{}, fmt.Errorf("stat: %d fields after comm, want more than %d", len(rest), rss)
	}
	var parseErr error
	num := func(i int, name string) uint64 {
		v, err := strconv.ParseUint(rest[i], 10, 64)
		if err != nil && parseErr == nil {
			parseErr = fmt.Errorf("stat: field %s: %w", name, err)
		}
		return v
	}
	signed := func(i int, name string) int64 {
		v, err := strconv.ParseInt(rest[i], 10, 64)
		if err != nil && parseErr == nil {
			parseErr = fmt.Errorf("stat: field %s: %w", name, err)
		}
		return v
	}
	p := Process{
		PID:      pid,
		PPID:     int(signed(ppid, "ppid")),
		PGRP:     int(signed(pgrp, "pgrp")),
		CPUTicks: num(utime, "utime") + num(stime, "stime"),
		// cutime and cstime are signed in proc(5) but never negative.
		ChildCPUTicks: uint64(max(signed(cutime, "cutime"), 0) + max(signed(cstime, "cstime"), 0)),
		StartTicks:    num(starttime, "starttime"),
		RSSBytes:      signed(rss, "rss") * int64(pageSize),
	}
	return p, parseErr
}

// Alive reports whether p still runs: not a zombie (exited, not reaped)
// nor dead.
func (p Process) Alive() bool { return p.State != 'Z' && p.State != 'X' && p.State != 'x' }

// Scan reads every process under root. Processes that vanish or cannot be
// parsed while scanning are skipped.
func Scan(root string) ([]Process, error) {
	entries, err := os.ReadDir(root)
	if err != nil {
		return nil, fmt.Errorf("scan processes: %w", err)
	}
	pageSize := os.Getpagesize()
	procs := make([]Process, 0, len(entries))
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		data, err := os.ReadFile(filepath.Join(root, e.Name(), "stat"))
		if err != nil {
			continue // exited meanwhile
		}
		p, err := ParseStat(data, pageSize)
		if err != nil {
			continue
		}
		procs = append(procs, p)
	}
	return procs, nil
}

// GroupTotals sums CPU ticks and RSS of the processes of each process group.
func GroupTotals(procs []Process) map[int]Process {
	out := make(map[int]Process)
	for _, p := range procs {
		g := out[p.PGRP]
		g.PGRP = p.PGRP
		g.CPUTicks += p.CPUTicks
		g.RSSBytes += p.RSSBytes
		out[p.PGRP] = g
	}
	return out
}

// TreeTotals sums, for each root pid, the processes descending from it
// (the root itself excluded: it is the task's supervisor, the shim): CPU
// ticks including the children they reaped, and RSS. The root's own
// ChildCPUTicks are added too, as a supervisor that is a child subreaper
// reaps the tree's orphans and their CPU moves to it. A process whose
// parent is outside the tree is not counted, so processes that left the
// tree by being re-parented elsewhere are not either (a subreaper root
// keeps every orphan of its tree). Roots that are not running are absent.
func TreeTotals(procs []Process, roots []int) map[int]Process {
	children := make(map[int][]int, len(procs))
	byPID := make(map[int]Process, len(procs))
	for _, p := range procs {
		byPID[p.PID] = p
		children[p.PPID] = append(children[p.PPID], p.PID)
	}
	out := make(map[int]Process, len(roots))
	for _, root := range roots {
		r, ok := byPID[root]
		if !ok {
			continue
		}
		t := Process{PID: root, PGRP: r.PGRP, StartTicks: r.StartTicks, CPUTicks: r.ChildCPUTicks}
		stack := append([]int(nil), children[root]...)
		for len(stack) > 0 {
			pid := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			p := byPID[pid]
			t.CPUTicks += p.CPUTicks + p.ChildCPUTicks
			t.RSSBytes += p.RSSBytes
			stack = append(stack, children[pid]...)
		}
		out[root] = t
	}
	return out
}

// Descendants lists the pids descending from root (root excluded), parents
// before their children.
func Descendants(procs []Process, root int) []int {
	children := make(map[int][]int, len(procs))
	for _, p := range procs {
		children[p.PPID] = append(children[p.PPID], p.PID)
	}
	var out []int
	queue := append([]int(nil), children[root]...)
	for len(queue) > 0 {
		pid := queue[0]
		queue = queue[1:]
		out = append(out, pid)
		queue = append(queue, children[pid]...)
	}
	return out
}

// CPUMilli turns two CPU tick counters read elapsed apart into millicores.
// A counter that went backwards (the process was replaced) gives 0.
func CPUMilli(before, after uint64, elapsed time.Duration) int64 {
	if after <= before || elapsed <= 0 {
		return 0
	}
	ticks := float64(after - before)
	return int64(ticks / TicksPerSecond / elapsed.Seconds() * 1000)
}

// Machine is one reading of the machine-wide counters.
type Machine struct {
	// CPUs is the number of cpuN lines in /proc/stat.
	CPUs int
	// TotalTicks and IdleTicks sum over all CPUs; idle includes iowait.
	TotalTicks uint64
	IdleTicks  uint64
	// From /proc/meminfo.
	MemTotalBytes     int64
	MemAvailableBytes int64
}

// MemUsedBytes is what is not available to new work.
func (m Machine) MemUsedBytes() int64 { return m.MemTotalBytes - m.MemAvailableBytes }

// ReadMachine reads /proc/stat and /proc/meminfo under root.
func ReadMachine(root string) (Machine, error) {
	stat, err := os.ReadFile(filepath.Join(root, "stat"))
	if err != nil {
		return Machine{}, fmt.Errorf("read machine cpu counters: %w", err)
	}
	m, err := ParseCPUStat(stat)
	if err != nil {
		return Machine{}, err
	}
	meminfo, err := os.ReadFile(filepath.Join(root, "meminfo"))
	if err != nil {
		return Machine{}, fmt.Errorf("read machine memory counters: %w", err)
	}
	m.MemTotalBytes, m.MemAvailableBytes, err = ParseMeminfo(meminfo)
	return m, err
}

// ParseCPUStat parses the cpu lines of /proc/stat.
func ParseCPUStat(data []byte) (Machine, error) {
	var m Machine
	found := false
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 || !strings.HasPrefix(fields[0], "cpu") {
			continue
		}
		if fields[0] != "cpu" {
			m.CPUs++
			continue
		}
		// cpu user nice system idle iowait irq softirq steal guest guest_nice;
		// guest times are already counted in user and nice.
		if len(fields) < 5 {
			return Machine{}, fmt.Errorf("/proc/stat: cpu line has %d fields, want at least 5", len(fields))
		}
		for i, f := range fields[1:] {
			if i >= 8 {
				break
			}
			v, err := strconv.ParseUint(f, 10, 64)
			if err != nil {
				return Machine{}, fmt.Errorf("/proc/stat: cpu field %d: %w", i+1, err)
			}
			m.TotalTicks += v
			if i == 3 || i == 4 { // idle, iowait
				m.IdleTicks += v
			}
		}
		found = true
	}
	if !found {
		return Machine{}, errors.New("/proc/stat: no aggregate cpu line")
	}
	return m, nil
}

// ParseMeminfo returns MemTotal and MemAvailable from /proc/meminfo, in bytes.
func ParseMeminfo(data []byte) (total, available int64, err error) {
	var haveTotal, haveAvailable bool
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		key, value, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		var dst *int64
		switch key {
		case "MemTotal":
			dst, haveTotal = &total, true
		case "MemAvailable":
			dst, haveAvailable = &available, true
		default:
			continue
		}
		fields := strings.Fields(value)
		if len(fields) == 0 {
			return 0, 0, fmt.Errorf("/proc/meminfo: %s has no value", key)
		}
		kb, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("/proc/meminfo: %s: %w", key, err)
		}
		*dst = kb * 1024
	}
	if !haveTotal || !haveAvailable {
		return 0, 0, fmt.Errorf("/proc/meminfo: MemTotal or MemAvailable missing")
	}
	return total, available, nil
}

// MachineCPUMilli is the machine's busy CPU between two readings, in
// millicores.
func MachineCPUMilli(before, after Machine) int64 {
	if after.TotalTicks <= before.TotalTicks || after.IdleTicks < before.IdleTicks {
		return 0
	}
	total := float64(after.TotalTicks - before.TotalTicks)
	idle := float64(after.IdleTicks - before.IdleTicks)
	busy := (total - idle) / total
	if busy < 0 {
		busy = 0
	}
	return int64(busy * float64(after.CPUs) * 1000)
}

// IsNotExist reports whether err means the process is gone.
func IsNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }

func truncate(b []byte) []byte {
	if len(b) > 64 {
		return b[:64]
	}
	return b
}
