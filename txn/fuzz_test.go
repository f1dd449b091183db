package txn_test

import (
	"math/rand/v2"
	"strings"
	"testing"
)

// byteChooser makes a workload's choices from fuzz input: one byte per
// choice, 0 once the input is used up.
type byteChooser struct{ data []byte }

func (b *byteChooser) IntN(n int) int {
	if len(b.data) == 0 {
		return 0
	}
	v := int(b.data[0])
	b.data = b.data[1:]
	return v % n
}

// FuzzValidate decodes its input into a small cell (1-3 machines with 0-3
// GPUs, a few jobs) and a short history of transactions, transitions,
// machine changes and submissions, and checks after every step that
// nothing panicked, each decision is consistent with the cell it was
// validated on, and the cell invariant holds.
func FuzzValidate(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{2, 1, 2, 0, 3, 7, 7, 7, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte(strings.Repeat("\x01\x02\x03\x05\x08\x0d\x15\x22\x37\x59", 12)))
	for seed := range uint64(4) {
		rng := rand.New(rand.NewPCG(seed, 0xfeed))
		in := make([]byte, 64+rng.IntN(400))
		for i := range in {
			in[i] = byte(rng.Uint32())
		}
		f.Add(in)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		src := &byteChooser{data: in}
		w := newWorkload(src)
		for range 1 + w.pick(3) {
			w.addMachine(3)
		}
		for range 1 + w.pick(3) {
			w.submit(4)
		}
		w.refreshView()
		for step := 0; step < 16 && len(src.data) > 0; step++ {
			var bad []string
			switch w.pick(6) {
			case 0, 1, 2:
				bad = w.commit(w.transaction(6))
			case 3:
				bad = w.transitions(3)
			case 4:
				w.changeMachine()
			case 5:
				w.submit(4)
				w.refreshView()
			}
			bad = append(bad, checkInvariant(w.c)...)
			bad = append(bad, checkMaxPerMachine(w.c)...)
			bad = append(bad, checkCellInvariant(w.c)...)
			if len(bad) > 0 {
				t.Fatalf("step %d:\n%s", step, strings.Join(bad, "\n"))
			}
		}
	})
}
