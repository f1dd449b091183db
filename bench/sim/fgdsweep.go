package sim

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

// FGDSweep runs the FGD protocol for every policy and seed.
type FGDSweep struct {
	Name     string
	Policies []string
	Seeds    []uint64
	Inflate  float64
	MaxPods  int
}

// FGDSummary is one policy's allocation over the seeds, in percent.
type FGDSummary struct {
	Policy string  `json:"policy"`
	Runs   int     `json:"runs"`
	Median float64 `json:"median"`
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
	// Paper is the paper's median for the policy (its repository's
	// expected results, openb_pod_list_default, 130%), 0 if it has none.
	Paper float64 `json:"paper,omitempty"`
	// WallSeconds, CPUSeconds, DecisionMicros and DecisionCPUMicros are
	// medians over the runs.
	WallSeconds       float64 `json:"wall_seconds"`
	CPUSeconds        float64 `json:"cpu_seconds"`
	DecisionMicros    float64 `json:"decision_micros"`
	DecisionCPUMicros float64 `json:"decision_cpu_micros"`
}

// FGDSweepResult is every run and the summaries.
type FGDSweepResult struct {
	Name    string       `json:"name"`
	Runs    []*FGDResult `json:"runs"`
	Summary []FGDSummary `json:"summary"`
}

// fgdPaper is the median allocation at 130% arrived workload of the ten
// seeds (42–51) of the paper's expected results
// (experiments/analysis/expected_results/analysis_allo_discrete.csv of
// hkust-adsl/kubernetes-scheduler-simulator, openb_pod_list_default).
var fgdPaper = map[string]float64{
	"random": 87.385, "dot-product": 90.80, "gpu-packing": 92.06, "best-fit": 93.11, "fgd": 95.40,
}

// Run runs the sweep; report, if set, is told each finished run.
func (sw FGDSweep) Run(ft *FGDTrace, report func(*FGDResult)) (*FGDSweepResult, error) {
	out := &FGDSweepResult{Name: sw.Name}
	for _, p := range sw.Policies {
		for _, seed := range sw.Seeds {
			r, err := RunFGD(ft, FGDConfig{Policy: p, Seed: seed, Inflate: sw.Inflate, MaxPods: sw.MaxPods})
			if err != nil {
				return nil, err
			}
			out.Runs = append(out.Runs, r)
			if report != nil {
				report(r)
			}
		}
	}
	out.Summary = summarize(sw.Policies, out.Runs)
	return out, nil
}

func summarize(policies []string, runs []*FGDResult) []FGDSummary {
	var out []FGDSummary
	for _, p := range policies {
		var alloc, wall, cpu, dec, decCPU []float64
		for _, r := range runs {
			if r.Policy == p {
				alloc = append(alloc, 100*r.Allocation)
				wall = append(wall, r.WallSeconds)
				dec = append(dec, r.DecisionMicros)
				cpu = append(cpu, r.CPUSeconds)
				decCPU = append(decCPU, r.DecisionCPUMicros)
			}
		}
		if len(alloc) == 0 {
			continue
		}
		out = append(out, FGDSummary{Policy: p, Runs: len(alloc), Median: median(alloc), Min: slices.Min(alloc), Max: slices.Max(alloc),
			Paper: fgdPaper[p], WallSeconds: median(wall), CPUSeconds: median(cpu), DecisionMicros: median(dec), DecisionCPUMicros: median(decCPU)})
	}
	return out
}

