package cellstate

import (
	"slices"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/omegacell/omegacell/cellstate/authz"
	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
)

// FuzzRedactWire: redactWire and filterWire never panic on any bytes, and
// on every input a decoder accepts as a WatchResponse they succeed and
// decode to what the decoding reference (decodedRedactedData,
// decodedFilter) makes of it. Their output never carries a job that
// authz.RedactJob would change, not even one a later object of its Change
// hides from a decoder (the wire form must not travel with it).
func FuzzRedactWire(f *testing.F) {
	for _, e := range handEntries(f) {
		f.Add(e.data)
	}
	for _, e := range cellEntries(f) {
		f.Add(e.data)
	}
	secret := &cellv1.Job{Id: "s", Spec: secretSpec("s", 1)}
	job := mustMarshal(f, secret)
	jobField := protowire.AppendBytes(protowire.AppendTag(nil, fieldChangeJob, protowire.BytesType), job)
	machine := mustMarshal(f, &cellv1.Change{Object: &cellv1.Change_Machine{Machine: &cellv1.Machine{Id: "m1"}}})
	for _, b := range [][]byte{
		nil,
		{0xff},             // a bad tag
		{0x12, 0x10, 0x0a}, // a truncated change
		rawChange([]byte{0x12, 0x02, 0xff, 0xff}),          // a bad job
		rawChange(jobField[:len(jobField)-3]),              // a truncated job
		rawChange(jobField, jobField),                      // a job twice: they merge
		rawChange(jobField, machine),                       // a job hidden by a machine
		rawChange(jobField, []byte{0x13, 0x14}),            // a job and an empty group
		rawChange([]byte{0x0a, 0x02, 0x0a, 0xff}),          // a machine id of invalid UTF-8
		rawChange([]byte{0x1a, 0x03, 0x32, 0x01, 0xc0}),    // a task's machine id of invalid UTF-8
		append(rawChange(machine), 0x13, 0x0b, 0x0c, 0x14), // a top-level group
	} {
		f.Add(b)
	}
	views := make([]string, 0, len(wireViews))
	for name := range wireViews {
		views = append(views, name)
	}
	slices.Sort(views)

	f.Fuzz(func(t *testing.T, data []byte) {
		const rev = 9
		got, rerr := redactWire(data)
		filtered := make([][]byte, len(views))
		ferrs := make([]error, len(views))
		for i, name := range views {
			filtered[i], ferrs[i] = filterWire(data, rev, wireViews[name])
		}
		if proto.Unmarshal(data, &cellv1.WatchResponse{}) != nil {
			return // not a revision: any answer but a panic will do
		}
		e := logEntry{rev: rev, data: data}
		if rerr != nil {
			t.Fatalf("redactWire: %v on a valid WatchResponse", rerr)
		}
		want, err := decodedRedactedData(e)
		if err != nil {
			t.Fatal(err)
		}
		equalDecoded(t, "redacted", got, want)
		noUnredactedJob(t, "redacted", got)
		for i, name := range views {
			if ferrs[i] != nil {
				t.Fatalf("%s: filterWire: %v on a valid WatchResponse", name, ferrs[i])
			}
			ref, err := decodedFilter(e, wireViews[name])
			if err != nil {
				t.Fatal(err)
			}
			if (ref == nil) != (filtered[i] == nil) {
				t.Fatalf("%s: reference kept %v, wire form %x", name, ref, filtered[i])
			}
			if ref != nil {
				equalDecoded(t, name, filtered[i], mustMarshal(t, ref))
			}
			noUnredactedJob(t, name, filtered[i])
		}
	})
}

// noUnredactedJob fails when any job field of any change of the encoded
// WatchResponse b (one a decoder keeps or one it drops for a later object)
// holds a job authz.RedactJob would change.
func noUnredactedJob(t *testing.T, what string, b []byte) {
	t.Helper()
	err := eachChange(b, func(w wireChange) error {
		for off := 0; off < len(w.body); {
			num, typ, n := protowire.ConsumeTag(w.body[off:])
			if n < 0 {
				return protowire.ParseError(n)
			}
			m := protowire.ConsumeFieldValue(num, typ, w.body[off+n:])
			if m < 0 {
				return protowire.ParseError(m)
			}
			if num == fieldChangeJob && typ == protowire.BytesType {
				v, _ := protowire.ConsumeBytes(w.body[off+n:])
				j := &cellv1.Job{}
				if err := proto.Unmarshal(v, j); err != nil {
					return err
				}
				if authz.RedactJob(j) != j {
					t.Fatalf("%s: a job travels unredacted: %v", what, j)
				}
			}
			off += n + m
		}
		return nil
	})
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}
