package apicheck

import (
	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
	"github.com/omegacell/omegacell/proto/limits"
)

// updateStrategy bounds a job's rolling-update settings (issue 13).
func updateStrategy(f string, u *cellv1.UpdateStrategy) error {
	if u == nil {
		return nil
	}
	if err := intOrPercent(f+".max_surge", u.MaxSurge); err != nil {
		return err
	}
	if err := intOrPercent(f+".max_unavailable", u.MaxUnavailable); err != nil {
		return err
	}
	switch {
	case u.MinHealthyTimeMs < 0 || u.MinHealthyTimeMs > limits.MaxRolloutMillis:
		return fail(f+".min_healthy_time_ms", "%d is outside 0..%d", u.MinHealthyTimeMs, int64(limits.MaxRolloutMillis))
	case u.HealthyDeadlineMs < 0 || u.HealthyDeadlineMs > limits.MaxRolloutMillis:
		return fail(f+".healthy_deadline_ms", "%d is outside 0..%d", u.HealthyDeadlineMs, int64(limits.MaxRolloutMillis))
	case u.HealthyDeadlineMs != 0 && u.HealthyDeadlineMs <= u.MinHealthyTimeMs:
		return fail(f+".healthy_deadline_ms", "%d must exceed min_healthy_time_ms %d", u.HealthyDeadlineMs, u.MinHealthyTimeMs)
	}
	return nil
}

func intOrPercent(f string, v *cellv1.IntOrPercent) error {
	switch {
	case v == nil:
		return nil
	case v.Percent && v.Value > 100:
		return fail(f, "%d%% exceeds 100%%", v.Value)
	case !v.Percent && v.Value > limits.MaxTasksPerJob:
		return fail(f, "%d exceeds %d", v.Value, limits.MaxTasksPerJob)
	}
	return nil
}

// PlanJob checks a plan request: the spec as SubmitJob would.
func PlanJob(r *cellv1.PlanJobRequest) error { return JobSpec(r.GetSpec()) }

// ListJobVersions checks a version listing.
func ListJobVersions(r *cellv1.ListJobVersionsRequest) error {
	return IDOrName("id_or_name", r.GetIdOrName())
}

// RevertJob checks a revert: a job and a version number.
func RevertJob(r *cellv1.RevertJobRequest) error {
	if err := IDOrName("id_or_name", r.GetIdOrName()); err != nil {
		return err
	}
	if r.GetVersion() == 0 {
		return fail("version", "is required (versions count from 1)")
	}
	return nil
}

// ScaleJob checks a scale: a job and a count within JobSpec.count's bounds.
func ScaleJob(r *cellv1.ScaleJobRequest) error {
	if err := IDOrName("id_or_name", r.GetIdOrName()); err != nil {
		return err
	}
	if r.GetCount() == 0 || r.GetCount() > limits.MaxTasksPerJob {
		return fail("count", "%d is outside 1..%d", r.GetCount(), limits.MaxTasksPerJob)
	}
	return nil
}
