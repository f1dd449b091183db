package webui

import (
	"reflect"
	"testing"

	"google.golang.org/protobuf/proto"

	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
	"github.com/omegacell/omegacell/proto/identity"
	"github.com/omegacell/omegacell/proto/wirefmt"
)

// Fuzz targets of the hub's wire decoders against the proto path
// (wireref_test.go). The wire path may accept a frame the proto path
// rejects (it does not check the parts of a task it skips), never the
// reverse; where both accept, the hubs end alike; where the wire path
// fails, nothing of the frame was applied.

// watchSeeds are frames as TestWireMatchesProtoPath feeds them: valid
// revisions and fragments of every kind of change, odd encodings, and
// malformed frames.
func watchSeeds() [][]byte {
	return [][]byte{
		rev(11, chM(pbMachine("m3", "z3")), chT(pbTask("j3", 0, pending, "")), chT(pbTask("j3", 1, assigned, "m3")), chJ(pbJob("j3", "three"))),
		rev(12, chT(pbTask("j1", 0, running, "m1")), chT(pbTask("j1", 1, lost, "")), chT(pbTask("j1", 3, killed, "m2")), chT(pbTask("j1", 5, cellv1.TaskState(99), "m7"))),
		rev(13, chD("j1"), chJ(pbJob("j1", "upserted, then deleted")), chD(""), chT(pbTask("j2", 0, assigned, "m2"))),
		rev(14, chTenant("t1"), chT(pbTask("ghost", 0, assigned, "m1"))),
		rev(15),
		enc(&cellv1.WatchResponse{Revision: 20, ProgressNotify: true, Cell: here}),
		frag(11, chM(pbMachine("m3", "z3")), chJ(pbJob("j3", "big")), chT(pbTask("j3", 0, pending, ""))),
		frag(11, chT(pbTask("j1", 0, running, "m1")), chD("j5")),
		rev(11, chJ(pbJob("j3", "late job")), chT(pbTask("j3", 2, succeeded, "m2"))),
		enc(&cellv1.WatchResponse{Revision: 11, CompactRevision: 9, Cell: here}),
		enc(&cellv1.WatchResponse{Revision: 12, Changes: []*cellv1.Change{chT(pbTask("j1", 1, running, "m1"))}, Cell: other}),
		enc(&cellv1.WatchResponse{Revision: 11, Changes: []*cellv1.Change{chT(pbTask("j1", 0, assigned, "m1"))}}),
		varint(field(rev(11, chT(pbTask("j1", 0, assigned, "m1"))), 99, []byte("future")), wirefmt.WatchChanges, 5),
		rawChange(12, field(varint(nil, wirefmt.ChangeTask, 1), wirefmt.ChangeTask, varint(field(enc(pbTask("j1", 1, running, "m2")), 77, []byte("x")), wirefmt.TaskJob, 3))),
		rawChange(13, field(nil, wirefmt.ChangeTask, varint(varint(enc(pbTask("j1", 2, failed, "m2")), wirefmt.TaskMachine, 1), wirefmt.TaskState, uint64(assigned)))),
		rawChange(11, field(field(nil, wirefmt.ChangeMachine, enc(pbMachine("m4", "z4"))), wirefmt.ChangeTask, enc(pbTask("j1", 0, running, "m1")))),
		rawChange(13, field(field(nil, wirefmt.ChangeTask, enc(pbTask("j1", 1, running, "m1"))), wirefmt.ChangeTask, enc(&cellv1.Task{State: succeeded}))),
		rawChange(14, field(field(nil, wirefmt.ChangeJob, enc(pbJob("j1", "renamed"))), wirefmt.ChangeJob, enc(&cellv1.Job{State: cellv1.JobState_JOB_STATE_SUCCEEDED}))),
		rawChange(15, field(nil, wirefmt.ChangeTask, nil)),
		rev(12, chT(pbTask("j1", 1, running, "m1")))[:20],
		rawChange(11, field(nil, wirefmt.ChangeTask, []byte{0x0a, 0x05, 'j'})),
		rawChange(12, field(nil, wirefmt.ChangeTask, field(nil, wirefmt.TaskJob, []byte{0xff, 0xfe}))),
		rawChange(11, field(nil, wirefmt.ChangeTask, field(varint(nil, wirefmt.TaskIndex, 1), wirefmt.TaskMachine, []byte{'m', 0xc0}))),
		field(rev(11, chT(pbTask("j1", 0, assigned, "m1"))), wirefmt.WatchChanges, field(nil, wirefmt.ChangeJob, []byte{0x12, 0x09})),
		field(enc(&cellv1.WatchResponse{Revision: 11}), wirefmt.WatchCell, field(nil, wirefmt.CellID, []byte{0xff})),
		append(rev(16, chT(pbTask("j1", 0, running, "m1"))), 0x2b, 0x08, 0x01, 0x2c), // a group
		enc(&cellv1.WatchResponse{Fragment: true, Changes: []*cellv1.Change{chJ(pbJob("", "revision 0"))}}),
	}
}

// rows is the hub's copy alone (not its page's dirty rows).
func rows(h *hub) hubState {
	return state(h, newClient(identity.Identity{Role: identity.Admin}))
}

