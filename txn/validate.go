package txn

import "fmt"

// Decision is the outcome of validating a transaction: what would change.
// Nothing in the input state is modified; Machines and Tasks are fresh
// objects, ready to be installed by [Apply].
type Decision struct {
	Results  []ClaimResult // one per claim, in order
	Accepted int
	// Preempted victims, in transaction order (empty if aborted).
	Preempted []TaskKey
	// PreemptionErrors holds one entry per refused preemption.
	PreemptionErrors []string
	// Machines are the new versions of every changed machine, Seq bumped,
	// in first-touch order.
	Machines []*Machine
	// Tasks are the new versions of every changed task: victims (pending
	// again, in Preempted order) then accepted claims (assigned, attempt
	// bumped, in claim order).
	Tasks []*Task
}

// Applied reports whether the decision changes anything.
func (d *Decision) Applied() bool { return len(d.Machines) > 0 || len(d.Tasks) > 0 }

// Validate checks every claim of tx against s, in order, as if the earlier
// valid claims of tx were already applied, and returns what would change.
// It is the store's commit-time check and the simulator's; it does not
// mutate s.
//
// A preemption is carried out only if an accepted claim on the victim's
// machine may preempt it: in incremental mode, victims whose claims all
// failed are dropped (reported in PreemptionErrors) and the transaction is
// validated again without them, so nothing is evicted for nothing. After
// victimRounds such rounds every remaining victim is dropped, so a
// transaction costs at most victimRounds+1 passes over its claims.
//
// A gang job (State.Gang) is placed whole or not at all, whatever the
// commit mode: the claims of a gang job must name every pending task of
// the job, and if any of them fails, all of them fail (ReasonAborted) and
// what they had taken on the overlay is given back. Other jobs' claims of
// an incremental transaction are unaffected.
//
// Cost: O(claims + preemptions) per pass, with map lookups; constraint
// terms are matched in O(1) each when compiled ([Compile]).
func Validate(s State, tx *Transaction) *Decision {
	victims := tx.Preemptions
	var dropped []string
	for round := 0; ; round++ {
		v := validator{s: s, tx: tx, victims: victims, d: &Decision{Results: make([]ClaimResult, len(tx.Claims))}}
		v.run()
		justified, unjustified := v.splitVictims()
		if len(unjustified) == 0 {
			v.d.PreemptionErrors = append(dropped, v.d.PreemptionErrors...)
			return v.d
		}
		dropped = append(dropped, unjustified...)
		victims = justified
		if round+1 >= victimRounds {
			for _, k := range justified {
				dropped = append(dropped, fmt.Sprintf("victim %s not evicted: the transaction's preemptions did not settle in %d rounds", k, victimRounds))
			}
			victims = nil
		}
	}
}

// victimRounds bounds the passes that drop unjustified victims.
const victimRounds = 3

type validator struct {
	s       State
	tx      *Transaction
	victims []TaskKey // the preemptions being tried
	d       *Decision

	tasks []*Task // task of claim i (nil if unknown)
	// touched maps machine id -> index into d.Machines (the overlay).
	touched map[string]int
	// claimed holds task keys claimed earlier in tx (duplicates).
	claimed map[TaskKey]struct{}
	// placedOn counts, per job and machine, tasks placed earlier in tx.
	placedOn map[[2]string]uint32
	// maxPrio is the highest priority of tx's claims per machine.
	maxPrio map[string]int32
	// gangs holds, per gang job with claims in tx, the claims placed so
	// far (to give back if one fails) and whether the gang has failed.
	gangs map[string]*gangClaims
	// q is the transaction's overlay of the ledger; nil without quotas.
	q *quotaOverlay
	// reclaimers lists, per machine, the tenants of batch claims that
	// may reclaim borrowed quota there (only with victims and quotas).
	reclaimers map[string][]string
	// borrows marks the claims accepted by borrowing idle capacity;
	// took holds the overlay entry each accepted claim's quota went to.
	borrows []bool
	took    []*ovEntry
	// unmetOn remembers, per constraint list (the job's, shared by its
	// tasks) and machine, the outcome of FirstUnmet: the claims of one job
	// on one machine evaluate its terms once per transaction.
	unmetOn map[unmetKey]unmetResult
}

type unmetKey struct {
	terms   *Constraint
	machine string
}

type unmetResult struct {
	term Constraint
	bad  bool
}

type gangClaims struct {
	pending, claimed uint32 // the job's pending tasks; its valid claims in tx
	placed           []int  // claims placed so far
	failed           bool
	why              string // set when the claims do not cover the pending tasks
}

