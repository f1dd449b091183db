package webui

import (
	"reflect"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
	"github.com/omegacell/omegacell/proto/wirefmt"
)

// Builders of responses as the cell sends them.

var (
	here  = &cellv1.CellIdentity{Id: "5f0e6a56-1111-4c3b-9d7e-000000000001", Incarnation: 2}
	other = &cellv1.CellIdentity{Id: "5f0e6a56-1111-4c3b-9d7e-000000000001", Incarnation: 3}
)

func pbMachine(id, zone string) *cellv1.Machine {
	return &cellv1.Machine{Id: id, Labels: map[string]string{"zone": zone, "rack": "r1"}, State: cellv1.MachineState_MACHINE_STATE_READY,
		Capacity: &cellv1.Resources{CpuMilli: 8000, MemoryBytes: 32 << 30}, Allocated: &cellv1.Resources{CpuMilli: 500}}
}

func pbJob(id, name string) *cellv1.Job {
	return &cellv1.Job{Id: id, State: cellv1.JobState_JOB_STATE_RUNNING, SubmitTimeUnixNano: 1e18,
		Spec: &cellv1.JobSpec{Name: name, Tenant: "t1", Scheduler: "batch", Task: &cellv1.TaskTemplate{Command: "/bin/true", Resources: &cellv1.Resources{CpuMilli: 100}}}}
}

func pbTask(job string, i uint32, s cellv1.TaskState, machine string) *cellv1.Task {
	return &cellv1.Task{JobId: job, Index: i, State: s, MachineId: machine, Scheduler: "batch", Message: "why",
		Resources: &cellv1.Resources{CpuMilli: 100}, SubmitTimeUnixNano: 1e18, ModRevision: 7, LastMachineId: machine}
}

func chM(m *cellv1.Machine) *cellv1.Change {
	return &cellv1.Change{Object: &cellv1.Change_Machine{Machine: m}}
}
func chJ(j *cellv1.Job) *cellv1.Change  { return &cellv1.Change{Object: &cellv1.Change_Job{Job: j}} }
func chT(t *cellv1.Task) *cellv1.Change { return &cellv1.Change{Object: &cellv1.Change_Task{Task: t}} }
func chD(id string) *cellv1.Change {
	return &cellv1.Change{Object: &cellv1.Change_Deleted{Deleted: &cellv1.Deletion{Object: &cellv1.Deletion_JobId{JobId: id}}}}
}
func chTenant(name string) *cellv1.Change {
	return &cellv1.Change{Object: &cellv1.Change_Tenant{Tenant: &cellv1.Tenant{Name: name}}}
}

func enc(m proto.Message) []byte {
	b, err := proto.Marshal(m)
	if err != nil {
		panic(err)
	}
	return b
}

// rev is one revision's response from this cell.
func rev(r uint64, changes ...*cellv1.Change) []byte {
	return enc(&cellv1.WatchResponse{Revision: r, Changes: changes, Cell: here})
}

// frag is a fragment (more of the revision follow).
func frag(r uint64, changes ...*cellv1.Change) []byte {
	return enc(&cellv1.WatchResponse{Revision: r, Changes: changes, Fragment: true, Cell: here})
}

// rawChange is a WatchResponse of one change given as its encoded fields.
func rawChange(r uint64, change []byte) []byte {
	b := enc(&cellv1.WatchResponse{Revision: r, Cell: here})
	b = protowire.AppendTag(b, wirefmt.WatchChanges, protowire.BytesType)
	return protowire.AppendBytes(b, change)
}

func field(b []byte, num protowire.Number, v []byte) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, v)
}

func varint(b []byte, num protowire.Number, v uint64) []byte {
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, v)
}

// snap is a snapshot in chunks (the last one marked).
func snap(r uint64, chunks ...*cellv1.SnapshotResponse) [][]byte {
	out := make([][]byte, len(chunks))
	for i, c := range chunks {
		c.Revision, c.Last = r, i == len(chunks)-1
		if c.Cell == nil {
			c.Cell = here
		}
		out[i] = enc(c)
	}
	return out
}

