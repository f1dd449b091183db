package txn

import "fmt"

// Gang rule (see [Validate]): a gang job's claims name every pending task
// of the job and succeed or fail together.

// checkGangs counts each gang job's valid claims after checkTasks and
// fails all of them when they do not name every pending task of the job.
// One pass over the claims, one State.Gang query per job.
func (v *validator) checkGangs() {
	var short bool
	for i := range v.tx.Claims {
		t := v.tasks[i]
		if t == nil || v.d.Results[i].Reason != 0 {
			continue
		}
		g := v.gangs[t.Key.Job]
		if g == nil {
			pending, gang := v.s.Gang(t.Key.Job)
			if !gang {
				continue
			}
			if v.gangs == nil {
				v.gangs = make(map[string]*gangClaims)
			}
			g = &gangClaims{pending: pending}
			v.gangs[t.Key.Job] = g
		}
		g.claimed++
	}
	for job, g := range v.gangs {
		if g.claimed != g.pending {
			g.failed, short = true, true
			g.why = fmt.Sprintf("gang: job %s has %d pending tasks and the transaction claims %d of them; a gang is placed whole", job, g.pending, g.claimed)
		}
	}
	if !short {
		return
	}
	for i := range v.tx.Claims {
		if g := v.gangOf(i); g != nil && g.failed && v.d.Results[i].Reason == 0 {
			v.d.Results[i] = ClaimResult{ReasonAborted, g.why}
		}
	}
}

// gangOf returns the gang bookkeeping of claim i's job, nil if the job is
// not a gang (or the claim's task is unknown).
func (v *validator) gangOf(i int) *gangClaims {
	if v.gangs == nil || v.tasks[i] == nil {
		return nil
	}
	return v.gangs[v.tasks[i].Key.Job]
}

// failGang marks a gang failed after claim i of it failed and gives back
// what its claims placed so far took on the overlay.
func (v *validator) failGang(g *gangClaims, i int) {
	if g == nil || g.failed {
		return
	}
	g.failed = true
	job := v.tasks[i].Key.Job
	for _, k := range g.placed {
		c := &v.tx.Claims[k]
		m := v.overlay(c.Machine)
		// Release cannot fail: the claim was allocated on this overlay.
		_ = Release(m, c.Resources, c.Devices)
		if v.q != nil && v.took[k] != nil {
			v.q.addTo(v.took[k], BandOf(v.tasks[k].Priority), Resources{}.Sub(c.Resources))
			v.borrows[k], v.took[k] = false, nil
		}
		if v.tasks[k].MaxPerMachine > 0 {
			v.placedOn[[2]string{job, c.Machine}]--
		}
		v.d.Results[k] = gangAborted(job)
	}
	g.placed = nil
}

func gangAborted(job string) ClaimResult {
	return ClaimResult{ReasonAborted, fmt.Sprintf("gang: another claim of job %s failed; a gang is placed whole", job)}
}
