package load

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/omegacell/omegacell/agent"
	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
)

// plan is a validated workload laid out for one run: the fleet, every
// scheduler instance, and every job of every phase in submission order.
type plan struct {
	workload   string
	machines   int
	profile    agent.Profile
	schedulers []instance
	phases     []phasePlan
}

// instance is one running scheduler: --schedulers K runs K instances of
// each workload scheduler, named <name>, <name>-2, ..., <name>-K; a
// group's jobs are dealt over its scheduler's instances in turn.
type instance struct {
	name   string
	policy string
}

type phasePlan struct {
	name    string
	measure bool
	rate    float64 // jobs/s; 0: burst
	jobs    []jobPlan
	tasks   int
}

// jobPlan is one job to submit. For a rate phase, offset is when it is
// due after the phase starts.
type jobPlan struct {
	group     *Group
	resources *cellv1.Resources
	scheduler string
	tasks     uint32
	seq       int
	offset    time.Duration
}

// newPlan lays out w (already validated) with k instances per scheduler.
func newPlan(w *Workload, k int) (*plan, error) {
	if k < 1 {
		return nil, fmt.Errorf("--schedulers: %d; want at least 1", k)
	}
	profile, err := w.Machines.profile()
	if err != nil {
		return nil, err
	}
	p := &plan{workload: w.Name, machines: w.Machines.Count, profile: profile}
	instances := map[string][]string{}
	for _, s := range w.Schedulers {
		for i := range k {
			name := s.Name
			if i > 0 {
				name = fmt.Sprintf("%s-%d", s.Name, i+1)
			}
			instances[s.Name] = append(instances[s.Name], name)
			p.schedulers = append(p.schedulers, instance{name: name, policy: s.Policy})
		}
	}
	for i := range w.Phases {
		ph := &w.Phases[i]
		pp := phasePlan{name: ph.Name, measure: ph.Measure, rate: ph.Rate}
		counts := make([]int, len(ph.Jobs))
		if ph.Rate > 0 {
			d, _ := time.ParseDuration(ph.Duration)
			total := int(math.Round(ph.Rate * d.Seconds()))
			weights := make([]int, len(ph.Jobs))
			for j, g := range ph.Jobs {
				weights[j] = max(g.Weight, 1)
			}
			counts = apportion(total, weights)
		} else {
			for j, g := range ph.Jobs {
				counts[j] = (g.Tasks + g.TasksPerJob - 1) / g.TasksPerJob
			}
		}
		dealt := make([]int, len(ph.Jobs))
		for n, j := range interleave(counts) {
			g := &ph.Jobs[j]
			res, err := g.resources(fmt.Sprintf("phases[%d].jobs[%d]", i, j))
			if err != nil {
				return nil, err
			}
			tasks := g.TasksPerJob
			if ph.Rate == 0 {
				tasks = min(g.TasksPerJob, g.Tasks-dealt[j]*g.TasksPerJob)
			}
			names := instances[g.Scheduler]
			jp := jobPlan{group: g, resources: res, scheduler: names[dealt[j]%len(names)], tasks: uint32(tasks), seq: n}
			if ph.Rate > 0 {
				jp.offset = time.Duration(float64(n) / ph.Rate * float64(time.Second))
			}
			dealt[j]++
			pp.jobs = append(pp.jobs, jp)
			pp.tasks += tasks
		}
		p.phases = append(p.phases, pp)
	}
	return p, nil
}

// interleave returns group indexes, counts[g] of each, spread evenly: the
// n-th job of group g sits at (n+½)/counts[g] of the sequence, ties in
// group order. Mixed workloads thus submit their kinds of jobs side by
// side rather than one kind after the other.
func interleave(counts []int) []int {
	total := 0
	for _, c := range counts {
		total += c
	}
	out := make([]int, 0, total)
	next := make([]int, len(counts))
	for range total {
		best := -1
		for g, c := range counts {
			if next[g] >= c {
				continue
			}
			// Compare (next+½)/c across groups without division.
			if best < 0 || (2*next[g]+1)*counts[best] < (2*next[best]+1)*c {
				best = g
			}
		}
		out = append(out, best)
		next[best]++
	}
	return out
}

// apportion splits total in proportion to weights by largest
// remainders (ties to the earlier group), so the parts sum to total.
func apportion(total int, weights []int) []int {
	sum := 0
	for _, w := range weights {
		sum += w
	}
	out := make([]int, len(weights))
	order := make([]int, len(weights))
	given := 0
	for i, w := range weights {
		out[i] = total * w / sum
		given += out[i]
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int {
		return cmp.Compare(total*weights[b]%sum, total*weights[a]%sum)
	})
	for _, i := range order[:total-given] {
		out[i]++
	}
	return out
}

// spec is the job as submitted: named <run>.<phase>.<group>.<seq>.
func (j *jobPlan) spec(run, phase string) *cellv1.JobSpec {
	g := j.group
	kind := cellv1.JobKind_JOB_KIND_UNSPECIFIED
	switch g.Kind {
	case "batch":
		kind = cellv1.JobKind_JOB_KIND_BATCH
	case "service":
		kind = cellv1.JobKind_JOB_KIND_SERVICE
	}
	return &cellv1.JobSpec{
		Name:      fmt.Sprintf("%s.%s.%s.%d", run, phase, g.Name, j.seq),
		Tenant:    "bench",
		Scheduler: j.scheduler,
		Priority:  g.Priority,
		Count:     j.tasks,
		Gang:      g.Gang,
		Kind:      kind,
		Task: &cellv1.TaskTemplate{
			Command:       "/bin/true",
			Resources:     j.resources,
			SpreadKey:     g.SpreadKey,
			MaxPerMachine: min(g.MaxPerMachine, j.tasks),
			DurationMs:    g.DurationMS,
		},
	}
}
