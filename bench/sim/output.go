package sim

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
)

// Metric is one number drawn from a run's result, per scheduler or job kind.
type Metric struct {
	Name  string // CSV column and chart file name
	Title string // chart title
	Unit  string // y axis label
	Value func(r *Result) float64
}

// The CSV columns, in order, after the run's parameters.
var metrics = func() []Metric {
	var ms []Metric
	for _, k := range []string{KindBatch, KindService, KindGPU} {
		ms = append(ms,
			Metric{"wait_mean_" + k, "Mean job wait time, " + k + " jobs", "seconds", func(r *Result) float64 { return kindOf(r, k).WaitMean }},
			Metric{"wait_p90_" + k, "90th percentile job wait time, " + k + " jobs", "seconds", func(r *Result) float64 { return kindOf(r, k).WaitP90 }},
			Metric{"busyness_" + k, "Scheduler busyness (median daily), " + k, "fraction of time", func(r *Result) float64 { return busyness(r, k) }},
			Metric{"conflict_fraction_" + k, "Conflict fraction, " + k + " scheduler", "conflicts per successful transaction", func(r *Result) float64 { return conflictFraction(r, k) }},
			Metric{"submitted_" + k, "Jobs submitted, " + k, "jobs", func(r *Result) float64 { return float64(kindOf(r, k).Submitted) }},
			Metric{"abandoned_" + k, "Jobs abandoned, " + k, "fraction of jobs", func(r *Result) float64 { return share(kindOf(r, k).Abandoned, kindOf(r, k).Submitted) }},
			Metric{"unscheduled_" + k, "Jobs not scheduled by the end, " + k, "fraction of jobs", func(r *Result) float64 { return share(kindOf(r, k).Unscheduled, kindOf(r, k).Submitted) }},
		)
	}
	return append(ms,
		Metric{"cpu_utilisation", "CPU allocated", "fraction of capacity", func(r *Result) float64 { return r.Cell.CPUUtilisation }},
		Metric{"memory_utilisation", "Memory allocated", "fraction of capacity", func(r *Result) float64 { return r.Cell.MemoryUtilisation }},
		Metric{"gpu_allocation", "GPU allocation ratio", "fraction of GPU capacity", func(r *Result) float64 { return r.Cell.GPUAllocation }},
		Metric{"gpu_stranded", "Stranded GPU (fragmentation)", "fraction of GPU capacity", func(r *Result) float64 { return r.Cell.GPUStranded }},
		Metric{"tasks_placed", "Tasks placed", "tasks", func(r *Result) float64 { return float64(r.TasksPlaced) }},
		Metric{"jain_mean", "Jain's index of tenants' weighted dominant shares (mean after warm-up)", "index (1: perfectly fair)", jainMean},
		Metric{"share_gap", "Largest gap between a tenant's dominant share and its weight's share", "fraction of the cell", shareGap},
	)
}()

// Metrics lists the per-run metrics of sweep outputs.
func Metrics() []Metric { return metrics }

func kindOf(r *Result, kind string) JobTypeStats {
	for _, k := range r.JobKinds {
		if k.Type == kind {
			return k
		}
	}
	return JobTypeStats{}
}

func share(n, of int) float64 {
	if of == 0 {
		return 0
	}
	return float64(n) / float64(of)
}

// handles reports whether scheduler s serves jobs of kind (a monolithic
// scheduler serves every kind).
func handles(s SchedulerStats, kind string) bool { return s.Kind == kind || s.Kind == "monolithic" }

// busyness is the mean busyness (median of daily values) of the schedulers
// that serve kind.
func busyness(r *Result, kind string) float64 {
	var sum float64
	n := 0
	for _, s := range r.Schedulers {
		if handles(s, kind) {
			sum += s.Busyness
			n++
		}
	}
	if n == 0 {
		return 0
	}
	return sum / float64(n)
}

// conflictFraction is conflicted per successful transaction over the
// schedulers that serve kind.
func conflictFraction(r *Result, kind string) float64 {
	var conflicted, successful int
	for _, s := range r.Schedulers {
		if handles(s, kind) {
			conflicted += s.Conflicted
			successful += s.Successful
		}
	}
	return float64(conflicted) / float64(max(1, successful))
}

var csvHeader = []string{"experiment", "workload", "series", "axis", "x", "arch", "conflict", "commit", "batch_schedulers",
	"t_job_batch", "t_task_batch", "t_job_service", "t_task_service", "seed", "horizon_seconds"}

// WriteCSV writes one row per run: its parameters, then every metric.
func (sr *SweepResult) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	header := append([]string(nil), csvHeader...)
	for _, m := range metrics {
		header = append(header, m.Name)
	}
	if err := cw.Write(header); err != nil {
		return err
	}
	f := func(x float64) string { return strconv.FormatFloat(x, 'g', 8, 64) }
	for _, p := range sr.Points {
		r := p.Result
		row := []string{sr.Name, sr.Workload, p.Series, string(sr.Axis), p.XName, r.Arch, r.Conflict, r.Commit,
			strconv.Itoa(r.BatchSchedulers),
			f(r.Timing[KindBatch].JobSeconds), f(r.Timing[KindBatch].TaskSeconds),
			f(r.Timing[KindService].JobSeconds), f(r.Timing[KindService].TaskSeconds),
			strconv.FormatUint(r.Seed, 10), f(r.HorizonSeconds)}
		for _, m := range metrics {
			row = append(row, f(m.Value(r)))
		}
		if err := cw.Write(row); err != nil {
			return err
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("writing csv: %w", err)
	}
	return nil
}

// WriteJSON writes the sweep with every run's full result.
func (sr *SweepResult) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(sr)
}
