package sim

// eventKind says what happens when an event fires.
type eventKind uint8

const (
	evSource     eventKind = iota + 1 // the next item of the source is due
	evDecided                         // a scheduler finished deciding (optimistic architectures)
	evTasksEnd                        // a group of tasks finishes
	evRetry                           // a job that found no room goes back to its queue
	evOfferRound                      // two-level: the allocator makes an offer
	evOfferReply                      // two-level: a framework answers its offer
	evSample                          // tenants' dominant shares are sampled
)

// event is one entry of the simulator's agenda. Which pointer is set
// depends on the kind.
type event struct {
	at    float64
	seq   uint64 // insertion order: breaks ties so runs are deterministic
	kind  eventKind
	sched *scheduler
	job   *job
	group *taskGroup
}

// agenda is a binary min-heap of events ordered by (at, seq). It is written
// out rather than built on container/heap to avoid interface calls on the
// simulator's hottest path.
type agenda struct {
	h   []event
	seq uint64
}

func (a *agenda) len() int { return len(a.h) }

func (a *agenda) push(e event) {
	a.seq++
	e.seq = a.seq
	a.h = append(a.h, e)
	i := len(a.h) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !a.less(i, p) {
			break
		}
		a.h[i], a.h[p] = a.h[p], a.h[i]
		i = p
	}
}

func (a *agenda) pop() event {
	top := a.h[0]
	last := len(a.h) - 1
	a.h[0] = a.h[last]
	a.h[last] = event{}
	a.h = a.h[:last]
	i, n := 0, last
	for {
		l := 2*i + 1
		if l >= n {
			break
		}
		c := l
		if r := l + 1; r < n && a.less(r, l) {
			c = r
		}
		if !a.less(c, i) {
			break
		}
		a.h[i], a.h[c] = a.h[c], a.h[i]
		i = c
	}
	return top
}

func (a *agenda) less(i, j int) bool {
	if a.h[i].at != a.h[j].at {
		return a.h[i].at < a.h[j].at
	}
	return a.h[i].seq < a.h[j].seq
}
