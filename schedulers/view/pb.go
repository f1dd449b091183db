package view

import (
	"fmt"

	"github.com/omegacell/omegacell/pbconv"
	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
)

// ApplyChange installs one object of a snapshot or watch stream, converted
// by pbconv. A task takes its constraints and max-per-machine from its
// job's template when the job is known (and later, from [View.PutJob],
// when it is not yet).
func (v *View) ApplyChange(c *cellv1.Change) error {
	switch o := c.GetObject().(type) {
	case *cellv1.Change_Machine:
		return v.applyMachine(o.Machine)
	case *cellv1.Change_Job:
		return v.applyJob(o.Job)
	case *cellv1.Change_Task:
		return v.applyTask(o.Task)
	case *cellv1.Change_Tenant:
		if o.Tenant.GetName() == "" {
			return fmt.Errorf("change.tenant.name: is empty")
		}
		v.PutTenant(pbconv.Tenant(o.Tenant))
		return nil
	case *cellv1.Change_Deleted:
		if id := o.Deleted.GetJobId(); id != "" {
			v.RemoveJob(id) // a deleted job takes its tasks with it
			return nil
		}
		return fmt.Errorf("change.deleted: names no object")
	}
	return fmt.Errorf("change.object: not set")
}

// ApplyWatchResponse applies one watch response's changes and moves the
// view to its revision. A response with compact_revision set means the
// start revision was compacted: it returns an error and changes nothing;
// the caller resnapshots ([View.Reset], then [View.ApplySnapshotChunk]).
func (v *View) ApplyWatchResponse(r *cellv1.WatchResponse) error {
	if cr := r.GetCompactRevision(); cr != 0 {
		return fmt.Errorf("watch: revision %d was compacted (compact_revision %d); resnapshot", v.revision, cr)
	}
	for i, c := range r.GetChanges() {
		if err := v.ApplyChange(c); err != nil {
			return fmt.Errorf("watch revision %d: changes[%d]: %w", r.GetRevision(), i, err)
		}
	}
	v.SetRevision(r.GetRevision())
	return nil
}

// ApplySnapshotChunk installs one chunk of a snapshot: machines, then jobs,
// then tasks. The first chunk carries the snapshot's revision.
func (v *View) ApplySnapshotChunk(r *cellv1.SnapshotResponse) error {
	for i, t := range r.GetTenants() {
		if t.GetName() == "" {
			return fmt.Errorf("snapshot: tenants[%d].name: is empty", i)
		}
		v.PutTenant(pbconv.Tenant(t))
	}
	for i, m := range r.GetMachines() {
		if err := v.applyMachine(m); err != nil {
			return fmt.Errorf("snapshot: machines[%d]: %w", i, err)
		}
	}
	for i, j := range r.GetJobs() {
		if err := v.applyJob(j); err != nil {
			return fmt.Errorf("snapshot: jobs[%d]: %w", i, err)
		}
	}
	for i, t := range r.GetTasks() {
		if err := v.applyTask(t); err != nil {
			return fmt.Errorf("snapshot: tasks[%d]: %w", i, err)
		}
	}
	v.SetRevision(r.GetRevision())
	return nil
}

func (v *View) applyMachine(m *cellv1.Machine) error {
	if m.GetId() == "" {
		return fmt.Errorf("machine.id: is empty")
	}
	v.PutMachine(pbconv.Machine(m))
	return nil
}

func (v *View) applyJob(j *cellv1.Job) error {
	info, err := FromPB(j)
	if err != nil {
		return err
	}
	v.PutJob(info)
	return nil
}

func (v *View) applyTask(t *cellv1.Task) error {
	if t.GetJobId() == "" {
		return fmt.Errorf("task.job_id: is empty")
	}
	tk := pbconv.Task(t, nil)
	if je, ok := v.jobs[tk.Key.Job]; ok && je.known {
		tk.Constraints, tk.MaxPerMachine, tk.Tenant = je.info.Constraints, je.info.MaxPerMachine, je.info.Tenant
	}
	v.PutTask(tk)
	return nil
}
