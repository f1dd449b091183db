package webui

import (
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
)

// The wire decoder's field numbers are the schema's: a field renumbered in
// cell.proto fails here, not silently in the web view.
func TestWireFieldNumbersMatchTheSchema(t *testing.T) {
	tests := []struct {
		msg   proto.Message
		field protoreflect.Name
		num   protowireNumber
	}{
		{&cellv1.WatchResponse{}, "revision", fWatchRevision},
		{&cellv1.WatchResponse{}, "changes", fWatchChanges},
		{&cellv1.WatchResponse{}, "progress_notify", fWatchProgress},
		{&cellv1.WatchResponse{}, "compact_revision", fWatchCompact},
		{&cellv1.WatchResponse{}, "fragment", fWatchFragment},
		{&cellv1.WatchResponse{}, "cell", fWatchCell},
		{&cellv1.SnapshotResponse{}, "revision", fSnapRevision},
		{&cellv1.SnapshotResponse{}, "machines", fSnapMachines},
		{&cellv1.SnapshotResponse{}, "jobs", fSnapJobs},
		{&cellv1.SnapshotResponse{}, "tasks", fSnapTasks},
		{&cellv1.SnapshotResponse{}, "last", fSnapLast},
		{&cellv1.SnapshotResponse{}, "cell", fSnapCell},
		{&cellv1.SnapshotResponse{}, "tenants", fSnapTenants},
		{&cellv1.Change{}, "machine", fChangeMachine},
		{&cellv1.Change{}, "job", fChangeJob},
		{&cellv1.Change{}, "task", fChangeTask},
		{&cellv1.Change{}, "deleted", fChangeDeleted},
		{&cellv1.Change{}, "tenant", fChangeTenant},
		{&cellv1.Task{}, "job_id", fTaskJob},
		{&cellv1.Task{}, "index", fTaskIndex},
		{&cellv1.Task{}, "scheduler", fTaskScheduler},
		{&cellv1.Task{}, "state", fTaskState},
		{&cellv1.Task{}, "machine_id", fTaskMachine},
		{&cellv1.Task{}, "message", fTaskMessage},
		{&cellv1.Task{}, "last_machine_id", fTaskLastMachine},
		{&cellv1.CellIdentity{}, "id", fCellID},
		{&cellv1.CellIdentity{}, "incarnation", fCellIncarnation},
		{&cellv1.Deletion{}, "job_id", fDeletionJob},
	}
	for _, tc := range tests {
		md := tc.msg.ProtoReflect().Descriptor()
		f := md.Fields().ByName(tc.field)
		if f == nil {
			t.Errorf("%s has no field %s", md.FullName(), tc.field)
			continue
		}
		if got := protowireNumber(f.Number()); got != tc.num {
			t.Errorf("%s.%s is field %d in the schema; the decoder reads %d", md.FullName(), tc.field, got, tc.num)
		}
	}
}

type protowireNumber = protoreflect.FieldNumber
