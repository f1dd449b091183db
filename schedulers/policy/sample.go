package policy

import (
	"cmp"
	"fmt"
	"math/bits"
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/omegacell/omegacell/txn"
)

// Permutation visits 0..n-1 in a random order, each once, in O(1) memory:
// position i is (start + i*stride) mod n with stride coprime to n. It is
// the sampling order of relaxed randomization; it costs two random numbers
// however large the cell is.
type Permutation struct {
	n, stride, pos, left int
}

// NewPermutation draws a random order of 0..n-1.
func NewPermutation(n int, rng *rand.Rand) Permutation {
	if n <= 0 {
		return Permutation{}
	}
	stride := 1
	if n > 2 {
		for {
			stride = 1 + rng.IntN(n-1)
			if gcd(stride, n) == 1 {
				break
			}
		}
	}
	return Permutation{n: n, stride: stride, pos: rng.IntN(n), left: n}
}

// Next returns the next index, or false once all n were visited.
func (p *Permutation) Next() (int, bool) {
	if p.left == 0 {
		return 0, false
	}
	i := p.pos
	p.left--
	p.pos += p.stride
	if p.pos >= p.n {
		p.pos -= p.n
	}
	return i, true
}

// Left is how many indexes are still to visit.
func (p *Permutation) Left() int { return p.left }

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// Heap is a binary min-heap ordered by less.
type Heap[T any] struct {
	items []T
	less  func(a, b T) bool
}

// NewHeap returns an empty heap ordered by less.
func NewHeap[T any](less func(a, b T) bool) Heap[T] { return Heap[T]{less: less} }

func (h *Heap[T]) Len() int { return len(h.items) }

// Each calls f on every item, in no particular order.
func (h *Heap[T]) Each(f func(T)) {
	for _, x := range h.items {
		f(x)
	}
}

// Top is the least item; the heap must not be empty.
func (h *Heap[T]) Top() T { return h.items[0] }

// Push adds an item.
func (h *Heap[T]) Push(x T) {
	h.items = append(h.items, x)
	h.up(len(h.items) - 1)
}

// Pop removes and returns the least item; the heap must not be empty.
func (h *Heap[T]) Pop() T {
	top := h.items[0]
	last := len(h.items) - 1
	h.items[0] = h.items[last]
	h.items = h.items[:last]
	if last > 0 {
		h.down(0)
	}
	return top
}

// FixTop restores order after the least item was replaced by x.
func (h *Heap[T]) FixTop(x T) {
	h.items[0] = x
	h.down(0)
}

func (h *Heap[T]) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !h.less(h.items[i], h.items[p]) {
			return
		}
		h.items[i], h.items[p] = h.items[p], h.items[i]
		i = p
	}
}

func (h *Heap[T]) down(i int) {
	n := len(h.items)
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		c := l
		if r := l + 1; r < n && h.less(h.items[r], h.items[l]) {
			c = r
		}
		if !h.less(h.items[c], h.items[i]) {
			return
		}
		h.items[i], h.items[c] = h.items[c], h.items[i]
		i = c
	}
}

// Reasons counts why examined machines could not take (more of) a task,
// for the unplaced reason a user reads.
type Reasons struct {
	counts   [32]int
	examined int
}

// Add counts one examined machine refused for reason r.
func (r *Reasons) Add(reason txn.Reason) {
	r.examined++
	if int(reason) < len(r.counts) {
		r.counts[reason]++
	}
}

// Merge adds o's counts.
func (r *Reasons) Merge(o *Reasons) {
	r.examined += o.examined
	for i, n := range o.counts {
		r.counts[i] += n
	}
}

// Examined is how many refusals were counted.
func (r *Reasons) Examined() int { return r.examined }

// String says how many machines refused and why, most frequent first:
// "no machine fits (of 120 examined: insufficient_cpu 100, constraint_violated 20)".
func (r *Reasons) String() string {
	if r.examined == 0 {
		return "no machine fits (no candidate machine)"
	}
	type kv struct {
		reason txn.Reason
		n      int
	}
	var all []kv
	for i, n := range r.counts {
		if n > 0 {
			all = append(all, kv{txn.Reason(i), n})
		}
	}
	slices.SortFunc(all, func(a, b kv) int { return cmp.Or(cmp.Compare(b.n, a.n), cmp.Compare(a.reason, b.reason)) })
	var b strings.Builder
	fmt.Fprintf(&b, "no machine fits (of %d examined:", r.examined)
	for i, x := range all {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, " %s %d", x.reason, x.n)
	}
	b.WriteByte(')')
	return b.String()
}

// FractionScale is the fixed-point unit of [Fraction]: 1<<20 is 100%.
const FractionScale = 1 << 20

// Fraction is part/whole in units of 1/FractionScale, exact integer
// arithmetic (so scores are the same on every platform), clamped to
// [0, FractionScale]; 0 when whole is not positive.
func Fraction(part, whole int64) int64 {
	if whole <= 0 || part <= 0 {
		return 0
	}
	if part >= whole {
		return FractionScale
	}
	if part < 1<<(63-20) {
		return part * FractionScale / whole
	}
	hi, lo := bits.Mul64(uint64(part), FractionScale)
	q, _ := bits.Div64(hi, lo, uint64(whole))
	return int64(q)
}