func (v *validator) run() {
	v.touched = make(map[string]int, min(len(v.tx.Claims), 1024))
	v.claimed = make(map[TaskKey]struct{}, len(v.tx.Claims))
	v.tasks = make([]*Task, len(v.tx.Claims))
	if qs, ok := v.s.(QuotaState); ok {
		if l := qs.Ledger(); l != nil && l.HasQuotas() {
			v.q = &quotaOverlay{l: l}
			v.borrows = make([]bool, len(v.tx.Claims))
			v.took = make([]*ovEntry, len(v.tx.Claims))
		}
	}

	v.checkTasks()
	v.checkGangs()
	failed := v.preempt()
	for i := range v.tx.Claims {
		g := v.gangOf(i)
		if v.d.Results[i].Reason != 0 {
			failed = true
			v.failGang(g, i)
			continue
		}
		if g != nil && g.failed {
			v.d.Results[i] = gangAborted(v.tasks[i].Key.Job)
			failed = true
			continue
		}
		v.d.Results[i] = v.place(i)
		if v.d.Results[i].Reason != ReasonOK {
			failed = true
			v.failGang(g, i)
		} else if g != nil {
			g.placed = append(g.placed, i)
		}
	}
	if failed && v.tx.Commit == CommitAllOrNothing {
		v.abort()
		return
	}
	v.finish()
}

// checkTasks resolves each claim's task and checks what does not depend on
// machines: exists, pending, owned by this scheduler, claimed once,
// resources as requested.
func (v *validator) checkTasks() {
	for i := range v.tx.Claims {
		c := &v.tx.Claims[i]
		t := v.s.Task(c.Task)
		v.tasks[i] = t
		var r ClaimResult
		switch {
		case t == nil:
			r = ClaimResult{ReasonTaskUnknown, fmt.Sprintf("task %s does not exist", c.Task)}
		case t.Scheduler != v.tx.Scheduler:
			r = ClaimResult{ReasonWrongScheduler, fmt.Sprintf("task %s belongs to scheduler %q", c.Task, t.Scheduler)}
		case t.State != TaskPending:
			r = ClaimResult{ReasonTaskNotPending, fmt.Sprintf("task %s is %s", c.Task, t.State)}
		case c.Resources != t.Resources:
			r = ClaimResult{ReasonResourcesMismatch, fmt.Sprintf("claim asks %v, task requests %v", c.Resources, t.Resources)}
		}
		if r.Reason == 0 {
			if _, dup := v.claimed[c.Task]; dup {
				r = ClaimResult{ReasonDuplicate, fmt.Sprintf("task %s is claimed twice in the transaction", c.Task)}
			} else {
				v.claimed[c.Task] = struct{}{}
				if len(v.victims) > 0 {
					if v.maxPrio == nil {
						v.maxPrio = make(map[string]int32)
					}
					if p, ok := v.maxPrio[c.Machine]; !ok || t.Priority > p {
						v.maxPrio[c.Machine] = t.Priority
					}
					if v.q != nil && BandOf(t.Priority) == BandBatch && v.q.entry(t.Tenant, BandBatch).q != nil {
						if v.reclaimers == nil {
							v.reclaimers = make(map[string][]string)
						}
						v.reclaimers[c.Machine] = append(v.reclaimers[c.Machine], t.Tenant)
					}
				}
			}
		}
		v.d.Results[i] = r
	}
}

// preempt evicts the victims on the overlay. A victim must hold resources
// on a machine that a claim of this transaction targets with a priority
// that may preempt it, or be a task of a gang job with a sibling victim on
// such a machine (a gang is evicted whole). It reports whether any
// preemption was refused.
func (v *validator) preempt() (failed bool) {
	seen := make(map[TaskKey]struct{}, len(v.victims))
	gangs := gangClaimants(v.s, v.victims, v.maxPrio)
	for _, k := range v.victims {
		t := v.s.Task(k)
		var err string
		switch {
		case t == nil:
			err = fmt.Sprintf("victim %s does not exist", k)
		case !t.State.HoldsResources():
			err = fmt.Sprintf("victim %s is %s", k, t.State)
		default:
			p, ok := v.maxPrio[t.Machine]
			if g, isGang := gangs[k.Job]; isGang && (!ok || g > p) {
				p, ok = g, true
			}
			if _, dup := seen[k]; dup {
				err = fmt.Sprintf("victim %s named twice", k)
			} else if !ok {
				err = fmt.Sprintf("victim %s is on machine %s, which no claim targets", k, t.Machine)
			} else if !CanPreempt(p, t.Priority) && !v.reclaimable(t) {
				err = fmt.Sprintf("victim %s (priority %d) may not be preempted by priority %d", k, t.Priority, p)
			} else if m := v.overlay(t.Machine); m == nil {
				err = fmt.Sprintf("victim %s is on unknown machine %s", k, t.Machine)
			} else if e := Release(m, t.Resources, t.Devices); e != nil {
				err = e.Error()
			}
		}
		if err != "" {
			v.d.PreemptionErrors = append(v.d.PreemptionErrors, err)
			failed = true
			continue
		}
		seen[k] = struct{}{}
		if v.q != nil {
			v.q.add(t.Tenant, BandOf(t.Priority), Resources{}.Sub(t.Resources))
		}
		v.d.Preempted = append(v.d.Preempted, k)
		victim := t.Clone()
		victim.State, victim.Machine, victim.Devices = TaskPending, "", nil
		v.d.Tasks = append(v.d.Tasks, victim)
	}
	return failed
}

