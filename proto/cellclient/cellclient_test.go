package cellclient

import (
	"testing"

	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
)

func change(i uint32) *cellv1.Change {
	return &cellv1.Change{Object: &cellv1.Change_Task{Task: &cellv1.Task{JobId: "j", Index: i}}}
}

// TestAssembler: fragments of a revision come out as one response with
// every change in order; a revision that interrupts fragments is an error.
func TestAssembler(t *testing.T) {
	type in struct {
		rev      uint64
		fragment bool
		progress bool
		changes  []uint32
	}
	for _, tc := range []struct {
		name  string
		input []in
		want  [][]uint32 // changes of each whole revision returned
		err   bool
	}{
		{"whole revisions pass through", []in{{rev: 1, changes: []uint32{0}}, {rev: 2, progress: true}}, [][]uint32{{0}, nil}, false},
		{"fragments joined", []in{{rev: 5, fragment: true, changes: []uint32{0, 1}}, {rev: 5, fragment: true, changes: []uint32{2}}, {rev: 5, changes: []uint32{3}}, {rev: 6, changes: []uint32{4}}},
			[][]uint32{{0, 1, 2, 3}, {4}}, false},
		{"another revision mid-fragments", []in{{rev: 5, fragment: true, changes: []uint32{0}}, {rev: 6, changes: []uint32{1}}}, nil, true},
		{"progress mid-fragments", []in{{rev: 5, fragment: true, changes: []uint32{0}}, {rev: 5, progress: true}}, nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var a Assembler
			var got [][]uint32
			var err error
			for _, x := range tc.input {
				r := &cellv1.WatchResponse{Revision: x.rev, Fragment: x.fragment, ProgressNotify: x.progress}
				for _, i := range x.changes {
					r.Changes = append(r.Changes, change(i))
				}
				var out *cellv1.WatchResponse
				if out, err = a.Add(r); err != nil {
					break
				}
				if out != nil {
					var idx []uint32
					for _, c := range out.Changes {
						idx = append(idx, c.GetTask().Index)
					}
					got = append(got, idx)
				}
			}
			if (err != nil) != tc.err {
				t.Fatalf("error %v, want error %v", err, tc.err)
			}
			if tc.err {
				return
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			for i := range got {
				if len(got[i]) != len(tc.want[i]) {
					t.Fatalf("got %v, want %v", got, tc.want)
				}
				for j := range got[i] {
					if got[i][j] != tc.want[i][j] {
						t.Fatalf("got %v, want %v", got, tc.want)
					}
				}
			}
		})
	}
}

func TestSameCell(t *testing.T) {
	a := &cellv1.CellIdentity{Id: "3f2b9a52-6f8e-4c1e-9a63-2b0d1f6e7c10", Incarnation: 2}
	for _, tc := range []struct {
		b    *cellv1.CellIdentity
		want bool
	}{
		{&cellv1.CellIdentity{Id: a.Id, Incarnation: 2}, true},
		{&cellv1.CellIdentity{Id: a.Id, Incarnation: 3}, false},
		{&cellv1.CellIdentity{Id: "0f2b9a52-6f8e-4c1e-9a63-2b0d1f6e7c10", Incarnation: 2}, false},
		{nil, true}, // a server without identities
	} {
		if got := SameCell(a, tc.b); got != tc.want {
			t.Errorf("SameCell(%v, %v) = %v, want %v", a, tc.b, got, tc.want)
		}
	}
}
