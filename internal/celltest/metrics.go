package celltest

import (
	"testing"

	dto "github.com/prometheus/client_model/go"
)

// Metric sums the samples of the server's metric name (counters and
// gauges) and counts its series.
func (c *Cell) Metric(t testing.TB, name string) (sum float64, series int) {
	t.Helper()
	mfs, err := c.Server.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			series++
			sum += sampleValue(m)
		}
	}
	return sum, series
}

func sampleValue(m *dto.Metric) float64 {
	switch {
	case m.GetCounter() != nil:
		return m.GetCounter().GetValue()
	case m.GetGauge() != nil:
		return m.GetGauge().GetValue()
	}
	return 0
}
