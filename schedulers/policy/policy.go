package policy

import (
	"fmt"
	"strings"

	"math/rand/v2"

	"github.com/omegacell/omegacell/schedulers/view"
	"github.com/omegacell/omegacell/txn"
)

// Policy places one job's pending tasks on a view of the cell.
type Policy interface {
	// Name is the registry name ("batch", "service", "gpu", ...).
	Name() string
	// Modes is how a decision for job should be committed.
	Modes(job view.JobInfo) Modes
	// Place decides claims for pending (tasks of job, in the order they
	// should be placed) on v. It must not modify v or the tasks.
	Place(job view.JobInfo, pending []*txn.Task, v *view.View, rng *rand.Rand) Decision
}

// FairSharer is implemented by policies whose scheduler orders its queue
// by weighted Dominant Resource Fairness across tenants (package
// schedulers/fair) rather than by priority and submission alone.
type FairSharer interface {
	FairShare() bool
}

// Modes is how a decision is committed: the conflict mode (fine: resources
// still fit; coarse: machine unchanged) and the commit mode (incremental,
// or all-or-nothing for gangs).
type Modes struct {
	Conflict txn.ConflictMode
	Commit   txn.CommitMode
}

// DefaultModes is fine-grained conflicts, as Omega recommends (coarse
// detection causes needless conflicts), with all-or-nothing commits for
// gangs and incremental ones otherwise.
func DefaultModes(job view.JobInfo) Modes {
	if job.Gang {
		return Modes{Conflict: txn.ConflictFine, Commit: txn.CommitAllOrNothing}
	}
	return Modes{Conflict: txn.ConflictFine, Commit: txn.CommitIncremental}
}

// Decision is the outcome of one Place call.
type Decision struct {
	Claims []txn.Claim
	// Preemptions are tasks to evict to make room for some of the claims;
	// each sits on a machine a claim of higher priority targets.
	Preemptions []txn.TaskKey
	// Unplaced names every pending task without a claim, and why.
	Unplaced []Unplaced
}

// Unplaced is a pending task the policy could not place.
type Unplaced struct {
	Task   txn.TaskKey
	Reason string
}

// Transaction wraps the decision as a transaction of scheduler, decided at
// revision, committed with modes.
func (d *Decision) Transaction(scheduler string, revision uint64, modes Modes) *txn.Transaction {
	return &txn.Transaction{
		Scheduler:   scheduler,
		DecidedAt:   revision,
		Conflict:    modes.Conflict,
		Commit:      modes.Commit,
		Claims:      d.Claims,
		Preemptions: d.Preemptions,
	}
}

// Unplace records tasks as unplaced for one reason.
func (d *Decision) Unplace(tasks []*txn.Task, reason string) {
	for _, t := range tasks {
		d.Unplaced = append(d.Unplaced, Unplaced{Task: t.Key, Reason: reason})
	}
}

// KeepWholeGang enforces all-or-nothing inside the policy: if job is a gang
// and some pending task is unplaced, the decision drops every claim and
// preemption and reports all of pending as unplaced, each with the reason
// of the first task that did not fit.
func (d *Decision) KeepWholeGang(job view.JobInfo, pending []*txn.Task) {
	if !job.Gang || len(d.Unplaced) == 0 {
		return
	}
	first := d.Unplaced[0]
	reason := first.Reason
	if !strings.HasPrefix(reason, "gang ") {
		reason = fmt.Sprintf("gang %s needs %d tasks × (%s) at once: room for %d now, %d short; %s",
			JobName(job), len(pending), Shape(job.Resources), len(d.Claims), len(pending)-len(d.Claims), reason)
	}
	d.Claims, d.Preemptions, d.Unplaced = nil, nil, d.Unplaced[:0]
	d.Unplace(pending, reason)
}
