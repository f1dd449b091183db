package cellstate

import (
	"bytes"
	"errors"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/omegacell/omegacell/cellstate/authz"
	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
	"github.com/omegacell/omegacell/proto/wirefmt"
)

// A revision read back from Pebble has no change set: what a watcher gets
// of it is made on the wire format. Only the few job changes are decoded
// (to redact them); machines and tasks are copied as bytes, or peeked at
// for the machine they concern. Decoding a whole revision (100,000 tasks
// of a large submission) into protobuf objects per watcher was most of a
// catching-up watcher's memory, and its garbage a lasting part of the
// server's RSS (the runtime keeps span metadata sized by the peak).

// wireChange is one encoded Change of an encoded WatchResponse.
type wireChange struct {
	start, end int    // the whole field (tag, length, Change) in the response
	body       []byte // the encoded Change
}

// eachChange calls fn for every changes field of an encoded WatchResponse,
// in order; other fields are skipped.
func eachChange(data []byte, fn func(wireChange) error) error {
	return wirefmt.Each(data, func(f wirefmt.Field) error {
		if f.Num != fieldWatchChanges || f.Type != protowire.BytesType {
			return nil // of another wire type, an unknown field to a decoder
		}
		return fn(wireChange{start: f.Start, end: f.End, body: f.Bytes})
	})
}

// changeObject peeks at an encoded Change: the field number and bytes of
// its object when it has exactly one field, a message (every Change the
// store writes). ok is false otherwise; the caller then decodes it.
func changeObject(ch []byte) (num protowire.Number, obj []byte, ok bool) {
	num, typ, n := protowire.ConsumeTag(ch)
	if n < 0 || typ != protowire.BytesType {
		return 0, nil, false
	}
	obj, m := protowire.ConsumeBytes(ch[n:])
	if m < 0 || n+m != len(ch) {
		return 0, nil, false
	}
	return num, obj, true
}

// errFound stops a walk that found what it looked for.
var errFound = errors.New("found")

// hasField reports whether an encoded message has a field numbered f of
// wire type typ (of another, it is an unknown field to a decoder).
func hasField(msg []byte, f protowire.Number, typ protowire.Type) (bool, error) {
	err := wirefmt.Each(msg, func(g wirefmt.Field) error {
		if g.Num == f && g.Type == typ {
			return errFound
		}
		return nil
	})
	if err == errFound {
		return true, nil
	}
	return false, err
}

// lastBytes returns the last value of the length-delimited fields a and b
// of an encoded message (the one a decoder keeps for a string field).
func lastBytes(msg []byte, a, b protowire.Number) (va, vb []byte, err error) {
	err = wirefmt.Each(msg, func(f wirefmt.Field) error {
		switch {
		case f.Type != protowire.BytesType:
		case f.Num == a:
			va = f.Bytes
		case f.Num == b:
			vb = f.Bytes
		}
		return nil
	})
	return va, vb, err
}

// appendChangeField appends c as a WatchResponse changes field.
func appendChangeField(buf []byte, c *cellv1.Change) ([]byte, error) {
	buf = protowire.AppendTag(buf, fieldWatchChanges, protowire.BytesType)
	buf = protowire.AppendVarint(buf, uint64(marshal.Size(c)))
	return marshal.MarshalAppend(buf, c)
}

// redactWire returns an encoded WatchResponse with every job through
// authz.RedactJob: data itself (not a copy) when no job changes, else a
// copy in which only the redacted job changes are encoded again.
func redactWire(data []byte) ([]byte, error) {
	var out []byte // nil until a job is redacted
	done := 0      // data[:done] is in out
	err := eachChange(data, func(w wireChange) error {
		if ok, err := hasField(w.body, fieldChangeJob, protowire.BytesType); err != nil || !ok {
			return err
		}
		// A job change: decode this one Change, as a client would.
		c := &cellv1.Change{}
		if err := proto.Unmarshal(w.body, c); err != nil {
			return err
		}
		_, _, single := changeObject(w.body)
		if j := c.GetJob(); j != nil {
			r := authz.RedactJob(j)
			if r == j && single {
				return nil
			}
			c.Object = &cellv1.Change_Job{Job: r}
		}
		// Else the job was overridden by a later object of the Change
		// (the store writes no such Change): encoded again, it no
		// longer carries the job's bytes.
		if out == nil {
			out = make([]byte, 0, len(data))
		}
		out = append(out, data[done:w.start]...)
		var err error
		out, err = appendChangeField(out, c)
		done = w.end
		return err
	})
	if err != nil || out == nil {
		return data, err
	}
	return append(out, data[done:]...), nil
}

// filterWire returns the encoded WatchResponse of revision rev holding the
// changes of data that view v selects (nil when none): machines v
// matches, tasks on or last on a machine it matches (as bytes), and, when
// v.jobs, every job redacted. Tenants and deletions are not an agent's.
func filterWire(data []byte, rev uint64, v watchView) ([]byte, error) {
	var out []byte
	begin := func() { // the response starts with its revision
		if out == nil {
			out = protowire.AppendTag(out, fieldWatchRevision, protowire.VarintType)
			out = protowire.AppendVarint(out, rev)
		}
	}
	// Consecutive task changes mostly name the same machines: remember
	// the last answer rather than make a string of each to match.
	var lastID []byte
	var lastOK, seen bool
	match := func(id []byte) bool {
		if !seen || !bytes.Equal(id, lastID) {
			lastID, lastOK, seen = id, v.match(string(id)), true
		}
		return lastOK
	}
	err := eachChange(data, func(w wireChange) error {
		num, obj, ok := changeObject(w.body)
		if !ok {
			c, err := filterDecoded(w.body, v)
			if err != nil || c == nil {
				return err
			}
			begin()
			out, err = appendChangeField(out, c)
			return err
		}
		switch num {
		case fieldChangeMachine:
			id, _, err := lastBytes(obj, wirefmt.MachineID, wirefmt.MachineID)
			if err != nil || !match(id) {
				return err
			}
		case fieldChangeTask:
			m, last, err := lastBytes(obj, wirefmt.TaskMachine, wirefmt.TaskLastMachine)
			if err != nil || !((len(m) > 0 && match(m)) || (len(last) > 0 && match(last))) {
				return err
			}
		case fieldChangeJob:
			if !v.jobs {
				return nil
			}
			j := &cellv1.Job{}
			if err := proto.Unmarshal(obj, j); err != nil {
				return err
			}
			begin()
			var err error
			out, err = appendChangeField(out, &cellv1.Change{Object: &cellv1.Change_Job{Job: authz.RedactJob(j)}})
			return err
		default:
			return nil
		}
		begin()
		out = append(out, data[w.start:w.end]...)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// filterDecoded decides on a Change of unusual shape (several fields, as
// the store writes none) by decoding it, and returns what to send of it
// (nil: nothing). It is sent encoded again, never as its bytes: an object
// it overrides (a job's secrets) must not travel with it.
func filterDecoded(body []byte, v watchView) (*cellv1.Change, error) {
	c := &cellv1.Change{}
	if err := proto.Unmarshal(body, c); err != nil {
		return nil, err
	}
	t := c.GetTask()
	switch {
	case c.GetMachine() != nil && v.match(c.GetMachine().GetId()):
		return c, nil
	case t != nil && ((t.MachineId != "" && v.match(t.MachineId)) || (t.LastMachineId != "" && v.match(t.LastMachineId))):
		return c, nil
	case c.GetJob() != nil && v.jobs:
		return &cellv1.Change{Object: &cellv1.Change_Job{Job: authz.RedactJob(c.GetJob())}}, nil
	}
	return nil, nil
}
