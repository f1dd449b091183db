package wirefmt

import (
	"errors"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
)

// The field numbers are the schema's: a field renumbered in
// cell.proto fails here, not silently in the web view.
func TestWireFieldNumbersMatchTheSchema(t *testing.T) {
	tests := []struct {
		msg   proto.Message
		field protoreflect.Name
		num   protowireNumber
	}{
		{&cellv1.WatchResponse{}, "revision", WatchRevision},
		{&cellv1.WatchResponse{}, "changes", WatchChanges},
		{&cellv1.WatchResponse{}, "progress_notify", WatchProgress},
		{&cellv1.WatchResponse{}, "compact_revision", WatchCompact},
		{&cellv1.WatchResponse{}, "fragment", WatchFragment},
		{&cellv1.WatchResponse{}, "cell", WatchCell},
		{&cellv1.SnapshotResponse{}, "revision", SnapRevision},
		{&cellv1.SnapshotResponse{}, "machines", SnapMachines},
		{&cellv1.SnapshotResponse{}, "jobs", SnapJobs},
		{&cellv1.SnapshotResponse{}, "tasks", SnapTasks},
		{&cellv1.SnapshotResponse{}, "last", SnapLast},
		{&cellv1.SnapshotResponse{}, "cell", SnapCell},
		{&cellv1.SnapshotResponse{}, "tenants", SnapTenants},
		{&cellv1.Change{}, "machine", ChangeMachine},
		{&cellv1.Change{}, "job", ChangeJob},
		{&cellv1.Change{}, "task", ChangeTask},
		{&cellv1.Change{}, "deleted", ChangeDeleted},
		{&cellv1.Change{}, "tenant", ChangeTenant},
		{&cellv1.Task{}, "job_id", TaskJob},
		{&cellv1.Task{}, "index", TaskIndex},
		{&cellv1.Task{}, "scheduler", TaskScheduler},
		{&cellv1.Task{}, "state", TaskState},
		{&cellv1.Task{}, "machine_id", TaskMachine},
		{&cellv1.Task{}, "message", TaskMessage},
		{&cellv1.Task{}, "last_machine_id", TaskLastMachine},
		{&cellv1.CellIdentity{}, "id", CellID},
		{&cellv1.CellIdentity{}, "incarnation", CellIncarnation},
		{&cellv1.Deletion{}, "job_id", DeletionJob},
		{&cellv1.Machine{}, "id", MachineID},
	}
	for _, tc := range tests {
		md := tc.msg.ProtoReflect().Descriptor()
		f := md.Fields().ByName(tc.field)
		if f == nil {
			t.Errorf("%s has no field %s", md.FullName(), tc.field)
			continue
		}
		if got := protowireNumber(f.Number()); got != tc.num {
			t.Errorf("%s.%s is field %d in the schema; wirefmt says %d", md.FullName(), tc.field, got, tc.num)
		}
	}
}

type protowireNumber = protoreflect.FieldNumber

// Each reads every field with its bounds and value, as protowire does,
// and reports malformed messages.
func TestEach(t *testing.T) {
	msg := &cellv1.Task{JobId: "j", Index: 7, MachineId: "m1", ExitCode: -1}
	b, err := proto.Marshal(msg)
	if err != nil {
		t.Fatal(err)
	}
	b = protowire.AppendTag(b, 99, protowire.Fixed32Type) // an unknown fixed32
	b = protowire.AppendFixed32(b, 5)
	var got []Field
	if err := Each(b, func(f Field) error { got = append(got, f); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 5 {
		t.Fatalf("%d fields, want 5", len(got))
	}
	if got[0].Num != TaskJob || string(got[0].Bytes) != "j" || got[0].Start != 0 {
		t.Errorf("first field %+v", got[0])
	}
	if got[1].Num != TaskIndex || got[1].Varint != 7 {
		t.Errorf("second field %+v", got[1])
	}
	if got[4].Num != 99 || got[4].Type != protowire.Fixed32Type || got[4].End != len(b) {
		t.Errorf("last field %+v", got[4])
	}
	for i := 1; i < len(got); i++ {
		if got[i].Start != got[i-1].End {
			t.Errorf("field %d starts at %d, the previous ended at %d", i, got[i].Start, got[i-1].End)
		}
	}
	stop := errors.New("stop")
	n := 0
	if err := Each(b, func(Field) error { n++; return stop }); err != stop || n != 1 {
		t.Errorf("Each after fn's error: %v, %d calls", err, n)
	}
	for _, bad := range [][]byte{{0xff}, {0x0a, 0x05, 'a'}, {0x08}} {
		if err := Each(bad, func(Field) error { return nil }); err == nil {
			t.Errorf("Each(%x): no error", bad)
		}
	}
}
