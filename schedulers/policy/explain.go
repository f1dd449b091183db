package policy

import (
	"fmt"

	"github.com/omegacell/omegacell/schedulers/view"
	"github.com/omegacell/omegacell/txn"
)

// Explain is the pending reason of tasks shaped like rep on the call's
// overlay (its own claims included): every machine of the view counted by
// txn.Explainer under the first filter that refuses it, now and when
// empty, as Kubernetes words "0/21 nodes are available". spreadKey is the
// label the policy spreads over ("": none). It costs one pass over the
// view's machines, paid only when tasks stay unplaced.
func Explain(s *Scratch, rep *txn.Task, spreadKey string) string {
	e := txn.NewExplainer(rep, spreadKey)
	for ord := range int32(s.View().NumOrdinals()) {
		e.Add(s.Machine(ord), s.JobTasksOn(ord))
	}
	return e.Reason()
}

// JobName is how reasons name a job: its name, or its id when it has none.
func JobName(job view.JobInfo) string {
	if job.Name != "" {
		return job.Name
	}
	return job.ID
}

// Shape writes a task's request for a reason: "8 GPUs, 32000m cpu, 256Gi memory".
func Shape(r txn.Resources) string {
	out := ""
	add := func(s string) {
		if out != "" {
			out += ", "
		}
		out += s
	}
	switch {
	case r.GPUMilli == txn.MilliPerGPU:
		add("1 GPU")
	case r.GPUMilli > txn.MilliPerGPU:
		add(fmt.Sprintf("%d GPUs", r.GPUMilli/txn.MilliPerGPU))
	case r.GPUMilli > 0:
		add(fmt.Sprintf("%dm GPU", r.GPUMilli))
	}
	if r.CPUMilli > 0 {
		add(fmt.Sprintf("%dm cpu", r.CPUMilli))
	}
	if r.MemoryBytes > 0 {
		add(txn.FormatBytes(r.MemoryBytes) + " memory")
	}
	if r.DiskBytes > 0 {
		add(txn.FormatBytes(r.DiskBytes) + " disk")
	}
	return out
}

// PlacePinned claims every pending task pinned to a machine (the tasks of
// a system job, one per machine) on that machine, or records why it does
// not fit there, and returns the other tasks for the policy's own
// placement. A pinned task has one candidate, so it needs no sampling or
// scoring: this keeps a system job over N machines O(N) in every policy.
func PlacePinned(s *Scratch, pending []*txn.Task, d *Decision) []*txn.Task {
	rest := pending[:0:0]
	for _, t := range pending {
		if t.Pin == "" || t.State != txn.TaskPending {
			rest = append(rest, t)
			continue
		}
		ord, ok := s.View().Ordinal(t.Pin)
		if !ok || s.Machine(ord) == nil {
			d.Unplace([]*txn.Task{t}, fmt.Sprintf("its machine %s is not in the cell", t.Pin))
			continue
		}
		c, r := s.Claim(ord, t)
		if r != txn.ReasonOK {
			e := txn.NewExplainer(t, "")
			e.Add(s.Machine(ord), s.JobTasksOn(ord))
			d.Unplace([]*txn.Task{t}, "pinned to "+t.Pin+": "+e.Reason())
			continue
		}
		d.Claims = append(d.Claims, c)
	}
	return rest
}
