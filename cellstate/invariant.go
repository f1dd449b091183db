package cellstate

import (
	"fmt"
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
	holding := 0
	for _, j := range s.jobs {
		for _, t := range j.tasks {
			tasks = append(tasks, t.t)
			if t.t.State.HoldsResources() {
				holding++
				on := s.onMachine[t.t.Machine]
				if at := int(j.slot[t.t.Key.Index]); on == nil || at >= len(on.tasks) || on.tasks[at] != (taskSlot{j, t.t.Key.Index}) {
					return fmt.Errorf("index: task %s holds resources on %s but is not indexed there", t.t.Key, t.t.Machine)
				}
			}
		}
	}
	indexed := 0
	for _, on := range s.onMachine {
		indexed += len(on.tasks)
	}
	if indexed != holding {
		return fmt.Errorf("index: %d tasks indexed on machines, %d hold resources", indexed, holding)
	}
	if d := s.ledger.Diff(rebuildLedger(s, machines, tasks)); d != "" {
		return fmt.Errorf("quota ledger: %s", d) // quota.go
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
