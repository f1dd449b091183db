package webui

import (
	"fmt"
	"testing"

	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
	"github.com/omegacell/omegacell/proto/identity"
)

// A client's dirty set is bounded: past maxDirty rows it turns into one
// full resend, however fast the cell changes and however slow the page.
func TestClientDirtySetIsBounded(t *testing.T) {
	c := newClient(identity.Identity{Role: identity.Admin})
	c.take() // the first full
	ids := make([]string, 1000)
	for round := range 30 {
		for i := range ids {
			ids[i] = fmt.Sprintf("m-%d-%d", round, i)
		}
		c.mark(ids, ids)
		if n := len(c.ms) + len(c.js); n > maxDirty {
			t.Fatalf("round %d: %d dirty rows held, bound %d", round, n, maxDirty)
		}
	}
	full, ms, js := c.take()
	if !full || len(ms)+len(js) != 0 {
		t.Fatalf("after 60,000 changes: full=%v with %d rows; want one full resend", full, len(ms)+len(js))
	}
	c.mark([]string{"a"}, nil)
	c.mark([]string{"a"}, nil)
	if full, ms, _ := c.take(); full || len(ms) != 1 {
		t.Fatalf("a row changed twice: full=%v rows=%d; want it once", full, len(ms))
	}
}

// The hub counts a job's tasks by bucket from the watch, a new job's tasks
// in the same revision included, and forgets a deleted job's tasks.
func TestHubCountsTasks(t *testing.T) {
	h := newHub(nil, nil)
	task := func(i uint32, s cellv1.TaskState) *cellv1.Change {
		return &cellv1.Change{Object: &cellv1.Change_Task{Task: &cellv1.Task{JobId: "j", Index: i, State: s}}}
	}
	job := &cellv1.Change{Object: &cellv1.Change_Job{Job: &cellv1.Job{Id: "j", Spec: &cellv1.JobSpec{Name: "n", Tenant: "t"}}}}
	h.apply(&cellv1.WatchResponse{Revision: 1, Changes: []*cellv1.Change{
		task(0, cellv1.TaskState_TASK_STATE_PENDING), task(1, cellv1.TaskState_TASK_STATE_PENDING), job}})
	h.apply(&cellv1.WatchResponse{Revision: 2, Changes: []*cellv1.Change{task(0, cellv1.TaskState_TASK_STATE_ASSIGNED)}})
	h.apply(&cellv1.WatchResponse{Revision: 3, Changes: []*cellv1.Change{task(0, cellv1.TaskState_TASK_STATE_RUNNING), task(1, cellv1.TaskState_TASK_STATE_FAILED)}})
	if got, want := h.jobs["j"].counts, [nBuckets]int32{0, 0, 1, 0, 1}; got != want {
		t.Fatalf("counts %v, want %v", got, want)
	}
	h.apply(&cellv1.WatchResponse{Revision: 4, Changes: []*cellv1.Change{{Object: &cellv1.Change_Deleted{Deleted: &cellv1.Deletion{Object: &cellv1.Deletion_JobId{JobId: "j"}}}}}})
	if len(h.jobs)+len(h.tasks) != 0 {
		t.Fatalf("after the deletion: %d jobs, %d task maps", len(h.jobs), len(h.tasks))
	}
}
