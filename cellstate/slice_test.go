package cellstate

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
	"github.com/omegacell/omegacell/proto/limits"
)

// revisionsOf reads an unfiltered watch after start until the revision
// until, and returns, per revision, the task changes it carried.
func revisionsOf(t *testing.T, c *testCell, start, until uint64) map[uint64][]*cellv1.Task {
	t.Helper()
	ctx, cancel := context.WithCancel(ctxT(t))
	defer cancel()
	w, err := c.state.Watch(ctx, &cellv1.WatchRequest{StartRevision: start})
	if err != nil {
		t.Fatal(err)
	}
	out := map[uint64][]*cellv1.Task{}
	for {
		r, err := w.Recv()
		if err != nil {
			t.Fatalf("watch: %v", err)
		}
		for _, ch := range r.Changes {
			if tk := ch.GetTask(); tk != nil {
				out[r.Revision] = append(out[r.Revision], tk)
			}
		}
		if r.Revision >= until && !r.Fragment {
			return out
		}
	}
}

// An incremental commit larger than a slice is applied a slice at a time,
// each slice its own revision, while other callers' operations get
// revisions between its slices; its answer has every claim's result (a
// repeated claim answered DUPLICATE) and the revision of its last slice.
func TestSlicedCommitInterleaves(t *testing.T) {
	c := newTestCell(t, Options{NoSync: true})
	for i := range 100 {
		c.addMachine(machineName(i), nil, 1<<30, 1<<40, 0)
	}
	n := uint32(limits.MaxClaimsPerCommit - 1)
	j := c.submit(batchSpec("wide", n, 1, 1))
	start := c.store.Revision()
	req := spreadClaims(j, 0, n, func(i uint32) string { return machineName(int(i % 100)) })
	req.Claims = append(req.Claims, claim(j.Id, 7, machineName(0), j.Spec.Task.Resources))

	var others []uint64
	var stop atomic.Bool
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; !stop.Load(); i++ {
			r, err := c.jobs.SubmitJob(ctxT(t), &cellv1.SubmitJobRequest{Spec: batchSpec(fmt.Sprintf("small-%d", i), 1, 1, 1)})
			if err != nil {
				t.Errorf("small submit: %v", err)
				return
			}
			others = append(others, r.Revision)
		}
	}()
	resp, err := c.state.Commit(ctxT(t), req)
	stop.Store(true)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if resp.Accepted != n || len(resp.Results) != int(n)+1 {
		t.Fatalf("accepted %d of %d results, want %d", resp.Accepted, len(resp.Results), n)
	}
	if last := resp.Results[n]; last.Outcome != cellv1.ClaimOutcome_CLAIM_OUTCOME_DUPLICATE_IN_TRANSACTION {
		t.Fatalf("repeated claim: %v %q", last.Outcome, last.Detail)
	}
	revs := revisionsOf(t, c, start, resp.Revision)
	var slices []uint64
	assigned := 0
	for rev, tasks := range revs {
		if len(tasks) > 0 && tasks[0].JobId == j.Id {
			slices = append(slices, rev)
			assigned += len(tasks)
			if len(tasks) > sliceItems {
				t.Fatalf("revision %d carries %d tasks, more than a slice (%d)", rev, len(tasks), sliceItems)
			}
		}
	}
	want := (int(n) + sliceItems - 1) / sliceItems
	if assigned != int(n) || len(slices) != want {
		t.Fatalf("%d tasks assigned in %d revisions, want %d in %d", assigned, len(slices), n, want)
	}
	first, last := slices[0], slices[0]
	for _, r := range slices {
		first, last = min(first, r), max(last, r)
	}
	if last != resp.Revision {
		t.Fatalf("answer has revision %d, last slice is %d", resp.Revision, last)
	}
	between := 0
	for _, r := range others {
		if r > first && r < last {
			between++
		}
	}
	if between == 0 {
		t.Fatalf("no other operation got a revision between the slices %d..%d (others: %v)", first, last, others)
	}
	c.checkInvariant()
}

