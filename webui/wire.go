package webui

import (
	"context"
	"errors"
	"fmt"
	"unicode/utf8"

	"google.golang.org/grpc"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
	"github.com/omegacell/omegacell/proto/wirefmt"
)

// The hub reads its Snapshot and Watch streams on the wire format. Decoded
// by gRPC, every task change would be a cellv1.Task and its strings (about
// four small objects, garbage at once, of which the hub keeps four
// fields); a million tasks passing through the cell made millions of them,
// and the Go runtime never returns the span metadata of such a peak (issue
// 11: the server's RSS once the tasks are gone). Here a frame stays in
// gRPC's pooled receive buffer, tasks are read field by field without
// being decoded (job_id, index, state, machine_id), and only machines,
// jobs and deletions, which are few, are decoded into their messages.
//
// What the proto path checked is checked here: the cell identity of every
// frame, compaction, fragments (a revision's frames are applied as they
// come and the hub's revision advances at its last one; a frame of
// another revision in between is an error), malformed frames (an error,
// with nothing of the frame applied), invalid UTF-8 in the strings read.
// Nested messages of a task that the hub skips are not checked.

// wireCodec is the codec of the hub's own calls. It is named "proto" (the
// content-subtype the server serves): requests are marshalled as protos,
// responses are not decoded but kept in a *frame.
type wireCodec struct{}

func (wireCodec) Name() string { return "proto" }

func (wireCodec) Marshal(v any) (mem.BufferSlice, error) {
	m, ok := v.(proto.Message)
	if !ok {
		return nil, fmt.Errorf("web view: marshal %T: not a proto message", v)
	}
	b, err := proto.Marshal(m)
	if err != nil {
		return nil, err
	}
	return mem.BufferSlice{mem.SliceBuffer(b)}, nil
}

func (wireCodec) Unmarshal(data mem.BufferSlice, v any) error {
	f, ok := v.(*frame)
	if !ok {
		return fmt.Errorf("web view: unmarshal into %T: want a frame", v)
	}
	f.release()
	// One buffer (a small message) is kept by reference; several are
	// joined into one from gRPC's pool. Either goes back at release.
	f.buf = data.MaterializeToBuffer(mem.DefaultBufferPool())
	return nil
}

// frame is one response as received, valid until release.
type frame struct{ buf mem.Buffer }

func (f *frame) bytes() []byte {
	if f.buf == nil {
		return nil
	}
	return f.buf.ReadOnlyData()
}

func (f *frame) release() {
	if f.buf != nil {
		f.buf.Free()
		f.buf = nil
	}
}

// openStream starts a server-streaming call of the StateService on the
// hub's connection (its credentials and call options) with the wire codec.
func (h *hub) openStream(ctx context.Context, method string, req proto.Message) (grpc.ClientStream, error) {
	s, err := h.conn.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true}, method, grpc.ForceCodecV2(wireCodec{}))
	if err != nil {
		return nil, err
	}
	if err := s.SendMsg(req); err != nil {
		return nil, err
	}
	if err := s.CloseSend(); err != nil {
		return nil, err
	}
	return s, nil
}

// eachField calls fn with every field of an encoded message (see
// wirefmt.Each): x is a varint's value, v a length-delimited field's bytes
// (within b).
func eachField(b []byte, fn func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error) error {
	return wirefmt.Each(b, func(f wirefmt.Field) error { return fn(f.Num, f.Type, f.Bytes, f.Varint) })
}

var errUTF8 = errors.New("string field contains invalid UTF-8")

func checkUTF8(field string, v []byte) error {
	if !utf8.Valid(v) {
		return fmt.Errorf("%s: %w", field, errUTF8)
	}
	return nil
}

// cellWire is a CellIdentity as it lies in a response (set: the field
// was there).
type cellWire struct {
	id  []byte
	inc uint64
	set bool
}

// merge reads one occurrence of the identity field (several merge, as in
// proto).
func (c *cellWire) merge(b []byte) error {
	c.set = true
	return eachField(b, func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error {
		switch {
		case num == wirefmt.CellID && typ == protowire.BytesType:
			c.id = v
			return checkUTF8("cell.id", v)
		case num == wirefmt.CellIncarnation && typ == protowire.VarintType:
			c.inc = x
		}
		return nil
	})
}