// place checks claim i against its machine and, if it is valid, applies it
// to the overlay.
func (v *validator) place(i int) ClaimResult {
	c := &v.tx.Claims[i]
	t := v.tasks[i]
	orig := v.s.Machine(c.Machine)
	switch {
	case orig == nil:
		return ClaimResult{ReasonMachineUnknown, fmt.Sprintf("machine %q does not exist", c.Machine)}
	case orig.State == MachineDraining:
		return ClaimResult{ReasonMachineDraining, fmt.Sprintf("machine %s is draining", c.Machine)}
	case orig.State != MachineReady:
		return ClaimResult{ReasonMachineNotReady, fmt.Sprintf("machine %s is %s", c.Machine, orig.State)}
	case v.tx.Conflict == ConflictCoarse && orig.Seq != c.SeenSeq:
		return ClaimResult{ReasonSeqChanged, fmt.Sprintf("machine %s changed: seq %d, claim saw %d", c.Machine, orig.Seq, c.SeenSeq)}
	}
	if t.Pin != "" && t.Pin != c.Machine {
		return ClaimResult{ReasonConstraintViolated, fmt.Sprintf("task %s of a system job runs only on machine %s", t.Key, t.Pin)}
	}
	if u, bad := v.unmet(t.Constraints, orig); bad {
		return ClaimResult{ReasonConstraintViolated, fmt.Sprintf("machine %s does not satisfy %s", c.Machine, u)}
	}
	var pk [2]string
	if t.MaxPerMachine > 0 {
		pk = [2]string{t.Key.Job, c.Machine}
		if n := v.s.TasksOfJobOn(t.Key.Job, c.Machine) + v.placedOn[pk]; n >= t.MaxPerMachine {
			return ClaimResult{ReasonMaxPerMachine, fmt.Sprintf("machine %s already runs %d tasks of job %s (max %d)", c.Machine, n, t.Key.Job, t.MaxPerMachine)}
		}
	}
	m := v.overlay(c.Machine)
	if r := Fits(m, c.Resources, c.Devices); r != ReasonOK {
		return ClaimResult{r, fmt.Sprintf("on machine %s: free %v, claim %v", c.Machine, m.Free(), c.Resources)}
	}
	if v.q != nil {
		r, borrows, e := v.q.check(t, c.Resources) // takes the quota if it allows the claim
		if r.Reason != ReasonOK {
			return r
		}
		v.borrows[i], v.took[i] = borrows, e
	}
	Allocate(m, c.Resources, c.Devices)
	if t.MaxPerMachine > 0 {
		if v.placedOn == nil {
			v.placedOn = make(map[[2]string]uint32)
		}
		v.placedOn[pk]++
	}
	return ClaimResult{Reason: ReasonOK}
}

// unmet is FirstUnmet, remembered per job and machine for lists of more
// than a few terms.
func (v *validator) unmet(cs []Constraint, m *Machine) (Constraint, bool) {
	if len(cs) < 4 {
		return FirstUnmet(cs, m.Labels)
	}
	k := unmetKey{&cs[0], m.ID}
	if r, ok := v.unmetOn[k]; ok {
		return r.term, r.bad
	}
	u, bad := FirstUnmet(cs, m.Labels)
	if v.unmetOn == nil {
		v.unmetOn = make(map[unmetKey]unmetResult)
	}
	v.unmetOn[k] = unmetResult{u, bad}
	return u, bad
}

// overlay returns this transaction's private copy of a machine, cloning it
// on first touch; nil if the machine is unknown.
func (v *validator) overlay(id string) *Machine {
	if i, ok := v.touched[id]; ok {
		return v.d.Machines[i]
	}
	orig := v.s.Machine(id)
	if orig == nil {
		return nil
	}
	m := orig.Clone()
	m.Seq++
	v.touched[id] = len(v.d.Machines)
	v.d.Machines = append(v.d.Machines, m)
	return m
}

func (v *validator) abort() {
	for i := range v.d.Results {
		if v.d.Results[i].Reason == ReasonOK {
			v.d.Results[i] = ClaimResult{ReasonAborted, "all-or-nothing: another claim or preemption of the transaction failed"}
		}
	}
	v.d.Accepted, v.d.Preempted, v.d.Machines, v.d.Tasks = 0, nil, nil, nil
}

