package main

import (
	"cmp"
	"math/rand/v2"
	"slices"

	"github.com/omegacell/omegacell/schedulers/policy"
	"github.com/omegacell/omegacell/schedulers/view"
	"github.com/omegacell/omegacell/txn"
)

// LowestID is this example's placement policy: every task goes to the
// ready machine with the lowest id (in byte order) that still has room,
// so the cell fills "from the left" and machines at the end stay empty
// (easy to drain, or to power down). It is a pure function of the job
// and the view, as package policy requires; the fit check is txn's,
// through policy.Scratch, which also accounts for this call's own claims.
type LowestID struct{}

// Name implements policy.Policy.
func (LowestID) Name() string { return "lowest-id" }

// Modes implements policy.Policy: fine-grained conflicts, all-or-nothing
// for gangs.
func (LowestID) Modes(job view.JobInfo) policy.Modes { return policy.DefaultModes(job) }

// Place implements policy.Policy. Tasks of one job ask for the same
// resources and constraints, so a machine that refused one task refuses
// the next: the scan goes left to right once per call. Sorting the
// candidates costs O(m log m) per call, fine for an example; a policy for
// large cells samples instead (see package policy).
func (LowestID) Place(job view.JobInfo, pending []*txn.Task, v *view.View, _ *rand.Rand) policy.Decision {
	d := policy.Decision{Claims: make([]txn.Claim, 0, len(pending))}
	s := policy.NewScratch(v, job.ID)
	machines := slices.Clone(v.Candidates(job.Constraints))
	slices.SortFunc(machines, func(a, b int32) int { return cmp.Compare(v.MachineAt(a).ID, v.MachineAt(b).ID) })
	var refused policy.Reasons
	next := 0
	for i, t := range pending {
		for ; next < len(machines); next++ {
			c, reason := s.Claim(machines[next], t)
			if reason == txn.ReasonOK {
				d.Claims = append(d.Claims, c)
				break
			}
			refused.Add(reason)
		}
		if next == len(machines) {
			d.Unplace(pending[i:], refused.String())
			break
		}
	}
	d.KeepWholeGang(job, pending)
	return d
}
