package cellstate

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
)

// mirror is a client's copy of the cell: a snapshot, then the watch.
type mirror struct {
	rev      uint64
	machines map[string]*cellv1.Machine
	jobs     map[string]*cellv1.Job
	tasks    map[string]*cellv1.Task
}

func taskID(t *cellv1.Task) string { return fmt.Sprintf("%s/%d", t.JobId, t.Index) }

func newMirror(s *cellv1.SnapshotResponse) *mirror {
	m := &mirror{rev: s.Revision, machines: map[string]*cellv1.Machine{}, jobs: map[string]*cellv1.Job{}, tasks: map[string]*cellv1.Task{}}
	for _, x := range s.Machines {
		m.machines[x.Id] = x
	}
	for _, x := range s.Jobs {
		m.jobs[x.Id] = x
	}
	for _, x := range s.Tasks {
		m.tasks[taskID(x)] = x
	}
	return m
}

func (m *mirror) apply(r *cellv1.WatchResponse) error {
	if r.ProgressNotify {
		if r.Revision > m.rev {
			m.rev = r.Revision
		}
		return nil
	}
	if r.Revision <= m.rev {
		return errors.New("watch went backwards or repeated a revision")
	}
	m.rev = r.Revision
	for _, c := range r.Changes {
		switch o := c.Object.(type) {
		case *cellv1.Change_Machine:
			m.machines[o.Machine.Id] = o.Machine
		case *cellv1.Change_Job:
			m.jobs[o.Job.Id] = o.Job
		case *cellv1.Change_Task:
			m.tasks[taskID(o.Task)] = o.Task
		}
	}
	return nil
}

func (m *mirror) snapshot() *cellv1.SnapshotResponse {
	s := &cellv1.SnapshotResponse{Revision: m.rev}
	for _, x := range m.machines {
		s.Machines = append(s.Machines, x)
	}
	for _, x := range m.jobs {
		s.Jobs = append(s.Jobs, x)
	}
	for _, x := range m.tasks {
		s.Tasks = append(s.Tasks, x)
	}
	sortSnapshot(s)
	return s
}

// churn drives a random but seeded mix of every kind of change.
func churn(t *testing.T, c *testCell, seed uint64, steps int) {
	rng := rand.New(rand.NewPCG(seed, 1))
	for i := range 8 {
		c.addMachine(machineName(i), map[string]string{"rack": machineName(i % 3)}, 8000, 32*gib, 2)
	}
	var jobs []*cellv1.Job
	for step := range steps {
		switch rng.IntN(6) {
		case 0, 1:
			spec := batchSpec(machineName(1000+step), uint32(1+rng.IntN(5)), int64(500+rng.IntN(2000)), gib)
			jobs = append(jobs, c.submit(spec))
		case 2, 3, 4:
			if len(jobs) == 0 {
				continue
			}
			j := jobs[rng.IntN(len(jobs))]
			var claims []*cellv1.Claim
			for i := range j.Spec.Count {
				claims = append(claims, claim(j.Id, i, machineName(rng.IntN(8)), j.Spec.Task.Resources))
			}
			if _, err := c.state.Commit(ctxT(t), &cellv1.CommitRequest{Scheduler: "batch", Claims: claims}); err != nil {
				t.Fatal(err)
			}
		case 5:
			if len(jobs) == 0 {
				continue
			}
			i := rng.IntN(len(jobs))
			c.jobs.StopJob(ctxT(t), &cellv1.StopJobRequest{IdOrName: jobs[i].Id}) // may already be stopped
			jobs = append(jobs[:i], jobs[i+1:]...)
		}
	}
}

func TestWatchRebuildsState(t *testing.T) {
	c := newTestCell(t, Options{})
	c.addMachine("seed", nil, 1000, gib, 0)
	m := newMirror(snapshotOf(t, c))
	stream, err := c.state.Watch(ctxT(t), &cellv1.WatchRequest{StartRevision: m.rev, ProgressIntervalMs: 20})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		churn(t, c, 42, 150)
	}()
	wg.Wait()
	final := snapshotOf(t, c)
	for m.rev < final.Revision {
		r, err := stream.Recv()
		if err != nil {
			t.Fatalf("watch: %v", err)
		}
		if err := m.apply(r); err != nil {
			t.Fatal(err)
		}
	}
	if got := m.snapshot(); !proto.Equal(got, final) {
		t.Fatalf("mirror at revision %d differs from the server's snapshot", m.rev)
	}
	if len(final.Tasks) == 0 {
		t.Fatal("churn produced no tasks")
	}
}