// base is the cell the watch cases start from: two machines, a job with
// tasks in every bucket, one with none.
func base() [][]byte {
	return snap(10,
		&cellv1.SnapshotResponse{Machines: []*cellv1.Machine{pbMachine("m1", "z1"), pbMachine("m2", "z2")}, Jobs: []*cellv1.Job{pbJob("j1", "one")}},
		&cellv1.SnapshotResponse{Jobs: []*cellv1.Job{pbJob("j2", "two")}, Tasks: []*cellv1.Task{
			pbTask("j1", 0, cellv1.TaskState_TASK_STATE_PENDING, ""),
			pbTask("j1", 1, cellv1.TaskState_TASK_STATE_ASSIGNED, "m1"),
			pbTask("j1", 2, cellv1.TaskState_TASK_STATE_RUNNING, "m2"),
			pbTask("j1", 3, cellv1.TaskState_TASK_STATE_SUCCEEDED, "m2"),
			pbTask("j1", 4, cellv1.TaskState_TASK_STATE_FAILED, ""),
		}},
		&cellv1.SnapshotResponse{Tasks: []*cellv1.Task{pbTask("j1", 5, cellv1.TaskState_TASK_STATE_PREEMPTED, "m9")}})
}

const (
	pending   = cellv1.TaskState_TASK_STATE_PENDING
	assigned  = cellv1.TaskState_TASK_STATE_ASSIGNED
	running   = cellv1.TaskState_TASK_STATE_RUNNING
	succeeded = cellv1.TaskState_TASK_STATE_SUCCEEDED
	failed    = cellv1.TaskState_TASK_STATE_FAILED
	lost      = cellv1.TaskState_TASK_STATE_LOST
	killed    = cellv1.TaskState_TASK_STATE_KILLED
)

