package sim

import (
	"math/rand/v2"

	"github.com/omegacell/omegacell/txn"
)

// decider is the decision step of a simulated scheduler: it picks machines
// for a job's pending tasks on the scheduler's copy of the cell and returns
// claims for a transaction. Every architecture goes through it, so an
// architecture comparison compares architectures, not placement code.
type decider interface {
	// begin starts deciding on a copy of the cell: machines as the
	// scheduler sees them. Two-level frameworks begin once per offer and
	// place several jobs in it.
	begin(c cellCopy)
	// place appends claims for the pending tasks of one job to out. Tasks
	// it cannot place get no claim. Claims of earlier place calls since
	// begin are taken into account.
	place(j *job, pending []*txn.Task, rng *rand.Rand, out []txn.Claim) []txn.Claim
	// preemptions are the tasks to evict for the claims made since begin.
	preemptions() []txn.TaskKey
}

// firstFit is the Omega paper's placement: randomized first fit. Each task
// starts at a random machine and takes the first one, in index order with
// wrap-around, that satisfies its constraints and on which it fits
// (txn.FitsAnywhere, devices chosen by txn.AssignDevices) on the
// scheduler's copy as changed by the claims made so far.
//
// The changes live in an overlay of cloned machines, found through a
// per-decision stamp array so lookups cost no hashing.
type firstFit struct {
	machines []*txn.Machine
	hints    []machineHint
	state    txn.State
	over     []*txn.Machine // overlay clone of machine i, valid if stamp[i] == gen
	seen     []uint64       // Seq of machine i when the decision began
	stamp    []uint32
	gen      uint32
	noFit    []txn.Resources // shapes that fit nowhere in this decision
	// perMachine counts, for the job being placed if it has a per-machine
	// limit, its tasks on each machine (running and claimed so far).
	perMachine map[string]uint32
}

func (f *firstFit) begin(c cellCopy) {
	machines := c.machines
	f.machines, f.hints, f.state = machines, c.hints, c.state
	if len(f.stamp) < len(machines) {
		f.over = make([]*txn.Machine, len(machines))
		f.seen = make([]uint64, len(machines))
		f.stamp = make([]uint32, len(machines))
		f.gen = 0
	}
	f.gen++
	if f.gen == 0 { // wrapped: clear stale stamps
		clear(f.stamp)
		f.gen = 1
	}
	f.noFit = f.noFit[:0]
}

// preemptions: first fit never preempts.
func (f *firstFit) preemptions() []txn.TaskKey { return nil }

func (f *firstFit) place(_ *job, pending []*txn.Task, rng *rand.Rand, out []txn.Claim) []txn.Claim {
	n := len(f.machines)
	if n == 0 {
		return out
	}
	clear(f.perMachine)
	for _, t := range pending {
		r := t.Resources
		if f.knownNoFit(r) {
			continue
		}
		start := rng.IntN(n)
		placed := false
		for k := 0; k < n; k++ {
			i := start + k
			if i >= n {
				i -= n
			}
			if h := f.hints[i]; h.cpu < r.CPUMilli || h.mem < r.MemoryBytes {
				continue
			}
			m := f.machines[i]
			if f.stamp[i] == f.gen {
				m = f.over[i]
			}
			if m.State != txn.MachineReady || !txn.FitsAnywhere(m, r) {
				continue
			}
			if _, unmet := txn.FirstUnmet(t.Constraints, m.Labels); unmet {
				continue
			}
			if t.MaxPerMachine > 0 && f.onMachine(t, m.ID) >= t.MaxPerMachine {
				continue
			}
			if f.stamp[i] != f.gen {
				f.seen[i] = m.Seq
				m = m.Clone()
				f.over[i], f.stamp[i] = m, f.gen
			}
			devices, _ := txn.AssignDevices(m, r.GPUMilli)
			txn.Allocate(m, r, devices)
			out = append(out, txn.Claim{Task: t.Key, Machine: m.ID, Resources: r, Devices: devices, SeenSeq: f.seen[i]})
			if t.MaxPerMachine > 0 {
				f.perMachine[m.ID]++
			}
			placed = true
			break
		}
		if !placed && len(t.Constraints) == 0 && t.MaxPerMachine == 0 {
			f.noFit = append(f.noFit, r)
		}
	}
	return out
}

// onMachine is how many tasks of t's job are on machine id, in the cell and
// among this decision's claims. The cell is asked once per machine.
func (f *firstFit) onMachine(t *txn.Task, id string) uint32 {
	if f.perMachine == nil {
		f.perMachine = map[string]uint32{}
	}
	n, ok := f.perMachine[id]
	if !ok {
		n = f.state.TasksOfJobOn(t.Key.Job, id)
		f.perMachine[id] = n
	}
	return n
}

// knownNoFit reports whether a request at least as large as r in every
// resource already failed to fit anywhere in this decision: allocations
// only grow during a decision, so r cannot fit either.
func (f *firstFit) knownNoFit(r txn.Resources) bool {
	for _, s := range f.noFit {
		if s.LessOrEqual(r) {
			return true
		}
	}
	return false
}
