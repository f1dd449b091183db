package cellstate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
	"github.com/omegacell/omegacell/proto/limits"
)

// jumpingClock advances by step on every reading, so that to the watch
// loop every batch of revisions takes longer than a progress interval.
func jumpingClock(step time.Duration) func() time.Time {
	var n atomic.Int64
	base := time.Now()
	return func() time.Time { return base.Add(time.Duration(n.Add(1)) * step) }
}

// longCtx bounds streams that live through many large requests (slow
// under the race detector on a busy machine).
func longCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// TestWatchProgressNeverOvertakesAChange reproduces bug 1 of issue 11: a
// watch filtered by machine catching up over many revisions got a
// progress notification for the head before its change at an earlier
// revision, so a client resuming from the highest revision it saw
// skipped that change. A progress notification for R must follow every
// change <= R of that watch.
func TestWatchProgressNeverOvertakesAChange(t *testing.T) {
	c := newTestCell(t, Options{NoSync: true, Now: jumpingClock(time.Second)})
	// Revisions that do not concern machine "a", then one that does,
	// then more that do not: three read batches of the watch loop.
	for i := range 2 * watchReadBatch {
		c.addMachine(fmt.Sprintf("other-%04d", i), nil, 1000, gib, 0)
	}
	c.addMachine("a", nil, 1000, gib, 0)
	changeRev := c.store.Revision()
	for i := range watchReadBatch {
		c.addMachine(fmt.Sprintf("later-%04d", i), nil, 1000, gib, 0)
	}
	head := c.store.Revision()
	for _, filter := range []string{"a", ""} {
		t.Run("machine="+filter, func(t *testing.T) {
			stream, err := c.state.Watch(ctxT(t), &cellv1.WatchRequest{MachineId: filter, ProgressIntervalMs: minProgressMillis})
			if err != nil {
				t.Fatal(err)
			}
			var highest uint64 // what a client would resume from
			sawChange := false
			for highest < head || !sawChange {
				r, err := stream.Recv()
				if err != nil {
					t.Fatal(err)
				}
				if r.ProgressNotify {
					if !sawChange && r.Revision >= changeRev {
						t.Fatalf("progress notification for revision %d before the change at revision %d was delivered", r.Revision, changeRev)
					}
					if r.Revision > head {
						t.Fatalf("progress for %d beyond the head %d", r.Revision, head)
					}
				} else if r.Revision < highest {
					t.Fatalf("change at revision %d after progress/changes up to %d", r.Revision, highest)
				}
				for _, ch := range r.Changes {
					if ch.GetMachine().GetId() == "a" {
						sawChange = true
					}
				}
				highest = max(highest, r.Revision)
			}
		})
	}
}

// TestCellIdentity: a new store gets a UUID, every start bumps the
// incarnation, and Snapshot chunks, every kind of Watch response and
// RegisterMachine answers carry both.
func TestCellIdentity(t *testing.T) {
	c := newTestCell(t, Options{})
	first := proto.Clone(c.store.Identity()).(*cellv1.CellIdentity)
	if len(first.Id) != 36 || first.Incarnation != 1 {
		t.Fatalf("new cell identity %v, want a UUID and incarnation 1", first)
	}
	c.restart(Options{})
	c.restart(Options{})
	id := c.store.Identity()
	if id.Id != first.Id || id.Incarnation != 3 {
		t.Fatalf("after two restarts: %v, want id %s incarnation 3", id, first.Id)
	}
	reg, err := c.machines.RegisterMachine(ctxT(t), &cellv1.RegisterMachineRequest{Id: "a", Capacity: &cellv1.Resources{CpuMilli: 1000, MemoryBytes: gib}})
	if err != nil || !proto.Equal(reg.Cell, id) {
		t.Fatalf("RegisterMachine: cell %v, err %v; want %v", reg.GetCell(), err, id)
	}
	c.submit(batchSpec("j", 20, 10, 1))
	stream, err := c.state.Snapshot(ctxT(t), &cellv1.SnapshotRequest{ChunkSize: 5})
	if err != nil {
		t.Fatal(err)
	}
	for n := 0; ; n++ {
		r, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(r.Cell, id) {
			t.Fatalf("snapshot chunk %d: cell %v, want %v", n, r.Cell, id)
		}
		if r.Last {
			break
		}
	}
	for _, filter := range []string{"", "a"} {
		w, err := c.state.Watch(ctxT(t), &cellv1.WatchRequest{MachineId: filter, ProgressIntervalMs: 20})
		if err != nil {
			t.Fatal(err)
		}
		kinds := map[bool]bool{}
		for len(kinds) < 2 {
			r, err := w.Recv()
			if err != nil {
				t.Fatal(err)
			}
			if !proto.Equal(r.Cell, id) {
				t.Fatalf("watch (machine %q) response at %d (progress %v): cell %v, want %v", filter, r.Revision, r.ProgressNotify, r.Cell, id)
			}
			kinds[r.ProgressNotify] = true
		}
	}
	// A compacted start is answered with the identity too.
	c.restart(Options{LogRetention: 1})
	for range 3 {
		c.addMachine("a", map[string]string{"n": fmt.Sprint(time.Now().UnixNano())}, 1000, gib, 0)
	}
	w, err := c.state.Watch(ctxT(t), &cellv1.WatchRequest{StartRevision: 1})
	if err != nil {
		t.Fatal(err)
	}
	r, err := w.Recv()
	if err != nil || r.CompactRevision == 0 || r.Cell.GetIncarnation() != 4 {
		t.Fatalf("compacted watch: %v %v, want compact_revision and incarnation 4", r, err)
	}
}

