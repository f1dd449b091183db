package sim

import (
	"fmt"
	"image/color"
	"math"
	"os"
	"path/filepath"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// waitFloor is where wait times are drawn on a log scale when they are
// shorter (a wait of zero cannot be drawn on one): 1 ms.
const waitFloor = 1e-3

// ChartMetrics are the metrics a sweep draws by default: waits, busyness,
// conflicts, abandoned and unscheduled jobs, and GPU allocation and
// fragmentation. A metric that is zero in every run is not drawn.
var ChartMetrics = []string{
	"wait_mean_batch", "wait_mean_service", "wait_p90_batch", "wait_p90_service", "wait_mean_gpu",
	"busyness_batch", "busyness_service", "busyness_gpu",
	"conflict_fraction_batch", "conflict_fraction_service", "conflict_fraction_gpu",
	"abandoned_batch", "abandoned_service", "abandoned_gpu", "unscheduled_batch", "unscheduled_service",
	"gpu_allocation", "gpu_stranded",
}

// WriteCharts draws the sweep's charts into dir, one per metric, as
// <experiment>-<metric>.<format> for each format (png, svg), and returns
// the files written.
func (sr *SweepResult) WriteCharts(dir string, names []string, formats []string) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("charts: %w", err)
	}
	byName := map[string]Metric{}
	for _, m := range metrics {
		byName[m.Name] = m
	}
	var files []string
	for _, name := range names {
		m, ok := byName[name]
		if !ok {
			return nil, fmt.Errorf("charts: unknown metric %q", name)
		}
		if sr.allZero(m) {
			continue
		}
		p, err := sr.chart(m)
		if err != nil {
			return nil, fmt.Errorf("chart %s: %w", name, err)
		}
		for _, format := range formats {
			path := filepath.Join(dir, sr.Name+"-"+name+"."+format)
			if err := p.Save(5*vg.Inch, 3.4*vg.Inch, path); err != nil {
				return nil, fmt.Errorf("chart %s: %w", path, err)
			}
			files = append(files, path)
		}
	}
	return files, nil
}

func (sr *SweepResult) allZero(m Metric) bool {
	for _, p := range sr.Points {
		if m.Value(p.Result) != 0 {
			return false
		}
	}
	return true
}

// palette is a colour-blind-safe set (Okabe and Ito).
var palette = []color.Color{
	color.RGBA{0, 114, 178, 255}, color.RGBA{213, 94, 0, 255}, color.RGBA{0, 158, 115, 255},
	color.RGBA{204, 121, 167, 255}, color.RGBA{230, 159, 0, 255}, color.RGBA{86, 180, 233, 255},
	color.RGBA{0, 0, 0, 255}, color.RGBA{240, 228, 66, 255},
}

func (sr *SweepResult) chart(m Metric) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = m.Title
	p.X.Label.Text = string(sr.Axis)
	p.Y.Label.Text = m.Unit
	p.Legend.Top = true
	p.Legend.Left = true
	p.Add(plotter.NewGrid())

	// Waits span orders of magnitude: a log scale, except for bars, which
	// start at zero.
	logY := strings.HasPrefix(m.Name, "wait_") && !sr.Axis.Categorical()
	var order []string
	bySeries := map[string]plotter.XYs{}
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, pt := range sr.Points {
		if _, ok := bySeries[pt.Series]; !ok {
			order = append(order, pt.Series)
		}
		y := m.Value(pt.Result)
		if logY {
			y = math.Max(y, waitFloor)
		}
		lo, hi = math.Min(lo, y), math.Max(hi, y)
		bySeries[pt.Series] = append(bySeries[pt.Series], plotter.XY{X: pt.X, Y: y})
	}
	// The y range, set once the plotters are added (adding widens it to
	// their data), leaves the top third of the chart to the legend.
	defer func() {
		if logY {
			p.Y.Scale = plot.LogScale{}
			p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
			p.Y.Label.Text += " (log scale)"
			p.Y.Min = lo / 2
			p.Y.Max = hi * math.Pow(hi/p.Y.Min, 0.5)
		} else {
			p.Y.Min = math.Min(lo, 0)
			p.Y.Max = hi + 0.5*(hi-p.Y.Min)
		}
	}()

	if sr.Axis.Categorical() {
		return p, sr.bars(p, order, bySeries)
	}
	if sr.Axis.LogScale() && sr.minX() > 0 {
		p.X.Scale = plot.LogScale{}
		p.X.Tick.Marker = plot.LogTicks{Prec: -1}
		p.X.Label.Text += " (seconds, log scale)"
	}
	for i, name := range order {
		line, points, err := plotter.NewLinePoints(bySeries[name])
		if err != nil {
			return nil, err
		}
		c := palette[i%len(palette)]
		line.Color = c
		line.Width = vg.Points(1.5)
		line.Dashes = [][]vg.Length{{}, {vg.Points(6), vg.Points(3)}, {vg.Points(2), vg.Points(2)}}[i/len(palette)%3]
		points.Color = c
		points.Shape = []draw.GlyphDrawer{draw.CircleGlyph{}, draw.SquareGlyph{}, draw.TriangleGlyph{}, draw.CrossGlyph{}}[i%4]
		p.Add(line, points)
		p.Legend.Add(name, line, points)
	}
	return p, nil
}

// bars draws a categorical axis as groups of bars, one bar per series.
func (sr *SweepResult) bars(p *plot.Plot, order []string, bySeries map[string]plotter.XYs) error {
	var names []string
	seen := map[float64]bool{}
	for _, pt := range sr.Points {
		if !seen[pt.X] {
			seen[pt.X] = true
			names = append(names, pt.XName)
		}
	}
	width := vg.Points(min(40, 240/float64(max(1, len(order)*len(names)))))
	for i, name := range order {
		vals := make(plotter.Values, len(names))
		for _, xy := range bySeries[name] {
			vals[int(xy.X)] = xy.Y
		}
		b, err := plotter.NewBarChart(vals, width)
		if err != nil {
			return err
		}
		b.Color = palette[i%len(palette)]
		b.LineStyle.Width = 0
		b.Offset = width * vg.Length(float64(i)-float64(len(order)-1)/2)
		p.Add(b)
		p.Legend.Add(name, b)
	}
	p.NominalX(names...)
	return nil
}

func (sr *SweepResult) minX() float64 {
	x := math.Inf(1)
	for _, p := range sr.Points {
		x = math.Min(x, p.X)
	}
	return x
}
