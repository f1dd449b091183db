package sim

import (
	"math"
	"slices"
	"strings"
)

// Result holds the metrics of one run, as the Omega paper defines them.
type Result struct {
	Arch            string            `json:"arch"`
	Workload        string            `json:"workload"`
	Seed            uint64            `json:"seed"`
	HorizonSeconds  float64           `json:"horizon_seconds"`
	Timing          map[string]Timing `json:"timing"`
	BatchSchedulers int               `json:"batch_schedulers"`
	Conflict        string            `json:"conflict"`
	Commit          string            `json:"commit"`
	// Placement is the placement algorithm used: first-fit or policies.
	Placement string `json:"placement"`

	Machines   int              `json:"machines"`
	Schedulers []SchedulerStats `json:"schedulers"`
	JobTypes   []JobTypeStats   `json:"job_types"`
	// JobKinds aggregates the job types by scheduler kind (Type is the kind).
	JobKinds []JobTypeStats `json:"job_kinds"`
	Cell     CellStats      `json:"cell"`

	// Events is the number of simulation events processed, TasksPlaced
	// the number of task placements committed.
	Events      uint64 `json:"events"`
	TasksPlaced uint64 `json:"tasks_placed"`

	// Order is the queue order (fifo or drf); TenantSeries the tenants'
	// dominant shares over time when the workload has tenants.
	Order        string        `json:"order"`
	TenantSeries *TenantSeries `json:"tenant_series,omitempty"`
}

// SchedulerStats are one scheduler's metrics.
type SchedulerStats struct {
	Name string `json:"name"`
	Kind string `json:"kind"`
	// Busyness is the median over days of the fraction of the day the
	// scheduler spent deciding (the paper's measure); BusynessMean is the
	// fraction over the whole run, and WastedBusyness the part of it spent
	// on decisions whose transaction had a conflict.
	Busyness       float64 `json:"busyness"`
	BusynessMean   float64 `json:"busyness_mean"`
	WastedBusyness float64 `json:"wasted_busyness"`
	// Transactions committed; Successful ones placed at least one task,
	// Conflicted ones had at least one claim fail for a conflict.
	Transactions int `json:"transactions"`
	Successful   int `json:"successful"`
	Conflicted   int `json:"conflicted"`
	// ConflictFraction is conflicted per successful transaction (the
	// paper's "conflict fraction"; it can exceed 1).
	ConflictFraction float64 `json:"conflict_fraction"`
	Claims           int     `json:"claims"`
	ClaimConflicts   int     `json:"claim_conflicts"`
	// NoFit counts attempts that found no room for any task.
	NoFit int `json:"no_fit_attempts"`
}

// JobTypeStats are the metrics of one job type.
type JobTypeStats struct {
	Type      string `json:"type"`
	Kind      string `json:"kind"`
	Submitted int    `json:"submitted"`
	Scheduled int    `json:"scheduled"`
	Abandoned int    `json:"abandoned"`
	// Unscheduled jobs were still waiting at the end of the run.
	Unscheduled int `json:"unscheduled"`
	// Wait is the paper's job wait time: submission to the first
	// scheduling attempt. Jobs never attempted by the end count with the
	// time they had waited by then (a lower bound), so a scheduler that
	// falls behind shows it; Unattempted says how many.
	WaitMean    float64 `json:"wait_mean"`
	WaitP90     float64 `json:"wait_p90"`
	Unattempted int     `json:"unattempted"`
	// Schedule is submission to the last task placed, over the jobs that
	// were fully scheduled.
	ScheduleMean float64 `json:"schedule_mean"`
	ScheduleP90  float64 `json:"schedule_p90"`
	// TasksLost is tasks lost with their machine and placed again;
	// TasksPreempted tasks evicted by a higher-priority claim.
	TasksLost      int `json:"tasks_lost,omitempty"`
	TasksPreempted int `json:"tasks_preempted,omitempty"`
}

