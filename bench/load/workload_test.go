package load

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestBuiltinWorkloads(t *testing.T) {
	tests := []struct {
		name         string
		machines     int
		schedulers   []string
		phaseTasks   []int
		measuredJobs int
		measuredRate float64
	}{
		{name: "basic", machines: 5000, schedulers: []string{"batch"}, phaseTasks: []int{1000, 10000}, measuredJobs: 100},
		{name: "latency", machines: 5000, schedulers: []string{"batch"}, phaseTasks: []int{10000}, measuredJobs: 10000, measuredRate: 1000},
		{name: "mixed", machines: 10000, schedulers: []string{"batch", "service", "gpu"}, phaseTasks: []int{1_000_000}, measuredJobs: 834 + 1500 + 2000},
	}
	if got := BuiltinWorkloads(); !slices.Equal(got, []string{"basic", "latency", "mixed"}) {
		t.Fatalf("BuiltinWorkloads() = %v", got)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, err := LoadWorkload(tt.name)
			if err != nil {
				t.Fatal(err)
			}
			p, err := newPlan(w, 1)
			if err != nil {
				t.Fatal(err)
			}
			if p.machines != tt.machines {
				t.Errorf("machines = %d, want %d", p.machines, tt.machines)
			}
			var names []string
			for _, s := range p.schedulers {
				names = append(names, s.name)
			}
			if !slices.Equal(names, tt.schedulers) {
				t.Errorf("schedulers = %v, want %v", names, tt.schedulers)
			}
			var got []int
			for _, ph := range p.phases {
				got = append(got, ph.tasks)
				if ph.measure {
					if len(ph.jobs) != tt.measuredJobs || ph.rate != tt.measuredRate {
						t.Errorf("measured phase %s: %d jobs at %v/s, want %d at %v/s", ph.name, len(ph.jobs), ph.rate, tt.measuredJobs, tt.measuredRate)
					}
				}
			}
			if !slices.Equal(got, tt.phaseTasks) {
				t.Errorf("tasks per phase = %v, want %v", got, tt.phaseTasks)
			}
		})
	}
}

// validWorkload is a small workload every case of TestWorkloadErrors
// breaks in one place.
func validWorkload() *Workload {
	return &Workload{
		Name:       "w",
		Machines:   Machines{Count: 10, CPU: "4", Memory: "8Gi"},
		Schedulers: []Scheduler{{Name: "batch", Policy: "batch"}},
		Phases: []Phase{
			{Name: "fill", Jobs: []Group{{Name: "a", Scheduler: "batch", Tasks: 10, TasksPerJob: 5, CPU: "100m", Memory: "1Gi"}}},
			{Name: "steady", Measure: true, Rate: 10, Duration: "1s", Jobs: []Group{{Name: "b", Scheduler: "batch", TasksPerJob: 1, CPU: "1", Memory: "1Gi"}}},
		},
	}
}

