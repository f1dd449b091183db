package sim

import (
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"

	"github.com/omegacell/omegacell/txn"
)

// GoogleOptions says how to read a Google 2011 cluster-data trace
// (ClusterData2011_2, https://github.com/google/cluster-data): its
// machine_events and task_events tables, CSV without a header, each file
// plain or gzipped; a directory stands for all its parts.
type GoogleOptions struct {
	MachineEvents []string
	TaskEvents    []string
	// The trace normalises capacities and requests to the largest machine
	// (1.0); CPUScaleMilli and MemoryScaleMiB turn 1.0 into absolute units.
	CPUScaleMilli  int64
	MemoryScaleMiB int64
	// ServicePriority: jobs at or above it go to the service scheduler,
	// the rest to batch. The trace's production band is 9-11.
	ServicePriority int64
	// Horizon, if positive, drops everything after it (seconds).
	Horizon float64
}

// DefaultGoogleOptions scale 1.0 to 32 cores and 128 GiB and send the
// production band (priority 9 and up) to the service scheduler.
func DefaultGoogleOptions() GoogleOptions {
	return GoogleOptions{CPUScaleMilli: 32000, MemoryScaleMiB: 128 << 10, ServicePriority: 9}
}

var (
	googleMachineColumns = []string{"timestamp", "machine ID", "event type", "platform ID", "CPUs", "memory"}
	googleTaskColumns    = []string{"timestamp", "missing info", "job ID", "task index", "machine ID", "event type",
		"user", "scheduling class", "priority", "CPU request", "memory request", "disk space request", "different-machines restriction"}
)

// Event types of the trace.
const (
	gmAdd, gmRemove, gmUpdate = 0, 1, 2

	gtSubmit, gtSchedule, gtEvict, gtFail, gtFinish, gtKill, gtLost, gtUpdatePending, gtUpdateRunning = 0, 1, 2, 3, 4, 5, 6, 7, 8
)

// googleNever is the trace's timestamp for "after the end of the trace".
const googleNever = math.MaxInt64

// ReadGoogleTrace reads a Google 2011 trace into a replayable source.
//
// Time zero of the simulation is the trace's time zero; timestamps are
// microseconds. Machines added at time 0 form the initial cell; later
// adds, removals and updates are replayed. Tasks become jobs: a job
// arrives at its first SUBMIT with every task the trace shows for it, each
// task with the request of its first SUBMIT and, as its duration, the time
// from its first SCHEDULE to the next EVICT, FAIL, FINISH, KILL or LOST
// (still running at the end of the trace: to the end of the simulation).
// Jobs submitted at time 0 were running when the trace began: they are the
// prefill. Tasks that ended before they were ever scheduled never ran and
// are left out; so are machines without a capacity. The different-machines
// restriction becomes at most one task of the job per machine.
func ReadGoogleTrace(opts GoogleOptions) (*Trace, error) {
	switch {
	case opts.CPUScaleMilli <= 0:
		return nil, fmt.Errorf("google trace: cpu scale %d must be positive", opts.CPUScaleMilli)
	case opts.MemoryScaleMiB <= 0:
		return nil, fmt.Errorf("google trace: memory scale %d must be positive", opts.MemoryScaleMiB)
	}
	t := &Trace{name: "google-2011", Skipped: map[string]int{}}
	if err := t.readGoogleMachines(opts); err != nil {
		return nil, err
	}
	if err := t.readGoogleTasks(opts); err != nil {
		return nil, err
	}
	sortItems(t.items)
	return t, nil
}

func googleSeconds(us int64) float64 { return float64(us) / 1e6 }

func (t *Trace) readGoogleMachines(opts GoogleOptions) error {
	files, err := traceFiles(opts.MachineEvents)
	if err != nil {
		return fmt.Errorf("machine_events: %w", err)
	}
	known := map[string]bool{}
	for _, path := range files {
		c, err := openCSV(path, googleMachineColumns)
		if err != nil {
			return err
		}
		err = t.readGoogleMachineFile(c, opts, known)
		c.Close()
		if err != nil {
			return err
		}
	}
	if len(t.machines) == 0 {
		return fmt.Errorf("google trace: no machine is added at time 0 in %v", opts.MachineEvents)
	}
	return nil
}

