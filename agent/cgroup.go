package agent

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
	"syscall"
	"time"

	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
)

// cgroup v2 layout: <mount>/omegacell/<agent>/<job>_<index>_<attempt>.
// Each level delegates the cpu and memory controllers to the next; every
// attempt is cloned straight into its own cgroup (CLONE_INTO_CGROUP), so
// no process ever runs unconfined, not even between fork and exec.

// cgroup2Magic is CGROUP2_SUPER_MAGIC, the f_type of a cgroup v2 mount.
const cgroup2Magic = 0x63677270

// cpuPeriodMicros is the cpu.max period; quota = milli × period / 1000.
const cpuPeriodMicros = 100_000

type cgroupTree struct {
	dir string
	// shimsFD is the directory of <agent>/shims, the cgroup the tasks'
	// shims run in (outside the tasks' limits, and outside the agent's own
	// cgroup, so a service manager that stops the agent's cgroup leaves
	// the tasks running); -1 when it could not be made.
	shimsFD int
}

// shimsCgroup is the leaf cgroup of the shims under the agent's.
const shimsCgroup = "shims"

// setupCgroups prepares the agent's cgroup under mount, or says why limits
// cannot be enforced there.
func setupCgroups(mount, agentName string) (*cgroupTree, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(mount, &st); err != nil {
		return nil, fmt.Errorf("%s: %w", mount, err)
	}
	if st.Type != cgroup2Magic {
		return nil, fmt.Errorf("%s is not a cgroup v2 file system (cgroup v1 or hybrid hierarchy)", mount)
	}
	if err := syscall.Access(mount, 2 /* W_OK */); err != nil {
		return nil, fmt.Errorf("%s is not writable: %w", mount, err)
	}
	controllers, err := os.ReadFile(filepath.Join(mount, "cgroup.controllers"))
	if err != nil {
		return nil, fmt.Errorf("read available controllers: %w", err)
	}
	for _, c := range []string{"cpu", "memory"} {
		if !hasWord(string(controllers), c) {
			return nil, fmt.Errorf("%s: the %s controller is not available", mount, c)
		}
	}
	parent := filepath.Join(mount, "omegacell")
	dir := filepath.Join(parent, cgroupName(agentName))
	for _, step := range []struct{ delegateFrom, create string }{{mount, parent}, {parent, dir}} {
		if err := delegate(step.delegateFrom); err != nil {
			return nil, err
		}
		if err := os.Mkdir(step.create, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("create cgroup: %w", err)
		}
	}
	if err := delegate(dir); err != nil {
		return nil, err
	}
	t := &cgroupTree{dir: dir, shimsFD: -1}
	shims := filepath.Join(dir, shimsCgroup)
	if err := os.Mkdir(shims, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("create cgroup: %w", err)
	}
	fd, err := syscall.Open(shims, syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open cgroup %s: %w", shims, err)
	}
	t.shimsFD = fd
	t.removeEmpty()
	return t, nil
}

// removeEmpty removes the attempt cgroups an earlier agent left empty.
// Those that still hold processes belong to attempts the agent adopts or
// discards once it knows what the server holds (adopt.go).
func (t *cgroupTree) removeEmpty() {
	entries, _ := os.ReadDir(t.dir)
	for _, e := range entries {
		if e.IsDir() && e.Name() != shimsCgroup {
			_ = syscall.Rmdir(filepath.Join(t.dir, e.Name()))
		}
	}
}

// existing returns the cgroup of an attempt an earlier agent started, or
// nil when there is none.
func (t *cgroupTree) existing(k attemptKey) *taskCgroup {
	dir := t.attemptDir(k)
	if _, err := os.Stat(dir); err != nil {
		return nil
	}
	return &taskCgroup{dir: dir, fd: -1}
}

func (t *cgroupTree) attemptDir(k attemptKey) string {
	return filepath.Join(t.dir, cgroupName(fmt.Sprintf("%s_%d_%d", k.job, k.index, k.attempt)))
}

// delegate enables the cpu and memory controllers for the children of dir.
func delegate(dir string) error {
	file := filepath.Join(dir, "cgroup.subtree_control")
	cur, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("read %s: %w", file, err)
	}
	if hasWord(string(cur), "cpu") && hasWord(string(cur), "memory") {
		return nil
	}
	if err := os.WriteFile(file, []byte("+cpu +memory"), 0o644); err != nil {
		return fmt.Errorf("enable cpu and memory controllers in %s (a cgroup that holds processes cannot delegate them): %w", dir, err)
	}
	return nil
}

