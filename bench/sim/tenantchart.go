package sim

import (
	"fmt"
	"path/filepath"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

// WriteTenantCharts draws, for a sweep whose runs sampled tenants, each
// run's tenants' dominant shares over time against their entitlements
// (<experiment>-shares-<value>.<format>, dashed lines: weight / Σ
// weights) and Jain's index over time for every run
// (<experiment>-jain.<format>). It writes nothing for other sweeps.
func (sr *SweepResult) WriteTenantCharts(dir string, formats []string) ([]string, error) {
	var files []string
	save := func(p *plot.Plot, name string) error {
		for _, format := range formats {
			path := filepath.Join(dir, sr.Name+"-"+name+"."+format)
			if err := p.Save(5*vg.Inch, 3.4*vg.Inch, path); err != nil {
				return fmt.Errorf("chart %s: %w", path, err)
			}
			files = append(files, path)
		}
		return nil
	}
	jain := plot.New()
	jain.Title.Text = "Jain's index of weighted dominant shares"
	jain.X.Label.Text = "simulated hours"
	jain.Y.Label.Text = "index (1: every tenant at its weight)"
	jain.Y.Min, jain.Y.Max = 0, 1.05
	jain.Legend.Top = false
	jain.Add(plotter.NewGrid())
	drawn := 0
	for i, pt := range sr.Points {
		ts := pt.Result.TenantSeries
		if ts == nil || len(ts.Times) == 0 {
			continue
		}
		label := pt.XName
		if pt.Series != "" && len(sr.Points) > len(sr.valuesSeen()) {
			label = pt.Series + ", " + pt.XName
		}
		p := plot.New()
		p.Title.Text = "Dominant share per tenant, " + label
		p.X.Label.Text = "simulated hours"
		p.Y.Label.Text = "dominant share of the cell"
		p.Y.Min, p.Y.Max = 0, 1
		p.Legend.Top = true
		p.Add(plotter.NewGrid())
		for k, t := range ts.Tenants {
			c := palette[k%len(palette)]
			line, err := plotter.NewLine(hoursXY(ts.Times, t.Shares))
			if err != nil {
				return nil, err
			}
			line.Color, line.Width = c, vg.Points(1.5)
			ent, err := plotter.NewLine(plotter.XYs{{X: 0, Y: t.Entitlement}, {X: ts.Times[len(ts.Times)-1] / 3600, Y: t.Entitlement}})
			if err != nil {
				return nil, err
			}
			ent.Color, ent.Width, ent.Dashes = c, vg.Points(1), []vg.Length{vg.Points(4), vg.Points(3)}
			p.Add(line, ent)
			p.Legend.Add(fmt.Sprintf("%s (weight %d)", t.Name, t.Weight), line)
		}
		if err := save(p, "shares-"+pt.XName); err != nil {
			return nil, err
		}
		line, err := plotter.NewLine(hoursXY(ts.Times, ts.Jain))
		if err != nil {
			return nil, err
		}
		line.Color, line.Width = palette[i%len(palette)], vg.Points(1.5)
		jain.Add(line)
		jain.Legend.Add(label, line)
		drawn++
	}
	if drawn == 0 {
		return nil, nil
	}
	if err := save(jain, "jain"); err != nil {
		return nil, err
	}
	return files, nil
}

// valuesSeen is the distinct axis values of the sweep.
func (sr *SweepResult) valuesSeen() map[string]bool {
	seen := map[string]bool{}
	for _, p := range sr.Points {
		seen[p.XName] = true
	}
	return seen
}

func hoursXY(times, ys []float64) plotter.XYs {
	out := make(plotter.XYs, len(times))
	for i := range times {
		out[i] = plotter.XY{X: times[i] / 3600, Y: ys[i]}
	}
	return out
}
