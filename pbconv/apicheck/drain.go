package apicheck

import (
	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
	"github.com/omegacell/omegacell/proto/limits"
)

// DrainMachine checks a cordon, uncordon or drain request (issue 14).
func DrainMachine(r *cellv1.DrainMachineRequest) error {
	if err := MachineID("id", r.GetId(), false); err != nil {
		return err
	}
	a := r.GetAction()
	if _, known := cellv1.DrainAction_name[int32(a)]; !known {
		return fail("action", "unknown drain action %d", a)
	}
	drain := a == cellv1.DrainAction_DRAIN_ACTION_DRAIN || (a == cellv1.DrainAction_DRAIN_ACTION_UNSPECIFIED && r.GetDrain())
	switch {
	case a != cellv1.DrainAction_DRAIN_ACTION_UNSPECIFIED && r.GetDrain():
		return fail("drain", "give action or the legacy drain flag, not both")
	case r.GetDeadlineMs() < 0 || r.GetDeadlineMs() > limits.MaxDrainDeadlineMs:
		return fail("deadline_ms", "%d is outside 0..%d (30 days)", r.GetDeadlineMs(), limits.MaxDrainDeadlineMs)
	case !drain && (r.GetDeadlineMs() != 0 || r.GetIgnoreBatch()):
		return fail("deadline_ms", "a deadline and ignore_batch apply to a drain only")
	}
	return nil
}

// disruption checks a job's disruption budget (issue 14).
func disruption(d *cellv1.Disruption, count uint32) error {
	if d.GetMaxUnavailable() > count {
		return fail("spec.disruption.max_unavailable", "%d exceeds the job's %d tasks", d.GetMaxUnavailable(), count)
	}
	return nil
}