// CellStats are time averages over the run.
type CellStats struct {
	CPUUtilisation    float64 `json:"cpu_utilisation"`
	MemoryUtilisation float64 `json:"memory_utilisation"`
	// GPUAllocation is allocated over total GPU capacity; GPUStranded is
	// the free GPU capacity on partly used devices (txn.StrandedGPUMilli),
	// over total GPU capacity: the fragmentation that whole-GPU requests
	// cannot use. Both are zero without GPUs.
	GPUAllocation float64 `json:"gpu_allocation"`
	GPUStranded   float64 `json:"gpu_stranded"`
}

// schedStats accumulates one scheduler's metrics.
type schedStats struct {
	horizon    float64
	busyDaily  []float64
	busy       float64
	wasted     float64
	jobs       int
	txns       int
	successful int
	conflicted int
	claims     int
	claimConfl int
	NoFit      int
}

const day = 86400.0

func (st *schedStats) init(horizon float64) {
	st.horizon = horizon
	st.busyDaily = make([]float64, int(math.Ceil(horizon/day)))
}

// addBusy records the scheduler busy over [from, to), split by day and
// clipped to the horizon.
func (st *schedStats) addBusy(from, to float64, wasted bool) {
	to = min(to, st.horizon)
	if to <= from {
		return
	}
	st.busy += to - from
	if wasted {
		st.wasted += to - from
	}
	for from < to {
		d := int(from / day)
		end := min(to, float64(d+1)*day)
		st.busyDaily[d] += end - from
		from = end
	}
}

func (st *schedStats) recordTransaction(r commitResult, claims int, _ float64) {
	st.txns++
	st.claims += claims
	st.claimConfl += r.conflicts
	if r.accepted > 0 {
		st.successful++
	}
	if r.conflicts > 0 {
		st.conflicted++
	}
}

func (st *schedStats) result(name, kind string) SchedulerStats {
	out := SchedulerStats{
		Name: name, Kind: kind,
		BusynessMean:   st.busy / st.horizon,
		WastedBusyness: st.wasted / st.horizon,
		Transactions:   st.txns, Successful: st.successful, Conflicted: st.conflicted,
		Claims: st.claims, ClaimConflicts: st.claimConfl, NoFit: st.NoFit,
	}
	daily := make([]float64, len(st.busyDaily))
	for d, b := range st.busyDaily {
		length := min(day, st.horizon-float64(d)*day)
		daily[d] = b / length
	}
	out.Busyness = median(daily)
	// With no successful transaction at all the fraction is the number of
	// conflicts itself (as if one had succeeded), which keeps it finite.
	out.ConflictFraction = float64(st.conflicted) / float64(max(1, st.successful))
	return out
}

// typeStats accumulates the metrics of one job type.
type typeStats struct {
	Type           string
	Kind           string
	Submitted      int
	Abandoned      int
	TasksLost      int
	TasksPreempted int
	waits          []float64
	schedules      []float64
	// Used when aggregating by kind.
	unattempted, unscheduled int
}

func (ts *typeStats) addWait(w float64)      { ts.waits = append(ts.waits, w) }
func (ts *typeStats) addScheduled(d float64) { ts.schedules = append(ts.schedules, d) }

// merge adds another type's jobs (aggregation by kind).
func (ts *typeStats) merge(o *typeStats, unattempted, unscheduled int) {
	ts.Submitted += o.Submitted
	ts.Abandoned += o.Abandoned
	ts.TasksLost += o.TasksLost
	ts.TasksPreempted += o.TasksPreempted
	ts.waits = append(ts.waits, o.waits...)
	ts.schedules = append(ts.schedules, o.schedules...)
	ts.unattempted += unattempted
	ts.unscheduled += unscheduled
}

func (ts *typeStats) result(unattempted, unscheduled int) JobTypeStats {
	return JobTypeStats{
		Type: ts.Type, Kind: ts.Kind, Submitted: ts.Submitted, Scheduled: len(ts.schedules),
		Abandoned: ts.Abandoned, Unscheduled: unscheduled, Unattempted: unattempted, TasksLost: ts.TasksLost, TasksPreempted: ts.TasksPreempted,
		WaitMean: mean(ts.waits), WaitP90: percentile(ts.waits, 0.9),
		ScheduleMean: mean(ts.schedules), ScheduleP90: percentile(ts.schedules, 0.9),
	}
}

