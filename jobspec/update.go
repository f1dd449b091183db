package jobspec

import (
	"strconv"
	"strings"
	"time"

	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
	"github.com/omegacell/omegacell/proto/limits"
)

// Update is how a service's replicas move to a new version (issue 13;
// doc.go lists the fields and their defaults).
type Update struct {
	MaxSurge        *Scalar `json:"maxSurge,omitempty"`
	MaxUnavailable  *Scalar `json:"maxUnavailable,omitempty"`
	MinHealthyTime  string  `json:"minHealthyTime,omitempty"`
	HealthyDeadline string  `json:"healthyDeadline,omitempty"`
	AutoRevert      bool    `json:"autoRevert,omitempty"`
}

func (c *converter) update(u *Update, p fieldPath, kind cellv1.JobKind) *cellv1.UpdateStrategy {
	if kind != cellv1.JobKind_JOB_KIND_SERVICE && kind != cellv1.JobKind_JOB_KIND_SYSTEM {
		c.failf(p, "only a service or a system job rolls out new versions (a batch job's new version applies to tasks not started yet)")
		return nil
	}
	out := &cellv1.UpdateStrategy{AutoRevert: u.AutoRevert}
	out.MaxSurge = c.intOrPercent(u.MaxSurge, p.key("maxSurge"))
	if kind == cellv1.JobKind_JOB_KIND_SYSTEM && out.MaxSurge.GetValue() != 0 {
		c.failf(p.key("maxSurge"), "%s: a system job runs one task per machine, it cannot surge; want 0 (tasks are replaced maxUnavailable at a time)", limits.Quote(u.MaxSurge.Text))
	}
	out.MaxUnavailable = c.intOrPercent(u.MaxUnavailable, p.key("maxUnavailable"))
	maxD := limits.MaxRolloutMillis * time.Millisecond
	if u.MinHealthyTime != "" {
		if d, ok := c.duration(u.MinHealthyTime, p.key("minHealthyTime"), time.Millisecond, maxD); ok {
			out.MinHealthyTimeMs = d.Milliseconds()
		}
	}
	if u.HealthyDeadline != "" {
		if d, ok := c.duration(u.HealthyDeadline, p.key("healthyDeadline"), time.Millisecond, maxD); ok {
			out.HealthyDeadlineMs = d.Milliseconds()
		}
	}
	if out.HealthyDeadlineMs != 0 && out.HealthyDeadlineMs <= out.MinHealthyTimeMs {
		c.failf(p.key("healthyDeadline"), "%s must be longer than minHealthyTime (%s)", u.HealthyDeadline, u.MinHealthyTime)
	}
	return out
}

// intOrPercent parses a replica count (2) or a percentage of count ("25%").
func (c *converter) intOrPercent(s *Scalar, p fieldPath) *cellv1.IntOrPercent {
	if s == nil {
		return nil
	}
	text, percent := s.Text, false
	if !s.Number && strings.HasSuffix(text, "%") {
		text, percent = strings.TrimSuffix(text, "%"), true
	}
	n, err := strconv.ParseInt(text, 10, 64)
	switch {
	case err != nil || (!s.Number && !percent):
		c.failf(p, "%s: want a number of replicas (1) or a percentage of count (\"25%%\")", limits.Quote(s.Text))
	case percent && (n < 0 || n > 100):
		c.failf(p, "%s: a percentage is 0%%..100%%", limits.Quote(s.Text))
	case n < 0 || n > MaxCount:
		c.failf(p, "%d is out of range 0..%d", n, MaxCount)
	default:
		return &cellv1.IntOrPercent{Value: uint32(n), Percent: percent}
	}
	return nil
}

// updateDocument renders an UpdateStrategy back as a document.
func updateDocument(u *cellv1.UpdateStrategy) *Update {
	if u == nil {
		return nil
	}
	out := &Update{AutoRevert: u.GetAutoRevert(), MaxSurge: intOrPercentScalar(u.GetMaxSurge()), MaxUnavailable: intOrPercentScalar(u.GetMaxUnavailable())}
	if ms := u.GetMinHealthyTimeMs(); ms != 0 {
		out.MinHealthyTime = formatMillis(ms)
	}
	if ms := u.GetHealthyDeadlineMs(); ms != 0 {
		out.HealthyDeadline = formatMillis(ms)
	}
	return out
}

func intOrPercentScalar(v *cellv1.IntOrPercent) *Scalar {
	switch {
	case v == nil:
		return nil
	case v.GetPercent():
		return Str(strconv.FormatUint(uint64(v.GetValue()), 10) + "%")
	}
	return Num(int64(v.GetValue()))
}