func TestWatchCompactedResnapshots(t *testing.T) {
	c := newTestCell(t, Options{LogRetention: 16, CheckpointRevisions: 10})
	old := snapshotOf(t, c)
	churn(t, c, 7, 120)

	stream, err := c.state.Watch(ctxT(t), &cellv1.WatchRequest{StartRevision: old.Revision})
	if err != nil {
		t.Fatal(err)
	}
	r, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if r.CompactRevision == 0 {
		t.Fatalf("watch from compacted revision %d: got %v, want a compact_revision", old.Revision, r)
	}
	_, err = stream.Recv()
	if status.Code(err) != codes.OutOfRange {
		t.Fatalf("after the compacted notice: %v, want OUT_OF_RANGE", err)
	}

	// Recover: resnapshot, watch from there, follow more changes.
	snap := snapshotOf(t, c)
	if snap.Revision <= r.CompactRevision {
		t.Fatalf("snapshot revision %d not after compaction %d", snap.Revision, r.CompactRevision)
	}
	m := newMirror(snap)
	stream, err = c.state.Watch(ctxT(t), &cellv1.WatchRequest{StartRevision: snap.Revision})
	if err != nil {
		t.Fatal(err)
	}
	churnMore := c.submit(batchSpec("after-compaction", 3, 100, gib))
	final := snapshotOf(t, c)
	for m.rev < final.Revision {
		r, err := stream.Recv()
		if err != nil {
			t.Fatalf("watch after resnapshot: %v", err)
		}
		m.apply(r)
	}
	if !proto.Equal(m.snapshot(), final) {
		t.Fatal("mirror differs after resnapshot and watch")
	}
	if _, ok := m.jobs[churnMore.Id]; !ok {
		t.Fatal("job submitted after resnapshot not seen")
	}

	// Older revisions still in the log are read back from Pebble after a
	// restart (the in-memory ring is empty then).
	c.restart(Options{LogRetention: 16, CheckpointRevisions: 10})
	stream, err = c.state.Watch(ctxT(t), &cellv1.WatchRequest{StartRevision: final.Revision - 3})
	if err != nil {
		t.Fatal(err)
	}
	for want := final.Revision - 2; want <= final.Revision; want++ {
		r, err := stream.Recv()
		if err != nil || r.Revision != want {
			t.Fatalf("replay after restart: got %v %v, want revision %d", r, err, want)
		}
	}
}

func TestWatchProgressAndMachineFilter(t *testing.T) {
	c := newTestCell(t, Options{})
	c.addMachine("a", nil, 4000, 4*gib, 0)
	c.addMachine("b", nil, 4000, 4*gib, 0)
	job := c.submit(batchSpec("j", 2, 1000, gib))
	start := c.store.Revision()
	stream, err := c.state.Watch(ctxT(t), &cellv1.WatchRequest{StartRevision: start, MachineId: "a", ProgressIntervalMs: 30})
	if err != nil {
		t.Fatal(err)
	}
	res := job.Spec.Task.Resources
	c.state.Commit(ctxT(t), &cellv1.CommitRequest{Scheduler: "batch", Claims: []*cellv1.Claim{claim(job.Id, 0, "b", res)}})
	c.state.Commit(ctxT(t), &cellv1.CommitRequest{Scheduler: "batch", Claims: []*cellv1.Claim{claim(job.Id, 1, "a", res)}})
	// Progress notifications may come first (each carries the revision
	// the watch was brought up to, which may be start+1 while the second
	// commit is on its way); the first change must be the one on a.
	r, err := stream.Recv()
	for err == nil && r.ProgressNotify {
		if r.Revision > start+1 {
			t.Fatalf("progress for revision %d before the change at %d", r.Revision, start+2)
		}
		r, err = stream.Recv()
	}
	if err != nil {
		t.Fatal(err)
	}
	if r.Revision != start+2 {
		t.Fatalf("first event revision %d, want %d (the change on b is filtered out)", r.Revision, start+2)
	}
	for _, ch := range r.Changes {
		if tk := ch.GetTask(); tk != nil && tk.MachineId != "a" {
			t.Fatalf("machine watch got a task of %q", tk.MachineId)
		}
	}
	// Stopping the job moves the task off "a": the agent must see it.
	c.jobs.StopJob(ctxT(t), &cellv1.StopJobRequest{IdOrName: job.Id})
	r, err = stream.Recv()
	if err != nil || len(r.Changes) == 0 {
		t.Fatalf("stop not seen by machine watch: %v %v", r, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		r, err = stream.Recv()
		if err == io.EOF || err != nil {
			t.Fatal(err)
		}
		if r.ProgressNotify {
			if r.Revision != c.store.Revision() {
				t.Fatalf("progress at %d, store at %d", r.Revision, c.store.Revision())
			}
			return
		}
	}
	t.Fatal("no progress notification")
}

// TestCommitAfterCloseWatchers: closing the watch streams (the first step
// of a shutdown) does not stop commits, which stay durable.
func TestCommitAfterCloseWatchers(t *testing.T) {
	c := newTestCell(t, Options{})
	c.store.CloseWatchers()
	c.addMachine("m1", nil, 1000, gib, 0)
	if c.store.Revision() == 0 {
		t.Fatal("commit after CloseWatchers was not applied")
	}
	stream, err := c.state.Watch(ctxT(t), &cellv1.WatchRequest{})
	if err == nil {
		_, err = stream.Recv()
	}
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("watch after CloseWatchers: %v, want UNAVAILABLE", err)
	}
}

// TestWatchFromTheFutureIsRefused: a client whose copy is ahead of the
// cell (the server lost or replaced its data) is told to resnapshot
// instead of waiting forever.
func TestWatchFromTheFutureIsRefused(t *testing.T) {
	c := newTestCell(t, Options{})
	c.addMachine("m1", nil, 1000, gib, 0)
	stream, err := c.state.Watch(ctxT(t), &cellv1.WatchRequest{StartRevision: c.store.Revision() + 5})
	if err == nil {
		_, err = stream.Recv()
	}
	if status.Code(err) != codes.OutOfRange || !strings.Contains(err.Error(), "resnapshot") {
		t.Fatalf("watch from the future: %v, want OUT_OF_RANGE asking to resnapshot", err)
	}
}