func TestWorkloadErrors(t *testing.T) {
	tests := []struct {
		name   string
		change func(w *Workload)
		want   string // the field the error must name
	}{
		{"no name", func(w *Workload) { w.Name = "" }, "name: is required"},
		{"no machines", func(w *Workload) { w.Machines.Count = 0 }, "machines.count"},
		{"bad cpu", func(w *Workload) { w.Machines.CPU = "four" }, "machines.cpu"},
		{"bad memory", func(w *Workload) { w.Machines.Memory = "-1Gi" }, "machines.memory"},
		{"gpu fraction", func(w *Workload) { w.Machines.GPUFraction = 1.5 }, "machines.gpu_fraction"},
		{"gpus missing", func(w *Workload) { w.Machines.GPUFraction = 0.5 }, "machines.gpus"},
		{"no schedulers", func(w *Workload) { w.Schedulers = nil }, "schedulers: at least one"},
		{"bad scheduler name", func(w *Workload) { w.Schedulers[0].Name = "Batch" }, "schedulers[0].name"},
		{"unknown policy", func(w *Workload) { w.Schedulers[0].Policy = "fifo" }, "schedulers[0].policy"},
		{"duplicate scheduler", func(w *Workload) { w.Schedulers = append(w.Schedulers, w.Schedulers[0]) }, "schedulers[1].name"},
		{"no phases", func(w *Workload) { w.Phases = nil }, "phases: at least one"},
		{"nothing measured", func(w *Workload) { w.Phases[1].Measure = false }, "phases: no phase has measure"},
		{"bad phase name", func(w *Workload) { w.Phases[0].Name = "a.b" }, "phases[0].name"},
		{"duplicate phase", func(w *Workload) { w.Phases[1].Name = "fill" }, "phases[1].name"},
		{"negative rate", func(w *Workload) { w.Phases[1].Rate = -1 }, "phases[1].rate"},
		{"rate without duration", func(w *Workload) { w.Phases[1].Duration = "" }, "phases[1].duration"},
		{"rate too low", func(w *Workload) { w.Phases[1].Rate = 0.1 }, "phases[1].duration"},
		{"burst with duration", func(w *Workload) { w.Phases[0].Duration = "1s" }, "phases[0].duration"},
		{"no groups", func(w *Workload) { w.Phases[0].Jobs = nil }, "phases[0].jobs: at least one"},
		{"unknown scheduler", func(w *Workload) { w.Phases[0].Jobs[0].Scheduler = "gpu" }, "phases[0].jobs[0].scheduler"},
		{"burst without tasks", func(w *Workload) { w.Phases[0].Jobs[0].Tasks = 0 }, "phases[0].jobs[0].tasks"},
		{"rate with tasks", func(w *Workload) { w.Phases[1].Jobs[0].Tasks = 5 }, "phases[1].jobs[0].tasks"},
		{"burst with weight", func(w *Workload) { w.Phases[0].Jobs[0].Weight = 2 }, "phases[0].jobs[0].weight"},
		{"tasks per job", func(w *Workload) { w.Phases[0].Jobs[0].TasksPerJob = 0 }, "phases[0].jobs[0].tasks_per_job"},
		{"too many per job", func(w *Workload) { w.Phases[0].Jobs[0].TasksPerJob = 100_001 }, "phases[0].jobs[0].tasks_per_job"},
		{"bad kind", func(w *Workload) { w.Phases[0].Jobs[0].Kind = "cron" }, "phases[0].jobs[0].kind"},
		{"task cpu", func(w *Workload) { w.Phases[1].Jobs[0].CPU = "x" }, "phases[1].jobs[0].cpu"},
		{"task memory", func(w *Workload) { w.Phases[1].Jobs[0].Memory = "lots" }, "phases[1].jobs[0].memory"},
		{"task gpu", func(w *Workload) { w.Phases[1].Jobs[0].GPU = "one" }, "phases[1].jobs[0].gpu"},
		{"fractional gpus above one", func(w *Workload) { w.Phases[1].Jobs[0].GPU = "1.5" }, "phases[1].jobs[0]"},
		{"max per machine", func(w *Workload) { w.Phases[0].Jobs[0].MaxPerMachine = 6 }, "phases[0].jobs[0].max_per_machine"},
		{"duplicate group", func(w *Workload) { w.Phases[0].Jobs = append(w.Phases[0].Jobs, w.Phases[0].Jobs[0]) }, "phases[0].jobs[1].name"},
		{"negative duration", func(w *Workload) { w.Phases[0].Jobs[0].DurationMS = -1 }, "phases[0].jobs[0].duration_ms"},
	}
	if err := validWorkload().Validate(); err != nil {
		t.Fatalf("the valid workload: %v", err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := validWorkload()
			tt.change(w)
			err := w.Validate()
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("Validate() = %v, want an error starting %q", err, tt.want)
			}
		})
	}
}

func TestParseWorkloadFile(t *testing.T) {
	tests := []struct {
		name, text, want string
	}{
		{"unknown field", "name: w\nmachine: {}\n", `unknown field "machine"`},
		{"wrong type", "name: w\nmachines: {count: many}\n", "machines.count"},
		{"invalid", "name: w\nmachines: {count: 1, cpu: '1', memory: 1Gi}\nschedulers: [{name: b, policy: batch}]\nphases: []\n", "phases: at least one"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "w.yaml")
			if err := os.WriteFile(path, []byte(tt.text), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := LoadWorkload(path)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "w.yaml") {
				t.Errorf("LoadWorkload = %v, want an error naming w.yaml and %q", err, tt.want)
			}
		})
	}
	if _, err := LoadWorkload(filepath.Join(t.TempDir(), "missing.yaml")); err == nil || !strings.Contains(err.Error(), "basic, latency, mixed") {
		t.Errorf("missing file: %v, want the built-in names listed", err)
	}
}

