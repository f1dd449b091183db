package load

import (
	"bytes"
	"context"
	"math"
	"runtime/pprof"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

func TestSummarize(t *testing.T) {
	tests := []struct {
		samples []float64
		want    Summary
	}{
		{nil, Summary{}},
		{[]float64{100}, Summary{}},
		// The first sample (start-up) is skipped; nearest rank of the rest.
		{[]float64{1, 10, 30, 20, 40}, Summary{N: 4, Average: 25, P50: 20, P90: 40, P99: 40}},
		{[]float64{0, 5, 5}, Summary{N: 2, Average: 5, P50: 5, P90: 5, P99: 5}},
	}
	for _, tt := range tests {
		if got := summarize(tt.samples); got != tt.want {
			t.Errorf("summarize(%v) = %+v, want %+v", tt.samples, got, tt.want)
		}
	}
}

func TestHistogramFigures(t *testing.T) {
	reg := prometheus.NewRegistry()
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "lat_seconds", Buckets: []float64{0.001, 0.002, 0.004}}, []string{"op"})
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "claims_total"}, []string{"scheduler", "outcome"})
	reg.MustRegister(h, c)
	g := func(context.Context) ([]*dto.MetricFamily, error) { return reg.Gather() }
	before, err := gather(context.Background(), g)
	if err != nil {
		t.Fatal(err)
	}
	h.WithLabelValues("other").Observe(0.003) // another op: not counted
	for range 50 {
		h.WithLabelValues("commit").Observe(0.0005)
	}
	for range 50 {
		h.WithLabelValues("commit").Observe(0.0015)
	}
	c.WithLabelValues("a", "accepted").Add(90)
	c.WithLabelValues("a", "insufficient_cpu").Add(6)
	c.WithLabelValues("a", "seq_changed").Add(4)
	c.WithLabelValues("b", "accepted").Add(1000)
	after, err := gather(context.Background(), g)
	if err != nil {
		t.Fatal(err)
	}
	d := after.histogram("lat_seconds", map[string]string{"op": "commit"}).minus(before.histogram("lat_seconds", map[string]string{"op": "commit"}))
	if d.count != 100 {
		t.Fatalf("count = %d", d.count)
	}
	// Half the samples in (0, 1 ms], half in (1, 2 ms]: the median is the
	// top of the first bucket, p99 interpolates to 0.98 of the second.
	if q := d.quantile(0.5); math.Abs(q-0.001) > 1e-12 {
		t.Errorf("p50 = %v", q)
	}
	if q := d.quantile(0.99); math.Abs(q-0.00198) > 1e-12 {
		t.Errorf("p99 = %v", q)
	}
	if top := d.top(); top != 0.002 {
		t.Errorf("top = %v, want the bound of the highest non-empty bucket", top)
	}
	if m := d.mean(); math.Abs(m-0.001) > 1e-12 {
		t.Errorf("mean = %v", m)
	}
	if q := (histogram{}).quantile(0.5); !math.IsNaN(q) {
		t.Errorf("empty quantile = %v", q)
	}
	a := map[string]string{"scheduler": "a"}
	if got := after.sum("claims_total", a, "", ""); got != 100 {
		t.Errorf("claims of a = %v", got)
	}
	if got := after.sum("claims_total", a, "outcome", "accepted"); got != 10 {
		t.Errorf("conflicted claims of a = %v", got)
	}
}

func TestProfileByLabel(t *testing.T) {
	var buf bytes.Buffer
	if err := pprof.StartCPUProfile(&buf); err != nil {
		t.Skipf("CPU profile busy: %v", err)
	}
	// burn spins until the process has used d of CPU (not of wall time:
	// on a loaded machine 300 ms of wall time may hold a few ms of CPU).
	burn := func(d time.Duration) {
		start := processCPU(t)
		x := 0
		for processCPU(t)-start < d {
			for i := 0; i < 1_000_000; i++ {
				x++
			}
		}
		_ = x
	}
	done := make(chan struct{})
	withComponent(context.Background(), "burner", func(context.Context) {
		go func() { // inherits the label
			burn(300 * time.Millisecond)
			close(done)
		}()
	})
	<-done
	pprof.StopCPUProfile()
	got, err := profileByLabel(buf.Bytes(), componentLabel)
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, ns := range got {
		total += ns
	}
	// 300 ms of busy loop is ~30 samples even on a loaded machine; nearly
	// all of them carry the label.
	if got["burner"] < 50*int64(time.Millisecond) || float64(got["burner"]) < 0.8*float64(total) {
		t.Errorf("CPU by component = %v", got)
	}
	if _, err := profileByLabel([]byte("not gzip"), componentLabel); err == nil {
		t.Error("a corrupt profile was read")
	}
}

// processCPU is the CPU time (user + system) this process has used.
func processCPU(t *testing.T) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatalf("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
