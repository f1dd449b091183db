package jobspec

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/omegacell/omegacell/pbconv"
	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
	"github.com/omegacell/omegacell/proto/limits"
	"github.com/omegacell/omegacell/txn"
)

// Limits and defaults of the spec format (doc.go lists them for users).
// Most are the API's (package limits). A spec's retry limit and priority
// are tighter than the API's, so that a spec that parses is never refused
// later with a less precise error: limits_test.go checks that each is
// within the API's.
const (
	MaxCount            = limits.MaxTasksPerJob
	MaxRetryLimit       = 100
	MaxPriority         = 1000
	MaxFailureThreshold = 100
	MaxConstraints      = limits.MaxConstraints
	MaxArgs             = limits.MaxArgs
	MaxEnv              = limits.MaxEnv
	MaxStringLen        = limits.MaxStringLen
	MaxGPUs             = limits.MaxGPUsPerMachine // per task: more than any machine has
	maxCPUMilli         = limits.MaxCPUMilli
	maxBytes            = limits.MaxBytes

	DefaultRetryLimit       = 3
	DefaultHealthInterval   = 10 * time.Second
	DefaultHealthTimeout    = time.Second
	DefaultFailureThreshold = 3

	minHealthInterval = 100 * time.Millisecond
	minHealthTimeout  = 10 * time.Millisecond
)

// Built-in scheduler names.
const (
	SchedulerService = "service"
	SchedulerBatch   = "batch"
	SchedulerGPU     = "gpu"
)

// GPUModelLabel is the machine label that task.resources.gpuModel selects on.
const GPUModelLabel = "gpu.model"