// The wire path leaves the hub exactly as the proto path did: the same
// rows, job counts, revision, placements and dirty rows, and the same
// errors at the same frame (for malformed frames: an error at the same
// frame, its wording is the decoder's).
func TestWireMatchesProtoPath(t *testing.T) {
	cases := []struct {
		name      string
		snapshot  [][]byte // nil: base()
		frames    [][]byte
		malformed bool // the failing frame is not a valid message
	}{
		{name: "a new job with its tasks, machines, in one revision", frames: [][]byte{
			rev(11, chM(pbMachine("m3", "z3")), chT(pbTask("j3", 0, pending, "")), chT(pbTask("j3", 1, assigned, "m3")), chJ(pbJob("j3", "three"))),
			rev(12, chT(pbTask("j3", 0, assigned, "m1")), chT(pbTask("j3", 1, running, "m3"))),
		}},
		{name: "every state, machines set, moved and cleared", frames: [][]byte{
			rev(11, chT(pbTask("j1", 0, assigned, "m1")), chT(pbTask("j1", 1, running, "m1")), chT(pbTask("j1", 2, succeeded, "m2"))),
			rev(12, chT(pbTask("j1", 0, running, "m1")), chT(pbTask("j1", 1, lost, "")), chT(pbTask("j1", 3, killed, "m2"))),
			rev(13, chT(pbTask("j1", 0, failed, "m1")), chT(pbTask("j1", 4, pending, "m2")), chT(pbTask("j1", 5, cellv1.TaskState(99), "m7"))),
			rev(14, chT(pbTask("j1", 4, assigned, "m1")), chT(pbTask("j1", 4, assigned, "m2")), chT(pbTask("j2", 0, assigned, "m2"))),
		}},
		{name: "a task of a job the hub does not have", frames: [][]byte{
			rev(11, chT(pbTask("ghost", 0, assigned, "m1"))),
			rev(12, chJ(pbJob("ghost", "late")), chT(pbTask("ghost", 0, running, "m1"))),
		}},
		{name: "deletions", frames: [][]byte{
			rev(11, chD("j1")),
			rev(12, chD("nothing"), chD(""), chT(pbTask("j1", 0, pending, ""))),
			rev(13, chJ(pbJob("j1", "again")), chT(pbTask("j1", 0, assigned, "m1")), chD("j2")),
			rev(14, chD("j1"), chJ(pbJob("j1", "upserted, then deleted"))),
		}},
		{name: "progress notifications, tenants, empty revisions", frames: [][]byte{
			enc(&cellv1.WatchResponse{Revision: 20, ProgressNotify: true, Cell: here}),
			rev(21, chTenant("t1")),
			rev(22),
			rev(23, chT(pbTask("j2", 0, pending, ""))),
			enc(&cellv1.WatchResponse{Revision: 30, ProgressNotify: true, Cell: here}),
		}},
		{name: "fragments, jobs first", frames: [][]byte{
			frag(11, chM(pbMachine("m3", "z3")), chJ(pbJob("j3", "big")), chT(pbTask("j3", 0, pending, ""))),
			frag(11, chT(pbTask("j3", 1, assigned, "m3")), chT(pbTask("j3", 2, assigned, "m1"))),
			rev(11, chT(pbTask("j3", 0, assigned, "m3")), chT(pbTask("j1", 0, running, "m2"))),
			rev(12, chT(pbTask("j3", 2, running, "m1"))),
		}},
		{name: "fragments: a job after its tasks counts them", frames: [][]byte{
			frag(11, chT(pbTask("j3", 0, pending, "")), chT(pbTask("j3", 1, assigned, "m1"))),
			frag(11, chT(pbTask("j3", 1, running, "m1")), chT(pbTask("j4", 0, assigned, "m2"))),
			rev(11, chJ(pbJob("j3", "late job")), chT(pbTask("j3", 2, succeeded, "m2"))),
		}},
		{name: "fragments: a job deleted by an earlier one stays deleted", frames: [][]byte{
			frag(11, chT(pbTask("j5", 0, pending, "")), chD("j1")),
			frag(11, chT(pbTask("j1", 0, running, "m1")), chD("j5")),
			rev(11, chJ(pbJob("j1", "again")), chJ(pbJob("j5", "five")), chT(pbTask("j1", 1, assigned, "m1"))),
			rev(12, chJ(pbJob("j1", "now")), chT(pbTask("j1", 1, running, "m1"))),
		}},
		{name: "fragments: an empty last fragment advances the revision", frames: [][]byte{
			frag(11, chT(pbTask("j1", 0, assigned, "m1"))),
			rev(11),
		}},
		{name: "fragments: another revision in between", frames: [][]byte{
			frag(11, chT(pbTask("j1", 0, assigned, "m1"))),
			rev(12, chT(pbTask("j1", 1, running, "m1"))),
		}},
		{name: "fragments: a progress notification in between", frames: [][]byte{
			frag(11, chT(pbTask("j1", 0, assigned, "m1"))),
			enc(&cellv1.WatchResponse{Revision: 11, ProgressNotify: true, Cell: here}),
		}},
		{name: "compacted", frames: [][]byte{
			rev(11, chT(pbTask("j1", 0, assigned, "m1"))),
			enc(&cellv1.WatchResponse{CompactRevision: 9, Cell: here}),
		}},
		{name: "fragments: compacted in between", frames: [][]byte{
			frag(11, chT(pbTask("j1", 0, assigned, "m1"))),
			enc(&cellv1.WatchResponse{Revision: 11, CompactRevision: 9, Cell: here}),
		}},
		{name: "another incarnation answers", frames: [][]byte{
			rev(11, chT(pbTask("j1", 0, assigned, "m1"))),
			enc(&cellv1.WatchResponse{Revision: 12, Changes: []*cellv1.Change{chT(pbTask("j1", 1, running, "m1"))}, Cell: other}),
		}},
		{name: "responses without an identity match any cell", frames: [][]byte{
			enc(&cellv1.WatchResponse{Revision: 11, Changes: []*cellv1.Change{chT(pbTask("j1", 0, assigned, "m1"))}}),
			enc(&cellv1.WatchResponse{Revision: 12, Changes: []*cellv1.Change{chT(pbTask("j1", 1, running, "m1"))}, Cell: &cellv1.CellIdentity{}}),
		}},
		{name: "unknown fields and fields of another wire type are skipped", frames: [][]byte{
			varint(field(rev(11, chT(pbTask("j1", 0, assigned, "m1"))), 99, []byte("future")), wirefmt.WatchChanges, 5),
			rawChange(12, field(varint(nil, wirefmt.ChangeTask, 1), wirefmt.ChangeTask, varint(field(enc(pbTask("j1", 1, running, "m2")), 77, []byte("x")), wirefmt.TaskJob, 3))),
			rawChange(13, field(nil, wirefmt.ChangeTask, varint(varint(enc(pbTask("j1", 2, failed, "m2")), wirefmt.TaskMachine, 1), wirefmt.TaskState, uint64(assigned)))),
		}},
		{name: "a change of several fields: the last one holds, repeats merge", frames: [][]byte{
			rawChange(11, field(field(nil, wirefmt.ChangeMachine, enc(pbMachine("m4", "z4"))), wirefmt.ChangeTask, enc(pbTask("j1", 0, running, "m1")))),
			rawChange(12, field(field(nil, wirefmt.ChangeTask, enc(pbTask("j1", 0, assigned, "m1"))), wirefmt.ChangeMachine, enc(pbMachine("m5", "z5")))),
			rawChange(13, field(field(nil, wirefmt.ChangeTask, enc(pbTask("j1", 1, running, "m1"))), wirefmt.ChangeTask, enc(&cellv1.Task{State: succeeded}))),
			rawChange(14, field(field(nil, wirefmt.ChangeJob, enc(pbJob("j1", "renamed"))), wirefmt.ChangeJob, enc(&cellv1.Job{State: cellv1.JobState_JOB_STATE_SUCCEEDED}))),
			rawChange(15, field(nil, wirefmt.ChangeTask, nil)),
		}},
		{name: "a truncated frame", malformed: true, frames: [][]byte{
			rev(11, chT(pbTask("j1", 0, assigned, "m1"))),
			rev(12, chT(pbTask("j1", 1, running, "m1")))[:20],
		}},
		{name: "a malformed task", malformed: true, frames: [][]byte{
			rawChange(11, field(nil, wirefmt.ChangeTask, []byte{0x0a, 0x05, 'j'})),
		}},
		{name: "invalid UTF-8 in a task's job id", malformed: true, frames: [][]byte{
			rev(11, chT(pbTask("j1", 0, assigned, "m1"))),
			rawChange(12, field(nil, wirefmt.ChangeTask, field(nil, wirefmt.TaskJob, []byte{0xff, 0xfe}))),
		}},
		{name: "invalid UTF-8 in a machine id, in a fragment", malformed: true, frames: [][]byte{
			frag(11, chT(pbTask("j1", 0, assigned, "m1"))),
			rawChange(11, field(nil, wirefmt.ChangeTask, field(varint(nil, wirefmt.TaskIndex, 1), wirefmt.TaskMachine, []byte{'m', 0xc0}))),
		}},
		{name: "a malformed job fails the whole frame", malformed: true, frames: [][]byte{
			field(rev(11, chT(pbTask("j1", 0, assigned, "m1"))), wirefmt.WatchChanges, field(nil, wirefmt.ChangeJob, []byte{0x12, 0x09})),
		}},
		{name: "invalid UTF-8 in the identity", malformed: true, frames: [][]byte{
			field(enc(&cellv1.WatchResponse{Revision: 11}), wirefmt.WatchCell, field(nil, wirefmt.CellID, []byte{0xff})),
		}},
		{name: "snapshot of several cells' chunks", snapshot: [][]byte{
			enc(&cellv1.SnapshotResponse{Revision: 5, Cell: here, Machines: []*cellv1.Machine{pbMachine("m1", "z")}}),
			enc(&cellv1.SnapshotResponse{Revision: 5, Cell: other, Last: true}),
		}},
		{name: "snapshot: duplicates, unknown fields, tenants, chunks without identity", snapshot: [][]byte{
			field(enc(&cellv1.SnapshotResponse{Revision: 5, Cell: here, Machines: []*cellv1.Machine{pbMachine("m1", "z"), pbMachine("m1", "y")},
				Tenants: []*cellv1.Tenant{{Name: "t1"}}, Jobs: []*cellv1.Job{pbJob("j1", "a"), pbJob("j1", "b")}}), 99, []byte("x")),
			enc(&cellv1.SnapshotResponse{Revision: 6, Tasks: []*cellv1.Task{pbTask("j1", 0, running, "m1"), pbTask("j1", 0, failed, "m1"), pbTask("j0", 0, running, "m1")}}),
			enc(&cellv1.SnapshotResponse{Revision: 7, Last: true, Cell: here, Tasks: []*cellv1.Task{pbTask("j1", 1, assigned, "m2")}}),
			enc(&cellv1.SnapshotResponse{Revision: 8, Last: true, Cell: here, Tasks: []*cellv1.Task{pbTask("j1", 2, assigned, "m2")}}),
		}, frames: [][]byte{rev(8, chT(pbTask("j1", 1, running, "m1")))}},
		{name: "snapshot: the stream ends without a last chunk", snapshot: [][]byte{
			enc(&cellv1.SnapshotResponse{Revision: 5, Tasks: []*cellv1.Task{pbTask("j", 0, running, "m1")}, Jobs: []*cellv1.Job{pbJob("j", "a")}}),
		}},
		{name: "snapshot: no chunk", snapshot: [][]byte{}},
		{name: "snapshot: a malformed chunk", malformed: true, snapshot: [][]byte{
			enc(&cellv1.SnapshotResponse{Revision: 5, Cell: here}),
			field(nil, wirefmt.SnapTasks, field(nil, wirefmt.TaskMachine, []byte{0xff})),
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			chunks := tc.snapshot
			if chunks == nil {
				chunks = base()
			}
			oldH, oldC := testHub()
			newH, newC := testHub()
			oldCell, oldErr := refSnapshot(oldH, chunks)
			newCell, newErr := newSnapshot(newH, chunks)
			sameErr(t, "snapshot", oldErr, newErr, tc.malformed)
			if !proto.Equal(oldCell, newCell) {
				t.Fatalf("snapshot identity %v, want %v", newCell, oldCell)
			}
			sameState(t, "after the snapshot", oldH, oldC, newH, newC)
			if oldErr != nil {
				return
			}
			oldW := &refWatch{h: oldH, cell: oldCell, rev: oldH.rev}
			newW := &watchDecoder{h: newH, cell: newCell, rev: newH.rev}
			for i, f := range tc.frames {
				oldErr, newErr := oldW.frame(f), newW.frame(f)
				sameErr(t, "frame "+string(rune('0'+i)), oldErr, newErr, tc.malformed)
				if oldErr != nil && newW.open {
					// The watch ends in the middle of a revision: the wire
					// path applied its earlier fragments, the proto path
					// held them. Either hub now resnapshots (follow).
					return
				}
				if oldErr != nil {
					break
				}
				if !newW.open {
					sameState(t, "after frame "+string(rune('0'+i)), oldH, oldC, newH, newC)
				}
			}
			sameState(t, "at the end", oldH, oldC, newH, newC)
		})
	}
}

