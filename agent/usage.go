package agent

import (
	"hash/fnv"
	"log/slog"
	"time"

	"github.com/omegacell/omegacell/agent/procstat"
	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
)

// usageSource samples what machines and their running attempts consume.
type usageSource interface {
	// sample returns one entry per machine, in the same order.
	sample(now time.Time, machines []machineRunning) []machineUsage
}

type machineUsage struct {
	machine *cellv1.Usage
	tasks   []*cellv1.TaskUsage
}

// procUsage samples a real machine from /proc, and each attempt from its
// cgroup when it has one (exact, includes exited children) or else from
// the process tree under its shim, setsid escapees included (CPU of the
// live processes plus what exited children left in their parents'
// cutime/cstime; RSS summed over them, so shared pages count once per
// process).
type procUsage struct {
	log         *slog.Logger
	root        string
	prevMachine procstat.Machine
	prevTask    map[attemptKey]cpuReading
}

type cpuReading struct {
	cpu time.Duration
	at  time.Time
}

func newProcUsage(log *slog.Logger, root string) *procUsage {
	u := &procUsage{log: log, root: root, prevTask: make(map[attemptKey]cpuReading)}
	u.prevMachine, _ = procstat.ReadMachine(root)
	return u
}

func (u *procUsage) sample(now time.Time, machines []machineRunning) []machineUsage {
	out := make([]machineUsage, len(machines))
	if len(machines) == 0 {
		return out
	}
	cur, err := procstat.ReadMachine(u.root)
	if err != nil {
		u.log.Warn("cannot sample machine usage", "err", err)
	} else {
		out[0].machine = &cellv1.Usage{
			CpuMilli:           procstat.MachineCPUMilli(u.prevMachine, cur),
			MemoryBytes:        cur.MemUsedBytes(),
			SampleTimeUnixNano: now.UnixNano(),
		}
		u.prevMachine = cur
	}
	var trees map[int]procstat.Process
	seen := make(map[attemptKey]bool)
	for i, m := range machines {
		for _, t := range m.tasks {
			h, ok := t.handle.(*procHandle)
			if !ok {
				continue
			}
			var cpu time.Duration
			var rss int64
			if h.cgroup != nil {
				if cpu, rss, err = h.cgroup.usage(); err != nil {
					continue
				}
			} else {
				if trees == nil {
					procs, err := procstat.Scan(u.root)
					if err != nil {
						u.log.Warn("cannot sample task usage", "err", err)
						break
					}
					trees = procstat.TreeTotals(procs, shimPIDs(machines))
				}
				g, ok := trees[h.shimPid]
				if !ok {
					continue // exited since the list was taken
				}
				cpu = time.Duration(g.CPUTicks) * time.Second / procstat.TicksPerSecond
				rss = g.RSSBytes
			}
			prev, ok := u.prevTask[t.key]
			if !ok {
				prev = cpuReading{at: t.started} // CPU time is 0 at start
				if h.adopted {
					// Started before this agent: its rate is known
					// from the next sample on.
					prev = cpuReading{cpu: cpu, at: now}
				}
			}
			milli := int64(0)
			if elapsed := now.Sub(prev.at); elapsed > 0 && cpu > prev.cpu {
				milli = int64(float64(cpu-prev.cpu) / float64(elapsed) * 1000)
			}
			u.prevTask[t.key] = cpuReading{cpu: cpu, at: now}
			seen[t.key] = true
			out[i].tasks = append(out[i].tasks, &cellv1.TaskUsage{
				Task:    &cellv1.TaskRef{JobId: t.key.job, Index: t.key.index},
				Attempt: t.key.attempt,
				Usage:   &cellv1.Usage{CpuMilli: milli, MemoryBytes: rss, SampleTimeUnixNano: now.UnixNano()},
			})
		}
	}
	for k := range u.prevTask {
		if !seen[k] {
			delete(u.prevTask, k)
		}
	}
	return out
}

// shimPIDs lists the shims of the running attempts: each task's tree is
// what descends from its shim, a child subreaper that keeps every orphan
// of the tree (setsid included).
func shimPIDs(machines []machineRunning) []int {
	var out []int
	for _, m := range machines {
		for _, t := range m.tasks {
			if h, ok := t.handle.(*procHandle); ok {
				out = append(out, h.shimPid)
			}
		}
	}
	return out
}

// simUsage makes up usage for simulated machines: each attempt uses a
// fixed, deterministic fraction of what it reserved (the profile's
// utilization, varied per task between half and one and a half times it,
// at most all of it), and a machine uses the sum over its attempts.
type simUsage struct {
	utilization float64
	perTask     bool
}

func (u simUsage) sample(now time.Time, machines []machineRunning) []machineUsage {
	out := make([]machineUsage, len(machines))
	ts := now.UnixNano()
	for i, m := range machines {
		total := &cellv1.Usage{SampleTimeUnixNano: ts}
		for _, t := range m.tasks {
			f := min(u.utilization*(0.5+taskJitter(t.key)), 1)
			used := &cellv1.Usage{
				CpuMilli:           int64(float64(t.resources.GetCpuMilli()) * f),
				MemoryBytes:        int64(float64(t.resources.GetMemoryBytes()) * f),
				SampleTimeUnixNano: ts,
			}
			total.CpuMilli += used.CpuMilli
			total.MemoryBytes += used.MemoryBytes
			if u.perTask {
				out[i].tasks = append(out[i].tasks, &cellv1.TaskUsage{
					Task:    &cellv1.TaskRef{JobId: t.key.job, Index: t.key.index},
					Attempt: t.key.attempt,
					Usage:   used,
				})
			}
		}
		out[i].machine = total
	}
	return out
}

// taskJitter is a deterministic number in [0, 1) per attempt.
func taskJitter(k attemptKey) float64 {
	h := fnv.New32a()
	h.Write([]byte(k.String()))
	return float64(h.Sum32()%1000) / 1000
}
