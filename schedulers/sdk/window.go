package sdk

import "time"

// window sums a scheduler's busy time and claim outcomes over the last
// windowBuckets seconds, in one-second buckets, for the Omega figures
// that are fractions over a recent period: busyness and conflict fraction.
// It is a plain value (times are passed in), so it is tested without a
// clock.
type window struct {
	start   time.Time // when the window started counting (busyness before a full window)
	buckets [windowBuckets]bucket
}

const windowBuckets = 60

// bucket is one second of the window.
type bucket struct {
	second     int64 // Unix second the bucket holds; stale when older than the window
	busy       time.Duration
	accepted   uint64
	conflicted uint64
}

func newWindow(start time.Time) *window { return &window{start: start} }

// at returns the bucket of the second of t, emptied if it held an older
// second.
func (w *window) at(t time.Time) *bucket {
	sec := t.Unix()
	b := &w.buckets[sec%windowBuckets]
	if b.second != sec {
		*b = bucket{second: sec}
	}
	return b
}

// addBusy records busy time d ending at t.
func (w *window) addBusy(t time.Time, d time.Duration) { w.at(t).busy += d }

// addClaims records claim outcomes of a transaction answered at t.
func (w *window) addClaims(t time.Time, accepted, conflicted int) {
	b := w.at(t)
	b.accepted += uint64(accepted)
	b.conflicted += uint64(conflicted)
}

// figures returns, at now, the fraction of the window spent busy (of the
// time since start when that is shorter, clamped to [0, 1]) and the
// conflicted claims per accepted claim (per one claim when none was
// accepted, so a scheduler that only conflicts shows its conflicts).
func (w *window) figures(now time.Time) (busyness, conflictFraction float64) {
	var busy time.Duration
	var accepted, conflicted uint64
	oldest := now.Unix() - windowBuckets + 1
	for i := range w.buckets {
		b := &w.buckets[i]
		if b.second < oldest || b.second > now.Unix() {
			continue
		}
		busy += b.busy
		accepted += b.accepted
		conflicted += b.conflicted
	}
	span := min(now.Sub(w.start), windowBuckets*time.Second)
	if span > 0 {
		busyness = min(max(float64(busy)/float64(span), 0), 1)
	} else if busy > 0 {
		busyness = 1
	}
	conflictFraction = float64(conflicted) / float64(max(accepted, 1))
	return busyness, conflictFraction
}
