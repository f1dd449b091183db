package txn_test

import (
	"testing"

	"github.com/omegacell/omegacell/txn"
)

func TestBandOf(t *testing.T) {
	tests := []struct {
		priority int32
		want     txn.Band
		name     string
	}{
		{-5, txn.BandBestEffort, "best-effort"},
		{0, txn.BandBestEffort, "best-effort"},
		{99, txn.BandBestEffort, "best-effort"},
		{100, txn.BandBatch, "batch"},
		{199, txn.BandBatch, "batch"},
		{200, txn.BandProduction, "production"},
		{1 << 30, txn.BandProduction, "production"},
	}
	for _, tt := range tests {
		if got := txn.BandOf(tt.priority); got != tt.want || got.String() != tt.name {
			t.Errorf("BandOf(%d) = %v (%s), want %v (%s)", tt.priority, got, got, tt.want, tt.name)
		}
	}
}

func TestCanPreempt(t *testing.T) {
	tests := []struct {
		claimant, victim int32
		want             bool
	}{
		{100, 0, true},       // batch evicts best-effort
		{200, 150, true},     // production evicts batch
		{200, 0, true},       // production evicts best-effort
		{150, 120, true},     // higher batch evicts lower batch
		{50, 10, true},       // within best-effort
		{100, 100, false},    // equal priority
		{100, 150, false},    // lower may not evict higher
		{300, 200, false},    // production is never preempted
		{1000, 250, false},   // not even by much higher production
		{200, 200, false},    // production never preempts production
		{0, -1, true},        // negative priorities are best-effort
		{199, 200, false},    // batch may not evict production
		{-1, -1000000, true}, // strictly lower is enough outside production
	}
	for _, tt := range tests {
		if got := txn.CanPreempt(tt.claimant, tt.victim); got != tt.want {
			t.Errorf("CanPreempt(%d, %d) = %v, want %v", tt.claimant, tt.victim, got, tt.want)
		}
	}
}

func TestStateNames(t *testing.T) {
	tests := []struct {
		got, want string
	}{
		{txn.MachineReady.String(), "ready"},
		{txn.MachineDraining.String(), "draining"},
		{txn.MachineDown.String(), "down"},
		{txn.MachineState(0).String(), "MachineState(0)"},
		{txn.TaskPending.String(), "pending"},
		{txn.TaskAssigned.String(), "assigned"},
		{txn.TaskRunning.String(), "running"},
		{txn.TaskSucceeded.String(), "succeeded"},
		{txn.TaskFailed.String(), "failed"},
		{txn.TaskLost.String(), "lost"},
		{txn.TaskPreempted.String(), "preempted"},
		{txn.TaskKilled.String(), "killed"},
		{txn.TaskState(0).String(), "TaskState(0)"},
		{txn.TaskState(9).String(), "TaskState(9)"},
		{txn.TaskKey{Job: "j", Index: 3}.String(), "j/3"},
		{txn.Reason(0).String(), "Reason(0)"},
		{txn.Reason(21).String(), "Reason(21)"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}

func TestTaskStateClasses(t *testing.T) {
	for s := txn.TaskPending; s <= txn.TaskKilled; s++ {
		holds := s == txn.TaskAssigned || s == txn.TaskRunning
		terminal := !holds && s != txn.TaskPending
		if s.HoldsResources() != holds || s.Terminal() != terminal {
			t.Errorf("%s: HoldsResources=%v Terminal=%v, want %v %v", s, s.HoldsResources(), s.Terminal(), holds, terminal)
		}
	}
}

func TestAllReasons(t *testing.T) {
	all := txn.AllReasons()
	names := map[string]bool{}
	for i, r := range all {
		if r != txn.Reason(i+1) {
			t.Fatalf("AllReasons()[%d] = %d: reasons must be numbered 1..n without gaps (they cast to the API enum)", i, r)
		}
		if names[r.String()] || r.String() == "" {
			t.Errorf("reason %d has an empty or repeated name %q", r, r.String())
		}
		names[r.String()] = true
	}
	if last := all[len(all)-1]; last != txn.ReasonQuotaExceeded {
		t.Errorf("last reason is %v, want quota_exceeded", last)
	}
	conflicts := map[txn.Reason]bool{
		txn.ReasonTaskNotPending: true, txn.ReasonMachineUnknown: true, txn.ReasonMachineNotReady: true,
		txn.ReasonMachineDraining: true, txn.ReasonInsufficientCPU: true, txn.ReasonInsufficientMemory: true,
		txn.ReasonInsufficientDisk: true, txn.ReasonInsufficientGPU: true, txn.ReasonSeqChanged: true,
		txn.ReasonConstraintViolated: true, txn.ReasonAborted: true, txn.ReasonMaxPerMachine: true,
		txn.ReasonQuotaExceeded: true, // quota frees as tasks end: worth retrying on fresher state
	}
	for _, r := range all {
		if r.IsConflict() != conflicts[r] {
			t.Errorf("%v.IsConflict() = %v, want %v", r, r.IsConflict(), conflicts[r])
		}
	}
}
