package sim

import "github.com/omegacell/omegacell/txn"

// Two-level scheduling (Mesos, as the Omega paper models it):
//
//   - A central allocator makes resource offers. Each round it picks, among
//     the frameworks that have queued jobs and no outstanding offer, the one
//     with the lowest dominant share (DRF over what it runs plus what it
//     holds in offers) and offers it every free resource not already in
//     another offer.
//   - Offered resources are locked: nobody else is offered them until the
//     framework answers. Locks are per machine: a machine in an offer is in
//     no other offer, and resources freed on it meanwhile wait for the lock
//     to go (a simplification of Mesos, which would offer them separately).
//   - The framework considers every queued job against the offer, one
//     scheduling attempt each, spending t_job + t_task × tasks per job, and
//     answers after the sum. Its claims are committed with txn.Validate;
//     they cannot conflict, because the resources were locked.
//   - Rounds happen at most every OfferInterval seconds, when a framework
//     wants resources or resources were freed.
//
// A framework with a long decision time therefore holds its offer long,
// while a busy batch framework with a small dominant share is offered
// nearly everything freed in between; the service framework sees small
// offers, places little, and its jobs run out of attempts: the paper's
// finding that two-level scheduling abandons service jobs.

// offer is what one framework was offered.
type offer struct {
	machines []*txn.Machine // as offered (their state at offer time)
	hints    []machineHint
	index    []int32       // cell index of each offered machine
	free     txn.Resources // total offered
	jobs     []offerJob
}

// offerJob is one job's part of a framework's answer: claims[from:to].
type offerJob struct {
	job      *job
	from, to int
}

// requestRound schedules an allocation round unless one is due.
func (s *sim) requestRound() {
	if s.roundPending {
		return
	}
	s.roundPending = true
	s.agenda.push(event{at: s.now + s.cfg.OfferInterval, kind: evOfferRound})
}

// offerRound makes at most one offer: everything unlocked and free, to the
// neediest framework.
func (s *sim) offerRound() {
	s.roundPending = false
	var fw *scheduler
	var best float64
	for _, sc := range s.scheds {
		if sc == s.prefill || sc.offer != nil || sc.queue.len() == 0 {
			continue
		}
		if share := s.dominantShare(sc); fw == nil || share < best {
			fw, best = sc, share
		}
	}
	if fw == nil {
		return
	}
	o := fw.spareOffer
	if o == nil {
		o = &offer{}
	}
	fw.spareOffer = nil
	o.machines, o.hints, o.index, o.jobs, o.free = o.machines[:0], o.hints[:0], o.index[:0], o.jobs[:0], txn.Resources{}
	for i, h := range s.cell.hints {
		if h.cpu <= 0 || h.mem <= 0 || s.lockedBy[i] != 0 {
			continue
		}
		m := s.cell.machines[i]
		o.machines = append(o.machines, m)
		o.hints = append(o.hints, h)
		o.index = append(o.index, int32(i))
		o.free = o.free.Add(m.Free())
	}
	if o.free.CPUMilli < s.cfg.MinOfferCPUMilli {
		fw.spareOffer = o
		return // too little to offer; freed resources will trigger a round
	}
	lock := int32(fw.idx + 1)
	for _, i := range o.index {
		s.lockedBy[i] = lock
	}
	fw.offer, fw.locked = o, o.free
	s.considerOffer(fw, o)
}

// dominantShare is the framework's largest share of any resource, counting
// what it runs and what it holds in offers.
func (s *sim) dominantShare(sc *scheduler) float64 {
	held := sc.allocated.Add(sc.locked)
	c := s.cell.capacity
	share := 0.0
	for _, p := range [][2]int64{{held.CPUMilli, c.CPUMilli}, {held.MemoryBytes, c.MemoryBytes}, {held.GPUMilli, c.GPUMilli}} {
		if p[1] > 0 {
			share = max(share, float64(p[0])/float64(p[1]))
		}
	}
	return share
}

// considerOffer runs the framework's decisions over its queue against the
// offer and schedules its answer.
func (s *sim) considerOffer(fw *scheduler, o *offer) {
	fw.dec.begin(cellCopy{machines: o.machines, hints: o.hints, state: s.cell})
	fw.claims = fw.claims[:0]
	left := o.free
	think := 0.0
	fw.queue.each(func(j *job) {
		if left.CPUMilli <= 0 || left.MemoryBytes <= 0 {
			return
		}
		s.attempt(j)
		pending := s.pendingTasks(j)
		think += s.timing(fw, j).decision(len(pending))
		from := len(fw.claims)
		// Before deciding, check that one task could fit in what is left
		// of the offer at all; the decision time is spent either way.
		if len(pending) > 0 && pending[0].Resources.LessOrEqual(left) {
			fw.claims = fw.dec.place(j, pending, fw.rng, fw.claims)
		}
		for _, c := range fw.claims[from:] {
			left = left.Sub(c.Resources)
		}
		o.jobs = append(o.jobs, offerJob{job: j, from: from, to: len(fw.claims)})
	})
	fw.busy, fw.busySince = true, s.now
	s.agenda.push(event{at: s.now + think, kind: evOfferReply, sched: fw})
}

// offerReply commits the framework's claims, unlocks the offer and settles
// every job the framework considered.
func (s *sim) offerReply(fw *scheduler) {
	o := fw.offer
	r := s.commit(fw, fw.claims, nil, txn.ConflictFine, txn.CommitIncremental)
	fw.stats.addBusy(fw.busySince, s.now, r.conflicts > 0)
	fw.busy = false
	for _, i := range o.index {
		s.lockedBy[i] = 0
	}
	fw.offer, fw.locked = nil, txn.Resources{}
	for _, oj := range o.jobs {
		if oj.from == oj.to {
			fw.stats.NoFit++
		}
		if s.finishAttempt(oj.job) {
			oj.job.queued = false
		}
	}
	fw.queue.filter(func(j *job) bool { return j.queued })
	fw.spareOffer = o // its buffers serve the next offer
	s.requestRound()
}