func (t *Trace) readGoogleMachineFile(c *csvFile, opts GoogleOptions, known map[string]bool) error {
	for {
		if err := c.next(); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		ts, _, err := c.int(0, false)
		if err != nil {
			return err
		}
		if ts < 0 {
			return c.errAt(0, "%d is negative", ts)
		}
		id, _, err := c.int(1, false)
		if err != nil {
			return err
		}
		kind, _, err := c.int(2, false)
		if err != nil {
			return err
		}
		if kind < gmAdd || kind > gmUpdate {
			return c.errAt(2, "%d is not 0 (add), 1 (remove) or 2 (update)", kind)
		}
		cpu, hasCPU, err := c.float(4, true)
		if err != nil {
			return err
		}
		mem, hasMem, err := c.float(5, true)
		if err != nil {
			return err
		}
		if cpu < 0 || cpu > 1 {
			return c.errAt(4, "%v is outside [0, 1]", cpu)
		}
		if mem < 0 || mem > 1 {
			return c.errAt(5, "%v is outside [0, 1]", mem)
		}
		at := googleSeconds(ts)
		if opts.Horizon > 0 && at > opts.Horizon {
			continue
		}
		name := "g" + strconv.FormatInt(id, 10)
		if kind == gmRemove {
			if known[name] {
				t.items = append(t.items, Item{At: at, Machine: &MachineEvent{Kind: MachineRemoved, ID: name}})
			}
			continue
		}
		capacity := txn.Resources{
			CPUMilli:    int64(math.Round(cpu * float64(opts.CPUScaleMilli))),
			MemoryBytes: int64(math.Round(mem*float64(opts.MemoryScaleMiB))) << 20,
		}
		if !hasCPU || !hasMem || capacity.CPUMilli <= 0 || capacity.MemoryBytes <= 0 {
			t.Skipped["machine event without capacity"]++
			continue
		}
		m := txn.NewMachine(name, nil, capacity)
		switch {
		case kind == gmAdd && ts == 0 && !known[name]:
			t.machines = append(t.machines, m)
		case kind == gmAdd:
			t.items = append(t.items, Item{At: at, Machine: &MachineEvent{Kind: MachineAdded, Machine: m}})
		default:
			t.items = append(t.items, Item{At: at, Machine: &MachineEvent{Kind: MachineUpdated, Machine: m}})
		}
		known[name] = true
	}
}

// googleTask is what the reader gathers about one task.
type googleTask struct {
	index     uint32
	submitted bool
	submitAt  int64
	req       txn.Resources
	priority  int64
	distinct  bool
	scheduled bool
	startAt   int64
	endAt     int64 // 0 while running
	ended     bool
}

type googleJob struct {
	id      int64
	firstAt int64
	tasks   map[uint32]*googleTask
}

func (t *Trace) readGoogleTasks(opts GoogleOptions) error {
	files, err := traceFiles(opts.TaskEvents)
	if err != nil {
		return fmt.Errorf("task_events: %w", err)
	}
	jobs := map[int64]*googleJob{}
	for _, path := range files {
		c, err := openCSV(path, googleTaskColumns)
		if err != nil {
			return err
		}
		err = readGoogleTaskFile(c, opts, jobs)
		c.Close()
		if err != nil {
			return err
		}
	}
	ids := make([]int64, 0, len(jobs))
	for id := range jobs {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		if spec, at, ok := t.googleJobSpec(jobs[id], opts); ok {
			t.items = append(t.items, Item{At: at, Job: spec})
		}
	}
	return nil
}

