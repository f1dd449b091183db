package jobspec

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
)

// Spec is a job spec document as a person writes it; doc.go describes
// every field. Parse decodes a document into a Spec, then validates it and
// converts it into the API's cell.v1.JobSpec. Optional fields are pointers
// or zero values; a null in YAML (`env:` with nothing after it) counts as
// absent.
type Spec struct {
	Name       string  `json:"name"`
	Tenant     string  `json:"tenant,omitempty"`
	Scheduler  string  `json:"scheduler,omitempty"`
	Priority   *Scalar `json:"priority,omitempty"`
	Kind       string  `json:"kind,omitempty"`
	Count      *int64  `json:"count,omitempty"`
	Gang       bool    `json:"gang,omitempty"`
	RetryLimit *int64  `json:"retryLimit,omitempty"`
	Task       *Task   `json:"task,omitempty"`
	Update     *Update `json:"update,omitempty"` // issue 13 (update.go)
	// Labels name the job for `cell job list -l` (issue 13).
	Labels map[string]string `json:"labels,omitempty"`
	// Disruption bounds a drain's evictions (issue 14).
	Disruption *Disruption `json:"disruption,omitempty"`
}

// Disruption is a job's disruption budget: at most MaxUnavailable of its
// tasks down at once through voluntary evictions (a machine drain).
type Disruption struct {
	MaxUnavailable *int64 `json:"maxUnavailable,omitempty"`
}

// Task is the template every task of the job runs.
type Task struct {
	Command       string            `json:"command"`
	Args          []string          `json:"args,omitempty"`
	Env           map[string]string `json:"env,omitempty"`
	Resources     *Resources        `json:"resources,omitempty"`
	Constraints   []string          `json:"constraints,omitempty"`
	SpreadKey     string            `json:"spreadKey,omitempty"`
	MaxPerMachine int64             `json:"maxPerMachine,omitempty"`
	Duration      string            `json:"duration,omitempty"`
	HealthCheck   *HealthCheck      `json:"healthCheck,omitempty"`
	// ReadinessCheck gates a replica's counting as running (issue 13).
	ReadinessCheck *HealthCheck `json:"readinessCheck,omitempty"`
}

// Resources is what one task needs, with units.
type Resources struct {
	CPU      *Scalar `json:"cpu,omitempty"`
	Memory   *Scalar `json:"memory,omitempty"`
	Disk     *Scalar `json:"disk,omitempty"`
	GPU      *Scalar `json:"gpu,omitempty"`
	GPUModel string  `json:"gpuModel,omitempty"`
}

// HealthCheck is a liveness probe: exec or httpGet, not both.
type HealthCheck struct {
	Exec             []string `json:"exec,omitempty"`
	HTTPGet          string   `json:"httpGet,omitempty"`
	Interval         string   `json:"interval,omitempty"`
	Timeout          string   `json:"timeout,omitempty"`
	FailureThreshold *int64   `json:"failureThreshold,omitempty"`
}

// Scalar is a field that may be written as a number or as a string:
// `cpu: 0.5` and `cpu: "500m"`, `priority: 150` and `priority: batch`.
// Text holds the number's text or the string as written.
type Scalar struct {
	Text   string
	Number bool
}

// Str and Num build Scalars (for code that writes specs).
func Str(s string) *Scalar { return &Scalar{Text: s} }

// Num builds a numeric Scalar.
func Num(n int64) *Scalar { return &Scalar{Text: strconv.FormatInt(n, 10), Number: true} }

// UnmarshalJSON accepts a JSON string or number.
func (s *Scalar) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '"' {
		s.Number = false
		return json.Unmarshal(b, &s.Text)
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("want a string or a number, got %s", b)
	}
	s.Text, s.Number = n.String(), true
	return nil
}

// MarshalJSON writes a number as a number and anything else as a string.
func (s Scalar) MarshalJSON() ([]byte, error) {
	if s.Number {
		return []byte(json.Number(s.Text)), nil
	}
	return json.Marshal(s.Text)
}