// TestFragments: a revision split on the wire reassembles to the same
// changes, in order, every fragment within the budget (unless one change
// alone is larger) and all but the last marked.
func TestFragments(t *testing.T) {
	mk := func(sizes ...int) *cellv1.WatchResponse {
		r := &cellv1.WatchResponse{Revision: 77}
		for i, n := range sizes {
			r.Changes = append(r.Changes, &cellv1.Change{Object: &cellv1.Change_Task{Task: &cellv1.Task{JobId: "j", Index: uint32(i), Message: strings.Repeat("x", n)}}})
		}
		return r
	}
	for _, tc := range []struct {
		name      string
		in        *cellv1.WatchResponse
		budget    int
		fragments int
	}{
		{"empty", mk(), 100, 1},
		{"fits", mk(10, 10, 10), 1000, 1},
		{"two per fragment", mk(30, 30, 30, 30, 30), 90, 3},
		{"one per fragment", mk(50, 50, 50), 60, 3},
		{"oversized change alone", mk(10, 500, 10), 100, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data, err := proto.Marshal(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			frags, err := fragments(data, tc.budget)
			if err != nil {
				t.Fatal(err)
			}
			if len(frags) != tc.fragments {
				t.Fatalf("%d fragments, want %d", len(frags), tc.fragments)
			}
			got := &cellv1.WatchResponse{Revision: 77}
			for i, f := range frags {
				r := &cellv1.WatchResponse{}
				if err := proto.Unmarshal(f, r); err != nil {
					t.Fatal(err)
				}
				if r.Revision != 77 || r.Fragment != (i < len(frags)-1) {
					t.Fatalf("fragment %d: revision %d fragment %v", i, r.Revision, r.Fragment)
				}
				if len(r.Changes) > 1 && proto.Size(&cellv1.WatchResponse{Changes: r.Changes}) > tc.budget {
					t.Fatalf("fragment %d holds %d bytes of changes, budget %d", i, proto.Size(&cellv1.WatchResponse{Changes: r.Changes}), tc.budget)
				}
				got.Changes = append(got.Changes, r.Changes...)
			}
			if !proto.Equal(got, tc.in) {
				t.Fatal("reassembled fragments differ from the revision")
			}
		})
	}
	if _, err := fragments([]byte{0xff}, 10); err == nil {
		t.Fatal("garbage split without error")
	}
}

