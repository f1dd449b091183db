package cellstate

import (
	"fmt"
	"sync"

	"github.com/omegacell/omegacell/cellstate/authz"
	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
	"github.com/omegacell/omegacell/proto/identity"
)

// What each caller sees of the cell's reads (see authz.Access):
//   - All (admin; a user's own tenants' jobs): everything.
//   - Redacted (schedulers): everything, jobs through authz.RedactJob.
//   - Own, for an agent: its machines, the tasks on (or just off) them,
//     and (a fleet's watch, which simulates the tasks) job changes,
//     redacted. A real agent reads the full job of a task it runs with
//     GetJob.
//
// Only jobs carry what is redacted: machines and tasks are never.

// watchView is what one watcher is sent.
type watchView struct {
	// match selects machines (and the tasks on them); nil: all.
	match func(machine string) bool
	// jobs: with match set, also send job changes (redacted).
	jobs bool
	// redact: send jobs redacted.
	redact bool
}

// viewFor is the watch view of a caller whose request named machineID.
func viewFor(c caller, machineID string) watchView {
	switch {
	case c.access == authz.Own && machineID != "":
		return watchView{match: func(m string) bool { return m == machineID }, redact: true}
	case c.access == authz.Own:
		id := c.id
		return watchView{match: id.SpeaksFor, jobs: id.Fleet, redact: true}
	case machineID != "":
		return watchView{match: func(m string) bool { return m == machineID }, redact: c.access != authz.All}
	}
	return watchView{redact: c.access != authz.All}
}

// redactedData is the revision's encoded WatchResponse with every job
// redacted. For a revision in the hub's ring it is encoded once, on the
// first redacted watcher's demand, and shared by all of them; a revision
// without jobs (every commit) is the same bytes as the full one. One read
// back from Pebble is redacted on the wire (wirewatch.go): only its job
// changes are decoded.
func (e logEntry) redactedData() ([]byte, error) {
	if e.src != nil {
		return e.src.redacted()
	}
	data, err := redactWire(e.data)
	if err != nil {
		return nil, fmt.Errorf("cellstate: redact log entry %d: %w", e.rev, err)
	}
	return data, nil
}

// redactedOnce holds an entry's lazily encoded redacted form.
type redactedOnce struct {
	once sync.Once
	data []byte
	err  error
}

func (e *encodedEntry) redacted() ([]byte, error) {
	e.red.once.Do(func() {
		e.red.data = e.data
		for _, j := range e.cs.jobs {
			if authz.RedactJob(j) != j {
				// Machines and tasks keep their bytes; only the jobs
				// between them are encoded again.
				buf := make([]byte, 0, len(e.data))
				buf = append(buf, e.data[:e.jobs[0]]...)
				if buf, e.red.err = appendJobChanges(buf, e.cs.jobs, authz.RedactJob); e.red.err == nil {
					e.red.data = append(buf, e.data[e.jobs[1]:]...)
				}
				return
			}
		}
	})
	return e.red.data, e.red.err
}

