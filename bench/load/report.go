package load

import (
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Report is the outcome of a run (--json writes it as is).
type Report struct {
	Workload string `json:"workload"`
	// Server is "in-process" or the external server's address.
	Server string `json:"server"`
	// Synced: the store fsynced every group commit (false only with
	// --unsafe-no-sync).
	Synced bool `json:"synced"`
	// Insecure: the parts spoke without TLS (--insecure); otherwise over
	// mutual TLS, each with its own credential.
	Insecure      bool      `json:"insecure,omitempty"`
	Machines      int       `json:"machines"`
	Schedulers    []string  `json:"schedulers"`
	SchedulersPer int       `json:"instances_per_scheduler"`
	GOMAXPROCS    int       `json:"gomaxprocs"`
	NumCPU        int       `json:"num_cpu"`
	Started       time.Time `json:"started"`
	// LoadAverage is the machine's 1-minute load average at the start and
	// the end (/proc/loadavg; 0 where unreadable): other work on a shared
	// machine takes CPU from the benchmark.
	LoadAverage  [2]float64 `json:"load_average"`
	TotalSeconds float64    `json:"total_s"`
	// Phases are the measured phases.
	Phases []PhaseReport `json:"phases"`
	// CPU covers the measured phases, first to last.
	CPU *CPUFigures `json:"cpu,omitempty"`
	// ObserverResnapshots counts how often the benchmark's own watch fell
	// behind the change log and read the cell again (its latencies then
	// count from the snapshot).
	ObserverResnapshots int64        `json:"observer_resnapshots"`
	Verification        Verification `json:"verification"`
}

// PhaseReport is one measured phase.
type PhaseReport struct {
	Name  string `json:"name"`
	Jobs  int    `json:"jobs"`
	Tasks int    `json:"tasks"`
	// TargetJobsPerS is a rate phase's arrival rate (0: burst).
	TargetJobsPerS float64 `json:"target_jobs_per_s,omitempty"`
	// Seconds runs from the first submission to the last placement.
	Seconds float64 `json:"seconds"`
	// PlacementsPerS is Tasks / Seconds: durable placements per second.
	PlacementsPerS float64 `json:"placements_per_s"`
	// Samples are placements per sampling interval (per second), as
	// scheduler_perf samples its throughput; Sampled summarises them
	// without the first.
	Samples []float64 `json:"placements_per_s_samples"`
	Sampled Summary   `json:"placements_per_s_sampled"`
	// WorstMSSamples is, per sample, the longest submit→placed latency of
	// the placements seen in it (0: none): stalls show as spikes.
	WorstMSSamples []float64 `json:"worst_submit_to_placed_ms_samples"`
	// SubmitToPlaced: submission (a rate phase: its due time) → the task
	// seen assigned on the watch. SubmitToRunning: → seen running (the
	// agent's report committed). SubmitCall: the SubmitJob round trip.
	SubmitToPlaced  Latency `json:"submit_to_placed"`
	SubmitToRunning Latency `json:"submit_to_running"`
	SubmitCall      Latency `json:"submit_call"`
	// SubmitLagMaxMS is how late a rate phase's submissions started at
	// worst.
	SubmitLagMaxMS float64            `json:"submit_lag_max_ms,omitempty"`
	Store          *StoreFigures      `json:"store,omitempty"`
	Schedulers     []SchedulerFigures `json:"schedulers"`
	// Anomalies the watch showed: tasks on a second machine, placed
	// again, or ended (lost, failed, preempted, killed).
	Moved    int      `json:"moved"`
	Replaced int      `json:"replaced"`
	Ended    int      `json:"ended"`
	Problems []string `json:"problems,omitempty"`
}

// Summary describes samples: their mean and nearest-rank percentiles.
type Summary struct {
	N       int     `json:"n"`
	Average float64 `json:"average"`
	P50     float64 `json:"p50"`
	P90     float64 `json:"p90"`
	P99     float64 `json:"p99"`
}

// summarize skips the first sample, as scheduler_perf does (it holds the
// start-up), and summarises the rest.
func summarize(samples []float64) Summary {
	if len(samples) < 2 {
		return Summary{}
	}
	s := slices.Clone(samples[1:])
	slices.Sort(s)
	var sum float64
	for _, x := range s {
		sum += x
	}
	rank := func(q float64) float64 { return s[max(int(math.Ceil(q*float64(len(s))))-1, 0)] }
	return Summary{N: len(s), Average: sum / float64(len(s)), P50: rank(0.5), P90: rank(0.9), P99: rank(0.99)}
}

// Latency summarises a latency histogram in milliseconds.
type Latency struct {
	Count int64   `json:"count"`
	P50MS float64 `json:"p50_ms"`
	P90MS float64 `json:"p90_ms"`
	P99MS float64 `json:"p99_ms"`
	MaxMS float64 `json:"max_ms"`
}

func latency(h *hdrhistogram.Histogram) Latency {
	q := func(p float64) float64 { return float64(h.ValueAtQuantile(p)) / 1000 }
	return Latency{Count: h.TotalCount(), P50MS: q(50), P90MS: q(90), P99MS: q(99), MaxMS: float64(h.Max()) / 1000}
}

func phaseReport(ph *phasePlan, t *phaseTrack, samples sampleSeries, sub *submission) *PhaseReport {
	t.mu.Lock()
	defer t.mu.Unlock()
	rep := &PhaseReport{
		Name: ph.name, Jobs: len(ph.jobs), Tasks: ph.tasks, TargetJobsPerS: ph.rate,
		Samples: samples.rate, Sampled: summarize(samples.rate), WorstMSSamples: samples.worstMS,
		SubmitToPlaced: latency(t.toPlaced), SubmitToRunning: latency(t.toRunning), SubmitCall: latency(t.submitRPC),
		SubmitLagMaxMS: float64(sub.maxLag.Load()) / 1e6,
		Moved:          t.moved, Replaced: t.replaced, Ended: t.ended, Problems: slices.Clone(t.problems),
	}
	if rep.Samples == nil {
		rep.Samples, rep.WorstMSSamples = []float64{}, []float64{}
	}
	if d := t.last.Sub(t.first); d > 0 {
		rep.Seconds = d.Seconds()
		rep.PlacementsPerS = float64(ph.tasks) / rep.Seconds
	}
	return rep
}

// loadAverage is the 1-minute load average, 0 where /proc/loadavg is
// unreadable.
func loadAverage() float64 {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	fields := strings.Fields(string(data))
	if len(fields) == 0 {
		return 0
	}
	x, _ := strconv.ParseFloat(fields[0], 64)
	return x
}

// WriteText writes the report for people.
func (rep *Report) WriteText(w io.Writer) error {
	b := &strings.Builder{}
	sync := "fsync on every group commit"
	if !rep.Synced {
		sync = "NO FSYNC (--unsafe-no-sync)"
	}
	if rep.Insecure {
		sync += ", NO TLS (--insecure)"
	}
	fmt.Fprintf(b, "workload %s: %d machines, schedulers %s; cell %s, %s; GOMAXPROCS %d of %d CPUs, load average %.2f → %.2f\n",
		rep.Workload, rep.Machines, strings.Join(rep.Schedulers, ", "), rep.Server, sync, rep.GOMAXPROCS, rep.NumCPU,
		rep.LoadAverage[0], rep.LoadAverage[1])
	for _, p := range rep.Phases {
		fmt.Fprintf(b, "\nphase %s: %d tasks in %d jobs", p.Name, p.Tasks, p.Jobs)
		if p.TargetJobsPerS > 0 {
			fmt.Fprintf(b, " at %.0f jobs/s (submissions at worst %.1f ms late)", p.TargetJobsPerS, p.SubmitLagMaxMS)
		}
		fmt.Fprintf(b, ", placed in %.2f s\n", p.Seconds)
		fmt.Fprintf(b, "  placements/s   %.0f overall", p.PlacementsPerS)
		if p.Sampled.N > 0 {
			fmt.Fprintf(b, "; sampled (first sample skipped, n=%d): average %.0f, p50 %.0f, p90 %.0f, p99 %.0f\n",
				p.Sampled.N, p.Sampled.Average, p.Sampled.P50, p.Sampled.P90, p.Sampled.P99)
		} else {
			fmt.Fprintf(b, "; too short for sampled figures (%d samples, the first skipped)\n", len(p.Samples))
		}
		writeLatency(b, "submit→placed ", p.SubmitToPlaced)
		if len(p.WorstMSSamples) > 0 {
			worst := slices.Max(p.WorstMSSamples)
			fmt.Fprintf(b, "                 worst per sample: %.1f ms at most (sample %d of %d)\n",
				worst, slices.Index(p.WorstMSSamples, worst)+1, len(p.WorstMSSamples))
		}
		writeLatency(b, "submit→running", p.SubmitToRunning)
		writeLatency(b, "SubmitJob call", p.SubmitCall)
		if s := p.Store; s != nil {
			fmt.Fprintf(b, "  store          commit p50 %.2f ms, p99 %.2f ms (%d commits); submit p99 %.2f ms; task reports %d, p99 %.2f ms\n",
				s.CommitP50MS, s.CommitP99MS, s.Commits, s.SubmitP99MS, s.TaskReports, s.TaskReportP99MS)
			fmt.Fprintf(b, "                 %d group commits (%.0f synced writes/s, mean %.2f ms, slowest ≤ %.0f ms, %.1f operations each), %.0f revisions/s\n",
				s.GroupCommits, s.GroupCommitsPerS, s.GroupCommitMS, s.GroupCommitMaxMS, s.OpsPerGroup, s.RevisionsPerS)
		} else {
			fmt.Fprintf(b, "  store          figures unavailable (external server without --server-metrics)\n")
		}
		tw := tabwriter.NewWriter(b, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "  scheduler\tpolicy\ttxns\taccepted\tconflicted\tconflict fraction\tbusyness\tdecision ms\tcommit ms (mean/p99)\tfirst attempt p99 ms\t")
		for _, s := range p.Schedulers {
			fmt.Fprintf(tw, "  %s\t%s\t%d\t%d\t%d\t%.4f\t%.2f\t%.3f\t%.2f / %.2f\t%.1f\t\n",
				s.Name, s.Policy, s.Transactions, s.Accepted, s.Conflicted, s.ConflictFraction, s.Busyness, s.DecisionMeanMS,
				s.CommitMeanMS, s.CommitP99MS, s.FirstAttemptP99MS)
		}
		tw.Flush()
		if p.Moved+p.Replaced+p.Ended > 0 {
			fmt.Fprintf(b, "  anomalies      %d moved, %d placed again, %d ended: %s\n", p.Moved, p.Replaced, p.Ended, strings.Join(p.Problems, "; "))
		}
	}
	if c := rep.CPU; c != nil {
		fmt.Fprintf(b, "\nCPU over the measured phases (one process; components by pprof label, unattributed = Go runtime and unlabelled goroutines):\n  %.1f s user + %.1f s sys in %.1f s wall = %.2f cores\n",
			c.UserSeconds, c.SysSeconds, c.WallSeconds, c.Cores)
		for _, comp := range c.Components {
			fmt.Fprintf(b, "  %-32s %7.2f s  %5.1f%%\n", comp.Name, comp.Seconds, 100*comp.Share)
		}
		if c.Note != "" {
			fmt.Fprintf(b, "  (%s)\n", c.Note)
		}
	}
	v := rep.Verification
	if v.OK {
		fmt.Fprintf(b, "\ninvariant OK at revision %d: %d machines, %d jobs, %d tasks; %d benchmark tasks placed exactly once\n",
			v.Revision, v.Machines, v.Jobs, v.Tasks, v.Checked)
	} else {
		fmt.Fprintf(b, "\nINVARIANT BROKEN at revision %d:\n  %s\n", v.Revision, strings.Join(v.Problems, "\n  "))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func writeLatency(b *strings.Builder, name string, l Latency) {
	fmt.Fprintf(b, "  %s p50 %.1f ms, p90 %.1f ms, p99 %.1f ms, max %.1f ms (n=%d)\n", name, l.P50MS, l.P90MS, l.P99MS, l.MaxMS, l.Count)
}
