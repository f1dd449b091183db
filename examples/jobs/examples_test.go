// Package jobs holds the example job specs; this test parses every one of
// them with the real parser and checks what each example is meant to show.
package jobs

import (
	"path/filepath"
	"testing"

	"github.com/omegacell/omegacell/jobspec"
	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
)

func TestExamplesParse(t *testing.T) {
	files, err := filepath.Glob("*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	specs := map[string]*cellv1.JobSpec{}
	for _, f := range files {
		spec, err := jobspec.ParseFile(f)
		if err != nil {
			t.Errorf("%v", err)
			continue
		}
		specs[f] = spec
	}

	checks := map[string]func(*testing.T, *cellv1.JobSpec){
		"service.yaml": func(t *testing.T, s *cellv1.JobSpec) {
			if s.Kind != cellv1.JobKind_JOB_KIND_SERVICE || s.Scheduler != "service" || s.Count < 2 {
				t.Errorf("not a replicated service: %v", s)
			}
			if s.Task.SpreadKey != "rack" || s.Task.MaxPerMachine != 1 {
				t.Errorf("replicas are not spread over racks: %v", s.Task)
			}
		},
		"service-v2.yaml": func(t *testing.T, s *cellv1.JobSpec) {
			if s.Name != "web" || s.Update.GetMaxUnavailable().GetValue() != 1 || !s.Update.GetAutoRevert() || s.Task.ReadinessCheck == nil {
				t.Errorf("not a rolling update of web with a readiness check: %v", s)
			}
		},
		"node-exporter.yaml": func(t *testing.T, s *cellv1.JobSpec) {
			if s.Kind != cellv1.JobKind_JOB_KIND_SYSTEM || s.Scheduler != "service" || s.Labels["team"] == "" {
				t.Errorf("not a labelled system job: %v", s)
			}
		},
		"batch-array.yaml": func(t *testing.T, s *cellv1.JobSpec) {
			if s.Kind != cellv1.JobKind_JOB_KIND_BATCH || s.Count < 100 {
				t.Errorf("not a large batch array: %v", s)
			}
			if s.Task.DurationMs <= 0 || s.Task.DurationMs > 60_000 {
				t.Errorf("tasks need a short duration to finish on simulated machines, got %d ms", s.Task.DurationMs)
			}
		},
		"gpu-gang.yaml": func(t *testing.T, s *cellv1.JobSpec) {
			if !s.Gang || s.Count != 4 || s.Scheduler != "gpu" {
				t.Errorf("not a 4-task gang for the gpu scheduler: %v", s)
			}
			if s.Task.Resources.GpuMilli != 8000 {
				t.Errorf("gpu_milli = %d, want 8 GPUs", s.Task.Resources.GpuMilli)
			}
			found := false
			for _, c := range s.Task.Constraints {
				found = found || c.Key == "gpu.model" && c.Op == cellv1.ConstraintOp_CONSTRAINT_OP_IN && len(c.Values) == 1 && c.Values[0] == "H100"
			}
			if !found || s.Task.DurationMs <= 0 {
				t.Errorf("want gpu.model = H100 and a duration: %v", s.Task)
			}
		},
	}
	for name, check := range checks {
		t.Run(name, func(t *testing.T) {
			spec, ok := specs[name]
			if !ok {
				t.Fatalf("%s is missing or does not parse", name)
			}
			check(t, spec)
		})
	}
}
