package webui

import (
	"sync"
	"time"

	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
)

// Time series of the last minutes, kept in rings: placements per second
// (counted from the watch), commit latency (from the store's histogram)
// and each scheduler's figures (from ListSchedulers).
const (
	placeSeconds = 300 // placements: one slot a second
	sampleEvery  = 2 * time.Second
	samples      = 150 // 5 minutes of samples
	maxScheds    = 64  // schedulers charted at most
)

type series struct {
	mu        sync.Mutex
	placeAt   [placeSeconds]int64 // unix second of each slot
	placeN    [placeSeconds]int32
	lat       []point // mean commit latency (ms) per sample
	latSum    float64
	latCount  uint64
	scheds    map[string][]schedPoint
	schedLast map[string]*cellv1.SchedulerInfo
}

type point struct {
	T int64   `json:"t"` // unix ms
	V float64 `json:"v"`
}

type schedPoint struct {
	T         int64   `json:"t"`
	Busy      float64 `json:"busy"`
	Conflict  float64 `json:"conflict"`
	Queue     uint32  `json:"queue"`   // queued tasks (reported)
	Pending   uint32  `json:"pending"` // pending tasks (counted by the store)
	DecideMs  float64 `json:"decideMs"`
	Txns      uint64  `json:"txns"`
	Accepted  uint64  `json:"accepted"`
	Conflicts uint64  `json:"conflicted"`
}

func newSeries() *series {
	return &series{scheds: map[string][]schedPoint{}, schedLast: map[string]*cellv1.SchedulerInfo{}}
}

func (s *series) placed(now time.Time, n int) {
	if n == 0 {
		return
	}
	sec := now.Unix()
	i := sec % placeSeconds
	s.mu.Lock()
	if s.placeAt[i] != sec {
		s.placeAt[i], s.placeN[i] = sec, 0
	}
	s.placeN[i] += int32(n)
	s.mu.Unlock()
}

// placements is the last minutes' placements per second, oldest first.
func (s *series) placements(now time.Time) []point {
	s.mu.Lock()
	defer s.mu.Unlock()
	end := now.Unix() - 1 // the current second is not over
	out := make([]point, 0, placeSeconds-1)
	for sec := end - placeSeconds + 2; sec <= end; sec++ {
		i := sec % placeSeconds
		v := 0.0
		if s.placeAt[i] == sec {
			v = float64(s.placeN[i])
		}
		out = append(out, point{T: sec * 1000, V: v})
	}
	return out
}

func ring[T any](r []T, v T, n int) []T {
	if len(r) >= n {
		r = append(r[:0:0], r[len(r)-n+1:]...)
	}
	return append(r, v)
}

// commitLatency records the mean latency of the commits since the last
// sample (no commits: no point, rather than a misleading zero).
func (s *series) commitLatency(now time.Time, sum float64, count uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if count > s.latCount && s.latCount > 0 {
		ms := (sum - s.latSum) / float64(count-s.latCount) * 1000
		s.lat = ring(s.lat, point{T: now.UnixMilli(), V: ms}, samples)
	}
	s.latSum, s.latCount = sum, count
}

func (s *series) latency() []point {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]point(nil), s.lat...)
}

// schedulers records one ListSchedulers answer. Decision time per
// transaction is derived: busyness is the fraction of the last minute
// spent deciding, so busyness × the sample interval ÷ the transactions in
// it approximates the mean time one decision took.
func (s *series) schedulers(now time.Time, list []*cellv1.SchedulerInfo) {
	s.mu.Lock()
	defer s.mu.Unlock()
	seen := map[string]bool{}
	for _, in := range list {
		if len(seen) >= maxScheds {
			break
		}
		seen[in.Name] = true
		st := in.GetStats()
		p := schedPoint{T: now.UnixMilli(), Busy: st.GetBusyness(), Conflict: st.GetConflictFraction(), Queue: st.GetQueuedTasks(),
			Pending: in.PendingTasks, Txns: st.GetTransactions(), Accepted: in.ClaimsAccepted, Conflicts: in.ClaimsConflicted}
		if prev := s.schedLast[in.Name]; prev != nil {
			if dt := st.GetTransactions() - prev.GetStats().GetTransactions(); dt > 0 && st.GetTransactions() >= prev.GetStats().GetTransactions() {
				p.DecideMs = st.GetBusyness() * float64(sampleEvery.Milliseconds()) / float64(dt)
			}
		}
		s.schedLast[in.Name] = in
		s.scheds[in.Name] = ring(s.scheds[in.Name], p, samples)
	}
	for name := range s.scheds {
		if !seen[name] {
			delete(s.scheds, name)
			delete(s.schedLast, name)
		}
	}
}

func (s *series) schedulerHistory() map[string][]schedPoint {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string][]schedPoint, len(s.scheds))
	for k, v := range s.scheds {
		out[k] = append([]schedPoint(nil), v...)
	}
	return out
}
