package cellstate

import (
	"fmt"

	"github.com/omegacell/omegacell/pbconv"
	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
	"github.com/omegacell/omegacell/txn"
)

// Explaining jobs over the store's machines (issue 13), with txn's
// Explainer, the same words the policies use. Each call is one pass over
// the machines under the read lock, outside the commit loop, paid only by
// callers that ask (`cell job run` and `cell job status`).

// InfeasibleWarnings says why no machine of the cell could ever host a
// task of spec (nil when some machine could). A system job is never
// warned about: it covers whatever machines match, none included.
func (s *Store) InfeasibleWarnings(spec *cellv1.JobSpec) []string {
	if spec.GetKind() == cellv1.JobKind_JOB_KIND_SYSTEM {
		return nil
	}
	t := &txn.Task{
		Resources:     pbconv.Resources(spec.GetTask().GetResources()),
		Constraints:   txn.Compile(pbconv.Constraints(spec.GetTask().GetConstraints())),
		MaxPerMachine: spec.GetTask().GetMaxPerMachine(),
	}
	e := txn.NewExplainer(t, spreadKeyOf(spec))
	s.mu.RLock()
	for _, m := range s.st.machines {
		e.Add(m.m, 0)
	}
	s.mu.RUnlock()
	if !e.NeverFits() {
		return nil
	}
	return []string{fmt.Sprintf("no machine of the cell can ever host a task of %s (accepted all the same: machines may join): %s",
		spec.GetName(), e.Explain(true))}
}

// spreadKeyOf is the spread key the job's policy honours: every built-in
// policy skips machines without the label.
func spreadKeyOf(spec *cellv1.JobSpec) string { return spec.GetTask().GetSpreadKey() }

// ExplainJob counts the machines per filter for a job's pending tasks:
// "" when none is pending. A system job's pending tasks are each
// explained on their own machine.
func (s *Store) ExplainJob(idOrName string) (string, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	j, err := s.st.lookupJob(idOrName)
	if err != nil {
		return "", err
	}
	if !jobLive(j.job) || j.counts[txn.TaskPending] == 0 {
		return "", nil
	}
	var rep *txn.Task
	for _, t := range j.tasks {
		if t.t.State != txn.TaskPending {
			continue
		}
		if t.t.Pin != "" {
			e := txn.NewExplainer(t.t, "")
			if m := s.st.machines[t.t.Pin]; m != nil {
				e.Add(m.m, j.perMachine[m.m.ID])
			}
			return fmt.Sprintf("task %d (pinned to machine %s): %s", t.t.Key.Index, t.t.Pin, e.Reason()), nil
		}
		rep = t.t
		break
	}
	e := txn.NewExplainer(rep, spreadKeyOf(j.job.GetSpec()))
	for id, m := range s.st.machines {
		e.Add(m.m, j.perMachine[id])
	}
	return fmt.Sprintf("%d pending: %s", j.counts[txn.TaskPending], e.Reason()), nil
}

// pbWithEvents is t.pb() with the current attempt's events added (what
// GetJob answers).
func (t *task) pbWithEvents() *cellv1.Task {
	out := t.pb()
	out.Events = taskEvents(t)
	return out
}