func hasWord(s, w string) bool {
	for _, f := range strings.Fields(s) {
		if f == w {
			return true
		}
	}
	return false
}

// cgroupName keeps letters, digits, '-', '_' and '.' of a name.
func cgroupName(name string) string {
	b := []byte(name)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			b[i] = '_'
		}
	}
	if len(b) == 0 || string(b) == "." || string(b) == ".." {
		return "agent"
	}
	return string(b)
}

// cpuMax is the content of cpu.max for a CPU request in millicores.
func cpuMax(milli int64) string {
	if milli <= 0 {
		return fmt.Sprintf("max %d", cpuPeriodMicros)
	}
	quota := max(milli*cpuPeriodMicros/1000, 1000) // the kernel's minimum quota is 1 ms
	return fmt.Sprintf("%d %d", quota, cpuPeriodMicros)
}

// memoryMax is the content of memory.max for a memory request in bytes.
func memoryMax(bytes int64) string {
	if bytes <= 0 {
		return "max"
	}
	return strconv.FormatInt(bytes, 10)
}

// taskCgroup is the cgroup of one attempt.
type taskCgroup struct {
	dir string
	fd  int // open until the child is started in it; -1 after
}

func (t *cgroupTree) create(k attemptKey, res *cellv1.Resources) (*taskCgroup, error) {
	dir := t.attemptDir(k)
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create cgroup %s: %w", dir, err)
	}
	c := &taskCgroup{dir: dir, fd: -1}
	limits := []struct{ file, value string }{
		{"cpu.max", cpuMax(res.GetCpuMilli())},
		{"memory.max", memoryMax(res.GetMemoryBytes())},
	}
	if res.GetMemoryBytes() > 0 {
		// Without this a task could exceed its memory into swap.
		limits = append(limits, struct{ file, value string }{"memory.swap.max", "0"})
	}
	for _, l := range limits {
		err := os.WriteFile(filepath.Join(dir, l.file), []byte(l.value), 0o644)
		if err != nil && !(l.file == "memory.swap.max" && errors.Is(err, fs.ErrNotExist)) {
			c.remove()
			return nil, fmt.Errorf("set %s to %q: %w", l.file, l.value, err)
		}
	}
	fd, err := syscall.Open(dir, syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0)
	if err != nil {
		c.remove()
		return nil, fmt.Errorf("open cgroup %s: %w", dir, err)
	}
	c.fd = fd
	return c, nil
}

func (c *taskCgroup) closeFD() {
	if c.fd >= 0 {
		_ = syscall.Close(c.fd)
		c.fd = -1
	}
}

// kill kills every process left in the cgroup (cgroup.kill, Linux 5.14+;
// older kernels: each pid of cgroup.procs).
func (c *taskCgroup) kill() {
	if err := os.WriteFile(filepath.Join(c.dir, "cgroup.kill"), []byte("1"), 0o644); err == nil {
		return
	}
	procs, err := os.ReadFile(filepath.Join(c.dir, "cgroup.procs"))
	if err != nil {
		return
	}
	for _, f := range strings.Fields(string(procs)) {
		if pid, err := strconv.Atoi(f); err == nil {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// oomKilled reports whether the kernel killed a process of the cgroup for
// exceeding memory.max.
func (c *taskCgroup) oomKilled() bool {
	return cgroupStat(filepath.Join(c.dir, "memory.events"), "oom_kill") > 0
}

// usage reads the cgroup's CPU time and memory in use.
func (c *taskCgroup) usage() (cpu time.Duration, memory int64, err error) {
	usec := cgroupStat(filepath.Join(c.dir, "cpu.stat"), "usage_usec")
	data, err := os.ReadFile(filepath.Join(c.dir, "memory.current"))
	if err != nil {
		return 0, 0, err
	}
	memory, err = strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64)
	return time.Duration(usec) * time.Microsecond, memory, err
}

// remove deletes the cgroup once its processes are gone (they are killed
// first; the kernel frees an emptied cgroup within moments).
func (c *taskCgroup) remove() {
	c.closeFD()
	for i := 0; i < 50; i++ {
		err := syscall.Rmdir(c.dir)
		if err == nil || errors.Is(err, syscall.ENOENT) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// cgroupStat reads one "key value" line of a flat-keyed cgroup file.
func cgroupStat(file, key string) int64 {
	data, err := os.ReadFile(file)
	if err != nil {
		return 0
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), " ")
		if ok && k == key {
			n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return n
		}
	}
	return 0
}
