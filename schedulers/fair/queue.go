package fair

import (
	"github.com/omegacell/omegacell/schedulers/policy"
	"github.com/omegacell/omegacell/txn"
)

// Bands is the number of priority bands a Queue keeps apart.
const Bands = 3

// Queue orders jobs of type J by band, then weighted DRF across tenants,
// then the caller's order within a tenant (see the package doc). The zero
// value is not usable; call [NewQueue].
type Queue[J any] struct {
	less     func(a, b J) bool
	capacity txn.Resources
	tenants  map[string]*tenant[J]
	// bands[b] holds the lanes of band b that have jobs, by lane order.
	bands [Bands]laneHeap[J]
	n     int
}

// tenant is one tenant's share and its lane in each band.
type tenant[J any] struct {
	name   string
	weight uint32
	usage  txn.Resources
	share  float64
	lanes  [Bands]*lane[J]
}

// lane is a tenant's jobs of one band.
type lane[J any] struct {
	t    *tenant[J]
	jobs policy.Heap[J]
	pos  int // index in its band's heap; -1 while empty
}

// NewQueue returns an empty queue that orders jobs of one tenant and band
// by less.
func NewQueue[J any](less func(a, b J) bool) *Queue[J] {
	q := &Queue[J]{less: less, tenants: make(map[string]*tenant[J])}
	for b := range q.bands {
		q.bands[b].less = q.laneLess
	}
	return q
}

// BandIndex maps a priority to its lane index: 0 for production (first),
// 1 for batch, 2 for best-effort.
func BandIndex(priority int32) int {
	switch txn.BandOf(priority) {
	case txn.BandProduction:
		return 0
	case txn.BandBatch:
		return 1
	}
	return 2
}

// laneLess orders the lanes of one band: lower weighted share, then the
// head job, then the tenant name.
func (q *Queue[J]) laneLess(a, b *lane[J]) bool {
	if a.t.share != b.t.share {
		return a.t.share < b.t.share
	}
	ha, hb := a.jobs.Top(), b.jobs.Top()
	if q.less(ha, hb) {
		return true
	}
	if q.less(hb, ha) {
		return false
	}
	return a.t.name < b.t.name
}

func (q *Queue[J]) tenant(name string) *tenant[J] {
	t := q.tenants[name]
	if t == nil {
		t = &tenant[J]{name: name, weight: 1}
		t.share = WeightedShare(t.usage, q.capacity, t.weight)
		q.tenants[name] = t
	}
	return t
}

// Len is the number of entries, stale ones included.
func (q *Queue[J]) Len() int { return q.n }

// Push adds job j of tenant at priority.
func (q *Queue[J]) Push(tenantName string, priority int32, j J) {
	t := q.tenant(tenantName)
	b := BandIndex(priority)
	l := t.lanes[b]
	if l == nil {
		l = &lane[J]{t: t, jobs: policy.NewHeap(q.less), pos: -1}
		t.lanes[b] = l
	}
	l.jobs.Push(j)
	q.n++
	if l.pos < 0 {
		q.bands[b].push(l)
	} else {
		q.bands[b].fix(l.pos)
	}
}

// Pop removes and returns the first job, with its tenant; false when the
// queue is empty.
func (q *Queue[J]) Pop() (J, string, bool) {
	for b := range q.bands {
		h := &q.bands[b]
		if len(h.items) == 0 {
			continue
		}
		l := h.items[0]
		j := l.jobs.Pop()
		q.n--
		if l.jobs.Len() == 0 {
			h.remove(0)
		} else {
			h.fix(0)
		}
		return j, l.t.name, true
	}
	var zero J
	return zero, "", false
}

// SetUsage records what tenant holds in the cell now.
func (q *Queue[J]) SetUsage(tenantName string, usage txn.Resources) {
	t := q.tenant(tenantName)
	t.usage = usage
	q.reshare(t)
}

// SetWeight sets a tenant's weight (0 counts as 1).
func (q *Queue[J]) SetWeight(tenantName string, weight uint32) {
	t := q.tenant(tenantName)
	t.weight = max(weight, 1)
	q.reshare(t)
}

// SetCapacity sets the cell's capacity, against which every share is
// measured, and reorders every band.
func (q *Queue[J]) SetCapacity(c txn.Resources) {
	if c == q.capacity {
		return
	}
	q.capacity = c
	for _, t := range q.tenants {
		t.share = WeightedShare(t.usage, c, t.weight)
	}
	for b := range q.bands {
		q.bands[b].init()
	}
}

// Share returns a tenant's weighted dominant share as the queue orders by.
func (q *Queue[J]) Share(tenantName string) float64 {
	if t := q.tenants[tenantName]; t != nil {
		return t.share
	}
	return 0
}

func (q *Queue[J]) reshare(t *tenant[J]) {
	s := WeightedShare(t.usage, q.capacity, t.weight)
	if s == t.share {
		return
	}
	t.share = s
	for b, l := range t.lanes {
		if l != nil && l.pos >= 0 {
			q.bands[b].fix(l.pos)
		}
	}
}

// Each calls f on every entry (stale ones included), in no particular
// order.
func (q *Queue[J]) Each(f func(J)) {
	for b := range q.bands {
		for _, l := range q.bands[b].items {
			l.jobs.Each(f)
		}
	}
}

// Forget drops a tenant that has no queued job (its usage and weight are
// forgotten too); it reports whether it did.
func (q *Queue[J]) Forget(tenantName string) bool {
	t := q.tenants[tenantName]
	if t == nil {
		return false
	}
	for _, l := range t.lanes {
		if l != nil && l.pos >= 0 {
			return false
		}
	}
	delete(q.tenants, tenantName)
	return true
}

// laneHeap is an indexed binary min-heap of lanes: each lane knows its
// position, so a lane whose key changed is fixed in O(log n).
type laneHeap[J any] struct {
	items []*lane[J]
	less  func(a, b *lane[J]) bool
}

func (h *laneHeap[J]) swap(i, j int) {
	h.items[i], h.items[j] = h.items[j], h.items[i]
	h.items[i].pos, h.items[j].pos = i, j
}

func (h *laneHeap[J]) push(l *lane[J]) {
	l.pos = len(h.items)
	h.items = append(h.items, l)
	h.up(l.pos)
}

func (h *laneHeap[J]) remove(i int) {
	last := len(h.items) - 1
	h.items[i].pos = -1
	if i != last {
		h.items[i] = h.items[last]
		h.items[i].pos = i
	}
	h.items[last] = nil
	h.items = h.items[:last]
	if i < last {
		h.fix(i)
	}
}

func (h *laneHeap[J]) fix(i int) {
	if !h.down(i) {
		h.up(i)
	}
}

func (h *laneHeap[J]) init() {
	for i := len(h.items)/2 - 1; i >= 0; i-- {
		h.down(i)
	}
}

func (h *laneHeap[J]) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !h.less(h.items[i], h.items[p]) {
			return
		}
		h.swap(i, p)
		i = p
	}
}

// down sifts item i down and reports whether it moved.
func (h *laneHeap[J]) down(i int) bool {
	start := i
	n := len(h.items)
	for {
		l := 2*i + 1
		if l >= n {
			break
		}
		c := l
		if r := l + 1; r < n && h.less(h.items[r], h.items[l]) {
			c = r
		}
		if !h.less(h.items[c], h.items[i]) {
			break
		}
		h.swap(i, c)
		i = c
	}
	return i > start
}