// Stopping a job larger than a slice: the job is STOPPED in the first
// revision, its tasks are killed over the following ones, the caller is
// answered when all are, and the resources are free.
func TestSlicedStop(t *testing.T) {
	c := newTestCell(t, Options{NoSync: true})
	c.addMachine("m1", nil, 1<<30, 1<<40, 0)
	n := uint32(2*sliceItems + 10)
	j := c.submit(batchSpec("big", n, 1, 1))
	if _, err := c.state.Commit(ctxT(t), spreadClaims(j, 0, 100, func(uint32) string { return "m1" })); err != nil {
		t.Fatal(err)
	}
	start := c.store.Revision()
	r, err := c.jobs.StopJob(ctxT(t), &cellv1.StopJobRequest{IdOrName: "big"})
	if err != nil {
		t.Fatal(err)
	}
	if r.Job.State != cellv1.JobState_JOB_STATE_STOPPED {
		t.Fatalf("job is %v", r.Job.State)
	}
	revs := revisionsOf(t, c, start, c.store.Revision())
	killed := 0
	for _, tasks := range revs {
		for _, tk := range tasks {
			if tk.State == cellv1.TaskState_TASK_STATE_KILLED {
				killed++
			}
		}
	}
	if killed != int(n) || len(revs) != 3 {
		t.Fatalf("%d tasks killed in %d revisions, want %d in 3", killed, len(revs), n)
	}
	got, err := c.jobs.GetJob(ctxT(t), &cellv1.GetJobRequest{IdOrName: "big"})
	if err != nil {
		t.Fatal(err)
	}
	if k := got.GetCounts().GetKilled(); k != n {
		t.Fatalf("killed %d of %d (%v)", k, n, got.GetCounts())
	}
	m, err := c.machines.GetMachine(ctxT(t), &cellv1.GetMachineRequest{Id: "m1"})
	if err != nil {
		t.Fatal(err)
	}
	if a := m.GetMachine().GetAllocated(); a.GetCpuMilli() != 0 {
		t.Fatalf("machine still has %v allocated", a)
	}
	c.checkInvariant()
}

// firstSliceOnly runs a sliced operation's first slice and stops, as a
// crash between slices would.
type firstSliceOnly struct{ operation }

// A crash between a stop's slices leaves a STOPPED job with tasks still
// pending or placed: claims for them are refused, and after a restart the
// reaper kills the rest; a job that fails by its retry limit is reaped the
// same way.
func TestCrashBetweenStopSlicesIsFinishedByRecovery(t *testing.T) {
	c := newTestCell(t, Options{})
	c.addMachine("m1", nil, 1<<30, 1<<40, 0)
	n := uint32(3*sliceItems + 1)
	j := c.submit(batchSpec("big", n, 1, 1))
	if _, err := c.state.Commit(ctxT(t), spreadClaims(j, 0, 50, func(uint32) string { return "m1" })); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.store.do(ctxT(t), firstSliceOnly{&stopOp{idOrName: "big"}}); err != nil {
		t.Fatal(err)
	}
	counts := func() *cellv1.TaskCounts {
		r, err := c.jobs.GetJob(ctxT(t), &cellv1.GetJobRequest{IdOrName: j.Id})
		if err != nil {
			t.Fatal(err)
		}
		if r.Job.State != cellv1.JobState_JOB_STATE_STOPPED {
			t.Fatalf("job is %v", r.Job.State)
		}
		return r.Counts
	}
	if k := counts().Killed; k != sliceItems {
		t.Fatalf("first slice killed %d, want %d", k, sliceItems)
	}
	// A claim for a task of the stopped job is refused.
	resp, err := c.state.Commit(ctxT(t), spreadClaims(j, n-1, n, func(uint32) string { return "m1" }))
	if err != nil {
		t.Fatal(err)
	}
	if resp.Accepted != 0 || resp.Results[0].Outcome != cellv1.ClaimOutcome_CLAIM_OUTCOME_TASK_NOT_PENDING {
		t.Fatalf("claim of a stopped job's task: %v", resp.Results[0])
	}

	c.restart(Options{})
	waitFor(t, "the reaper to kill every task", func() bool { return counts().Killed == n })
	c.checkInvariant()
}

