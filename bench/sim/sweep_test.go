package sim

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/omegacell/omegacell/txn"
)

func tinySweep() Sweep {
	base := DefaultConfig()
	base.Horizon = 1800
	base.Placement = PlacementFirstFit
	return Sweep{
		Name: "tiny", Workload: "testdata/small.yaml", Base: base,
		Axis: AxisTJobService, Values: []string{"0.1", "10"},
		Archs:     []Arch{MonolithicMulti, SharedState},
		Conflicts: []txn.ConflictMode{txn.ConflictFine},
	}
}

func TestSweepRunsEverySeriesAtEveryValue(t *testing.T) {
	sw := tinySweep()
	var last, total float64
	res, err := sw.Run(smallWorkload(t), func(done, all float64) {
		if done < last {
			t.Errorf("progress went back from %v to %v", last, done)
		}
		last, total = done, all
	})
	if err != nil {
		t.Fatal(err)
	}
	if total != 4*1800 {
		t.Errorf("progress total %v, want %v", total, 4*1800)
	}
	var got []string
	for _, p := range res.Points {
		got = append(got, p.Series+"@"+p.XName+":"+p.Result.Arch+":"+formatTiming(p.Result.Timing[KindService].JobSeconds))
	}
	want := []string{
		"monolithic-multi@0.1:monolithic-multi:0.1", "monolithic-multi@10:monolithic-multi:10",
		"shared-state@0.1:shared-state:0.1", "shared-state@10:shared-state:10",
	}
	if !equalSlices(got, want) {
		t.Errorf("points %v, want %v", got, want)
	}

	var buf bytes.Buffer
	if err := res.WriteCSV(&buf); err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(&buf).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 5 || len(rows[0]) != len(csvHeader)+len(Metrics()) {
		t.Fatalf("csv has %d rows of %d columns, want 5 of %d", len(rows), len(rows[0]), len(csvHeader)+len(Metrics()))
	}
	col := map[string]int{}
	for i, h := range rows[0] {
		col[h] = i
	}
	if rows[3][col["series"]] != "shared-state" || rows[3][col["t_job_service"]] != "0.1" || rows[3][col["submitted_batch"]] == "0" {
		t.Errorf("row 3 = %v", rows[3])
	}

	buf.Reset()
	if err := res.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	var back SweepResult
	if err := json.Unmarshal(buf.Bytes(), &back); err != nil || len(back.Points) != 4 || back.Points[2].Result.Arch != "shared-state" {
		t.Errorf("JSON round trip: %v, %+v", err, back)
	}

	dir := t.TempDir()
	files, err := res.WriteCharts(dir, []string{"wait_mean_batch", "busyness_service", "gpu_stranded"}, []string{"png", "svg"})
	if err != nil {
		t.Fatal(err)
	}
	// gpu_stranded is zero everywhere (no GPUs): not drawn.
	wantFiles := []string{"tiny-wait_mean_batch.png", "tiny-wait_mean_batch.svg", "tiny-busyness_service.png", "tiny-busyness_service.svg"}
	for i, f := range files {
		if filepath.Base(f) != wantFiles[i] {
			t.Errorf("chart %d is %s, want %s", i, filepath.Base(f), wantFiles[i])
		}
		if st, err := os.Stat(f); err != nil || st.Size() < 1000 {
			t.Errorf("chart %s: %v, %v bytes", f, err, st)
		}
	}
	if len(files) != len(wantFiles) {
		t.Errorf("charts %v, want %v", files, wantFiles)
	}
}

func formatTiming(x float64) string {
	b, _ := json.Marshal(x)
	return string(b)
}

func TestSweepValidate(t *testing.T) {
	for _, tc := range []struct {
		edit func(*Sweep)
		want string
	}{
		{func(s *Sweep) { s.Axis = "colour" }, `axis "colour"`},
		{func(s *Sweep) { s.Values = nil }, "no values"},
		{func(s *Sweep) { s.Values = []string{"fast"} }, `value "fast" is not a non-negative number`},
		{func(s *Sweep) { s.Axis, s.Values = AxisBatchSchedulers, []string{"1.5"} }, "not a positive whole number"},
		{func(s *Sweep) { s.Axis, s.Values = AxisConflict, []string{"medium"} }, `conflict mode "medium"`},
		{func(s *Sweep) { s.Axis, s.Archs, s.Values = AxisPlacement, []Arch{TwoLevel}, []string{"policies"} }, "a two-level offer is not one"},
	} {
		sw := tinySweep()
		tc.edit(&sw)
		err := sw.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Validate() = %v, want an error containing %q", err, tc.want)
		}
	}
}

// Every preset experiment is a valid sweep on a built-in workload.
func TestExperimentsAreValid(t *testing.T) {
	for name, sw := range Experiments() {
		if sw.Name != name {
			t.Errorf("experiment %q is named %q", name, sw.Name)
		}
		if err := sw.Validate(); err != nil {
			t.Errorf("experiment %s: %v", name, err)
		}
		if _, err := LoadWorkload(sw.Workload); err != nil {
			t.Errorf("experiment %s: %v", name, err)
		}
	}
}
