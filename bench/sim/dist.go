package sim

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// Dist is a probability distribution of one workload parameter, as written
// in a workload file. Kind selects the family and which other fields apply:
//
//	constant     value
//	uniform      min, max
//	exponential  mean                      (optionally clipped by min, max)
//	lognormal    median, sigma             (optionally clipped by min, max)
//	pareto       min (the scale), alpha    (optionally bounded by max)
//	choice       values, weights (weights optional: equally likely)
//
// Lognormal and Pareto are the heavy-tailed families the Omega paper's
// workloads call for: a few huge jobs and many small ones.
type Dist struct {
	Kind    string    `json:"dist"`
	Value   float64   `json:"value,omitempty"`
	Mean    float64   `json:"mean,omitempty"`
	Median  float64   `json:"median,omitempty"`
	Sigma   float64   `json:"sigma,omitempty"`
	Alpha   float64   `json:"alpha,omitempty"`
	Min     float64   `json:"min,omitempty"`
	Max     float64   `json:"max,omitempty"`
	Values  []float64 `json:"values,omitempty"`
	Weights []float64 `json:"weights,omitempty"`
}

// Constant is a distribution that always yields v.
func Constant(v float64) Dist { return Dist{Kind: "constant", Value: v} }

// Validate checks that the fields the kind needs are present and sensible.
// The error names the field, relative to the distribution.
func (d Dist) Validate() error {
	switch d.Kind {
	case "constant":
		if d.Value < 0 || math.IsNaN(d.Value) || math.IsInf(d.Value, 0) {
			return fmt.Errorf("value: %v must be a finite non-negative number", d.Value)
		}
		return nil
	case "uniform":
		if d.Min < 0 || d.Max < d.Min {
			return fmt.Errorf("min, max: need 0 <= min <= max, got %v, %v", d.Min, d.Max)
		}
		return nil
	case "exponential":
		if !(d.Mean > 0) {
			return fmt.Errorf("mean: %v must be positive", d.Mean)
		}
	case "lognormal":
		if !(d.Median > 0) {
			return fmt.Errorf("median: %v must be positive", d.Median)
		}
		if !(d.Sigma > 0) {
			return fmt.Errorf("sigma: %v must be positive", d.Sigma)
		}
	case "pareto":
		if !(d.Min > 0) {
			return fmt.Errorf("min: %v must be positive (it is the Pareto scale)", d.Min)
		}
		if !(d.Alpha > 0) {
			return fmt.Errorf("alpha: %v must be positive", d.Alpha)
		}
	case "choice":
		if len(d.Values) == 0 {
			return fmt.Errorf("values: a choice needs at least one value")
		}
		if len(d.Weights) != 0 && len(d.Weights) != len(d.Values) {
			return fmt.Errorf("weights: %d weights for %d values", len(d.Weights), len(d.Values))
		}
		var sum float64
		for i, w := range d.Weights {
			if w < 0 {
				return fmt.Errorf("weights[%d]: %v is negative", i, w)
			}
			sum += w
		}
		if len(d.Weights) != 0 && sum == 0 {
			return fmt.Errorf("weights: all zero")
		}
		for i, v := range d.Values {
			if v < 0 {
				return fmt.Errorf("values[%d]: %v is negative", i, v)
			}
		}
		return nil
	case "":
		return fmt.Errorf("dist: missing (constant, uniform, exponential, lognormal, pareto or choice)")
	default:
		return fmt.Errorf("dist: unknown distribution %q (constant, uniform, exponential, lognormal, pareto or choice)", d.Kind)
	}
	if d.Min < 0 || (d.Max != 0 && d.Max < d.Min) {
		return fmt.Errorf("min, max: need 0 <= min <= max (max 0 means unbounded), got %v, %v", d.Min, d.Max)
	}
	return nil
}

// Sample draws one value. The distribution must be valid.
func (d Dist) Sample(r *rand.Rand) float64 {
	var x float64
	switch d.Kind {
	case "constant":
		return d.Value
	case "uniform":
		return d.Min + r.Float64()*(d.Max-d.Min)
	case "exponential":
		x = r.ExpFloat64() * d.Mean
	case "lognormal":
		x = d.Median * math.Exp(d.Sigma*r.NormFloat64())
	case "pareto":
		if d.Max > d.Min {
			// Inverse CDF of the Pareto distribution bounded to [min, max].
			u := r.Float64()
			la, ha := math.Pow(d.Min, d.Alpha), math.Pow(d.Max, d.Alpha)
			return math.Pow(-(u*ha-u*la-ha)/(ha*la), -1/d.Alpha)
		}
		// 1-U lies in (0, 1], so the power is finite.
		return d.Min / math.Pow(1-r.Float64(), 1/d.Alpha)
	case "choice":
		return d.Values[d.pick(r)]
	}
	if x < d.Min {
		x = d.Min
	}
	if d.Max > 0 && x > d.Max {
		x = d.Max
	}
	return x
}

func (d Dist) pick(r *rand.Rand) int {
	if len(d.Weights) == 0 {
		return r.IntN(len(d.Values))
	}
	var sum float64
	for _, w := range d.Weights {
		sum += w
	}
	u := r.Float64() * sum
	for i, w := range d.Weights {
		if u < w {
			return i
		}
		u -= w
	}
	return len(d.Values) - 1
}

// ExpectedValue is the mean of the distribution, numerically for the
// clipped families. Workload summaries use it to report the offered load.
func (d Dist) ExpectedValue() float64 {
	switch d.Kind {
	case "constant":
		return d.Value
	case "uniform":
		return (d.Min + d.Max) / 2
	case "choice":
		var sum, wsum float64
		for i, v := range d.Values {
			w := 1.0
			if len(d.Weights) != 0 {
				w = d.Weights[i]
			}
			sum += v * w
			wsum += w
		}
		return sum / wsum
	}
	// Mean by sampling a fixed, seeded stream: deterministic and accurate to
	// well under a percent for the summaries it feeds.
	r := rand.New(rand.NewPCG(1, 2))
	const n = 200000
	var sum float64
	for range n {
		sum += d.Sample(r)
	}
	return sum / n
}
