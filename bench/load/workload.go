package load

import (
	"embed"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/omegacell/omegacell/agent"
	benchinput "github.com/omegacell/omegacell/bench/builtin"
	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
	"github.com/omegacell/omegacell/proto/limits"
	"github.com/omegacell/omegacell/schedulers/policy/builtin"
	"github.com/omegacell/omegacell/txn"
)

// Workload is a load benchmark, read from YAML or JSON: a fleet of
// simulated machines, the schedulers that serve it, and phases of jobs
// submitted through the API one after the other (as scheduler_perf's
// workloads are a list of operations). Quantities are written as
// Kubernetes writes them: cpu "4" or "100m", memory "500Mi", gpu "1" or
// "0.5".
type Workload struct {
	Name        string      `json:"name"`
	Description string      `json:"description,omitempty"`
	Machines    Machines    `json:"machines"`
	Schedulers  []Scheduler `json:"schedulers"`
	Phases      []Phase     `json:"phases"`
}

// Machines is the simulated fleet (agent.Profile).
type Machines struct {
	Count        int     `json:"count"`
	Zones        int     `json:"zones,omitempty"`
	RacksPerZone int     `json:"racks_per_zone,omitempty"`
	CPU          string  `json:"cpu"`
	Memory       string  `json:"memory"`
	GPUFraction  float64 `json:"gpu_fraction,omitempty"`
	GPUs         int     `json:"gpus,omitempty"`
	GPUModel     string  `json:"gpu_model,omitempty"`
	GPUMemory    string  `json:"gpu_memory,omitempty"`
}

// Scheduler is one scheduler of the benchmark: a name jobs refer to and a
// built-in policy. With --schedulers K each runs as K instances.
type Scheduler struct {
	Name   string `json:"name"`
	Policy string `json:"policy"`
}

// Phase is a batch of jobs. A burst phase (rate 0) submits the tasks of
// its groups as fast as the cell takes them and ends when all are placed;
// a rate phase submits rate jobs per second for duration (open loop: a
// late submission does not delay the next), drawing the groups by weight,
// and ends when every submitted task is placed. Only measured phases are
// reported.
type Phase struct {
	Name     string  `json:"name"`
	Measure  bool    `json:"measure,omitempty"`
	Rate     float64 `json:"rate,omitempty"`
	Duration string  `json:"duration,omitempty"`
	Jobs     []Group `json:"jobs"`
}

// Group is one kind of job of a phase.
type Group struct {
	Name      string `json:"name"`
	Scheduler string `json:"scheduler"`
	// Tasks is the group's total in a burst phase (the last job may be
	// smaller); Weight its share of the jobs in a rate phase (default 1).
	Tasks       int `json:"tasks,omitempty"`
	Weight      int `json:"weight,omitempty"`
	TasksPerJob int `json:"tasks_per_job"`

	CPU    string `json:"cpu"`
	Memory string `json:"memory"`
	GPU    string `json:"gpu,omitempty"`

	Gang          bool   `json:"gang,omitempty"`
	Kind          string `json:"kind,omitempty"` // batch or service (default: the scheduler's)
	Priority      int32  `json:"priority,omitempty"`
	SpreadKey     string `json:"spread_key,omitempty"`
	MaxPerMachine uint32 `json:"max_per_machine,omitempty"`
	// DurationMS is how long a task runs on its simulated machine
	// (0: until the end of the benchmark).
	DurationMS int64 `json:"duration_ms,omitempty"`
}

//go:embed workloads/*.yaml
var builtinWorkloads embed.FS

// BuiltinWorkloads lists the workloads shipped in bench/load/workloads.
func BuiltinWorkloads() []string { return benchinput.Names(builtinWorkloads, "workloads") }

// LoadWorkload returns a built-in workload by name or reads a workload file.
func LoadWorkload(nameOrPath string) (*Workload, error) {
	data, name, err := benchinput.Read(builtinWorkloads, "workloads", nameOrPath)
	if err != nil {
		return nil, err
	}
	return ParseWorkload(data, name)
}

