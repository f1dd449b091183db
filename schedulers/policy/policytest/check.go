package policytest

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/omegacell/omegacell/schedulers/policy"
	"github.com/omegacell/omegacell/schedulers/view"
	"github.com/omegacell/omegacell/txn"
)

var update = flag.Bool("update", false, "rewrite golden files under testdata/")

// Validate commits d as the store would — txn.Validate against v — and
// fails the test unless every claim and preemption is accepted and every
// pending task is either claimed or reported unplaced, exactly once. It
// returns the txn decision for the caller to apply.
func Validate(t testing.TB, v *view.View, p policy.Policy, job view.JobInfo, pending []*txn.Task, d policy.Decision) *txn.Decision {
	t.Helper()
	tx := d.Transaction(job.Scheduler, v.Revision(), p.Modes(job))
	dec := txn.Validate(v, tx)
	for i, r := range dec.Results {
		if r.Reason != txn.ReasonOK {
			t.Errorf("%s: claim %d (%s -> %s %v %v) refused: %s: %s", p.Name(), i, tx.Claims[i].Task, tx.Claims[i].Machine,
				tx.Claims[i].Resources, tx.Claims[i].Devices, r.Reason, r.Detail)
		}
	}
	for _, e := range dec.PreemptionErrors {
		t.Errorf("%s: preemption refused: %s", p.Name(), e)
	}
	seen := make(map[txn.TaskKey]int)
	for _, c := range d.Claims {
		seen[c.Task]++
	}
	for _, u := range d.Unplaced {
		seen[u.Task]++
		if u.Reason == "" {
			t.Errorf("%s: %s unplaced without a reason", p.Name(), u.Task)
		}
	}
	for _, task := range pending {
		if seen[task.Key] != 1 {
			t.Errorf("%s: pending task %s appears %d times among claims and unplaced", p.Name(), task.Key, seen[task.Key])
		}
	}
	if len(seen) != len(pending) {
		t.Errorf("%s: decision names %d tasks, %d were pending", p.Name(), len(seen), len(pending))
	}
	return dec
}

// CheckInvariant fails the test unless v satisfies omegacell's invariant
// (txn.CheckInvariant: allocations are the sum of the tasks holding
// resources and never exceed capacity, per device too; no task placed
// twice) and the view's per-machine index agrees with its tasks.
func CheckInvariant(t testing.TB, v *view.View) {
	t.Helper()
	if err := txn.CheckInvariant(v.Machines(), v.Tasks()); err != nil {
		t.Errorf("cell invariant: %v", err)
	}
	for ord := range int32(v.NumOrdinals()) {
		m := v.MachineAt(ord)
		if m == nil {
			continue
		}
		var sum txn.Resources
		for _, task := range v.TasksOn(ord) {
			sum = sum.Add(task.Resources)
		}
		if sum != m.Allocated {
			t.Errorf("view index: machine %s allocated %v, the tasks indexed on it hold %v", m.ID, m.Allocated, sum)
		}
	}
}

// Format renders a decision for a golden file: one line per claim,
// preemption and unplaced task, with the labels that explain placement.
func Format(v *view.View, d policy.Decision) string {
	var b strings.Builder
	for _, c := range d.Claims {
		m := v.Machine(c.Machine)
		fmt.Fprintf(&b, "claim %s -> %s %s seq=%d", c.Task, c.Machine, labelString(m.Labels), c.SeenSeq)
		if len(c.Devices) > 0 {
			b.WriteString(" devices=")
			for i, dv := range c.Devices {
				if i > 0 {
					b.WriteByte(',')
				}
				fmt.Fprintf(&b, "%d:%d", dv.Device, dv.Milli)
			}
		}
		b.WriteByte('\n')
	}
	for _, k := range d.Preemptions {
		task := v.Task(k)
		fmt.Fprintf(&b, "preempt %s on %s priority=%d\n", k, task.Machine, task.Priority)
	}
	for _, u := range d.Unplaced {
		fmt.Fprintf(&b, "unplaced %s: %s\n", u.Task, u.Reason)
	}
	return b.String()
}

func labelString(labels map[string]string) string {
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + labels[k]
	}
	return "{" + strings.Join(parts, ",") + "}"
}

// Golden compares got with testdata/<name>.golden of the calling package,
// rewriting the file when the test runs with -update.
func Golden(t testing.TB, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("golden %s: %v (run the test with -update to create it)", path, err)
	}
	if got != string(want) {
		t.Errorf("decision differs from %s (rerun with -update if the change is intended)\n--- got\n%s--- want\n%s", path, got, want)
	}
}