// filter returns the encoded part of an entry that a filtered view sees
// (nil if none), or all=true when that is every change of the entry (then
// the shared encoding is sent as is: a fleet that owns every machine of
// the cell costs no more than an unfiltered watcher). An entry read back
// from Pebble is filtered on the wire (wirewatch.go).
func (e logEntry) filter(v watchView) (data []byte, all bool, err error) {
	if e.cs == nil {
		if data, err = filterWire(e.data, e.rev, v); err != nil {
			return nil, false, fmt.Errorf("cellstate: filter log entry %d: %w", e.rev, err)
		}
		return data, false, nil
	}
	out := &cellv1.WatchResponse{Revision: e.rev}
	if v.jobs || len(e.cs.jobs) == 0 {
		n, every := 0, true
		for _, m := range e.cs.machines {
			n++
			if !v.match(m.m.ID) {
				every = false
				break
			}
		}
		for i := 0; every && i < len(e.cs.tasks); i++ {
			t := e.cs.tasks[i]
			n++
			every = (t.t.Machine != "" && v.match(t.t.Machine)) || (t.lastMachine != "" && v.match(t.lastMachine))
		}
		if v.jobs {
			n += len(e.cs.jobs)
		}
		if every && len(e.cs.tenants) == 0 { // tenants are not an agent's
			return nil, n > 0, nil
		}
	}
	for _, m := range e.cs.machines {
		if v.match(m.m.ID) {
			out.Changes = append(out.Changes, &cellv1.Change{Object: &cellv1.Change_Machine{Machine: m.pb()}})
		}
	}
	if v.jobs {
		for _, j := range e.cs.jobs {
			out.Changes = append(out.Changes, &cellv1.Change{Object: &cellv1.Change_Job{Job: authz.RedactJob(j)}})
		}
	}
	for _, t := range e.cs.tasks {
		if (t.t.Machine != "" && v.match(t.t.Machine)) || (t.lastMachine != "" && v.match(t.lastMachine)) {
			out.Changes = append(out.Changes, &cellv1.Change{Object: &cellv1.Change_Task{Task: t.pb()}})
		}
	}
	if len(out.Changes) == 0 {
		return nil, false, nil
	}
	data, err = marshal.Marshal(out)
	return data, false, err
}

// shapeSnapshot returns the part of snap that caller c may see.
func shapeSnapshot(snap *Snapshot, c caller) *Snapshot {
	if c.access == authz.All {
		return snap
	}
	out := &Snapshot{Revision: snap.Revision, machines: snap.machines, jobs: make([]*cellv1.Job, 0, len(snap.jobs)), tasks: snap.tasks, tenants: snap.tenants}
	if c.access != authz.Own {
		for _, j := range snap.jobs {
			out.jobs = append(out.jobs, authz.RedactJob(j))
		}
		return out
	}
	speaks := c.id.SpeaksFor
	out.machines, out.tenants = nil, nil
	for _, m := range snap.machines {
		if speaks(m.m.ID) {
			out.machines = append(out.machines, m)
		}
	}
	out.tasks = nil
	for i, j := range snap.jobs {
		var keep []*task
		for _, t := range snap.tasks[i] {
			if (t.t.Machine != "" && speaks(t.t.Machine)) || (t.lastMachine != "" && speaks(t.lastMachine)) {
				keep = append(keep, t)
			}
		}
		if len(keep) > 0 {
			out.jobs = append(out.jobs, authz.RedactJob(j))
			out.tasks = append(out.tasks, keep)
		}
	}
	return out
}

// shapeJob returns a job as caller c may see it.
func shapeJob(j *cellv1.Job, c caller) *cellv1.Job {
	if c.access == authz.All || (c.access == authz.Own && !(c.id.Role == identity.Agent && c.id.Fleet)) {
		return j
	}
	return authz.RedactJob(j)
}

// shapeJobList filters and redacts a job list for caller c: a user sees
// its tenants' jobs, a scheduler every job redacted.
func shapeJobList(out *cellv1.ListJobsResponse, c caller) *cellv1.ListJobsResponse {
	switch c.access {
	case authz.All:
	case authz.Own:
		kept := out.Jobs[:0]
		for _, j := range out.Jobs {
			if c.id.InTenant(j.GetJob().GetSpec().GetTenant()) {
				kept = append(kept, j)
			}
		}
		out.Jobs = kept
	default:
		for _, j := range out.Jobs {
			j.Job = authz.RedactJob(j.Job)
		}
	}
	return out
}

// registrant is the identity a machine registration records: an agent's
// own; "" for admin (the machine keeps its registrant).
func (c caller) registrant() string {
	if c.id.Role == identity.Agent {
		return c.id.String()
	}
	return ""
}

// committer is the identity whose claims the store checks against the
// jobs' schedulers: a scheduler's own; "" for admin (txn answers
// WRONG_SCHEDULER per claim).
func (c caller) committer() string {
	if c.id.Role == identity.Scheduler {
		return c.id.String()
	}
	return ""
}
