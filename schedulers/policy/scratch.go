package policy

import (
	"github.com/omegacell/omegacell/schedulers/view"
	"github.com/omegacell/omegacell/txn"
)

// Scratch is one Place call's private overlay on the view: machines the
// call has claimed on (or evicted from) are cloned on first touch and
// changed with txn.Allocate / txn.Release, exactly as txn.Validate will
// change them at commit, so later checks of the same call see the earlier
// claims. The view itself is never modified.
type Scratch struct {
	v   *view.View
	job view.JobPlacement
	// isTouched has bit ord set once machine ord is in own; most checks
	// are of untouched machines and stop at the bit.
	isTouched []uint64
	own       map[int32]*touched
	// lastOrd/last cache the most recent lookup in own: consecutive claims
	// mostly go to the same machine.
	lastOrd int32
	last    *touched
	evicted map[txn.TaskKey]struct{}
}

// touched is the overlay's state of one machine.
type touched struct {
	m  *txn.Machine // private clone
	on uint32       // this call's claims on it (one job per call)
}

// NewScratch returns an empty overlay on v for placing tasks of job.
func NewScratch(v *view.View, job string) *Scratch {
	return &Scratch{
		v:         v,
		job:       v.JobPlacement(job),
		isTouched: make([]uint64, (v.NumOrdinals()+63)/64),
		own:       make(map[int32]*touched),
		lastOrd:   -1,
	}
}

// ownAt returns the overlay state of a touched machine.
func (s *Scratch) ownAt(ord int32) *touched {
	if ord != s.lastOrd {
		s.lastOrd, s.last = ord, s.own[ord]
	}
	return s.last
}

// View is the view under the overlay.
func (s *Scratch) View() *view.View { return s.v }

// Machine is machine ord as this call sees it: the view's version, or the
// overlay's clone once the call touched it. Read-only for the caller.
func (s *Scratch) Machine(ord int32) *txn.Machine {
	if s.Touched(ord) {
		return s.ownAt(ord).m
	}
	return s.v.MachineAt(ord)
}

// Touched reports whether the call has claimed on or evicted from ord.
func (s *Scratch) Touched(ord int32) bool {
	return s.isTouched[ord>>6]&(1<<(ord&63)) != 0
}

// JobTasksOn counts the job's tasks on machine ord: those holding
// resources in the view plus this call's claims.
func (s *Scratch) JobTasksOn(ord int32) uint32 {
	n := s.job.On(ord)
	if s.Touched(ord) {
		n += s.ownAt(ord).on
	}
	return n
}

// Admits checks everything about placing t on machine ord except
// resources, as txn.Validate will: ready, label constraints, max per
// machine. It returns txn.ReasonOK or the reason it is refused.
func (s *Scratch) Admits(ord int32, t *txn.Task) txn.Reason {
	m := s.Machine(ord)
	switch {
	case m == nil:
		return txn.ReasonMachineUnknown
	case m.State == txn.MachineDraining:
		return txn.ReasonMachineDraining
	case m.State != txn.MachineReady:
		return txn.ReasonMachineNotReady
	}
	if t.Pin != "" && t.Pin != m.ID {
		return txn.ReasonConstraintViolated
	}
	if len(t.Constraints) > 0 {
		if _, unmet := txn.FirstUnmet(t.Constraints, m.Labels); unmet {
			return txn.ReasonConstraintViolated
		}
	}
	if t.MaxPerMachine > 0 && s.JobTasksOn(ord) >= t.MaxPerMachine {
		return txn.ReasonMaxPerMachine
	}
	return txn.ReasonOK
}

// Check reports whether t could be claimed on machine ord now: [Scratch.Admits]
// and then the resources, by txn.Fits with devices from txn.AssignDevices.
func (s *Scratch) Check(ord int32, t *txn.Task) txn.Reason {
	if r := s.Admits(ord, t); r != txn.ReasonOK {
		return r
	}
	_, r := FitOn(s.Machine(ord), t.Resources)
	return r
}

// FitOn asks txn whether r fits on m with some choice of devices, and
// which: txn.AssignDevices picks them, txn.Fits decides. The reason names
// the first resource short.
func FitOn(m *txn.Machine, r txn.Resources) ([]txn.DeviceShare, txn.Reason) {
	if r.GPUMilli == 0 {
		return nil, txn.Fits(m, r, nil)
	}
	d, ok := txn.AssignDevices(m, r.GPUMilli)
	if !ok {
		switch reason := txn.Fits(m, r, nil); reason {
		case txn.ReasonInsufficientCPU, txn.ReasonInsufficientMemory, txn.ReasonInsufficientDisk, txn.ReasonInsufficientGPU:
			return nil, reason
		}
		return nil, txn.ReasonInsufficientGPU
	}
	return d, txn.Fits(m, r, d)
}

