package sim

import (
	"embed"
	"fmt"
	"math"

	"sigs.k8s.io/yaml"

	"github.com/omegacell/omegacell/bench/builtin"
	"github.com/omegacell/omegacell/txn"
)

// Workload is a synthetic workload as the Omega paper parameterises it: a
// cell of machines, a prefill that occupies part of it before the clock
// starts, and job types that arrive with exponential inter-arrival times
// and draw their size, duration and task shape from (heavy-tailed)
// distributions. It is read from a YAML or JSON file.
type Workload struct {
	Name        string    `json:"name"`
	Description string    `json:"description,omitempty"`
	Machines    []Machine `json:"machines"`
	Prefill     Prefill   `json:"prefill"`
	JobTypes    []JobType `json:"job_types"`
	// Tenants share the cell (issue 12): their weights set each tenant's
	// fair share when the schedulers order their queues by weighted DRF
	// (Config.Order), and the run samples each tenant's dominant share.
	Tenants []Tenant `json:"tenants,omitempty"`
}

// Tenant is one tenant of a workload.
type Tenant struct {
	Name string `json:"name"`
	// Weight for weighted DRF, 1..1000 (0: 1).
	Weight uint32 `json:"weight,omitempty"`
	// Production and Batch are the tenant's quotas in those bands (none:
	// not limited), enforced by txn.Validate as in the store.
	Production *Quota `json:"production,omitempty"`
	Batch      *Quota `json:"batch,omitempty"`
}

// Quota is a tenant's quota in one band: nominal amounts and, in batch,
// how far above them the tenant may borrow idle capacity.
type Quota struct {
	CPUMilli  int64 `json:"cpu_milli"`
	MemoryMiB int64 `json:"memory_mib"`
	GPUs      int64 `json:"gpus,omitempty"`
	// BorrowCPUMilli, BorrowMemoryMiB, BorrowGPUs: batch only.
	BorrowCPUMilli  int64 `json:"borrow_cpu_milli,omitempty"`
	BorrowMemoryMiB int64 `json:"borrow_memory_mib,omitempty"`
	BorrowGPUs      int64 `json:"borrow_gpus,omitempty"`
}

func (q *Quota) validate() error {
	for _, f := range []struct {
		name string
		v    int64
	}{{"cpu_milli", q.CPUMilli}, {"memory_mib", q.MemoryMiB}, {"gpus", q.GPUs}, {"borrow_cpu_milli", q.BorrowCPUMilli}, {"borrow_memory_mib", q.BorrowMemoryMiB}, {"borrow_gpus", q.BorrowGPUs}} {
		if f.v < 0 {
			return fmt.Errorf("%s: %d is negative", f.name, f.v)
		}
	}
	return nil
}

// txnTenant is the tenant as txn's ledger takes it.
func (t Tenant) txnTenant() txn.Tenant {
	out := txn.Tenant{Name: t.Name, Weight: max(t.Weight, 1), MaxBand: txn.BandProduction}
	conv := func(q *Quota, borrow bool) *txn.Quota {
		if q == nil {
			return nil
		}
		tq := &txn.Quota{Nominal: txn.Resources{CPUMilli: q.CPUMilli, MemoryBytes: q.MemoryMiB << 20, GPUMilli: q.GPUs * txn.MilliPerGPU}}
		if borrow {
			tq.BorrowLimit = txn.Resources{CPUMilli: q.BorrowCPUMilli, MemoryBytes: q.BorrowMemoryMiB << 20, GPUMilli: q.BorrowGPUs * txn.MilliPerGPU}
		}
		return tq
	}
	out.Quota[txn.BandProduction] = conv(t.Production, false)
	out.Quota[txn.BandBatch] = conv(t.Batch, true)
	return out
}

// Machine is a class of identical machines.
type Machine struct {
	Count     int               `json:"count"`
	CPUMilli  int64             `json:"cpu_milli"`
	MemoryMiB int64             `json:"memory_mib"`
	GPUs      int64             `json:"gpus,omitempty"`
	Labels    map[string]string `json:"labels,omitempty"`
}

// Prefill fills the cell before time zero with the jobs already running
// then (the paper prefills its cells to about 60% with the jobs running at
// the start of its traces). By default they are the workload's own steady
// state (see Synthetic); a job type restricts them to one type's shape.
type Prefill struct {
	// CPUFraction of the cell's CPU requested by the prefill jobs; 0 means
	// no prefill.
	CPUFraction float64 `json:"cpu_fraction"`
	// JobType, if set, names the only job type prefill jobs are drawn from.
	JobType string `json:"job_type,omitempty"`
	// DurationSeconds, if set, is the prefill jobs' remaining lifetime
	// instead of the residual lifetime of their type's durations.
	DurationSeconds *Dist `json:"duration_seconds,omitempty"`
}