// finish records the new task versions of accepted claims. Machines only
// touched by failed claims are dropped so their Seq does not move.
func (v *validator) finish() {
	changed := make([]bool, len(v.d.Machines))
	for _, k := range v.d.Preempted {
		changed[v.touched[v.s.Task(k).Machine]] = true
	}
	for i := range v.tx.Claims {
		if v.d.Results[i].Reason != ReasonOK {
			continue
		}
		c := &v.tx.Claims[i]
		v.d.Accepted++
		changed[v.touched[c.Machine]] = true
		t := v.tasks[i].Clone()
		t.State, t.Machine, t.Attempt = TaskAssigned, c.Machine, t.Attempt+1
		t.Devices = append([]DeviceShare(nil), c.Devices...)
		v.d.Tasks = append(v.d.Tasks, t)
	}
	kept := v.d.Machines[:0]
	for i, m := range v.d.Machines {
		if changed[i] {
			kept = append(kept, m)
		}
	}
	v.d.Machines = kept
}

// splitVictims separates the evicted victims that an accepted claim on
// their machine may preempt from those that none may (their claims
// failed); the latter come back as error messages.
func (v *validator) splitVictims() (justified []TaskKey, unjustified []string) {
	if len(v.d.Preempted) == 0 {
		return nil, nil
	}
	best := make(map[string]int32)
	var owners map[string][]string // per machine: tenants of accepted non-borrowing batch claims with a quota
	for i, r := range v.d.Results {
		if r.Reason != ReasonOK {
			continue
		}
		t := v.tasks[i]
		m := v.tx.Claims[i].Machine
		if p, ok := best[m]; !ok || t.Priority > p {
			best[m] = t.Priority
		}
		if v.q != nil && !v.borrows[i] && BandOf(t.Priority) == BandBatch && v.q.entry(t.Tenant, BandBatch).q != nil {
			if owners == nil {
				owners = make(map[string][]string)
			}
			owners[m] = append(owners[m], t.Tenant)
		}
	}
	gangs := gangClaimants(v.s, v.d.Preempted, best)
	for _, k := range v.d.Preempted {
		t := v.s.Task(k)
		p, ok := best[t.Machine]
		if g, isGang := gangs[k.Job]; isGang && (!ok || g > p) {
			p, ok = g, true
		}
		if ok && CanPreempt(p, t.Priority) {
			justified = append(justified, k)
			continue
		}
		if reclaimedBy(owners[t.Machine], t) {
			justified = append(justified, k)
			continue
		}
		unjustified = append(unjustified, fmt.Sprintf("victim %s not evicted: no accepted claim on machine %s needs it", k, t.Machine))
	}
	return justified, unjustified
}

// gangClaimants returns, per gang job among victims, the highest priority
// of the claims (by machine, from prio) on the machines of its victims: a
// gang is evicted whole (issue 12), so a victim of a gang job may sit on a
// machine no claim targets when a sibling victim sits on one that a claim
// of that priority targets.
func gangClaimants(s State, victims []TaskKey, prio map[string]int32) map[string]int32 {
	var out map[string]int32
	for _, k := range victims {
		t := s.Task(k)
		if t == nil {
			continue
		}
		p, ok := prio[t.Machine]
		if !ok {
			continue
		}
		if _, gang := s.Gang(k.Job); !gang {
			continue
		}
		if out == nil {
			out = make(map[string]int32)
		}
		if q, seen := out[k.Job]; !seen || p > q {
			out[k.Job] = p
		}
	}
	return out
}

// reclaimable reports whether a batch claim on victim t's machine may
// preempt it to reclaim quota t's tenant borrowed (see
// quotaOverlay.mayReclaim), judged on the overlay before t is evicted.
func (v *validator) reclaimable(t *Task) bool {
	for _, tenant := range v.reclaimers[t.Machine] {
		if v.q.mayReclaim(tenant, t) {
			return true
		}
	}
	return false
}

// reclaimedBy reports whether an accepted claim of a quota owner (owners:
// tenants of the machine's accepted batch claims that did not borrow)
// justifies evicting batch victim t of another tenant. The victim was
// borrowing when preempt judged it (reclaimable); here it is enough that
// a quota owner's claim on its machine was accepted without borrowing.
func reclaimedBy(owners []string, t *Task) bool {
	if BandOf(t.Priority) != BandBatch {
		return false
	}
	for _, o := range owners {
		if o != t.Tenant {
			return true
		}
	}
	return false
}

// Apply installs a decision's new objects into s.
func Apply(s Mutable, d *Decision) {
	for _, m := range d.Machines {
		s.PutMachine(m)
	}
	for _, t := range d.Tasks {
		s.PutTask(t)
	}
}
