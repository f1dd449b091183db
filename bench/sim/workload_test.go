package sim

import (
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
)

func TestDistSampleMeans(t *testing.T) {
	for _, tc := range []struct {
		name string
		d    Dist
		mean float64 // expected mean
	}{
		{"constant", Dist{Kind: "constant", Value: 3}, 3},
		{"uniform", Dist{Kind: "uniform", Min: 2, Max: 6}, 4},
		{"exponential", Dist{Kind: "exponential", Mean: 5}, 5},
		{"lognormal", Dist{Kind: "lognormal", Median: 10, Sigma: 0.5}, 10 * math.Exp(0.125)},
		{"pareto", Dist{Kind: "pareto", Min: 1, Alpha: 3}, 1.5},
		{"bounded pareto", Dist{Kind: "pareto", Min: 1, Alpha: 1, Max: 100}, math.Log(100) * 100 / 99},
		{"choice", Dist{Kind: "choice", Values: []float64{1, 10}, Weights: []float64{3, 1}}, 3.25},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.d.Validate(); err != nil {
				t.Fatal(err)
			}
			r := rand.New(rand.NewPCG(3, 4))
			const n = 100000
			var sum float64
			for range n {
				x := tc.d.Sample(r)
				if x < 0 || (tc.d.Max > 0 && x > tc.d.Max) || x < tc.d.Min {
					t.Fatalf("sample %v outside [%v, %v]", x, tc.d.Min, tc.d.Max)
				}
				sum += x
			}
			if got := sum / n; math.Abs(got-tc.mean) > 0.03*tc.mean {
				t.Errorf("sample mean %.4f, want %.4f within 3%%", got, tc.mean)
			}
			if got := tc.d.ExpectedValue(); math.Abs(got-tc.mean) > 0.03*tc.mean {
				t.Errorf("ExpectedValue() = %.4f, want %.4f within 3%%", got, tc.mean)
			}
		})
	}
}

func TestDistValidateNamesTheField(t *testing.T) {
	for _, tc := range []struct {
		d    Dist
		want string
	}{
		{Dist{}, "dist: missing"},
		{Dist{Kind: "gamma"}, `unknown distribution "gamma"`},
		{Dist{Kind: "exponential"}, "mean:"},
		{Dist{Kind: "lognormal", Median: 1}, "sigma:"},
		{Dist{Kind: "pareto", Alpha: 1}, "min:"},
		{Dist{Kind: "uniform", Min: 5, Max: 1}, "min, max:"},
		{Dist{Kind: "choice"}, "values:"},
		{Dist{Kind: "choice", Values: []float64{1}, Weights: []float64{1, 2}}, "weights:"},
		{Dist{Kind: "exponential", Mean: 1, Min: 5, Max: 2}, "min, max:"},
	} {
		err := tc.d.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Validate(%+v) = %v, want an error containing %q", tc.d, err, tc.want)
		}
	}
}

func TestParseWorkloadNamesTheField(t *testing.T) {
	const good = `
name: w
machines: [{count: 2, cpu_milli: 4000, memory_mib: 8192}]
job_types:
  - name: batch
    scheduler: batch
    interarrival_seconds: {dist: exponential, mean: 10}
    tasks_per_job: {dist: constant, value: 2}
    duration_seconds: {dist: constant, value: 60}
    cpu_milli: {dist: constant, value: 500}
    memory_mib: {dist: constant, value: 512}
`
	if _, err := ParseWorkload([]byte(good), "good.yaml"); err != nil {
		t.Fatalf("valid workload: %v", err)
	}
	for _, tc := range []struct {
		edit func(string) string
		want string
	}{
		{func(s string) string { return strings.Replace(s, "name: w\n", "", 1) }, "bad.yaml: name: missing"},
		{func(s string) string { return strings.Replace(s, "count: 2", "count: 0", 1) }, "machines[0].count: 0 must be positive"},
		{func(s string) string { return strings.Replace(s, "cpu_milli: 4000", "cpu_milli: -1", 1) }, "machines[0]: capacity.cpu_milli"},
		{func(s string) string { return strings.Replace(s, "scheduler: batch", "scheduler: fast", 1) }, `job_types[0] (batch): scheduler: "fast"`},
		{func(s string) string { return strings.Replace(s, "mean: 10", "mean: -10", 1) }, "job_types[0] (batch): interarrival_seconds.mean:"},
		{func(s string) string {
			return strings.Replace(s, "dist: constant, value: 60", "dist: lognormal, median: 60", 1)
		}, "duration_seconds.sigma:"},
		{func(s string) string { return s + "prefill: {cpu_fraction: 1.5}\n" }, "prefill.cpu_fraction:"},
		{func(s string) string { return s + "prefill: {cpu_fraction: 0.5, job_type: web}\n" }, `prefill.job_type: "web"`},
		{func(s string) string { return s + "colour: blue\n" }, `unknown field "colour"`},
	} {
		_, err := ParseWorkload([]byte(tc.edit(good)), "bad.yaml")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseWorkload() = %v, want an error containing %q", err, tc.want)
		}
	}
}

