package cellstate

import (
	"runtime/metrics"

	"github.com/prometheus/client_golang/prometheus"
)

// liveHeapGauge exports the Go heap that the last garbage collection found
// live (runtime/metrics /gc/heap/live:bytes): unlike heap in use, it
// counts no garbage waiting for the next collection, so it shows what the
// cell holds (tests assert that it comes back after retention).
func liveHeapGauge() prometheus.GaugeFunc {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "omegacell_go_heap_live_bytes",
		Help: "Go heap bytes marked live by the last garbage collection (runtime/metrics /gc/heap/live:bytes).",
	}, func() float64 {
		s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
		metrics.Read(s)
		if s[0].Value.Kind() != metrics.KindUint64 {
			return 0
		}
		return float64(s[0].Value.Uint64())
	})
}