// largestJobSpec submits a job whose task carries as many arguments of
// the longest legal size as its spec's size bound (limits.MaxJobSpecBytes)
// allows, and returns it.
func largestJobSpec(t testing.TB, c *testCell, name string) *cellv1.JobSpec {
	t.Helper()
	for room := limits.MaxJobSpecBytes; ; room -= 1 << 10 {
		spec := batchSpec(name, 1, 10, 1)
		for proto.Size(spec)+limits.MaxStringLen+8 <= room && len(spec.Task.Args) < limits.MaxArgs {
			spec.Task.Args = append(spec.Task.Args, strings.Repeat("a", limits.MaxStringLen))
		}
		if rest := room - proto.Size(spec) - 8; rest > 0 {
			spec.Task.Args = append(spec.Task.Args, strings.Repeat("b", rest))
		}
		_, err := c.jobs.SubmitJob(ctxT(t), &cellv1.SubmitJobRequest{Spec: spec})
		if err == nil {
			return spec
		}
		if status.Code(err) != codes.InvalidArgument || room < limits.MaxJobSpecBytes/2 {
			t.Fatalf("submit %s of %d bytes: %v", name, proto.Size(spec), err)
		}
	}
}

// bigJobs is how many largest legal jobs hold more than one message can:
// the case (a dozen jobs of 5 MB made 69 MB > 64 MB) under the
// per-job bound that came since.
const bigJobs = limits.MaxRequestBytes/limits.MaxJobSpecBytes*11/10 + 1

// TestHostileLargestJobsFitTheWire: a dozen jobs at the largest legal
// args/env size (69 MB of jobs with the bounds of then) made every default
// Snapshot and ListJobs fail with ResourceExhausted. With jobs bounded to
// MaxJobSpecBytes, it takes bigJobs of them to hold as much: the snapshot
// is chunked by bytes and ListJobs is paged, so both return every job,
// every message well within the send limit, and an unfiltered watch that
// followed the submissions has every one.
func TestHostileLargestJobsFitTheWire(t *testing.T) {
	c := newTestCell(t, Options{NoSync: true})
	c.addMachine("m", nil, 64000, 64*gib, 0)
	w, err := c.state.Watch(longCtx(t), &cellv1.WatchRequest{StartRevision: c.store.Revision()})
	if err != nil {
		t.Fatal(err)
	}
	const jobs = bigJobs
	total := 0
	for i := range jobs {
		spec := largestJobSpec(t, c, fmt.Sprintf("big-%04d", i))
		total += proto.Size(spec)
	}
	t.Logf("%d jobs of %d bytes each, %d MB in all", jobs, total/jobs, total>>20)
	seen := 0
	for seen < jobs {
		r, err := w.Recv()
		if err != nil {
			t.Fatalf("watch broke after %d jobs: %v", seen, err)
		}
		for _, ch := range r.Changes {
			if ch.GetJob() != nil && strings.HasPrefix(ch.GetJob().Spec.Name, "big-") && ch.GetJob().ModRevision == r.Revision && ch.GetJob().State == cellv1.JobState_JOB_STATE_PENDING {
				seen++
			}
		}
	}

	stream, err := c.state.Snapshot(ctxT(t), &cellv1.SnapshotRequest{})
	if err != nil {
		t.Fatal(err)
	}
	got, chunks := 0, 0
	for {
		r, err := stream.Recv()
		if err != nil {
			t.Fatalf("snapshot chunk %d: %v", chunks, err)
		}
		chunks++
		if n := proto.Size(r); n > chunkBytes+limits.MaxRequestBytes/8 && len(r.Jobs)+len(r.Tasks)+len(r.Machines) > 1 {
			t.Fatalf("snapshot chunk of %d bytes with %d objects", n, len(r.Jobs)+len(r.Tasks)+len(r.Machines))
		}
		got += len(r.Jobs)
		if r.Last {
			break
		}
	}
	if got != jobs {
		t.Fatalf("snapshot: %d jobs, want %d", got, jobs)
	}
	t.Logf("snapshot in %d chunks", chunks)

	listed, pages := 0, 0
	req := &cellv1.ListJobsRequest{}
	for {
		r, err := c.jobs.ListJobs(ctxT(t), req)
		if err != nil {
			t.Fatalf("ListJobs page %d: %v", pages, err)
		}
		pages++
		if proto.Size(r) > limits.MaxRequestBytes/2 {
			t.Fatalf("ListJobs page of %d bytes", proto.Size(r))
		}
		listed += len(r.Jobs)
		if r.NextPageToken == "" {
			break
		}
		req.PageToken = r.NextPageToken
	}
	if listed != jobs || pages < 2 {
		t.Fatalf("ListJobs: %d jobs in %d pages, want %d jobs in several pages", listed, pages, jobs)
	}
	// The cell keeps serving small requests.
	c.submit(batchSpec("small", 1, 10, 1))
}

