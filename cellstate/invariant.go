package cellstate

import (
	"sort"
	"strings"

	"github.com/omegacell/omegacell/pbconv"
	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
	"github.com/omegacell/omegacell/txn"
)

// checkInvariant verifies txn.CheckInvariant on the in-memory state.
func checkInvariant(s *state) error {
	machines := make([]*txn.Machine, 0, len(s.machines))
	for _, m := range s.machines {
		machines = append(machines, m.m)
	}
	var tasks []*txn.Task
	for _, j := range s.jobs {
		for _, t := range j.tasks {
			tasks = append(tasks, t.t)
		}
	}
	return txn.CheckInvariant(machines, tasks)
}

// CheckInvariant verifies the invariant on the store's current state.
func (s *Store) CheckInvariant() error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return checkInvariant(s.st)
}

// CheckSnapshot verifies the invariant on a cell read through the API
// (what `cell check` does against a running server).
func CheckSnapshot(machines []*cellv1.Machine, jobs []*cellv1.Job, tasks []*cellv1.Task) error {
	ms := make([]*txn.Machine, len(machines))
	for i, m := range machines {
		ms[i] = pbconv.Machine(m)
	}
	tmpl := make(map[string]*cellv1.TaskTemplate, len(jobs))
	for _, j := range jobs {
		tmpl[j.Id] = j.GetSpec().GetTask()
	}
	ts := make([]*txn.Task, len(tasks))
	for i, t := range tasks {
		ts[i] = pbconv.Task(t, tmpl[t.JobId])
	}
	return txn.CheckInvariant(ms, ts)
}

func joinSorted(set map[string]bool) string {
	names := make([]string, 0, len(set))
	for n := range set {
		names = append(names, n)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}
