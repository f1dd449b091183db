package webui

import (
	"cmp"
	"sort"

	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
)

// The hub's copy of the cell: what the pages draw, in compact rows. Only
// what no caller needs to be refused is kept (jobs without their tasks'
// commands, arguments and environment); per-client filtering happens when
// rows are sent (see client.visibleJob).

// Resource indexes of the [3]int64 arrays.
const (
	resCPU = iota
	resMem
	resGPU
)

// Machine states as the page knows them.
const (
	mReady    = 1
	mDraining = 2
	mDown     = 3
)

type machineRow struct {
	id, zone, rack string
	state          int8
	cap, alloc     [3]int64
	used           [2]int64 // cpu milli, memory bytes (heartbeats)
}

// Task buckets of a job's progress bar.
const (
	bPending = iota
	bPlaced
	bRunning
	bDone
	bFailed
	nBuckets
)

func bucket(s cellv1.TaskState) int {
	switch s {
	case cellv1.TaskState_TASK_STATE_ASSIGNED:
		return bPlaced
	case cellv1.TaskState_TASK_STATE_RUNNING:
		return bRunning
	case cellv1.TaskState_TASK_STATE_SUCCEEDED:
		return bDone
	case cellv1.TaskState_TASK_STATE_FAILED, cellv1.TaskState_TASK_STATE_LOST, cellv1.TaskState_TASK_STATE_KILLED, cellv1.TaskState_TASK_STATE_PREEMPTED:
		return bFailed
	}
	return bPending
}

type jobRow struct {
	id, name, tenant, scheduler string
	kind, state                 int32
	submit                      int64 // unix ms
	reason                      string
	res                         [3]int64 // per task
	counts                      [nBuckets]int32
}

type taskRow struct {
	bucket  int8
	machine string
}

func machineFromPB(m *cellv1.Machine, old *machineRow) *machineRow {
	r := &machineRow{id: m.Id, zone: m.Labels["zone"], rack: m.Labels["rack"]}
	switch m.State {
	case cellv1.MachineState_MACHINE_STATE_DRAINING:
		r.state = mDraining
	case cellv1.MachineState_MACHINE_STATE_DOWN:
		r.state = mDown
	default:
		r.state = mReady
	}
	r.cap = [3]int64{m.GetCapacity().GetCpuMilli(), m.GetCapacity().GetMemoryBytes(), m.GetCapacity().GetGpuMilli()}
	r.alloc = [3]int64{m.GetAllocated().GetCpuMilli(), m.GetAllocated().GetMemoryBytes(), m.GetAllocated().GetGpuMilli()}
	if old != nil {
		r.used = old.used
	}
	if u := m.GetUsage(); u != nil {
		r.used = [2]int64{u.CpuMilli, u.MemoryBytes}
	}
	return r
}

func jobFromPB(j *cellv1.Job, old *jobRow) *jobRow {
	s := j.GetSpec()
	res := s.GetTask().GetResources()
	r := &jobRow{
		id: j.Id, name: s.GetName(), tenant: s.GetTenant(), scheduler: s.GetScheduler(),
		kind: int32(s.GetKind()), state: int32(j.State), submit: j.SubmitTimeUnixNano / 1e6,
		reason: cmp.Or(j.QueuedReason, j.UnschedulableReason),
		res:    [3]int64{res.GetCpuMilli(), res.GetMemoryBytes(), res.GetGpuMilli()},
	}
	if len(r.reason) > 200 {
		r.reason = r.reason[:200]
	}
	if old != nil {
		r.counts = old.counts
	}
	return r
}

// totals are the cell's sums for the Cell page's header.
type totals struct {
	Machines int      `json:"machines"`
	Down     int      `json:"down"`
	Draining int      `json:"draining"`
	Cap      [3]int64 `json:"cap"`
	Alloc    [3]int64 `json:"alloc"`
	Used     [2]int64 `json:"used"`
	Jobs     int      `json:"jobs"`
	Tasks    [nBuckets]int64
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