func readGoogleTaskFile(c *csvFile, opts GoogleOptions, jobs map[int64]*googleJob) error {
	for {
		if err := c.next(); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		ts, _, err := c.int(0, false)
		if err != nil {
			return err
		}
		if ts < 0 {
			return c.errAt(0, "%d is negative", ts)
		}
		jobID, _, err := c.int(2, false)
		if err != nil {
			return err
		}
		index, _, err := c.int(3, false)
		if err != nil {
			return err
		}
		if index < 0 || index > math.MaxUint32 {
			return c.errAt(3, "%d is not a task index", index)
		}
		kind, _, err := c.int(5, false)
		if err != nil {
			return err
		}
		if kind < gtSubmit || kind > gtUpdateRunning {
			return c.errAt(5, "%d is not an event type (0-8)", kind)
		}
		prio, hasPrio, err := c.int(8, true)
		if err != nil {
			return err
		}
		if hasPrio && (prio < 0 || prio > 11) {
			return c.errAt(8, "%d is outside 0-11", prio)
		}
		var req [3]float64
		for k, col := range []int{9, 10, 11} {
			v, _, err := c.float(col, true)
			if err != nil {
				return err
			}
			if v < 0 || v > 1 {
				return c.errAt(col, "%v is outside [0, 1]", v)
			}
			req[k] = v
		}
		distinct, hasDistinct, err := c.int(12, true)
		if err != nil {
			return err
		}
		if hasDistinct && distinct != 0 && distinct != 1 {
			return c.errAt(12, "%d is neither 0 nor 1", distinct)
		}
		if ts == googleNever || (opts.Horizon > 0 && googleSeconds(ts) > opts.Horizon) {
			continue
		}
		j := jobs[jobID]
		if j == nil {
			j = &googleJob{id: jobID, firstAt: ts, tasks: map[uint32]*googleTask{}}
			jobs[jobID] = j
		}
		gt := j.tasks[uint32(index)]
		if gt == nil {
			gt = &googleTask{index: uint32(index)}
			j.tasks[uint32(index)] = gt
		}
		switch kind {
		case gtSubmit:
			if !gt.submitted {
				gt.submitted, gt.submitAt, gt.priority, gt.distinct = true, ts, prio, distinct == 1
				gt.req = txn.Resources{
					CPUMilli:    max(1, int64(math.Round(req[0]*float64(opts.CPUScaleMilli)))),
					MemoryBytes: max(1, int64(math.Round(req[1]*float64(opts.MemoryScaleMiB)))) << 20,
				}
				j.firstAt = min(j.firstAt, ts)
			}
		case gtSchedule:
			if !gt.scheduled {
				gt.scheduled, gt.startAt = true, ts
			}
		case gtEvict, gtFail, gtFinish, gtKill, gtLost:
			if gt.scheduled && !gt.ended {
				gt.ended, gt.endAt = true, ts
			} else if !gt.scheduled {
				gt.ended = true
			}
		}
	}
}

// googleJobSpec turns a gathered job into a JobSpec.
func (t *Trace) googleJobSpec(j *googleJob, opts GoogleOptions) (*JobSpec, float64, bool) {
	idx := make([]uint32, 0, len(j.tasks))
	for i := range j.tasks {
		idx = append(idx, i)
	}
	slices.Sort(idx)
	spec := &JobSpec{ID: "g" + strconv.FormatInt(j.id, 10), Type: KindBatch, Kind: KindBatch, Priority: txn.PriorityBatch}
	var prio int64
	distinct := false
	for _, i := range idx {
		gt := j.tasks[i]
		switch {
		case !gt.submitted:
			t.Skipped["task without SUBMIT"]++
			continue
		case gt.ended && !gt.scheduled:
			t.Skipped["task ended before it was scheduled"]++
			continue
		}
		dur := -1.0
		if gt.scheduled && gt.ended {
			dur = googleSeconds(gt.endAt - gt.startAt)
		}
		spec.TaskResources = append(spec.TaskResources, gt.req)
		spec.TaskDurations = append(spec.TaskDurations, dur)
		prio = max(prio, gt.priority)
		distinct = distinct || gt.distinct
	}
	spec.Tasks = len(spec.TaskResources)
	if spec.Tasks == 0 {
		t.Skipped["job without runnable tasks"]++
		return nil, 0, false
	}
	if prio >= opts.ServicePriority {
		spec.Type, spec.Kind, spec.Priority = KindService, KindService, txn.PriorityProduction
	}
	if distinct {
		spec.MaxPerMachine = 1
	}
	spec.Prefill = j.firstAt == 0
	return spec, googleSeconds(j.firstAt), true
}
