package jobspec

import (
	"time"

	"github.com/omegacell/omegacell/pbconv"
	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
	"sigs.k8s.io/yaml"
)

// Marshal renders an API JobSpec as a spec document (YAML, keys in
// alphabetical order, every default written out). For a spec that Parse
// produced, Parse(Marshal(spec)) equals spec; the one difference in form is
// that gpuModel comes back as its "gpu.model = X" constraint.
func Marshal(spec *cellv1.JobSpec) ([]byte, error) {
	return yaml.Marshal(Document(spec))
}

// Document converts an API JobSpec into the document form, with amounts in
// units ("500m", "512Mi", "0.5").
func Document(spec *cellv1.JobSpec) *Spec {
	count := int64(spec.GetCount())
	retry := int64(spec.GetRetryLimit())
	s := &Spec{
		Name:       spec.GetName(),
		Tenant:     spec.GetTenant(),
		Scheduler:  spec.GetScheduler(),
		Priority:   priorityScalar(spec.GetPriority()),
		Count:      &count,
		Gang:       spec.GetGang(),
		RetryLimit: &retry,
		Labels:     spec.GetLabels(),
	}
	switch spec.GetKind() {
	case cellv1.JobKind_JOB_KIND_SERVICE:
		s.Kind = "service"
	case cellv1.JobKind_JOB_KIND_BATCH:
		s.Kind = "batch"
	case cellv1.JobKind_JOB_KIND_SYSTEM:
		s.Kind = "system"
	}
	if t := spec.GetTask(); t != nil {
		s.Task = taskDocument(t)
	}
	s.Update = updateDocument(spec.GetUpdate())
	if n := int64(spec.GetDisruption().GetMaxUnavailable()); n > 0 {
		s.Disruption = &Disruption{MaxUnavailable: &n}
	}
	return s
}

func priorityScalar(p int32) *Scalar {
	for name, band := range priorityBands {
		if band == p {
			return Str(name)
		}
	}
	return Num(int64(p))
}

func taskDocument(t *cellv1.TaskTemplate) *Task {
	out := &Task{
		Command:       t.GetCommand(),
		Args:          t.GetArgs(),
		Env:           t.GetEnv(),
		SpreadKey:     t.GetSpreadKey(),
		MaxPerMachine: int64(t.GetMaxPerMachine()),
		Resources:     &Resources{},
	}
	r := pbconv.Resources(t.GetResources())
	if r.CPUMilli != 0 {
		out.Resources.CPU = Str(FormatCPU(r.CPUMilli))
	}
	if r.MemoryBytes != 0 {
		out.Resources.Memory = Str(FormatBytes(r.MemoryBytes))
	}
	if r.DiskBytes != 0 {
		out.Resources.Disk = Str(FormatBytes(r.DiskBytes))
	}
	if r.GPUMilli != 0 {
		out.Resources.GPU = Str(FormatGPU(r.GPUMilli))
	}
	for _, c := range pbconv.Constraints(t.GetConstraints()) {
		out.Constraints = append(out.Constraints, c.String())
	}
	if ms := t.GetDurationMs(); ms != 0 {
		out.Duration = formatMillis(ms)
	}
	out.HealthCheck = healthDocument(t.GetHealthCheck())
	out.ReadinessCheck = healthDocument(t.GetReadinessCheck())
	return out
}

func healthDocument(h *cellv1.HealthCheck) *HealthCheck {
	if h == nil {
		return nil
	}
	threshold := int64(h.GetFailureThreshold())
	return &HealthCheck{
		Exec:             h.GetExec(),
		HTTPGet:          h.GetHttpGetUrl(),
		Interval:         formatMillis(h.GetIntervalMs()),
		Timeout:          formatMillis(h.GetTimeoutMs()),
		FailureThreshold: &threshold,
	}
}

func formatMillis(ms int64) string { return (time.Duration(ms) * time.Millisecond).String() }