// WriteTable prints the summary as a Markdown table.
func (r *FGDSweepResult) WriteTable(w io.Writer) {
	fmt.Fprintln(w, "| policy | runs | median allocation % | range % | paper (median) % | CPU s / run | wall s / run | CPU µs / pod | wall µs / pod |")
	fmt.Fprintln(w, "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
	for _, s := range r.Summary {
		paper := "—"
		if s.Paper > 0 {
			paper = fmt.Sprintf("%.2f", s.Paper)
		}
		fmt.Fprintf(w, "| %s | %d | %.2f | %.2f–%.2f | %s | %.1f | %.1f | %.0f | %.0f |\n", s.Policy, s.Runs, s.Median, s.Min, s.Max, paper,
			s.CPUSeconds, s.WallSeconds, s.DecisionCPUMicros, s.DecisionMicros)
	}
}

// Write writes <dir>/<name>.csv (one row per run), <name>.json and the
// chart <name>-allocation.<format> for each format; it returns the files.
func (r *FGDSweepResult) Write(dir string, formats []string) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("fgd sweep: %w", err)
	}
	base := filepath.Join(dir, r.Name)
	files := []string{base + ".csv", base + ".json"}
	if err := writeFile(files[0], r.writeCSV); err != nil {
		return nil, err
	}
	if err := writeFile(files[1], func(w io.Writer) error {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	}); err != nil {
		return nil, err
	}
	p, err := r.chart()
	if err != nil {
		return nil, err
	}
	for _, f := range formats {
		path := base + "-allocation." + f
		if err := p.Save(6*vg.Inch, 4*vg.Inch, path); err != nil {
			return nil, fmt.Errorf("chart %s: %w", path, err)
		}
		files = append(files, path)
	}
	return files, nil
}

func writeFile(path string, write func(io.Writer) error) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := write(f); err != nil {
		f.Close()
		return fmt.Errorf("%s: %w", path, err)
	}
	return f.Close()
}

func (r *FGDSweepResult) writeCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	_ = cw.Write([]string{"policy", "seed", "machines", "gpu_milli", "arrived", "placed", "failed", "arrived_gpu_milli",
		"allocated_gpu_milli", "allocation", "fragmented_gpu_milli", "idle_gpu_milli", "idle_gpu_milli_behind_cpu",
		"wall_seconds", "cpu_seconds", "decision_micros", "decision_micros_max", "decision_cpu_micros", "cut"})
	for _, x := range r.Runs {
		i := func(v int64) string { return strconv.FormatInt(v, 10) }
		f := func(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }
		_ = cw.Write([]string{x.Policy, strconv.FormatUint(x.Seed, 10), strconv.Itoa(x.Machines), i(x.GPUMilli), strconv.Itoa(x.Arrived),
			strconv.Itoa(x.Placed), strconv.Itoa(x.Failed), i(x.ArrivedGPUMilli), i(x.AllocatedGPUMilli), f(x.Allocation),
			i(x.FragmentedGPUMilli), i(x.IdleGPUMilli), i(x.IdleBehindCPU), f(x.WallSeconds), f(x.CPUSeconds), f(x.DecisionMicros), f(x.DecisionMicrosMax), f(x.DecisionCPUMicros), x.Cut})
	}
	cw.Flush()
	return cw.Error()
}

// chart draws Fig. 9a: the allocation (median over seeds) of each policy
// against the arrived GPU request, from 80% of capacity on, where the
// policies part.
func (r *FGDSweepResult) chart() (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = "GPU allocation against arrived workload (median of seeds)"
	p.X.Label.Text = "arrived GPU request, % of capacity"
	p.Y.Label.Text = "GPU allocation, %"
	p.Legend.Top, p.Legend.Left = false, false
	for k, s := range r.Summary {
		byPercent := map[int][]float64{}
		for _, run := range r.Runs {
			if run.Policy != s.Policy {
				continue
			}
			for _, c := range run.Curve {
				byPercent[c.ArrivedPercent] = append(byPercent[c.ArrivedPercent], c.AllocationPercent)
			}
		}
		var pts plotter.XYs
		for x := 80; ; x++ {
			ys, ok := byPercent[x]
			if !ok {
				if x > 200 {
					break
				}
				continue
			}
			pts = append(pts, plotter.XY{X: float64(x), Y: median(ys)})
		}
		if len(pts) == 0 {
			continue
		}
		line, err := plotter.NewLine(pts)
		if err != nil {
			return nil, err
		}
		line.Color = palette[k%len(palette)]
		line.Width = vg.Points(1.5)
		line.Dashes = [][]vg.Length{nil, {vg.Points(4), vg.Points(2)}}[k%2]
		p.Add(line)
		p.Legend.Add(s.Policy, line)
	}
	p.Add(plotter.NewGrid())
	return p, nil
}