// JobType is one stream of jobs.
type JobType struct {
	Name string `json:"name"`
	// Scheduler is the kind of scheduler the jobs go to: "batch",
	// "service" or "gpu". Decision times are set per scheduler kind.
	Scheduler           string `json:"scheduler"`
	Priority            int32  `json:"priority"`
	InterarrivalSeconds Dist   `json:"interarrival_seconds"`
	TasksPerJob         Dist   `json:"tasks_per_job"`
	DurationSeconds     Dist   `json:"duration_seconds"`
	CPUMilli            Dist   `json:"cpu_milli"`
	MemoryMiB           Dist   `json:"memory_mib"`
	// GPUMilli per task: below 1000 shares one device, otherwise it is
	// rounded to whole devices. Omit for CPU-only jobs.
	GPUMilli *Dist `json:"gpu_milli,omitempty"`
	// GPUModels constrains tasks to machines whose gpu.model label is one
	// of these.
	GPUModels []string `json:"gpu_models,omitempty"`
	// Tenant owns the jobs; one of the workload's tenants ("": none).
	Tenant string `json:"tenant,omitempty"`
}

// Scheduler kinds. The decision-time model is configured per kind.
const (
	KindBatch   = "batch"
	KindService = "service"
	KindGPU     = "gpu"
)

// Validate checks the workload; the error names the field.
func (w *Workload) Validate() error {
	if w.Name == "" {
		return fmt.Errorf("name: missing")
	}
	if len(w.Machines) == 0 {
		return fmt.Errorf("machines: at least one machine class is needed")
	}
	for i, m := range w.Machines {
		if m.Count <= 0 {
			return fmt.Errorf("machines[%d].count: %d must be positive", i, m.Count)
		}
		if err := txn.ValidateCapacity(m.capacity()); err != nil {
			return fmt.Errorf("machines[%d]: %w", i, err)
		}
		if m.GPUs < 0 {
			return fmt.Errorf("machines[%d].gpus: %d is negative", i, m.GPUs)
		}
	}
	if len(w.JobTypes) == 0 {
		return fmt.Errorf("job_types: at least one job type is needed")
	}
	seen := map[string]bool{}
	for i := range w.JobTypes {
		jt := &w.JobTypes[i]
		if err := jt.validate(); err != nil {
			return fmt.Errorf("job_types[%d] (%s): %w", i, jt.Name, err)
		}
		if seen[jt.Name] {
			return fmt.Errorf("job_types[%d].name: %q appears twice", i, jt.Name)
		}
		seen[jt.Name] = true
	}
	tenants := map[string]bool{}
	for i, t := range w.Tenants {
		switch {
		case t.Name == "":
			return fmt.Errorf("tenants[%d].name: missing", i)
		case tenants[t.Name]:
			return fmt.Errorf("tenants[%d].name: %q appears twice", i, t.Name)
		case t.Weight > 1000:
			return fmt.Errorf("tenants[%d].weight: %d is above 1000", i, t.Weight)
		}
		for band, q := range map[string]*Quota{"production": t.Production, "batch": t.Batch} {
			if q == nil {
				continue
			}
			if err := q.validate(); err != nil {
				return fmt.Errorf("tenants[%d].%s.%w", i, band, err)
			}
			if band == "production" && (q.BorrowCPUMilli != 0 || q.BorrowMemoryMiB != 0 || q.BorrowGPUs != 0) {
				return fmt.Errorf("tenants[%d].production: production quota does not borrow", i)
			}
		}
		tenants[t.Name] = true
	}
	for i, jt := range w.JobTypes {
		if jt.Tenant != "" && !tenants[jt.Tenant] {
			return fmt.Errorf("job_types[%d] (%s).tenant: %q is not one of the workload's tenants", i, jt.Name, jt.Tenant)
		}
	}
	p := w.Prefill
	if p.CPUFraction < 0 || p.CPUFraction >= 1 {
		return fmt.Errorf("prefill.cpu_fraction: %v must be in [0, 1)", p.CPUFraction)
	}
	if p.CPUFraction > 0 {
		if p.JobType != "" && !seen[p.JobType] {
			return fmt.Errorf("prefill.job_type: %q is not one of the job types", p.JobType)
		}
		if p.DurationSeconds != nil {
			if err := p.DurationSeconds.Validate(); err != nil {
				return fmt.Errorf("prefill.duration_seconds.%w", err)
			}
		}
	}
	return nil
}

