package cellstate

import (
	"testing"

	"github.com/omegacell/omegacell/txn"
)

func TestVersionSlab(t *testing.T) {
	tests := []struct {
		name   string
		want   int // versions the slab is sized for
		take   int // versions taken
		chunks []int
	}{
		{"one", 1, 1, []int{1}},
		{"exact chunk", slabChunk, slabChunk, []int{slabChunk}},
		{"several chunks", 2*slabChunk + 5, 2*slabChunk + 5, []int{slabChunk, slabChunk, 5}},
		{"more than sized for", 3, 5, []int{3, 1, 1}},
		{"fewer than sized for", 5000, 10, []int{slabChunk}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newVersionSlab(tc.want)
			seen := map[*task]bool{}
			seenTxn := map[*txn.Task]bool{}
			var chunks []int
			for i := range tc.take {
				if s.pos == len(s.tasks) {
					chunks = append(chunks, 0)
				}
				nt, tt := s.next()
				chunks[len(chunks)-1]++
				if seen[nt] || seenTxn[tt] {
					t.Fatalf("version %d: storage handed out twice", i)
				}
				seen[nt], seenTxn[tt] = true, true
				if nt.modRev != 0 || nt.t != nil || tt.Key != (txn.TaskKey{}) {
					t.Fatalf("version %d: storage not zeroed", i)
				}
				nt.modRev, tt.Key.Index = uint64(i+1), uint32(i+1)
				if len(s.tasks) > slabChunk {
					t.Fatalf("chunk of %d versions; at most %d", len(s.tasks), slabChunk)
				}
			}
			// The chunks were sized for what was still expected; the
			// last may be partly used.
			for i, n := range chunks {
				if i < len(tc.chunks) && n > tc.chunks[i] {
					t.Fatalf("chunk %d holds %d versions; sized for %d", i, n, tc.chunks[i])
				}
			}
			if len(chunks) != len(tc.chunks) {
				t.Fatalf("%d chunks, want %d", len(chunks), len(tc.chunks))
			}
		})
	}
}

func TestVersionSlabUnused(t *testing.T) {
	s := newVersionSlab(4)
	a, at := s.next()
	a.message, at.Machine = "x", "m1"
	s.unused()
	b, bt := s.next()
	if a != b || at != bt {
		t.Fatal("unused storage was not handed out again")
	}
	if b.message != "" || bt.Machine != "" {
		t.Fatal("unused storage was not zeroed")
	}
	var none *versionSlab
	if nt, tt := none.next(); nt != nil || tt != nil {
		t.Fatal("a nil slab handed out storage")
	}
	none.unused() // no panic
}