func (s *sim) result() *Result {
	r := &Result{
		Arch:            string(s.cfg.Arch),
		Seed:            s.cfg.Seed,
		HorizonSeconds:  s.cfg.Horizon,
		Timing:          s.cfg.Timing,
		BatchSchedulers: s.cfg.BatchSchedulers,
		Conflict:        ConflictName(s.cfg.Conflict),
		Commit:          CommitName(s.cfg.Commit),
		Placement:       string(PlacementFirstFit),
		Machines:        len(s.cell.machines),
		Events:          s.events,
		TasksPlaced:     s.placed,
		Order:           string(s.cfg.Order),
		TenantSeries:    s.finishTenants(),
	}
	if s.cell.mirror != nil {
		r.Placement = string(PlacementPolicies)
	}
	if named, ok := s.src.(interface{ Name() string }); ok {
		r.Workload = named.Name()
	}
	for _, sc := range s.scheds {
		if sc == s.prefill || (sc.stats.txns == 0 && sc.stats.busy == 0 && !s.hadJobs(sc)) {
			continue
		}
		r.Schedulers = append(r.Schedulers, sc.stats.result(sc.name, sc.kind))
	}
	// Jobs still waiting at the end: censored waits and the unscheduled count.
	unattempted := map[*typeStats]int{}
	unscheduled := map[*typeStats]int{}
	for _, sc := range s.scheds {
		sc.queue.each(func(j *job) { s.censor(j, unattempted, unscheduled) })
		if sc.current != nil {
			s.censor(sc.current, unattempted, unscheduled)
		}
	}
	// Every event left is past the horizon: retries are waiting jobs.
	for _, e := range s.agenda.h {
		if e.kind == evRetry {
			s.censor(e.job, unattempted, unscheduled)
		}
	}
	slices.SortFunc(s.jobTypes, func(a, b *typeStats) int { return strings.Compare(a.Type, b.Type) })
	kinds := map[string]*typeStats{}
	var kindOrder []*typeStats
	for _, ts := range s.jobTypes {
		r.JobTypes = append(r.JobTypes, ts.result(unattempted[ts], unscheduled[ts]))
		k := kinds[ts.Kind]
		if k == nil {
			k = &typeStats{Type: ts.Kind, Kind: ts.Kind}
			kinds[ts.Kind] = k
			kindOrder = append(kindOrder, k)
		}
		k.merge(ts, unattempted[ts], unscheduled[ts])
	}
	slices.SortFunc(kindOrder, func(a, b *typeStats) int { return strings.Compare(a.Type, b.Type) })
	for _, k := range kindOrder {
		r.JobKinds = append(r.JobKinds, k.result(k.unattempted, k.unscheduled))
	}
	a := s.cell.area
	r.Cell = CellStats{
		CPUUtilisation:    ratio(a.UsedCPU, a.CapCPU),
		MemoryUtilisation: ratio(a.UsedMem, a.CapMem),
		GPUAllocation:     ratio(a.UsedGPU, a.CapGPU),
		GPUStranded:       ratio(a.StrandedGPU, a.CapGPU),
	}
	return r
}

func (s *sim) hadJobs(sc *scheduler) bool { return sc.stats.txns > 0 || sc.queue.len() > 0 }

// censor counts a job still waiting at the end of the run. A job that was
// never attempted contributes the time it has waited so far.
func (s *sim) censor(j *job, unattempted, unscheduled map[*typeStats]int) {
	if j == nil || j.done || j.stats == nil {
		return
	}
	unscheduled[j.stats]++
	if !j.attempted {
		j.attempted = true
		unattempted[j.stats]++
		j.stats.addWait(s.cfg.Horizon - j.submitted)
	}
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

func mean(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	var sum float64
	for _, x := range xs {
		sum += x
	}
	return sum / float64(len(xs))
}

// percentile is the nearest-rank percentile (p in (0, 1]).
func percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	k := int(math.Ceil(p*float64(len(s)))) - 1
	return s[max(0, min(k, len(s)-1))]
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}