// A job failed by its retry limit has its tasks killed by the reaper,
// without any caller waiting.
func TestFailedJobIsReaped(t *testing.T) {
	c := newTestCell(t, Options{NoSync: true})
	c.addMachine("m1", nil, 1<<30, 1<<40, 0)
	n := uint32(2*sliceItems + 3)
	j := c.submit(batchSpec("doomed", n, 1, 1))
	if _, err := c.state.Commit(ctxT(t), spreadClaims(j, 0, 1, func(uint32) string { return "m1" })); err != nil {
		t.Fatal(err)
	}
	if _, err := c.agent.ReportTaskStates(ctxT(t), &cellv1.ReportTaskStatesRequest{MachineId: "m1", Updates: []*cellv1.TaskStateUpdate{
		{Task: &cellv1.TaskRef{JobId: j.Id, Index: 0}, Attempt: 1, State: cellv1.TaskState_TASK_STATE_FAILED, ExitCode: 1},
	}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the failed job's tasks to be killed", func() bool {
		r, err := c.jobs.GetJob(ctxT(t), &cellv1.GetJobRequest{IdOrName: j.Id})
		if err != nil {
			t.Fatal(err)
		}
		// The failed task keeps its state (and exit code); the rest are killed.
		return r.Job.State == cellv1.JobState_JOB_STATE_FAILED && r.Counts.Killed == n-1 && r.Counts.Failed == 1
	})
	c.checkInvariant()
}

// Transactions applied atomically are bounded: a commit with claims of a
// gang job holds at most MaxAtomicClaims claims, and a gang job at most
// MaxAtomicClaims tasks.
func TestAtomicTransactionsAreBounded(t *testing.T) {
	c := newTestCell(t, Options{NoSync: true})
	c.addMachine("m1", nil, 1<<30, 1<<40, 0)
	gang := batchSpec("gang", limits.MaxAtomicClaims+1, 1, 1)
	gang.Gang = true
	_, err := c.jobs.SubmitJob(ctxT(t), &cellv1.SubmitJobRequest{Spec: gang})
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("gang of %d tasks: %v", gang.Count, err)
	}
	gang.Count = 4
	g := c.submit(gang)
	wide := c.submit(batchSpec("wide", limits.MaxAtomicClaims, 1, 1))
	req := spreadClaims(wide, 0, limits.MaxAtomicClaims, func(uint32) string { return "m1" })
	req.Claims = append(req.Claims, spreadClaims(g, 0, 4, func(uint32) string { return "m1" }).Claims...)
	if _, err := c.state.Commit(ctxT(t), req); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("commit of %d claims with a gang's: %v", len(req.Claims), err)
	}
	req.CommitMode = cellv1.CommitMode_COMMIT_MODE_ALL_OR_NOTHING
	if _, err := c.state.Commit(ctxT(t), req); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("all-or-nothing commit of %d claims: %v", len(req.Claims), err)
	}
	// Within the bound, the same gang is placed whole.
	resp, err := c.state.Commit(ctxT(t), spreadClaims(g, 0, 4, func(uint32) string { return "m1" }))
	if err != nil || resp.Accepted != 4 {
		t.Fatalf("gang: accepted %d, %v", resp.GetAccepted(), err)
	}
}

// A submission's task changes, encoded before the loop with a guessed
// revision and patched, are the bytes the loop would have encoded; a guess
// of another size is re-encoded.
func TestPreparedSubmitEncoding(t *testing.T) {
	spec := batchSpec("job", 300, 1, 1)
	for _, tc := range []struct{ guess, rev uint64 }{{1, 1}, {100, 127}, {200, 129}, {5, 300}, {1 << 20, 1<<21 - 1}, {1 << 21, 1<<21 - 1}} {
		o := prepareSubmit(spec, 42, tc.guess)
		st := newState()
		st.rev = tc.rev - 1
		st.changes = newChangeSet(tc.rev)
		if _, err := o.run(st); err != nil {
			t.Fatal(err)
		}
		got, err := encode(st.changes)
		if err != nil {
			t.Fatal(err)
		}
		patched := st.changes.taskChanges != nil
		st.changes.taskChanges = nil
		want, err := encode(st.changes)
		if err != nil {
			t.Fatal(err)
		}
		if string(got.data) != string(want.data) {
			t.Fatalf("guess %d, revision %d (patched %v): encodings differ", tc.guess, tc.rev, patched)
		}
		if sameSize := varintSize(tc.guess) == varintSize(tc.rev); patched != sameSize {
			t.Fatalf("guess %d, revision %d: patched %v", tc.guess, tc.rev, patched)
		}
		var w cellv1.WatchResponse
		if err := proto.Unmarshal(got.data, &w); err != nil || len(w.Changes) != 301 || w.Changes[300].GetTask().GetModRevision() != tc.rev {
			t.Fatalf("decoded: %d changes, %v", len(w.Changes), err)
		}
	}
}

func varintSize(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}