// Claim places t on machine ord in the overlay if [Scratch.Check] allows
// it, with the devices txn.AssignDevices picks, and returns the claim
// (SeenSeq is the view's Seq of the machine).
func (s *Scratch) Claim(ord int32, t *txn.Task) (txn.Claim, txn.Reason) {
	if r := s.Admits(ord, t); r != txn.ReasonOK {
		return txn.Claim{}, r
	}
	d, r := FitOn(s.Machine(ord), t.Resources)
	if r != txn.ReasonOK {
		return txn.Claim{}, r
	}
	return s.claim(ord, t, d), txn.ReasonOK
}

// ClaimDevices is [Scratch.Claim] with devices the policy chose itself;
// txn.Fits checks them.
func (s *Scratch) ClaimDevices(ord int32, t *txn.Task, devices []txn.DeviceShare) (txn.Claim, txn.Reason) {
	if r := s.Admits(ord, t); r != txn.ReasonOK {
		return txn.Claim{}, r
	}
	if r := txn.Fits(s.Machine(ord), t.Resources, devices); r != txn.ReasonOK {
		return txn.Claim{}, r
	}
	return s.claim(ord, t, devices), txn.ReasonOK
}

func (s *Scratch) claim(ord int32, t *txn.Task, devices []txn.DeviceShare) txn.Claim {
	o := s.touch(ord)
	txn.Allocate(o.m, t.Resources, devices)
	o.on++
	return txn.Claim{Task: t.Key, Machine: o.m.ID, Resources: t.Resources, Devices: devices, SeenSeq: s.v.MachineAt(ord).Seq}
}

// touch returns the overlay's state of machine ord, cloning the machine on
// first use.
func (s *Scratch) touch(ord int32) *touched {
	if s.Touched(ord) {
		return s.ownAt(ord)
	}
	o := &touched{m: s.v.MachineAt(ord).Clone()}
	s.own[ord] = o
	s.isTouched[ord>>6] |= 1 << (ord & 63)
	return o
}

// ClaimEvicting places t on machine ord after evicting victims there, as
// the commit will: it releases the victims (txn.Release) and checks the
// claim (txn.Fits) on a copy of the machine, and only if the claim fits
// installs the copy and records the victims; otherwise nothing changes and
// the reason is returned. Victims must hold resources on that machine and
// not be evicted already in this call.
func (s *Scratch) ClaimEvicting(ord int32, t *txn.Task, victims []*txn.Task) (txn.Claim, txn.Reason) {
	if r := s.Admits(ord, t); r != txn.ReasonOK {
		return txn.Claim{}, r
	}
	m := s.Machine(ord).Clone()
	for _, vt := range victims {
		if s.Evicted(vt.Key) || !vt.State.HoldsResources() || vt.Machine != m.ID {
			return txn.Claim{}, txn.ReasonInvalidPreemption
		}
		if err := txn.Release(m, vt.Resources, vt.Devices); err != nil {
			return txn.Claim{}, txn.ReasonInvalidPreemption
		}
	}
	d, r := FitOn(m, t.Resources)
	if r != txn.ReasonOK {
		return txn.Claim{}, r
	}
	s.touch(ord).m = m
	if s.evicted == nil {
		s.evicted = make(map[txn.TaskKey]struct{})
	}
	for _, vt := range victims {
		s.evicted[vt.Key] = struct{}{}
	}
	return s.claim(ord, t, d), txn.ReasonOK
}

// Evicted reports whether this call already chose k as a victim.
func (s *Scratch) Evicted(k txn.TaskKey) bool {
	_, ok := s.evicted[k]
	return ok
}

// EvictElsewhere records vt, a task holding resources on another machine
// than the claim that evicts it (a gang victim's sibling), as evicted:
// its machine is released in the overlay, as the commit will.
func (s *Scratch) EvictElsewhere(vt *txn.Task) {
	if s.Evicted(vt.Key) || !vt.State.HoldsResources() {
		return
	}
	ord, ok := s.v.Ordinal(vt.Machine)
	if !ok || s.v.MachineAt(ord) == nil {
		return
	}
	o := s.touch(ord)
	if txn.Release(o.m, vt.Resources, vt.Devices) != nil {
		return
	}
	if s.evicted == nil {
		s.evicted = make(map[txn.TaskKey]struct{})
	}
	s.evicted[vt.Key] = struct{}{}
}