var (
	// Job names are limits.JobName; scheduler and tenant names are
	// limits.SchedulerName.
	envNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

const maxJobNameLen = limits.MaxJobNameLen

// priorityBands are the names a spec may use instead of a number.
var priorityBands = map[string]int32{
	"production":  txn.PriorityProduction,
	"batch":       txn.PriorityBatch,
	"best-effort": txn.PriorityBestEffort,
}

// converter turns a shape-checked Spec into an API JobSpec, reporting every
// semantic problem with the path of the field it concerns.
type converter struct {
	report func(fieldPath, string)
}

func (c *converter) failf(p fieldPath, format string, args ...any) {
	c.report(p, fmt.Sprintf(format, args...))
}

// text checks a free-text value: at most MaxStringLen bytes, no NUL.
func (c *converter) text(s string, p fieldPath) {
	if err := limits.CheckText(s, MaxStringLen); err != nil {
		c.failf(p, "%v", err)
	}
}

func (c *converter) jobSpec(s *Spec) *cellv1.JobSpec {
	root := fieldPath{}
	out := &cellv1.JobSpec{Name: s.Name, Tenant: s.Tenant, Gang: s.Gang, Count: 1, RetryLimit: DefaultRetryLimit}

	switch {
	case s.Name == "":
		c.failf(root.key("name"), "required: name the job (lower-case letters, digits, '-' and '.')")
	case len(s.Name) > maxJobNameLen:
		c.failf(root.key("name"), "%s is longer than %d characters", limits.Quote(s.Name), maxJobNameLen)
	case !limits.JobName.MatchString(s.Name):
		c.failf(root.key("name"), "%s: want lower-case letters, digits, '-' and '.', starting and ending with a letter or digit", limits.Quote(s.Name))
	}
	if s.Tenant != "" && !limits.SchedulerName.MatchString(s.Tenant) {
		c.failf(root.key("tenant"), "%s: want 1 to 63 lower-case letters, digits and '-', starting and ending with a letter or digit", limits.Quote(s.Tenant))
	}

	kind := cellv1.JobKind_JOB_KIND_UNSPECIFIED
	switch s.Kind {
	case "":
	case "service":
		kind = cellv1.JobKind_JOB_KIND_SERVICE
	case "batch":
		kind = cellv1.JobKind_JOB_KIND_BATCH
	case "system":
		kind = cellv1.JobKind_JOB_KIND_SYSTEM
		// count bounds the machines a system job may cover.
		out.Count = MaxCount
		if s.Gang {
			c.failf(root.key("gang"), "a system job runs one task per machine as machines come and go; it cannot be a gang")
		}
	default:
		c.failf(root.key("kind"), "%s: want service, batch or system", limits.Quote(s.Kind))
	}
	c.labels(s.Labels, root.key("labels"))
	out.Labels = s.Labels

	var task *cellv1.TaskTemplate
	if s.Count != nil {
		if n := *s.Count; n < 1 || n > MaxCount {
			c.failf(root.key("count"), "%d is out of range 1..%d", n, MaxCount)
		} else {
			out.Count = uint32(n)
		}
	}
	if s.Task == nil {
		c.failf(root.key("task"), "required: what each task runs (command) and needs (resources)")
	} else {
		task = c.task(s.Task, root.key("task"), out.Count)
		out.Task = task
	}

	out.Scheduler = s.Scheduler
	switch {
	case s.Scheduler == "" && (kind == cellv1.JobKind_JOB_KIND_SERVICE || kind == cellv1.JobKind_JOB_KIND_SYSTEM):
		out.Scheduler = SchedulerService
	case s.Scheduler == "" && task.GetResources().GetGpuMilli() > 0:
		out.Scheduler = SchedulerGPU
	case s.Scheduler == "":
		out.Scheduler = SchedulerBatch
	case !limits.SchedulerName.MatchString(s.Scheduler):
		c.failf(root.key("scheduler"), "%s: want service, batch, gpu or a custom scheduler's name (1 to 63 lower-case letters, digits and '-', starting and ending with a letter or digit)", limits.Quote(s.Scheduler))
	}

	if kind == cellv1.JobKind_JOB_KIND_UNSPECIFIED {
		kind = cellv1.JobKind_JOB_KIND_BATCH
		if out.Scheduler == SchedulerService {
			kind = cellv1.JobKind_JOB_KIND_SERVICE
		}
	}
	out.Kind = kind
	if s.Update != nil {
		out.Update = c.update(s.Update, root.key("update"), kind)
	}

	out.Priority = txn.PriorityBatch
	if kind == cellv1.JobKind_JOB_KIND_SERVICE || kind == cellv1.JobKind_JOB_KIND_SYSTEM {
		out.Priority = txn.PriorityProduction
	}
	if s.Priority != nil {
		if p, ok := c.priority(*s.Priority, root.key("priority")); ok {
			out.Priority = p
		}
	}

	if s.RetryLimit != nil {
		if n := *s.RetryLimit; n < 0 || n > MaxRetryLimit {
			c.failf(root.key("retryLimit"), "%d is out of range 0..%d", n, MaxRetryLimit)
		} else {
			out.RetryLimit = uint32(n)
		}
	}
	if d := s.Disruption; d != nil && d.MaxUnavailable != nil {
		p := root.key("disruption").key("maxUnavailable")
		if n := *d.MaxUnavailable; n < 1 || n > int64(out.Count) {
			c.failf(p, "%d is out of range 1..%d (the job's count)", n, out.Count)
		} else {
			out.Disruption = &cellv1.Disruption{MaxUnavailable: uint32(n)}
		}
	}
	return out
}

func (c *converter) priority(s Scalar, p fieldPath) (int32, bool) {
	if band, ok := priorityBands[s.Text]; ok && !s.Number {
		return band, true
	}
	n, err := strconv.ParseInt(s.Text, 10, 64)
	if err != nil {
		c.failf(p, "%s: want production, batch, best-effort or a number 0..%d", limits.Quote(s.Text), MaxPriority)
		return 0, false
	}
	if n < 0 || n > MaxPriority {
		c.failf(p, "%d is out of range 0..%d", n, MaxPriority)
		return 0, false
	}
	return int32(n), true
}

// task converts the template of a job of count tasks.
func (c *converter) task(t *Task, p fieldPath, count uint32) *cellv1.TaskTemplate {
	out := &cellv1.TaskTemplate{Command: t.Command, Args: t.Args, SpreadKey: t.SpreadKey}
	switch {
	case strings.TrimSpace(t.Command) == "":
		c.failf(p.key("command"), "required: the program each task runs")
	default:
		c.text(t.Command, p.key("command"))
	}
	if len(t.Args) > MaxArgs {
		c.failf(p.key("args"), "%d arguments; at most %d are allowed", len(t.Args), MaxArgs)
	} else {
		for i, a := range t.Args {
			c.text(a, p.key("args").index(i))
		}
	}
	if len(t.Env) > MaxEnv {
		c.failf(p.key("env"), "%d variables; at most %d are allowed", len(t.Env), MaxEnv)
	}
	if len(t.Env) > 0 {
		out.Env = t.Env
		for _, k := range sortedKeys(t.Env) {
			switch {
			case !envNameRE.MatchString(k):
				c.failf(p.key("env").key(k), "%s is not a valid environment variable name (letters, digits and _, not starting with a digit)", limits.Quote(k))
			case len(k) > limits.MaxEnvNameLen:
				c.failf(p.key("env").key(k), "name longer than %d bytes", limits.MaxEnvNameLen)
			default:
				c.text(t.Env[k], p.key("env").key(k))
			}
		}
	}

	res, gpuModel := c.resources(t.Resources, p.key("resources"))
	out.Resources = pbconv.ResourcesPB(res)

	if len(t.Constraints) > MaxConstraints {
		c.failf(p.key("constraints"), "%d terms; at most %d are allowed", len(t.Constraints), MaxConstraints)
	}
	for i, s := range t.Constraints {
		con, err := ParseConstraint(s)
		if err != nil {
			c.failf(p.key("constraints").index(i), "%v", err)
			continue
		}
		out.Constraints = append(out.Constraints, pbconv.ConstraintsPB([]txn.Constraint{con})...)
	}
	if gpuModel != "" {
		if len(t.Constraints) == MaxConstraints {
			c.failf(p.key("resources").key("gpuModel"), "adds a constraint beyond the %d allowed", MaxConstraints)
		}
		out.Constraints = append(out.Constraints, pbconv.ConstraintsPB([]txn.Constraint{{Key: GPUModelLabel, Op: txn.OpIn, Values: []string{gpuModel}}})...)
	}

	if t.SpreadKey != "" {
		if err := validLabelKey(t.SpreadKey); err != nil {
			c.failf(p.key("spreadKey"), "%v", err)
		}
	}
	switch n := t.MaxPerMachine; {
	case n < 0 || n > MaxCount:
		c.failf(p.key("maxPerMachine"), "%d is out of range 0..%d (0: no limit)", n, MaxCount)
	case n > int64(count):
		c.failf(p.key("maxPerMachine"), "%d is more than the job's count (%d); 0 means no limit", n, count)
	default:
		out.MaxPerMachine = uint32(n)
	}
	if t.Duration != "" {
		if d, ok := c.duration(t.Duration, p.key("duration"), time.Millisecond, limits.MaxDurationMillis*time.Millisecond); ok {
			out.DurationMs = d.Milliseconds()
		}
	}
	if t.HealthCheck != nil {
		out.HealthCheck = c.healthCheck(t.HealthCheck, p.key("healthCheck"))
	}
	if t.ReadinessCheck != nil {
		out.ReadinessCheck = c.healthCheck(t.ReadinessCheck, p.key("readinessCheck"))
	}
	return out
}

// resources parses the amounts and checks the request with
// txn.ValidateRequest, the store's own rule.
func (c *converter) resources(r *Resources, p fieldPath) (txn.Resources, string) {
	if r == nil {
		c.failf(p, "required: request some cpu, memory or gpu")
		return txn.Resources{}, ""
	}
	var out txn.Resources
	ok := true
	parse := func(s *Scalar, field string, parser func(string) (int64, error)) int64 {
		if s == nil {
			return 0
		}
		v, err := parser(s.Text)
		if err != nil {
			c.failf(p.key(field), "%v", err)
			ok = false
		}
		return v
	}
	out.CPUMilli = parse(r.CPU, "cpu", ParseCPU)
	out.MemoryBytes = parse(r.Memory, "memory", ParseBytes)
	out.DiskBytes = parse(r.Disk, "disk", ParseBytes)
	out.GPUMilli = parse(r.GPU, "gpu", ParseGPU)
	if !ok {
		return out, ""
	}

	for _, big := range []struct {
		field      string
		value, max int64
		format     func(int64) string
	}{
		{"cpu", out.CPUMilli, maxCPUMilli, FormatCPU},
		{"memory", out.MemoryBytes, maxBytes, FormatBytes},
		{"disk", out.DiskBytes, maxBytes, FormatBytes},
		{"gpu", out.GPUMilli, MaxGPUs * txn.MilliPerGPU, FormatGPU},
	} {
		if big.value > big.max {
			c.failf(p.key(big.field), "%s is more than any machine has (at most %s)", big.format(big.value), big.format(big.max))
			ok = false
		}
	}
	if !ok {
		return out, ""
	}
	if out.GPUMilli > txn.MilliPerGPU && out.GPUMilli%txn.MilliPerGPU != 0 {
		c.failf(p.key("gpu"), "%s GPUs: a task takes either part of one GPU (below 1) or whole GPUs (1, 2, ...)", FormatGPU(out.GPUMilli))
		return out, ""
	}
	if r.GPUModel != "" {
		if out.GPUMilli == 0 {
			c.failf(p.key("gpuModel"), "%s needs gpu: set task.resources.gpu as well", limits.Quote(r.GPUModel))
		} else if err := validLabelValue(r.GPUModel); err != nil {
			c.failf(p.key("gpuModel"), "%v", err)
		}
	}
	if out.CPUMilli == 0 && out.MemoryBytes == 0 && out.GPUMilli == 0 {
		c.failf(p, "request some cpu, memory or gpu (a task must occupy something)")
		return out, ""
	}
	if err := txn.ValidateRequest(out); err != nil {
		c.failf(p, "%v", err)
	}
	return out, r.GPUModel
}

// duration parses a Go duration ("30s", "5m", "1h30m") that must be a
// positive whole number of milliseconds, at least min and at most max.
func (c *converter) duration(s string, p fieldPath, min, max time.Duration) (time.Duration, bool) {
	d, err := time.ParseDuration(s)
	switch {
	case err != nil:
		c.failf(p, "%s: want a duration such as 30s, 5m or 1h30m", limits.Quote(s))
	case d < min:
		c.failf(p, "%s is shorter than %v", limits.Quote(s), min)
	case d%time.Millisecond != 0:
		c.failf(p, "%s is not a whole number of milliseconds", limits.Quote(s))
	case d > max:
		c.failf(p, "%s is longer than %v", limits.Quote(s), max)
	default:
		return d, true
	}
	return 0, false
}

func (c *converter) healthCheck(h *HealthCheck, p fieldPath) *cellv1.HealthCheck {
	out := &cellv1.HealthCheck{
		IntervalMs:       DefaultHealthInterval.Milliseconds(),
		TimeoutMs:        DefaultHealthTimeout.Milliseconds(),
		FailureThreshold: DefaultFailureThreshold,
	}
	switch {
	case len(h.Exec) > 0 && h.HTTPGet != "":
		c.failf(p, "set exec or httpGet, not both")
	case len(h.Exec) > limits.MaxHealthExec:
		c.failf(p.key("exec"), "%d entries; at most %d are allowed", len(h.Exec), limits.MaxHealthExec)
	case len(h.Exec) > 0:
		if strings.TrimSpace(h.Exec[0]) == "" {
			c.failf(p.key("exec").index(0), "the command to run is empty")
		}
		for i, a := range h.Exec {
			c.text(a, p.key("exec").index(i))
		}
		out.Exec = h.Exec
	case h.HTTPGet != "":
		if err := limits.CheckHTTPURL(h.HTTPGet); err != nil {
			c.failf(p.key("httpGet"), "%v", err)
		}
		out.HttpGetUrl = h.HTTPGet
	default:
		c.failf(p, "set exec (a command) or httpGet (a URL)")
	}
	if h.Interval != "" {
		if d, ok := c.duration(h.Interval, p.key("interval"), minHealthInterval, limits.MaxHealthMillis*time.Millisecond); ok {
			out.IntervalMs = d.Milliseconds()
		}
	}
	if h.Timeout != "" {
		if d, ok := c.duration(h.Timeout, p.key("timeout"), minHealthTimeout, limits.MaxHealthMillis*time.Millisecond); ok {
			out.TimeoutMs = d.Milliseconds()
		}
	}
	if out.TimeoutMs > out.IntervalMs {
		c.failf(p.key("timeout"), "%v is longer than the interval (%v)", time.Duration(out.TimeoutMs)*time.Millisecond, time.Duration(out.IntervalMs)*time.Millisecond)
	}
	if h.FailureThreshold != nil {
		if n := *h.FailureThreshold; n < 1 || n > MaxFailureThreshold {
			c.failf(p.key("failureThreshold"), "%d is out of range 1..%d", n, MaxFailureThreshold)
		} else {
			out.FailureThreshold = uint32(n)
		}
	}
	return out
}

// labels checks a job's labels: as many as a machine may have, keys like
// label keys, values short text.
func (c *converter) labels(labels map[string]string, p fieldPath) {
	if len(labels) > limits.MaxLabels {
		c.failf(p, "%d labels; at most %d are allowed", len(labels), limits.MaxLabels)
		return
	}
	for _, k := range sortedKeys(labels) {
		if err := validLabelKey(k); err != nil {
			c.failf(p.key(k), "%v", err)
			continue
		}
		if err := limits.CheckText(labels[k], limits.MaxLabelValueLen); err != nil {
			c.failf(p.key(k), "%v", err)
		}
	}
}