func (jt *JobType) validate() error {
	if jt.Name == "" {
		return fmt.Errorf("name: missing")
	}
	switch jt.Scheduler {
	case KindBatch, KindService, KindGPU:
	default:
		return fmt.Errorf("scheduler: %q must be batch, service or gpu", jt.Scheduler)
	}
	for _, f := range []struct {
		name string
		d    *Dist
	}{
		{"interarrival_seconds", &jt.InterarrivalSeconds},
		{"tasks_per_job", &jt.TasksPerJob},
		{"duration_seconds", &jt.DurationSeconds},
		{"cpu_milli", &jt.CPUMilli},
		{"memory_mib", &jt.MemoryMiB},
		{"gpu_milli", jt.GPUMilli},
	} {
		if f.d == nil {
			continue
		}
		if err := f.d.Validate(); err != nil {
			return fmt.Errorf("%s.%w", f.name, err)
		}
	}
	if jt.InterarrivalSeconds.ExpectedValue() <= 0 {
		return fmt.Errorf("interarrival_seconds: the mean must be positive")
	}
	return nil
}

func (m Machine) capacity() txn.Resources {
	return txn.Resources{CPUMilli: m.CPUMilli, MemoryBytes: m.MemoryMiB << 20, GPUMilli: m.GPUs * txn.MilliPerGPU}
}

// TotalCapacity sums the capacity of every machine.
func (w *Workload) TotalCapacity() txn.Resources {
	var r txn.Resources
	for _, m := range w.Machines {
		c := m.capacity()
		r = r.Add(txn.Resources{CPUMilli: c.CPUMilli * int64(m.Count), MemoryBytes: c.MemoryBytes * int64(m.Count), GPUMilli: c.GPUMilli * int64(m.Count)})
	}
	return r
}

// OfferedLoad estimates, per job type, the fraction of the cell's CPU its
// jobs keep busy in steady state (Little's law: arrival rate × tasks ×
// duration × CPU per task). It is what a workload file is tuned with.
func (w *Workload) OfferedLoad() map[string]float64 {
	return w.offered(func(jt *JobType) float64 { return jt.CPUMilli.ExpectedValue() }, w.TotalCapacity().CPUMilli)
}

// OfferedGPULoad is OfferedLoad for GPUs (zero for types without GPUs).
func (w *Workload) OfferedGPULoad() map[string]float64 {
	return w.offered(func(jt *JobType) float64 {
		if jt.GPUMilli == nil {
			return 0
		}
		return jt.GPUMilli.ExpectedValue()
	}, w.TotalCapacity().GPUMilli)
}

func (w *Workload) offered(perTask func(*JobType) float64, capacity int64) map[string]float64 {
	out := make(map[string]float64, len(w.JobTypes))
	for i := range w.JobTypes {
		jt := &w.JobTypes[i]
		if capacity == 0 {
			out[jt.Name] = 0
			continue
		}
		rate := 1 / jt.InterarrivalSeconds.ExpectedValue()
		tasks := math.Max(1, jt.TasksPerJob.ExpectedValue())
		out[jt.Name] = rate * tasks * jt.DurationSeconds.ExpectedValue() * perTask(jt) / float64(capacity)
	}
	return out
}

// ParseWorkload reads a workload from YAML or JSON and validates it.
func ParseWorkload(data []byte, source string) (*Workload, error) {
	var w Workload
	if err := yaml.UnmarshalStrict(data, &w); err != nil {
		return nil, fmt.Errorf("workload %s: %w", source, err)
	}
	if err := w.Validate(); err != nil {
		return nil, fmt.Errorf("workload %s: %w", source, err)
	}
	return &w, nil
}

//go:embed workloads/*.yaml
var builtinWorkloads embed.FS

// BuiltinWorkloads lists the names of the workloads shipped in
// bench/sim/workloads.
func BuiltinWorkloads() []string { return builtin.Names(builtinWorkloads, "workloads") }

// LoadWorkload returns a built-in workload by name or reads a workload file.
func LoadWorkload(nameOrPath string) (*Workload, error) {
	data, name, err := builtin.Read(builtinWorkloads, "workloads", nameOrPath)
	if err != nil {
		return nil, err
	}
	return ParseWorkload(data, name)
}