// FuzzHubWatchFrame feeds one frame to the watch of a hub holding base(),
// with a revision's first fragment already in (open) or not.
func FuzzHubWatchFrame(f *testing.F) {
	for _, b := range watchSeeds() {
		f.Add(b, false)
		f.Add(b, true)
	}
	chunks := base()
	opening := frag(11, chJ(pbJob("j3", "big")), chT(pbTask("j3", 0, pending, "")), chT(pbTask("j4", 0, assigned, "m2")),
		chD("j2"), chT(pbTask("j1", 0, running, "m1")))
	f.Fuzz(func(t *testing.T, data []byte, open bool) {
		oldH, oldC := testHub()
		newH, newC := testHub()
		oldCell, err := refSnapshot(oldH, chunks)
		if err != nil {
			t.Fatal(err)
		}
		newCell, err := newSnapshot(newH, chunks)
		if err != nil {
			t.Fatal(err)
		}
		oldW := &refWatch{h: oldH, cell: oldCell, rev: oldH.rev}
		newW := &watchDecoder{h: newH, cell: newCell, rev: newH.rev}
		if open {
			if err := oldW.frame(opening); err != nil {
				t.Fatal(err)
			}
			if err := newW.frame(opening); err != nil {
				t.Fatal(err)
			}
		}
		before := rows(newH)
		oldErr, newErr := oldW.frame(data), newW.frame(data)
		if newErr != nil {
			if oldErr == nil {
				t.Fatalf("the wire path failed (%v) on a frame the proto path applied", newErr)
			}
			if after := rows(newH); !reflect.DeepEqual(after, before) {
				t.Fatalf("a failed frame (%v) changed the hub:\n%+v\nwas\n%+v", newErr, after, before)
			}
			return
		}
		if oldErr != nil {
			return // the proto path checked more of the frame
		}
		if r := (&cellv1.WatchResponse{}); proto.Unmarshal(data, r) == nil && r.Fragment && r.Revision == 0 {
			// cellclient.Assembler takes revision 0 for "no fragments
			// pending" and loses such a fragment's changes; the wire path
			// applies them. The cell numbers revisions from 1.
			return
		}
		if newW.open {
			// Both hold an unfinished revision: end it, then compare.
			end := enc(&cellv1.WatchResponse{Revision: newW.openRev, Cell: here})
			if err := oldW.frame(end); err != nil {
				t.Fatalf("proto path: closing revision %d: %v", newW.openRev, err)
			}
			if err := newW.frame(end); err != nil {
				t.Fatalf("wire path: closing revision %d: %v", newW.openRev, err)
			}
		}
		if newW.rev != oldW.rev {
			t.Fatalf("watch revision %d, want %d", newW.rev, oldW.rev)
		}
		sameState(t, "after the frame", oldH, oldC, newH, newC)
	})
}

// FuzzHubSnapshotChunk feeds a snapshot of which one chunk is the fuzzed
// one: alone (pos 0), after a first chunk (1), or before a last one (2).
func FuzzHubSnapshotChunk(f *testing.F) {
	b := base()
	seeds := append([][]byte{nil, {0xff}, b[1][:len(b[1])/2]}, b...)
	seeds = append(seeds,
		enc(&cellv1.SnapshotResponse{Revision: 5, Cell: other, Last: true}),
		field(enc(&cellv1.SnapshotResponse{Revision: 5, Cell: here, Machines: []*cellv1.Machine{pbMachine("m1", "z"), pbMachine("m1", "y")},
			Tenants: []*cellv1.Tenant{{Name: "t1"}}, Jobs: []*cellv1.Job{pbJob("j1", "a"), pbJob("j1", "b")}}), 99, []byte("x")),
		enc(&cellv1.SnapshotResponse{Revision: 6, Tasks: []*cellv1.Task{pbTask("j1", 0, running, "m1"), pbTask("j1", 0, failed, "m1"), pbTask("j0", 0, running, "m1")}}),
		field(nil, wirefmt.SnapTasks, field(nil, wirefmt.TaskMachine, []byte{0xff})),
		field(varint(nil, wirefmt.SnapLast, 1), wirefmt.SnapCell, field(nil, wirefmt.CellID, []byte{0xc0})),
		field(varint(nil, wirefmt.SnapLast, 1), wirefmt.SnapTenants, field(nil, 1, []byte{0xff})),
		field(varint(nil, wirefmt.SnapLast, 1), wirefmt.SnapCell, field(field(nil, wirefmt.CellID, []byte("c")), 9, []byte("unknown"))),
	)
	for _, s := range seeds {
		for pos := range uint8(3) {
			f.Add(s, pos)
		}
	}
	first, last := b[0], b[2]
	f.Fuzz(func(t *testing.T, data []byte, pos uint8) {
		var chunks [][]byte
		switch pos % 3 {
		case 0:
			chunks = [][]byte{data}
		case 1:
			chunks = [][]byte{first, data}
		case 2:
			chunks = [][]byte{data, last}
		}
		oldH, oldC := testHub()
		newH, newC := testHub()
		oldCell, oldErr := refSnapshot(oldH, chunks)
		newCell, newErr := newSnapshot(newH, chunks)
		if newErr != nil {
			if oldErr == nil {
				t.Fatalf("the wire path failed (%v) on chunks the proto path applied", newErr)
			}
			freshH, freshC := testHub()
			sameState(t, "after a failed snapshot", freshH, freshC, newH, newC)
			return
		}
		if oldErr != nil {
			return // the proto path checked more of the chunk
		}
		// The identity is compared by id and incarnation (unknown fields
		// of it are not kept: nothing reads them).
		if (oldCell == nil) != (newCell == nil) || oldCell.GetId() != newCell.GetId() || oldCell.GetIncarnation() != newCell.GetIncarnation() {
			t.Fatalf("snapshot identity %v, want %v", newCell, oldCell)
		}
		sameState(t, "after the snapshot", oldH, oldC, newH, newC)
	})
}