// ParseWorkload reads a workload from YAML or JSON (unknown fields are
// errors) and validates it.
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

// Overrides are the command line's changes to a workload; zero values
// change nothing.
type Overrides struct {
	Machines int // machines.count
	// Tasks rescales the tasks of the measured burst phases to this total,
	// keeping the groups' proportions.
	Tasks int
	// TasksPerJob sets tasks_per_job of the measured phases' groups that
	// are not gangs (a gang's size is part of its shape).
	TasksPerJob int
	Rate        float64       // rate of the rate phases
	Duration    time.Duration // duration of the rate phases
}

// Apply changes w as o says and validates the result.
func (w *Workload) Apply(o Overrides) error {
	if o.Machines < 0 || o.Tasks < 0 || o.TasksPerJob < 0 || o.Rate < 0 || o.Duration < 0 {
		return errors.New("overrides must not be negative")
	}
	if o.Machines > 0 {
		w.Machines.Count = o.Machines
	}
	for i := range w.Phases {
		p := &w.Phases[i]
		if p.Rate > 0 {
			if o.Rate > 0 {
				p.Rate = o.Rate
			}
			if o.Duration > 0 {
				p.Duration = o.Duration.String()
			}
		}
		if !p.Measure {
			continue
		}
		for j := range p.Jobs {
			if o.TasksPerJob > 0 && !p.Jobs[j].Gang {
				p.Jobs[j].TasksPerJob = o.TasksPerJob
			}
		}
	}
	if o.Tasks > 0 {
		if err := w.rescaleTasks(o.Tasks); err != nil {
			return err
		}
	}
	return w.Validate()
}

// rescaleTasks spreads total over the groups of the measured burst phases
// in proportion to their tasks; each keeps at least one task, and a gang
// group whole gangs (at least one).
func (w *Workload) rescaleTasks(total int) error {
	var groups []*Group
	sum := 0
	for i := range w.Phases {
		if p := &w.Phases[i]; p.Measure && p.Rate == 0 {
			for j := range p.Jobs {
				groups = append(groups, &p.Jobs[j])
				sum += p.Jobs[j].Tasks
			}
		}
	}
	if len(groups) == 0 || sum <= 0 {
		return fmt.Errorf("--tasks: workload %s has no measured burst phase with tasks to rescale", w.Name)
	}
	for _, g := range groups {
		n := int(math.Round(float64(total) * float64(g.Tasks) / float64(sum)))
		if g.Gang {
			// Whole gangs only: a gang's size is part of its shape.
			n = max(int(math.Round(float64(n)/float64(g.TasksPerJob))), 1) * g.TasksPerJob
		}
		g.Tasks = max(n, 1)
	}
	return nil
}

// Validate checks every field; the error names the first bad one
// (machines.cpu, phases[1].jobs[0].tasks_per_job, ...).
func (w *Workload) Validate() error {
	if w.Name == "" {
		return fieldErr("name", "is required")
	}
	if _, err := w.Machines.profile(); err != nil {
		return err
	}
	if len(w.Schedulers) == 0 {
		return fieldErr("schedulers", "at least one scheduler is required")
	}
	names := map[string]bool{}
	for i, s := range w.Schedulers {
		f := fmt.Sprintf("schedulers[%d]", i)
		if !schedulerName(s.Name) {
			return fieldErr(f+".name", "%q is not a scheduler name (lowercase letters, digits, '-', at most 60)", s.Name)
		}
		if names[s.Name] {
			return fieldErr(f+".name", "%q appears twice", s.Name)
		}
		names[s.Name] = true
		if _, err := builtin.Lookup(s.Policy); err != nil {
			return fieldErr(f+".policy", "%v", err)
		}
	}
	if len(w.Phases) == 0 {
		return fieldErr("phases", "at least one phase is required")
	}
	measured := false
	phases := map[string]bool{}
	for i := range w.Phases {
		if err := w.Phases[i].validate(fmt.Sprintf("phases[%d]", i), names); err != nil {
			return err
		}
		if phases[w.Phases[i].Name] {
			return fieldErr(fmt.Sprintf("phases[%d].name", i), "%q appears twice", w.Phases[i].Name)
		}
		phases[w.Phases[i].Name] = true
		measured = measured || w.Phases[i].Measure
	}
	if !measured {
		return fieldErr("phases", "no phase has measure: true")
	}
	return nil
}