func TestApplyOverrides(t *testing.T) {
	w, err := LoadWorkload("mixed")
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Apply(Overrides{Machines: 300, Tasks: 3000, TasksPerJob: 50}); err != nil {
		t.Fatal(err)
	}
	if w.Machines.Count != 300 {
		t.Errorf("machines = %d", w.Machines.Count)
	}
	got := map[string][2]int{}
	for _, g := range w.Phases[0].Jobs {
		got[g.Name] = [2]int{g.Tasks, g.TasksPerJob}
	}
	// 834:150:16 of 3,000; the gang keeps its size of 8 and whole gangs.
	want := map[string][2]int{"batch": {2502, 50}, "service": {450, 50}, "gang": {48, 8}}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("group %s: tasks, per job = %v, want %v", k, got[k], v)
		}
	}

	lat, err := LoadWorkload("latency")
	if err != nil {
		t.Fatal(err)
	}
	if err := lat.Apply(Overrides{Rate: 100, Duration: 2 * time.Second}); err != nil {
		t.Fatal(err)
	}
	if p := lat.Phases[0]; p.Rate != 100 || p.Duration != "2s" {
		t.Errorf("latency phase: rate %v duration %q", p.Rate, p.Duration)
	}
	if err := lat.Apply(Overrides{Tasks: 10}); err == nil || !strings.Contains(err.Error(), "--tasks") {
		t.Errorf("--tasks on a rate-only workload: %v", err)
	}
}

func TestPlanLayout(t *testing.T) {
	w := validWorkload()
	w.Phases[1].Jobs = append(w.Phases[1].Jobs, Group{Name: "c", Scheduler: "batch", Weight: 3, TasksPerJob: 2, CPU: "1", Memory: "1Gi"})
	w.Phases[0].Jobs[0].Tasks = 12 // jobs of 5, 5 and 2
	if err := w.Validate(); err != nil {
		t.Fatal(err)
	}
	p, err := newPlan(w, 2)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range p.schedulers {
		names = append(names, s.name)
	}
	if !slices.Equal(names, []string{"batch", "batch-2"}) {
		t.Errorf("instances = %v", names)
	}
	var sizes []uint32
	var dealt []string
	for _, j := range p.phases[0].jobs {
		sizes = append(sizes, j.tasks)
		dealt = append(dealt, j.scheduler)
	}
	if !slices.Equal(sizes, []uint32{5, 5, 2}) || !slices.Equal(dealt, []string{"batch", "batch-2", "batch"}) {
		t.Errorf("burst jobs: sizes %v schedulers %v", sizes, dealt)
	}
	// 10 jobs/s for 1 s, weights 1:3 → 3 of b (rounded) and 7 of c, spread,
	// due every 100 ms.
	steady := p.phases[1]
	var groups string
	for i, j := range steady.jobs {
		groups += j.group.Name
		if want := time.Duration(i) * 100 * time.Millisecond; j.offset != want {
			t.Errorf("job %d due at %v, want %v", i, j.offset, want)
		}
	}
	if groups != "cbccbcccbc" {
		t.Errorf("rate phase groups in order %q, want b and c interleaved 3:7", groups)
	}
	if steady.tasks != 3*1+7*2 {
		t.Errorf("rate phase tasks = %d, want 17", steady.tasks)
	}
	spec := steady.jobs[0].spec("r1", "steady")
	if spec.Name != "r1.steady.c.0" || spec.Count != 2 || spec.Task.Resources.CpuMilli != 1000 {
		t.Errorf("spec = %v", spec)
	}
}

func TestInterleaveAndApportion(t *testing.T) {
	if got := interleave([]int{1, 3}); !slices.Equal(got, []int{1, 0, 1, 1}) {
		t.Errorf("interleave(1, 3) = %v", got)
	}
	if got := interleave([]int{2, 2, 0}); !slices.Equal(got, []int{0, 1, 0, 1}) {
		t.Errorf("interleave(2, 2, 0) = %v", got)
	}
	tests := []struct {
		total   int
		weights []int
		want    []int
	}{
		{10, []int{1, 3}, []int{3, 7}},
		{10, []int{1, 1, 1}, []int{4, 3, 3}},
		{1, []int{1, 1}, []int{1, 0}},
		{7, []int{5}, []int{7}},
	}
	for _, tt := range tests {
		if got := apportion(tt.total, tt.weights); !slices.Equal(got, tt.want) {
			t.Errorf("apportion(%d, %v) = %v, want %v", tt.total, tt.weights, got, tt.want)
		}
	}
}
