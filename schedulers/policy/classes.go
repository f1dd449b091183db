package policy

import (
	"fmt"
	"slices"

	"github.com/omegacell/omegacell/txn"
)

// Class is a Borg equivalence class: pending tasks with identical
// resources, constraints and max-per-machine, so feasibility and scores
// computed for one hold for all.
type Class struct {
	Tasks []*txn.Task // in input order
}

// Rep is the task whose shape stands for the class.
func (c Class) Rep() *txn.Task { return c.Tasks[0] }

// Classes groups pending tasks into equivalence classes, in order of first
// appearance. Tasks that are not pending, and classes whose request or
// constraints are malformed, go to d.Unplaced with the reason.
func Classes(pending []*txn.Task, d *Decision) []Class {
	var classes []Class
next:
	for _, t := range pending {
		if t.State != txn.TaskPending {
			d.Unplace([]*txn.Task{t}, fmt.Sprintf("task is %s, not pending", t.State))
			continue
		}
		for i := range classes {
			if sameShape(classes[i].Rep(), t) {
				classes[i].Tasks = append(classes[i].Tasks, t)
				continue next
			}
		}
		classes = append(classes, Class{Tasks: []*txn.Task{t}})
	}
	return slices.DeleteFunc(classes, func(c Class) bool {
		if err := validShape(c.Rep()); err != nil {
			d.Unplace(c.Tasks, err.Error())
			return true
		}
		return false
	})
}

func validShape(t *txn.Task) error {
	if err := txn.ValidateRequest(t.Resources); err != nil {
		return err
	}
	for i, c := range t.Constraints {
		if err := c.Validate(); err != nil {
			return fmt.Errorf("constraints[%d]: %w", i, err)
		}
	}
	return nil
}

func sameShape(a, b *txn.Task) bool {
	return a.Resources == b.Resources && a.MaxPerMachine == b.MaxPerMachine && a.Pin == b.Pin && sameConstraints(a.Constraints, b.Constraints)
}

func sameConstraints(a, b []txn.Constraint) bool {
	if len(a) != len(b) {
		return false
	}
	if len(a) == 0 || &a[0] == &b[0] {
		return true
	}
	for i := range a {
		if a[i].Key != b[i].Key || a[i].Op != b[i].Op || !slices.Equal(a[i].Values, b[i].Values) {
			return false
		}
	}
	return true
}