func (p *Phase) validate(f string, schedulers map[string]bool) error {
	if !jobNamePart(p.Name) {
		return fieldErr(f+".name", "%q must be lowercase letters, digits and '-', at most 40", p.Name)
	}
	if math.IsNaN(p.Rate) || math.IsInf(p.Rate, 0) || p.Rate < 0 {
		return fieldErr(f+".rate", "%v is not a rate of jobs per second", p.Rate)
	}
	if p.Rate > 0 {
		d, err := time.ParseDuration(p.Duration)
		if err != nil || d <= 0 {
			return fieldErr(f+".duration", "%q is not a positive duration (a rate phase needs one, e.g. 10s)", p.Duration)
		}
		if math.Round(p.Rate*d.Seconds()) < 1 {
			return fieldErr(f+".duration", "%s at %v jobs/s submits no job", d, p.Rate)
		}
	} else if p.Duration != "" {
		return fieldErr(f+".duration", "only a rate phase has a duration")
	}
	if len(p.Jobs) == 0 {
		return fieldErr(f+".jobs", "at least one group is required")
	}
	names := map[string]bool{}
	for i := range p.Jobs {
		g := &p.Jobs[i]
		gf := fmt.Sprintf("%s.jobs[%d]", f, i)
		if !jobNamePart(g.Name) {
			return fieldErr(gf+".name", "%q must be lowercase letters, digits and '-', at most 40", g.Name)
		}
		if names[g.Name] {
			return fieldErr(gf+".name", "%q appears twice", g.Name)
		}
		names[g.Name] = true
		if err := g.validate(gf, p.Rate > 0, schedulers); err != nil {
			return err
		}
	}
	return nil
}

func (g *Group) validate(f string, rated bool, schedulers map[string]bool) error {
	if !schedulers[g.Scheduler] {
		return fieldErr(f+".scheduler", "%q is not one of the workload's schedulers", g.Scheduler)
	}
	switch {
	case rated && g.Tasks != 0:
		return fieldErr(f+".tasks", "a rate phase draws jobs by weight; give weight, not tasks")
	case !rated && g.Weight != 0:
		return fieldErr(f+".weight", "a burst phase takes tasks, not weight")
	case !rated && g.Tasks <= 0:
		return fieldErr(f+".tasks", "%d; want at least 1", g.Tasks)
	case g.Weight < 0:
		return fieldErr(f+".weight", "%d is negative", g.Weight)
	case g.TasksPerJob <= 0 || g.TasksPerJob > maxTasksPerJob:
		return fieldErr(f+".tasks_per_job", "%d is outside 1..%d", g.TasksPerJob, maxTasksPerJob)
	case g.Kind != "" && g.Kind != "batch" && g.Kind != "service":
		return fieldErr(f+".kind", "%q; want batch or service", g.Kind)
	case g.Priority < 0:
		return fieldErr(f+".priority", "%d is negative", g.Priority)
	case g.MaxPerMachine > uint32(g.TasksPerJob):
		return fieldErr(f+".max_per_machine", "%d exceeds tasks_per_job %d", g.MaxPerMachine, g.TasksPerJob)
	case g.DurationMS < 0:
		return fieldErr(f+".duration_ms", "%d is negative", g.DurationMS)
	}
	_, err := g.resources(f)
	return err
}

