package sim

import (
	"math"
	"math/rand/v2"
	"strconv"

	"github.com/omegacell/omegacell/txn"
)

// A Source feeds the simulator: the machines of the cell at time zero, then
// a time-ordered stream of job arrivals and machine changes. The synthetic
// generator and the trace readers are sources.
type Source interface {
	// Machines are the machines present at time zero.
	Machines() []*txn.Machine
	// Next returns the next item in time order; false when the stream ends.
	// Items at time zero marked Prefill are placed before the clock starts
	// and are not measured.
	Next() (Item, bool)
}

// Item is one entry of a source's stream: a job or a machine event.
type Item struct {
	At      float64 // seconds since the start
	Job     *JobSpec
	Machine *MachineEvent
}

// JobSpec is one job to schedule.
type JobSpec struct {
	ID string
	// Type is the job type's name (reported in results); Kind is the kind
	// of scheduler it goes to (batch, service, gpu).
	Type     string
	Kind     string
	Priority int32
	// Tenant owns the job ("": none).
	Tenant string
	// Prefill jobs occupy the cell before the clock starts.
	Prefill bool
	// Tasks is the number of tasks; each requests Resources and runs for
	// Duration seconds once placed, unless TaskResources/TaskDurations
	// (from traces) give per-task values. A negative duration runs to the
	// end of the simulation.
	Tasks         int
	Resources     txn.Resources
	Duration      float64
	TaskResources []txn.Resources
	TaskDurations []float64
	Constraints   []txn.Constraint
	// MaxPerMachine, if positive, caps the job's tasks on one machine.
	MaxPerMachine uint32
}

func (j *JobSpec) resources(i int) txn.Resources {
	if j.TaskResources != nil {
		return j.TaskResources[i]
	}
	return j.Resources
}

func (j *JobSpec) duration(i int) float64 {
	if j.TaskDurations != nil {
		return j.TaskDurations[i]
	}
	return j.Duration
}

// MachineEvent adds, removes or resizes a machine (trace replay).
type MachineEvent struct {
	Kind    MachineEventKind
	Machine *txn.Machine // for add and update: the new machine
	ID      string       // for remove
}

// MachineEventKind says what happens to a machine.
type MachineEventKind uint8

const (
	MachineAdded   MachineEventKind = 1
	MachineRemoved MachineEventKind = 2
	MachineUpdated MachineEventKind = 3
)

// Synthetic generates a workload's jobs. Every job type draws from its own
// random stream, derived from the seed and the type's position, so one
// type's parameters never change another type's jobs, and the same seed
// gives every architecture the very same jobs.
type Synthetic struct {
	w       *Workload
	horizon float64
	streams []*typeStream
	prefill []*JobSpec
}

// Tenants are the workload's tenants (see [Workload.Tenants]).
func (s *Synthetic) Tenants() []Tenant { return s.w.Tenants }

type typeStream struct {
	jt   *JobType
	rng  *rand.Rand
	next *JobSpec
	at   float64
	seq  int
}

// NewSynthetic returns the job stream of w for horizon seconds.
func NewSynthetic(w *Workload, seed uint64, horizon float64) *Synthetic {
	s := &Synthetic{w: w, horizon: horizon}
	for i := range w.JobTypes {
		ts := &typeStream{jt: &w.JobTypes[i], rng: rand.New(rand.NewPCG(seed, 0x5157_0000+uint64(i)))}
		ts.advance()
		s.streams = append(s.streams, ts)
	}
	s.prefill = s.makePrefill(seed)
	return s
}

// Machines builds the cell's machines, named m00000, m00001, ... in the
// order of the workload's machine classes.
func (s *Synthetic) Machines() []*txn.Machine {
	var out []*txn.Machine
	width := len(strconv.Itoa(s.machineCount()))
	for _, mc := range s.w.Machines {
		for range mc.Count {
			id := "m" + pad(len(out), width)
			out = append(out, txn.NewMachine(id, mc.Labels, mc.capacity()))
		}
	}
	return out
}

func (s *Synthetic) machineCount() int {
	n := 0
	for _, mc := range s.w.Machines {
		n += mc.Count
	}
	return n
}

func pad(i, width int) string {
	d := strconv.Itoa(i)
	for len(d) < width {
		d = "0" + d
	}
	return d
}

// Next returns prefill jobs first, then arrivals in time order (ties go to
// the job type listed first).
func (s *Synthetic) Next() (Item, bool) {
	if len(s.prefill) > 0 {
		j := s.prefill[0]
		s.prefill = s.prefill[1:]
		return Item{At: 0, Job: j}, true
	}
	var best *typeStream
	for _, ts := range s.streams {
		if best == nil || ts.at < best.at {
			best = ts
		}
	}
	if best == nil || best.at >= s.horizon {
		return Item{}, false
	}
	it := Item{At: best.at, Job: best.next}
	best.advance()
	return it, true
}

