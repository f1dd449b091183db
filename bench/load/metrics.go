package load

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
)

// gatherer reads Prometheus metrics: a registry in this process, or a
// server's /metrics page.
type gatherer func(ctx context.Context) ([]*dto.MetricFamily, error)

// scrape reads a /metrics page (--server-metrics).
func scrape(url string) gatherer {
	return func(ctx context.Context) ([]*dto.MetricFamily, error) {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return nil, fmt.Errorf("--server-metrics %s: %w", url, err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, fmt.Errorf("--server-metrics %s: %w", url, err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("--server-metrics %s: %s", url, resp.Status)
		}
		dec := expfmt.NewDecoder(resp.Body, expfmt.ResponseFormat(resp.Header))
		var out []*dto.MetricFamily
		for {
			mf := &dto.MetricFamily{}
			if err := dec.Decode(mf); errors.Is(err, io.EOF) {
				return out, nil
			} else if err != nil {
				return nil, fmt.Errorf("--server-metrics %s: %w", url, err)
			}
			out = append(out, mf)
		}
	}
}

// metricSet is one gathering, by metric name.
type metricSet map[string]*dto.MetricFamily

func gather(ctx context.Context, g gatherer) (metricSet, error) {
	if g == nil {
		return nil, nil
	}
	mfs, err := g(ctx)
	if err != nil {
		return nil, err
	}
	s := make(metricSet, len(mfs))
	for _, mf := range mfs {
		s[mf.GetName()] = mf
	}
	return s, nil
}

// matches: every label in want has that value on m.
func matches(m *dto.Metric, want map[string]string) bool {
	n := 0
	for _, l := range m.GetLabel() {
		if v, ok := want[l.GetName()]; ok {
			if l.GetValue() != v {
				return false
			}
			n++
		}
	}
	return n == len(want)
}

// sum adds the counters (or gauges) of name whose labels match want, and
// whose label except (if set) does not have the value exceptValue.
func (s metricSet) sum(name string, want map[string]string, except, exceptValue string) float64 {
	var total float64
	for _, m := range s[name].GetMetric() {
		if !matches(m, want) {
			continue
		}
		if except != "" && matches(m, map[string]string{except: exceptValue}) {
			continue
		}
		total += m.GetCounter().GetValue() + m.GetGauge().GetValue()
	}
	return total
}

// histogram is a Prometheus histogram: cumulative counts per upper bound.
type histogram struct {
	bounds []float64
	counts []uint64
	count  uint64
	sum    float64
}

// histogram merges the series of name whose labels match want.
func (s metricSet) histogram(name string, want map[string]string) histogram {
	var h histogram
	for _, m := range s[name].GetMetric() {
		if !matches(m, want) || m.GetHistogram() == nil {
			continue
		}
		mh := m.GetHistogram()
		if h.bounds == nil {
			for _, b := range mh.GetBucket() {
				h.bounds = append(h.bounds, b.GetUpperBound())
			}
			h.counts = make([]uint64, len(h.bounds))
		}
		for i, b := range mh.GetBucket() {
			if i < len(h.counts) {
				h.counts[i] += b.GetCumulativeCount()
			}
		}
		h.count += mh.GetSampleCount()
		h.sum += mh.GetSampleSum()
	}
	return h
}

// minus is what was recorded between before and h.
func (h histogram) minus(before histogram) histogram {
	out := histogram{bounds: h.bounds, counts: make([]uint64, len(h.counts)), count: h.count - before.count, sum: h.sum - before.sum}
	for i := range h.counts {
		out.counts[i] = h.counts[i]
		if i < len(before.counts) {
			out.counts[i] -= before.counts[i]
		}
	}
	return out
}

// quantile estimates quantile q by linear interpolation within the bucket
// that holds it, as Prometheus' histogram_quantile does; NaN when empty.
// A quantile in the +Inf bucket is the largest finite bound.
func (h histogram) quantile(q float64) float64 {
	if h.count == 0 || len(h.bounds) == 0 {
		return math.NaN()
	}
	rank := q * float64(h.count)
	lower, below := 0.0, uint64(0)
	for i, c := range h.counts {
		if float64(c) >= rank {
			upper := h.bounds[i]
			if math.IsInf(upper, 1) {
				return lower
			}
			inBucket := c - below
			if inBucket == 0 {
				return upper
			}
			return lower + (upper-lower)*(rank-float64(below))/float64(inBucket)
		}
		lower, below = h.bounds[i], c
	}
	return lower
}

// top is the upper bound of the highest non-empty bucket (the largest
// finite bound when it is +Inf); NaN when empty.
func (h histogram) top() float64 {
	for i := len(h.counts) - 1; i >= 0; i-- {
		below := uint64(0)
		if i > 0 {
			below = h.counts[i-1]
		}
		if h.counts[i] > below {
			if math.IsInf(h.bounds[i], 1) && i > 0 {
				return h.bounds[i-1]
			}
			return h.bounds[i]
		}
	}
	if h.count > h.counts[len(h.counts)-1] && len(h.bounds) > 0 {
		return h.bounds[len(h.bounds)-1] // beyond the last bucket (Prometheus' +Inf)
	}
	return math.NaN()
}

func (h histogram) mean() float64 {
	if h.count == 0 {
		return math.NaN()
	}
	return h.sum / float64(h.count)
}

// StoreFigures are the store's own figures over a phase (from its
// Prometheus metrics; absent for an external server without
// --server-metrics).
type StoreFigures struct {
	// Commit latency: a Commit queued → durable and answered (op=commit
	// of omegacell_store_commit_latency_seconds).
	Commits     uint64  `json:"commits"`
	CommitP50MS float64 `json:"commit_p50_ms"`
	CommitP99MS float64 `json:"commit_p99_ms"`
	// The same for job submissions and agents' task reports.
	SubmitP99MS      float64 `json:"submit_p99_ms"`
	TaskReports      uint64  `json:"task_reports"`
	TaskReportP99MS  float64 `json:"task_report_p99_ms"`
	GroupCommits     uint64  `json:"group_commits"`
	GroupCommitsPerS float64 `json:"group_commits_per_s"` // synced Pebble writes per second
	GroupCommitMS    float64 `json:"group_commit_mean_ms"`
	// GroupCommitMaxMS is the upper bound of the slowest group commit's
	// bucket: a stall of the commit loop shows here.
	GroupCommitMaxMS float64 `json:"group_commit_max_ms"`
	OpsPerGroup      float64 `json:"ops_per_group_commit"`
	RevisionsPerS    float64 `json:"revisions_per_s"`
}

func storeFigures(before, after metricSet, wall time.Duration) *StoreFigures {
	if before == nil || after == nil {
		return nil
	}
	latency := func(op string) histogram {
		h := "omegacell_store_commit_latency_seconds"
		return after.histogram(h, map[string]string{"op": op}).minus(before.histogram(h, map[string]string{"op": op}))
	}
	commit, submit, reports := latency("commit"), latency("submit_job"), latency("task_updates")
	rounds := after.histogram("omegacell_store_group_commit_seconds", nil).minus(before.histogram("omegacell_store_group_commit_seconds", nil))
	ops := after.histogram("omegacell_store_group_commit_operations", nil).minus(before.histogram("omegacell_store_group_commit_operations", nil))
	revs := after.histogram("omegacell_store_group_commit_revisions", nil).minus(before.histogram("omegacell_store_group_commit_revisions", nil))
	return &StoreFigures{
		Commits: commit.count, CommitP50MS: ms(commit.quantile(0.5)), CommitP99MS: ms(commit.quantile(0.99)),
		SubmitP99MS: ms(submit.quantile(0.99)), TaskReports: reports.count, TaskReportP99MS: ms(reports.quantile(0.99)),
		GroupCommits: rounds.count, GroupCommitsPerS: float64(rounds.count) / wall.Seconds(),
		GroupCommitMS: ms(rounds.mean()), GroupCommitMaxMS: ms(rounds.top()), OpsPerGroup: finite(ops.mean()), RevisionsPerS: revs.sum / wall.Seconds(),
	}
}

// SchedulerFigures are one scheduler instance's figures over a phase,
// from its own metrics (the schedulers run in this process).
type SchedulerFigures struct {
	Name         string `json:"name"`
	Policy       string `json:"policy"`
	Transactions uint64 `json:"transactions"`
	Accepted     uint64 `json:"claims_accepted"`
	Conflicted   uint64 `json:"claims_conflicted"`
	// ConflictFraction is Omega's: conflicted claims per accepted claim.
	ConflictFraction float64 `json:"conflict_fraction"`
	// Busyness is the fraction of the phase spent deciding and committing.
	Busyness       float64 `json:"busyness"`
	DecisionMeanMS float64 `json:"decision_mean_ms"`
	CommitMeanMS   float64 `json:"commit_mean_ms"`
	CommitP99MS    float64 `json:"commit_p99_ms"`
	// FirstAttemptP99MS is Omega's job wait time at p99: submission (the
	// store's clock) to the scheduler's first attempt, i.e. the time to
	// learn of the job through the watch and reach it in the queue.
	// Estimated within the scheduler's histogram buckets, which are a
	// factor 4 apart: coarse.
	FirstAttemptP99MS float64 `json:"first_attempt_p99_ms"`
}

func schedulerFigures(in instance, before, after metricSet, wall time.Duration) SchedulerFigures {
	who := map[string]string{"scheduler": in.name}
	delta := func(name string, except, value string) float64 {
		return after.sum(name, who, except, value) - before.sum(name, who, except, value)
	}
	hist := func(name string) histogram {
		return after.histogram(name, who).minus(before.histogram(name, who))
	}
	// Every claim whose outcome is not "accepted" conflicted.
	conflicted := delta("omegacell_scheduler_claims_total", "outcome", "accepted")
	accepted := delta("omegacell_scheduler_claims_total", "", "") - conflicted
	f := SchedulerFigures{
		Name: in.name, Policy: in.policy,
		Transactions: uint64(delta("omegacell_scheduler_transactions_total", "", "")),
		Accepted:     uint64(accepted), Conflicted: uint64(conflicted),
		Busyness:       delta("omegacell_scheduler_busy_seconds_total", "", "") / wall.Seconds(),
		DecisionMeanMS: ms(hist("omegacell_scheduler_decision_seconds").mean()),
		CommitMeanMS:   ms(hist("omegacell_scheduler_commit_seconds").mean()),
		CommitP99MS:    ms(hist("omegacell_scheduler_commit_seconds").quantile(0.99)),
	}
	wait := map[string]string{"scheduler": in.name, "until": "first_attempt"}
	f.FirstAttemptP99MS = ms(after.histogram("omegacell_scheduler_job_wait_seconds", wait).
		minus(before.histogram("omegacell_scheduler_job_wait_seconds", wait)).quantile(0.99))
	if accepted > 0 {
		f.ConflictFraction = conflicted / accepted
	}
	return f
}

// finite turns NaN (no data) into 0, which JSON can carry.
func finite(x float64) float64 {
	if math.IsNaN(x) {
		return 0
	}
	return x
}

// ms converts seconds to milliseconds; NaN (no data) becomes 0 so that
// JSON stays valid.
func ms(seconds float64) float64 {
	if math.IsNaN(seconds) {
		return 0
	}
	return seconds * 1000
}