// same is cellclient.SameCell on the wire: an identity without an id
// (a server that predates them) matches anything.
func (c *cellWire) same(to *cellv1.CellIdentity) bool {
	if to.GetId() == "" || len(c.id) == 0 {
		return true
	}
	return to.GetId() == string(c.id) && to.GetIncarnation() == c.inc
}

func (c *cellWire) identity() *cellv1.CellIdentity {
	if !c.set {
		return nil
	}
	return &cellv1.CellIdentity{Id: string(c.id), Incarnation: c.inc}
}

// taskWire is what the hub reads of a Task: its bytes point into the
// frame.
type taskWire struct {
	job, machine []byte
	index        uint32
	state        cellv1.TaskState
}

// merge reads one encoding of a task (later fields win, as in proto).
func (t *taskWire) merge(b []byte) error {
	return eachField(b, func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error {
		if typ == protowire.VarintType {
			switch num {
			case wirefmt.TaskIndex:
				t.index = uint32(x)
			case wirefmt.TaskState:
				t.state = cellv1.TaskState(int32(x))
			}
			return nil
		}
		if typ != protowire.BytesType {
			return nil
		}
		switch num {
		case wirefmt.TaskJob:
			t.job = v
			return checkUTF8("task.job_id", v)
		case wirefmt.TaskMachine:
			t.machine = v
			return checkUTF8("task.machine_id", v)
		case wirefmt.TaskScheduler, wirefmt.TaskMessage, wirefmt.TaskLastMachine:
			return checkUTF8("task string", v)
		}
		return nil
	})
}

// change is one Change of a watch frame: the field of its oneof that
// holds (kind, 0 when none) and its encoding; more are further encodings
// of the same field merged into it (the cell never sends them).
type change struct {
	kind protowire.Number
	body []byte
	more [][]byte
}

func (c change) task() (taskWire, error) {
	var t taskWire
	if err := t.merge(c.body); err != nil {
		return t, err
	}
	for _, b := range c.more {
		if err := t.merge(b); err != nil {
			return t, err
		}
	}
	return t, nil
}

// decode decodes a machine, job or deletion into m.
func (c change) decode(m proto.Message) error {
	if err := proto.Unmarshal(c.body, m); err != nil {
		return err
	}
	for _, b := range c.more {
		if err := (proto.UnmarshalOptions{Merge: true}).Unmarshal(b, m); err != nil {
			return err
		}
	}
	return nil
}

// deletedJob is a Deletion's job id ("" for none).
func (c change) deletedJob() (string, error) {
	var id []byte
	parse := func(b []byte) error {
		return eachField(b, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
			if num == wirefmt.DeletionJob && typ == protowire.BytesType {
				id = v
				return checkUTF8("deleted.job_id", v)
			}
			return nil
		})
	}
	if err := parse(c.body); err != nil {
		return "", err
	}
	for _, b := range c.more {
		if err := parse(b); err != nil {
			return "", err
		}
	}
	return string(id), nil
}

// eachChange calls fn with every change of an encoded WatchResponse, in
// order.
func eachChange(b []byte, fn func(change) error) error {
	return eachField(b, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		if num != wirefmt.WatchChanges || typ != protowire.BytesType {
			return nil
		}
		var c change
		err := eachField(v, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
			switch num {
			case wirefmt.ChangeMachine, wirefmt.ChangeJob, wirefmt.ChangeTask, wirefmt.ChangeDeleted, wirefmt.ChangeTenant:
				if typ != protowire.BytesType {
					return nil // an unknown field, as for proto
				}
				if num == c.kind {
					c.more = append(c.more, v)
				} else {
					c.kind, c.body, c.more = num, v, nil
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		return fn(c)
	})
}

// watchHead is a WatchResponse but its changes.
type watchHead struct {
	rev, compact       uint64
	progress, fragment bool
	cell               cellWire
}

func (w *watchHead) parse(b []byte) error {
	return eachField(b, func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error {
		switch {
		case typ == protowire.VarintType && num == wirefmt.WatchRevision:
			w.rev = x
		case typ == protowire.VarintType && num == wirefmt.WatchProgress:
			w.progress = x != 0
		case typ == protowire.VarintType && num == wirefmt.WatchCompact:
			w.compact = x
		case typ == protowire.VarintType && num == wirefmt.WatchFragment:
			w.fragment = x != 0
		case typ == protowire.BytesType && num == wirefmt.WatchCell:
			return w.cell.merge(v)
		}
		return nil
	})
}
