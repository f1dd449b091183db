package txn_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/omegacell/omegacell/txn"
)

// gangCell: machines g1 and g2 with 4 cores each; pending tasks of
// scheduler "batch":
//
//	gang/0..3   gang job, 1 core each
//	half/0..3   gang job, 1 core each; half/0 and half/1 run on g2
//	solo/0      not a gang, 2 cores
func gangCell() *cell {
	c := newCell()
	c.gangs = map[string]bool{"gang": true, "half": true}
	c.addMachine("g1", nil, res(4, 16, 0, 0))
	c.addMachine("g2", nil, res(4, 16, 0, 0))
	for i := range uint32(4) {
		c.addTask("gang", i, 100, res(1, 1, 0, 0))
		c.addTask("half", i, 100, res(1, 1, 0, 0))
	}
	c.addTask("solo", 0, 100, res(2, 1, 0, 0))
	// Half of "half" already runs (placed before it was a gang here, as a
	// job whose other tasks were lost would be).
	delete(c.gangs, "half")
	c.place(key("half", 0), "g2")
	c.place(key("half", 1), "g2")
	c.gangs["half"] = true
	return c
}

func gangClaim(c *cell, job string, index uint32, machine string) txn.Claim {
	return txn.Claim{Task: key(job, index), Machine: machine, Resources: c.tasks[key(job, index)].Resources}
}

// TestValidateGang: the store refuses partial placement of a gang job
// whatever the commit mode; claims of other jobs are unaffected.
func TestValidateGang(t *testing.T) {
	ok, abort := txn.ReasonOK, txn.ReasonAborted
	type claimSpec struct {
		job     string
		index   uint32
		machine string
	}
	cases := []struct {
		name   string
		commit txn.CommitMode
		claims []claimSpec
		want   []txn.Reason
		detail string // substring of the first aborted claim's detail
		// wantG1 is g1's allocated cores after Apply.
		wantG1 int64
	}{
		{name: "incremental: 2 of 4 refused", commit: txn.CommitIncremental,
			claims: []claimSpec{{"gang", 0, "g1"}, {"gang", 1, "g1"}},
			want:   []txn.Reason{abort, abort}, detail: "has 4 pending tasks and the transaction claims 2", wantG1: 0},
		{name: "all-or-nothing: 2 of 4 refused", commit: txn.CommitAllOrNothing,
			claims: []claimSpec{{"gang", 0, "g1"}, {"gang", 1, "g1"}},
			want:   []txn.Reason{abort, abort}, detail: "claims 2 of them", wantG1: 0},
		{name: "incremental: whole gang placed", commit: txn.CommitIncremental,
			claims: []claimSpec{{"gang", 0, "g1"}, {"gang", 1, "g1"}, {"gang", 2, "g1"}, {"gang", 3, "g2"}},
			want:   []txn.Reason{ok, ok, ok, ok}, wantG1: 3000},
		{name: "incremental: a partial gang does not stop another job", commit: txn.CommitIncremental,
			claims: []claimSpec{{"gang", 0, "g1"}, {"solo", 0, "g1"}},
			want:   []txn.Reason{abort, ok}, detail: "claims 1 of them", wantG1: 2000},
		{name: "incremental: one failed claim fails the gang and gives its room back", commit: txn.CommitIncremental,
			// gang/0..2 take 3 cores of g1, gang/3 names an unknown machine:
			// the gang fails, and solo (2 cores) fits on g1 again.
			claims: []claimSpec{{"gang", 0, "g1"}, {"gang", 1, "g1"}, {"gang", 2, "g1"}, {"gang", 3, "nope"}, {"solo", 0, "g1"}},
			want:   []txn.Reason{abort, abort, abort, txn.ReasonMachineUnknown, ok}, detail: "another claim of job gang failed", wantG1: 2000},
		{name: "incremental: a failure before the gang's other claims fails them too", commit: txn.CommitIncremental,
			claims: []claimSpec{{"gang", 0, "nope"}, {"gang", 1, "g1"}, {"gang", 2, "g1"}, {"gang", 3, "g1"}},
			want:   []txn.Reason{txn.ReasonMachineUnknown, abort, abort, abort}, detail: "another claim of job gang failed", wantG1: 0},
		{name: "incremental: a gang that does not fit is refused whole", commit: txn.CommitIncremental,
			claims: []claimSpec{{"gang", 0, "g2"}, {"gang", 1, "g2"}, {"gang", 2, "g2"}, {"gang", 3, "g1"}},
			want:   []txn.Reason{abort, abort, txn.ReasonInsufficientCPU, abort}, detail: "another claim of job gang failed", wantG1: 0},
		{name: "incremental: a duplicate claim fails the gang", commit: txn.CommitIncremental,
			claims: []claimSpec{{"gang", 0, "g1"}, {"gang", 1, "g1"}, {"gang", 2, "g1"}, {"gang", 3, "g1"}, {"gang", 3, "g1"}},
			want:   []txn.Reason{abort, abort, abort, abort, txn.ReasonDuplicate}, detail: "another claim of job gang failed", wantG1: 0},
		{name: "the pending rest of a running gang is placed whole", commit: txn.CommitIncremental,
			claims: []claimSpec{{"half", 2, "g1"}, {"half", 3, "g1"}},
			want:   []txn.Reason{ok, ok}, wantG1: 2000},
		{name: "half of the pending rest of a running gang is refused", commit: txn.CommitAllOrNothing,
			claims: []claimSpec{{"half", 2, "g1"}},
			want:   []txn.Reason{abort}, detail: "has 2 pending tasks and the transaction claims 1", wantG1: 0},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			c := gangCell()
			tx := &txn.Transaction{Scheduler: "batch", Conflict: txn.ConflictFine, Commit: tt.commit}
			for _, cs := range tt.claims {
				tx.Claims = append(tx.Claims, gangClaim(c, cs.job, cs.index, cs.machine))
			}
			before := c.clone()
			d := txn.Validate(c, tx)
			var got []txn.Reason
			firstAbort := ""
			for _, r := range d.Results {
				got = append(got, r.Reason)
				if r.Reason == txn.ReasonAborted && firstAbort == "" {
					firstAbort = r.Detail
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Fatalf("results %v, want %v (%+v)", got, tt.want, d.Results)
			}
			if !strings.Contains(firstAbort, tt.detail) {
				t.Errorf("aborted detail %q, want it to contain %q", firstAbort, tt.detail)
			}
			if bad := checkDecision(before, tx, d); len(bad) > 0 {
				t.Fatalf("decision:\n%s", strings.Join(bad, "\n"))
			}
			if bad := checkGangsWhole(before, tx, d); len(bad) > 0 {
				t.Fatalf("gang:\n%s", strings.Join(bad, "\n"))
			}
			txn.Apply(c, d)
			if bad := checkInvariant(c); len(bad) > 0 {
				t.Fatalf("invariant:\n%s", strings.Join(bad, "\n"))
			}
			if g1 := c.machines["g1"].Allocated.CPUMilli; g1 != tt.wantG1 {
				t.Errorf("g1 has %dm allocated, want %dm", g1, tt.wantG1)
			}
		})
	}
}