// TestHostileLargeRevisionKeepsWatchesAlive: one legal revision far
// larger than a message (a job of 100,000 tasks) reaches every unfiltered
// watch as fragments, and the watches go on; stopping it (25 revisions,
// slice.go) reaches them too.
func TestHostileLargeRevisionKeepsWatchesAlive(t *testing.T) {
	c := newTestCell(t, Options{NoSync: true})
	start := c.store.Revision()
	const watchers = 3
	type result struct {
		tasks, fragments int
		err              error
	}
	results := make([]result, watchers)
	var wg sync.WaitGroup
	ready := make(chan struct{}, watchers)
	for i := range watchers {
		w, err := c.state.Watch(longCtx(t), &cellv1.WatchRequest{StartRevision: start})
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			ready <- struct{}{}
			res := &results[i]
			for {
				r, err := w.Recv()
				if err != nil {
					res.err = err
					return
				}
				if r.Fragment {
					res.fragments++
				}
				done := false
				for _, ch := range r.Changes {
					if ch.GetTask() != nil {
						res.tasks++
					}
					if j := ch.GetJob(); j != nil && j.Spec.Name == "after" {
						done = true
					}
				}
				if done {
					return
				}
			}
		}()
	}
	for range watchers {
		<-ready
	}
	huge := batchSpec("huge", limits.MaxTasksPerJob, 1, 1)
	job := c.submit(huge)
	if _, err := c.jobs.StopJob(ctxT(t), &cellv1.StopJobRequest{IdOrName: job.Id}); err != nil {
		t.Fatal(err)
	}
	c.submit(batchSpec("after", 1, 1, 1))
	wg.Wait()
	for i, r := range results {
		if r.err != nil && !errors.Is(r.err, io.EOF) {
			t.Fatalf("watcher %d: %v", i, r.err)
		}
		if r.tasks != 2*limits.MaxTasksPerJob+1 || r.fragments < 1 {
			t.Fatalf("watcher %d: %d task changes in %d fragments, want %d, some in fragments", i, r.tasks, r.fragments, 2*limits.MaxTasksPerJob+1)
		}
	}
}

// FuzzFragments: splitting any bytes never panics, and whatever splits
// reassembles to the same changes.
//
//	go test ./cellstate -run '^$' -fuzz FuzzFragments -fuzztime 60s
func FuzzFragments(f *testing.F) {
	seed, _ := proto.Marshal(&cellv1.WatchResponse{Revision: 9, Changes: []*cellv1.Change{
		{Object: &cellv1.Change_Task{Task: &cellv1.Task{JobId: "j", Index: 1}}},
		{Object: &cellv1.Change_Machine{Machine: &cellv1.Machine{Id: "m"}}},
	}})
	f.Add(seed, 16)
	f.Add([]byte{0x12, 0x00}, 1)
	f.Fuzz(func(t *testing.T, data []byte, budget int) {
		in := &cellv1.WatchResponse{}
		if proto.Unmarshal(data, in) != nil {
			return
		}
		frags, err := fragments(data, max(1, budget%4096))
		if err != nil {
			t.Fatalf("valid message not split: %v", err)
		}
		got := &cellv1.WatchResponse{}
		for _, fr := range frags {
			r := &cellv1.WatchResponse{}
			if err := proto.Unmarshal(fr, r); err != nil {
				t.Fatal(err)
			}
			got.Changes = append(got.Changes, r.Changes...)
		}
		if len(got.Changes) != len(in.Changes) {
			t.Fatalf("%d changes reassembled, want %d", len(got.Changes), len(in.Changes))
		}
		for i := range in.Changes {
			if !proto.Equal(got.Changes[i], in.Changes[i]) {
				t.Fatalf("change %d differs", i)
			}
		}
	})
}

// fragments collects eachFragment's fragments.
func fragments(data []byte, budget int) ([][]byte, error) {
	var out [][]byte
	err := eachFragment(data, budget, func(f []byte) bool {
		out = append(out, f)
		return true
	})
	return out, err
}