// maxTasksPerJob is the store's limit.
const maxTasksPerJob = limits.MaxTasksPerJob

// resources are the group's task resources.
func (g *Group) resources(f string) (*cellv1.Resources, error) {
	cpu, err := agent.ParseCPU(g.CPU)
	if err != nil {
		return nil, fieldErr(f+".cpu", "%v", err)
	}
	mem, err := agent.ParseBytes(g.Memory)
	if err != nil {
		return nil, fieldErr(f+".memory", "%v", err)
	}
	gpu, err := parseGPU(g.GPU)
	if err != nil {
		return nil, fieldErr(f+".gpu", "%v", err)
	}
	r := txn.Resources{CPUMilli: cpu, MemoryBytes: mem, GPUMilli: gpu}
	if err := txn.ValidateRequest(r); err != nil {
		return nil, fieldErr(f, "%v", err)
	}
	return &cellv1.Resources{CpuMilli: cpu, MemoryBytes: mem, GpuMilli: gpu}, nil
}

// parseGPU reads a GPU amount ("1", "0.5", empty: none) as milli-GPU.
func parseGPU(s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	x, err := strconv.ParseFloat(s, 64)
	if err != nil || x < 0 || math.IsInf(x, 0) {
		return 0, fmt.Errorf("%q is not a number of GPUs", s)
	}
	return int64(math.Round(x * txn.MilliPerGPU)), nil
}

// profile is the fleet as the agent simulation takes it.
func (m *Machines) profile() (agent.Profile, error) {
	p := agent.Profile{Zones: max(m.Zones, 1), RacksPerZone: max(m.RacksPerZone, 1), GPUFraction: m.GPUFraction,
		GPUs: m.GPUs, GPUModel: m.GPUModel, Utilization: 0.5}
	var err error
	switch {
	case m.Count <= 0:
		return p, fieldErr("machines.count", "%d; want at least 1", m.Count)
	case m.Zones < 0:
		return p, fieldErr("machines.zones", "%d is negative", m.Zones)
	case m.RacksPerZone < 0:
		return p, fieldErr("machines.racks_per_zone", "%d is negative", m.RacksPerZone)
	case m.GPUFraction < 0 || m.GPUFraction > 1 || math.IsNaN(m.GPUFraction):
		return p, fieldErr("machines.gpu_fraction", "%v is outside 0..1", m.GPUFraction)
	case m.GPUs < 0 || m.GPUs > 64:
		return p, fieldErr("machines.gpus", "%d is outside 0..64", m.GPUs)
	case m.GPUFraction > 0 && m.GPUs == 0:
		return p, fieldErr("machines.gpus", "gpu_fraction %v needs gpus per machine", m.GPUFraction)
	}
	if p.CPUMilli, err = agent.ParseCPU(m.CPU); err != nil || p.CPUMilli <= 0 {
		return p, fieldErr("machines.cpu", "%q is not a positive CPU amount", m.CPU)
	}
	if p.MemoryBytes, err = agent.ParseBytes(m.Memory); err != nil || p.MemoryBytes <= 0 {
		return p, fieldErr("machines.memory", "%q is not a positive amount of bytes", m.Memory)
	}
	if m.GPUMemory != "" {
		if p.GPUMemoryBytes, err = agent.ParseBytes(m.GPUMemory); err != nil {
			return p, fieldErr("machines.gpu_memory", "%v", err)
		}
	}
	return p, nil
}

func fieldErr(field, format string, args ...any) error {
	return fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...))
}

// schedulerName leaves room for an instance suffix within the store's
// 63 characters.
func schedulerName(s string) bool { return len(s) <= 60 && jobNameRunes(s) }

func jobNamePart(s string) bool { return len(s) <= 40 && jobNameRunes(s) }

// jobNameRunes: lowercase letters, digits and inner '-'.
func jobNameRunes(s string) bool {
	if s == "" || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
			return false
		}
	}
	return true
}
