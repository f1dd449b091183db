package policytest

import (
	"fmt"
	"math/rand/v2"

	"github.com/omegacell/omegacell/schedulers/view"
	"github.com/omegacell/omegacell/txn"
)

// GiB is 2^30 bytes.
const GiB = 1 << 30

// CellSpec describes a cell to build.
type CellSpec struct {
	Machines int
	Zones    int // zone labels z0.. (machines spread round-robin by rack)
	Racks    int // rack labels r00..; machine i is in rack i*Racks/Machines
	// GPUEvery: every GPUEvery-th machine has GPUsPerMachine devices and a
	// gpu.model label from GPUModels (0: no GPU machines).
	GPUEvery       int
	GPUsPerMachine int
	GPUModels      []string
	// CPUMilli and MemoryBytes of each machine (0: random 16-64 cores,
	// 64-256 GiB).
	CPUMilli    int64
	MemoryBytes int64
	// Fill is the fraction of the cell's CPU taken by filler tasks of
	// scheduler "filler", placed with txn.Validate at random priorities
	// from FillPriorities (default batch).
	Fill           float64
	FillPriorities []int32
	// FillGPU also gives filler tasks on GPU machines fractional and whole
	// GPU requests.
	FillGPU bool
}

// MachineID names machine i.
func MachineID(i int) string { return fmt.Sprintf("m%05d", i) }

// Cell builds a view per spec, deterministically from seed. Every
// allocation is a filler task placed through txn.Validate and txn.Apply, so
// the view is consistent.
func Cell(spec CellSpec, seed uint64) *view.View {
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	v := view.New()
	racks := max(spec.Racks, 1)
	for i := range spec.Machines {
		rack := i * racks / max(spec.Machines, 1)
		labels := map[string]string{"rack": fmt.Sprintf("r%02d", rack)}
		if spec.Zones > 0 {
			labels["zone"] = fmt.Sprintf("z%d", rack%spec.Zones)
		}
		capacity := txn.Resources{CPUMilli: spec.CPUMilli, MemoryBytes: spec.MemoryBytes, DiskBytes: 1 << 40}
		if capacity.CPUMilli == 0 {
			capacity.CPUMilli = int64(16+16*rng.IntN(4)) * 1000
		}
		if capacity.MemoryBytes == 0 {
			capacity.MemoryBytes = int64(64<<rng.IntN(3)) * GiB
		}
		if spec.GPUEvery > 0 && i%spec.GPUEvery == 0 {
			capacity.GPUMilli = int64(spec.GPUsPerMachine) * txn.MilliPerGPU
			if len(spec.GPUModels) > 0 {
				labels["gpu.model"] = spec.GPUModels[(i/spec.GPUEvery)%len(spec.GPUModels)]
			}
		}
		v.PutMachine(txn.NewMachine(MachineID(i), labels, capacity))
	}
	fill(v, spec, rng)
	v.SetRevision(1)
	return v
}

// fill places filler tasks, one per machine per round, until the cell's
// CPU is spec.Fill used.
func fill(v *view.View, spec CellSpec, rng *rand.Rand) {
	if spec.Fill <= 0 {
		return
	}
	prios := spec.FillPriorities
	if len(prios) == 0 {
		prios = []int32{txn.PriorityBatch}
	}
	var total, used int64
	for _, ord := range v.Ready() {
		total += v.MachineAt(ord).Capacity.CPUMilli
	}
	jobs := make([]view.JobInfo, len(prios))
	next := make([]uint32, len(prios))
	for i, p := range prios {
		jobs[i] = view.JobInfo{ID: fmt.Sprintf("filler-%d", p), Scheduler: "filler", Priority: p, Count: 0}
		v.PutJob(jobs[i])
	}
	for round := 0; used < int64(spec.Fill*float64(total)) && round < 64; round++ {
		var tx txn.Transaction
		tx.Scheduler, tx.Conflict, tx.Commit = "filler", txn.ConflictFine, txn.CommitIncremental
		for _, ord := range v.Ready() {
			m := v.MachineAt(ord)
			r := txn.Resources{CPUMilli: int64(1+rng.IntN(4)) * 1000, MemoryBytes: int64(1+rng.IntN(8)) * GiB}
			if spec.FillGPU && m.Devices() > 0 && rng.IntN(2) == 0 {
				r.GPUMilli = []int64{250, 500, 1000, 2000}[rng.IntN(4)]
			}
			d, ok := txn.AssignDevices(m, r.GPUMilli)
			if !ok || txn.Fits(m, r, d) != txn.ReasonOK {
				continue
			}
			j := rng.IntN(len(prios))
			task := jobs[j].NewTask(next[j])
			task.Resources = r
			next[j]++
			v.PutTask(task)
			tx.Claims = append(tx.Claims, txn.Claim{Task: task.Key, Machine: m.ID, Resources: r, Devices: d})
			used += r.CPUMilli
			if used >= int64(spec.Fill*float64(total)) {
				break
			}
		}
		if len(tx.Claims) == 0 {
			return
		}
		dec := txn.Validate(v, &tx)
		if dec.Accepted != len(tx.Claims) {
			panic(fmt.Sprintf("policytest: filler claim refused: %+v", dec.Results))
		}
		txn.Apply(v, dec)
	}
}

// AddJob puts job and count pending tasks of it into v and returns them.
func AddJob(v *view.View, job view.JobInfo) []*txn.Task {
	v.PutJob(job)
	for i := range job.Count {
		v.PutTask(job.NewTask(i))
	}
	return v.Pending(job.ID)
}