func sameErr(t *testing.T, where string, old, got error, malformed bool) {
	t.Helper()
	switch {
	case (old == nil) != (got == nil):
		t.Fatalf("%s: error %v, want %v", where, got, old)
	case old != nil && !malformed && old.Error() != got.Error():
		t.Fatalf("%s: error %q, want %q", where, got, old)
	case old != nil:
		t.Logf("%s: %v (proto path: %v)", where, got, old)
	}
}

func sameState(t *testing.T, where string, oldH *hub, oldC *client, newH *hub, newC *client) {
	t.Helper()
	want, got := state(oldH, oldC), state(newH, newC)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s: hub state\n%+v\nwant\n%+v", where, got, want)
	}
}

// The hub counts a job's tasks by bucket from the watch, a new job's tasks
// in the same revision included, and forgets a deleted job's tasks.
func TestHubCountsTasks(t *testing.T) {
	h := newHub(nil, nil)
	d := &watchDecoder{h: h}
	apply := func(r *cellv1.WatchResponse) {
		t.Helper()
		if err := d.frame(enc(r)); err != nil {
			t.Fatal(err)
		}
	}
	task := func(i uint32, s cellv1.TaskState) *cellv1.Change {
		return chT(&cellv1.Task{JobId: "j", Index: i, State: s})
	}
	job := chJ(&cellv1.Job{Id: "j", Spec: &cellv1.JobSpec{Name: "n", Tenant: "t"}})
	apply(&cellv1.WatchResponse{Revision: 1, Changes: []*cellv1.Change{task(0, pending), task(1, pending), job}})
	apply(&cellv1.WatchResponse{Revision: 2, Changes: []*cellv1.Change{task(0, assigned)}})
	apply(&cellv1.WatchResponse{Revision: 3, Changes: []*cellv1.Change{task(0, running), task(1, failed)}})
	if got, want := h.jobs["j"].counts, [nBuckets]int32{0, 0, 1, 0, 1}; got != want {
		t.Fatalf("counts %v, want %v", got, want)
	}
	apply(&cellv1.WatchResponse{Revision: 4, Changes: []*cellv1.Change{chD("j")}})
	if len(h.jobs)+len(h.tasks) != 0 {
		t.Fatalf("after the deletion: %d jobs, %d task maps", len(h.jobs), len(h.tasks))
	}
	if h.rev != 4 {
		t.Fatalf("revision %d, want 4", h.rev)
	}
}