func (ts *typeStream) advance() {
	ts.at += ts.jt.InterarrivalSeconds.Sample(ts.rng)
	ts.seq++
	ts.next = ts.jt.draw(ts.rng, ts.jt.Name+"-"+strconv.Itoa(ts.seq))
}

// draw samples one job of the type. Every job draws the same number of
// random values whatever their outcome, so streams stay aligned.
func (jt *JobType) draw(r *rand.Rand, id string) *JobSpec {
	tasks := int(math.Round(jt.TasksPerJob.Sample(r)))
	j := &JobSpec{
		ID:       id,
		Type:     jt.Name,
		Kind:     jt.Scheduler,
		Priority: jt.Priority,
		Tenant:   jt.Tenant,
		Tasks:    max(1, tasks),
		Duration: jt.DurationSeconds.Sample(r),
		Resources: txn.Resources{
			CPUMilli:    max(1, int64(math.Round(jt.CPUMilli.Sample(r)))),
			MemoryBytes: max(1, int64(math.Round(jt.MemoryMiB.Sample(r)))) << 20,
		},
	}
	if jt.GPUMilli != nil {
		g := int64(math.Round(jt.GPUMilli.Sample(r)))
		if g > txn.MilliPerGPU {
			g = (g + txn.MilliPerGPU/2) / txn.MilliPerGPU * txn.MilliPerGPU
		}
		j.Resources.GPUMilli = g
	}
	if len(jt.GPUModels) > 0 {
		j.Constraints = []txn.Constraint{{Key: "gpu.model", Op: txn.OpIn, Values: jt.GPUModels}}
	}
	return j
}

// makePrefill draws the jobs running at time zero until they request the
// prefill fraction of the cell's CPU.
//
// Without a prefill job type the prefill is the workload's own steady
// state, so the cell neither drains nor floods as the run starts: a running
// job is of type k with probability proportional to the number of type-k
// jobs running in steady state (arrival rate × mean duration); its
// duration is length-biased (long jobs are more likely to be running at any
// moment) and it has run a uniform fraction of it, so what is left is its
// residual lifetime. With a job type, every prefill job takes that type's
// shape and, if given, the prefill's own duration distribution.
func (s *Synthetic) makePrefill(seed uint64) []*JobSpec {
	p := s.w.Prefill
	if p.CPUFraction == 0 {
		return nil
	}
	r := rand.New(rand.NewPCG(seed, 0x9E3F_111))
	var types []*JobType
	var weights []float64
	for i := range s.w.JobTypes {
		jt := &s.w.JobTypes[i]
		if p.JobType != "" && jt.Name != p.JobType {
			continue
		}
		types = append(types, jt)
		weights = append(weights, jt.DurationSeconds.ExpectedValue()/jt.InterarrivalSeconds.ExpectedValue())
	}
	pickType := Dist{Kind: "choice", Values: make([]float64, len(types)), Weights: weights}
	for i := range types {
		pickType.Values[i] = float64(i)
	}
	target := p.CPUFraction * float64(s.w.TotalCapacity().CPUMilli)
	var out []*JobSpec
	var requested float64
	for requested < target {
		jt := types[int(pickType.Sample(r))]
		j := jt.draw(r, "prefill-"+strconv.Itoa(len(out)+1))
		switch {
		case p.DurationSeconds != nil:
			j.Duration = p.DurationSeconds.Sample(r)
		default:
			j.Duration = residualLifetime(jt.DurationSeconds, r)
		}
		j.Prefill = true
		// Trim the last job so the prefill lands on the target.
		if left := int((target - requested) / float64(j.Resources.CPUMilli)); left < j.Tasks {
			j.Tasks = max(1, left)
		}
		requested += float64(j.Tasks) * float64(j.Resources.CPUMilli)
		out = append(out, j)
	}
	return out
}

// residualLifetime draws the time a job of duration distribution d that is
// running at a random moment has left: a length-biased duration (by
// sampling-importance-resampling over 64 candidates) times a uniform
// fraction.
func residualLifetime(d Dist, r *rand.Rand) float64 {
	const candidates = 64
	var c [candidates]float64
	var sum float64
	for i := range c {
		c[i] = d.Sample(r)
		sum += c[i]
	}
	u := r.Float64() * sum
	pick := c[candidates-1]
	for _, x := range c {
		if u < x {
			pick = x
			break
		}
		u -= x
	}
	return pick * r.Float64()
}

// Name is the workload's name.
func (s *Synthetic) Name() string { return s.w.Name }
