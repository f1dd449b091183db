package cellstate

import (
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
)

// What the web view (package webui, issue 16) reads of the server's
// memory that the store's watch does not carry: usage samples (heartbeats
// are not revisioned) and the commit latency histogram.

// EachUsage calls fn with every machine's latest usage sample (machines
// without one are skipped). fn must not keep u past the call, nor call
// back into l.
func (l *Liveness) EachUsage(fn func(machine string, u *cellv1.Usage)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for id, m := range l.machines {
		if m.usage != nil {
			fn(id, m.usage)
		}
	}
}

// CommitLatencyTotals is the sum (seconds) and count of every commit the
// store has timed, over all outcomes: the difference of two readings is
// the mean latency between them.
func (m *Metrics) CommitLatencyTotals() (sum float64, count uint64) {
	if m == nil {
		return 0, 0
	}
	ch := make(chan prometheus.Metric, 16)
	go func() { m.commitLatency.Collect(ch); close(ch) }()
	for pm := range ch {
		var d dto.Metric
		if err := pm.Write(&d); err == nil && d.Histogram != nil {
			sum += d.Histogram.GetSampleSum()
			count += d.Histogram.GetSampleCount()
		}
	}
	return sum, count
}
