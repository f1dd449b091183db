package cellstate

import "github.com/omegacell/omegacell/txn"

// victimMachines records, before a commit evicts them, the machine each
// named victim holds resources on.
func victimMachines(s *state, victims []txn.TaskKey) map[string]string {
	out := make(map[string]string, len(victims))
	for _, k := range victims {
		if t := s.Task(k); t != nil && t.State.HoldsResources() {
			out[k.String()] = t.Machine
		}
	}
	return out
}

// preemptors names, for each victim a commit evicted, the job whose claim
// preempted it (issue 12): the highest-priority accepted claim on the
// victim's machine or, for a gang victim evicted whole, on the machine of
// a sibling victim.
func preemptors(tx *txn.Transaction, d *txn.Decision, machines map[string]string) map[txn.TaskKey]string {
	type claimant struct {
		prio int32
		job  string
	}
	prios := make(map[txn.TaskKey]int32, len(d.Tasks))
	for _, t := range d.Tasks {
		prios[t.Key] = t.Priority
	}
	onMachine := make(map[string]claimant)
	for i, r := range d.Results {
		if r.Reason != txn.ReasonOK {
			continue
		}
		c := tx.Claims[i]
		prio := prios[c.Task]
		if cur, ok := onMachine[c.Machine]; !ok || prio > cur.prio {
			onMachine[c.Machine] = claimant{prio, c.Task.Job}
		}
	}
	byJob := make(map[string]string) // victim job -> a preempting job
	out := make(map[txn.TaskKey]string, len(d.Preempted))
	for _, k := range d.Preempted {
		if c, ok := onMachine[machines[k.String()]]; ok {
			out[k] = c.job
			byJob[k.Job] = c.job
		}
	}
	for _, k := range d.Preempted {
		if out[k] == "" {
			out[k] = byJob[k.Job]
		}
	}
	return out
}

// jobName is a job's name, or its id if the job is unknown.
func (s *state) jobName(id string) string {
	if j := s.jobs[id]; j != nil && j.job.GetSpec().GetName() != "" {
		return j.job.GetSpec().GetName()
	}
	return id
}