func TestBuiltinWorkloadsLoad(t *testing.T) {
	names := BuiltinWorkloads()
	want := []string{"cluster-a", "cluster-b", "cluster-c", "fairness", "gpu-cluster"}
	if !equalSlices(names, want) {
		t.Fatalf("BuiltinWorkloads() = %v, want %v", names, want)
	}
	for _, n := range names {
		w, err := LoadWorkload(n)
		if err != nil {
			t.Errorf("%s: %v", n, err)
			continue
		}
		var total float64
		for _, l := range w.OfferedLoad() {
			total += l
		}
		switch {
		case len(w.Tenants) > 0:
			// A fairness cell is saturated on purpose: every tenant offers
			// more than its share.
			if total < 1.5 {
				t.Errorf("%s offers %.2f of its CPU; its tenants should saturate it", n, total)
			}
		case total < 0.3 || total > 0.8:
			t.Errorf("%s offers %.2f of its CPU; the built-in cells should be loaded like the paper's (60%%-ish)", n, total)
		}
	}
	if _, err := LoadWorkload("no-such-workload"); err == nil || !strings.Contains(err.Error(), "cluster-c") {
		t.Errorf("LoadWorkload(unknown) = %v, want an error listing the built-in workloads", err)
	}
}

// The prefill requests the configured share of the cell's CPU, and the
// job stream is the same for every architecture and independent per type.
func TestSyntheticStream(t *testing.T) {
	w := smallWorkload(t)
	s := NewSynthetic(w, 5, 3600)
	var prefill float64
	var arrivals []string
	last := 0.0
	for it, ok := s.Next(); ok; it, ok = s.Next() {
		if it.Job.Prefill {
			prefill += float64(it.Job.Tasks) * float64(it.Job.Resources.CPUMilli)
			continue
		}
		if it.At < last || it.At >= 3600 {
			t.Fatalf("arrival at %v after %v or past the horizon", it.At, last)
		}
		last = it.At
		arrivals = append(arrivals, it.Job.ID)
	}
	capCPU := float64(w.TotalCapacity().CPUMilli)
	if f := prefill / capCPU; math.Abs(f-w.Prefill.CPUFraction) > 0.01 {
		t.Errorf("prefill requests %.3f of the CPU, want %.2f", f, w.Prefill.CPUFraction)
	}

	// Halving the service rate leaves the batch jobs exactly as they were.
	w2 := smallWorkload(t)
	for i := range w2.JobTypes {
		if w2.JobTypes[i].Name == "service" {
			w2.JobTypes[i].InterarrivalSeconds.Mean *= 2
		}
	}
	batchOf := func(src *Synthetic) []string {
		var out []string
		for it, ok := src.Next(); ok; it, ok = src.Next() {
			if !it.Job.Prefill && it.Job.Type == "batch" {
				out = append(out, it.Job.ID+"@"+strconv.FormatFloat(it.At, 'g', -1, 64))
			}
		}
		return out
	}
	a, b := batchOf(NewSynthetic(w, 5, 3600)), batchOf(NewSynthetic(w2, 5, 3600))
	if len(a) == 0 || !equalSlices(a, b) {
		t.Errorf("batch arrivals changed when only the service rate did (%d vs %d jobs)", len(a), len(b))
	}
}
