package wirefmt

import "google.golang.org/protobuf/encoding/protowire"

// Field is one field of an encoded message.
type Field struct {
	Num  protowire.Number
	Type protowire.Type
	// Start and End delimit the whole field (tag and value) in the
	// message.
	Start, End int
	// Bytes is a length-delimited field's value (within the message);
	// Varint a varint field's.
	Bytes  []byte
	Varint uint64
}

// Each calls fn with every field of the encoded message msg, in order,
// and stops at fn's first error. A malformed message is an error
// (protowire's), after fn had the fields before the fault.
func Each(msg []byte, fn func(Field) error) error {
	for off := 0; off < len(msg); {
		num, typ, n := protowire.ConsumeTag(msg[off:])
		if n < 0 {
			return protowire.ParseError(n)
		}
		f := Field{Num: num, Type: typ, Start: off}
		v := msg[off+n:]
		var m int
		switch typ {
		case protowire.VarintType:
			f.Varint, m = protowire.ConsumeVarint(v)
		case protowire.BytesType:
			f.Bytes, m = protowire.ConsumeBytes(v)
		default:
			m = protowire.ConsumeFieldValue(num, typ, v)
		}
		if m < 0 {
			return protowire.ParseError(m)
		}
		off += n + m
		f.End = off
		if err := fn(f); err != nil {
			return err
		}
	}
	return nil
}

// Field numbers of the messages read on the wire (cell.proto).
const (
	WatchRevision = 1 // WatchResponse
	WatchChanges  = 2
	WatchProgress = 3
	WatchCompact  = 4
	WatchFragment = 5
	WatchCell     = 6

	SnapRevision = 1 // SnapshotResponse
	SnapMachines = 2
	SnapJobs     = 3
	SnapTasks    = 4
	SnapLast     = 5
	SnapCell     = 6
	SnapTenants  = 100

	ChangeMachine = 1 // Change
	ChangeJob     = 2
	ChangeTask    = 3
	ChangeDeleted = 4
	ChangeTenant  = 100

	MachineID = 1 // Machine

	TaskJob         = 1 // Task
	TaskIndex       = 2
	TaskScheduler   = 3
	TaskState       = 5
	TaskMachine     = 6
	TaskMessage     = 11
	TaskLastMachine = 20

	CellID          = 1 // CellIdentity
	CellIncarnation = 2

	DeletionJob = 1 // Deletion
)
