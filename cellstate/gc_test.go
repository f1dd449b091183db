package cellstate

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
)

// fakeClock is a settable clock for Options.Now.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// waitFor polls cond for up to 5 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A finished job is deleted with its tasks once its retention passed, and
// not before; watchers get one deletion change; the name is reused; a
// live job is never collected; the deletion survives a restart (objects
// deleted from Pebble, the log replayed over the checkpoint).
func TestFinishedJobsAreDeletedAfterRetention(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	opts := Options{Now: clock.Now, JobRetention: time.Hour, CheckpointRevisions: 3, GCInterval: 10 * time.Millisecond}
	c := newTestCell(t, opts)
	c.addMachine("m1", nil, 4000, 4*gib, 0)
	done := c.submit(batchSpec("done", 300, 10, 1))
	live := c.submit(batchSpec("live", 2, 10, 1))
	c.place(live, 0, "m1")
	watch, err := c.state.Watch(ctxT(t), &cellv1.WatchRequest{StartRevision: c.store.Revision()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.jobs.StopJob(ctxT(t), &cellv1.StopJobRequest{IdOrName: "done"}); err != nil {
		t.Fatal(err)
	}
	stoppedRev := c.store.Revision()

	clock.Add(59 * time.Minute)
	time.Sleep(50 * time.Millisecond) // a few collector rounds: nothing is due
	if _, err := c.jobs.GetJob(ctxT(t), &cellv1.GetJobRequest{IdOrName: done.Id}); err != nil {
		t.Fatalf("job deleted before its retention: %v", err)
	}

	clock.Add(2 * time.Minute)
	waitFor(t, "the finished job to be deleted", func() bool {
		_, err := c.store.GetJob(done.Id, false)
		return status.Code(err) == codes.NotFound
	})
	if _, err := c.store.GetJob(live.Id, false); err != nil {
		t.Fatalf("live job collected: %v", err)
	}
	c.checkInvariant()

	// Watchers see the stop, then exactly one deletion naming the job.
	var deleted []string
	for len(deleted) == 0 {
		r, err := watch.Recv()
		if err != nil {
			t.Fatal(err)
		}
		for _, ch := range r.Changes {
			if d := ch.GetDeleted(); d != nil {
				if r.Revision <= stoppedRev {
					t.Fatalf("deletion at revision %d, not after the stop at %d", r.Revision, stoppedRev)
				}
				deleted = append(deleted, d.GetJobId())
			}
		}
	}
	if len(deleted) != 1 || deleted[0] != done.Id {
		t.Fatalf("deletions %v, want [%s]", deleted, done.Id)
	}

	again := c.submit(batchSpec("done", 1, 10, 1))
	if got, err := c.store.GetJob("done", false); err != nil || got.Job.Id != again.Id {
		t.Fatalf("name lookup after reuse: %v %v", got, err)
	}

	c.restart(opts)
	if _, err := c.store.GetJob(done.Id, false); status.Code(err) != codes.NotFound {
		t.Fatalf("deleted job back after restart: %v", err)
	}
	var chunks int
	if err := c.store.scan(prefixTaskChunk, func(k, _ []byte) error {
		if string(k[len(prefixTaskChunk):len(prefixTaskChunk)+len(done.Id)]) == done.Id {
			chunks++
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if chunks != 0 {
		t.Fatalf("%d task chunks of the deleted job left in Pebble", chunks)
	}
	snap := c.store.Snapshot()
	if len(snap.jobs) != 2 {
		t.Fatalf("snapshot after restart holds %d jobs, want 2 (live, done again)", len(snap.jobs))
	}
	c.checkInvariant()
}

// Submissions beyond the cell's pending cap are refused with
// ResourceExhausted naming the cap; placing tasks makes room again.
func TestPendingCapRefusesSubmissions(t *testing.T) {
	c := newTestCell(t, Options{MaxPendingTasks: 10})
	c.addMachine("m1", nil, 4000, 4*gib, 0)
	job := c.submit(batchSpec("a", 8, 10, 1))
	_, err := c.jobs.SubmitJob(ctxT(t), &cellv1.SubmitJobRequest{Spec: batchSpec("b", 3, 10, 1)})
	if status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "cap of 10 pending tasks") {
		t.Fatalf("over the cap: %v", err)
	}
	c.place(job, 0, "m1")
	c.submit(batchSpec("b", 3, 10, 1))
}

// Silent schedulers without live jobs are forgotten after the TTL;
// builtins and owners of live jobs are not; the count is capped.
func TestSchedulerRegistrationsExpireAndAreCapped(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	c := newTestCell(t, Options{Now: clock.Now, SchedulerTTL: time.Minute, MaxSchedulers: 6, GCInterval: 10 * time.Millisecond})
	sched := cellv1.NewSchedulerServiceClient(c.conn)
	for _, n := range []string{"idle", "owner", "chatty"} {
		if _, err := sched.RegisterScheduler(ctxT(t), &cellv1.RegisterSchedulerRequest{Name: n}); err != nil {
			t.Fatal(err)
		}
	}
	_, err := sched.RegisterScheduler(ctxT(t), &cellv1.RegisterSchedulerRequest{Name: "one-too-many"})
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("registration beyond the cap: %v", err)
	}
	spec := batchSpec("j", 1, 10, 1)
	spec.Scheduler = "owner"
	c.submit(spec)

	clock.Add(45 * time.Second)
	if _, err := sched.ReportSchedulerStats(ctxT(t), &cellv1.ReportSchedulerStatsRequest{Name: "chatty", Stats: &cellv1.SchedulerStats{}}); err != nil {
		t.Fatal(err)
	}
	clock.Add(30 * time.Second)
	waitFor(t, "the idle scheduler to be forgotten", func() bool {
		names, _ := c.store.Schedulers()
		return !strings.Contains(strings.Join(names, ","), "idle")
	})
	names, _ := c.store.Schedulers()
	if got := strings.Join(names, ","); got != "batch,chatty,gpu,owner,service" {
		t.Fatalf("registered after expiry: %s", got)
	}
	_, err = sched.ReportSchedulerStats(ctxT(t), &cellv1.ReportSchedulerStatsRequest{Name: "idle", Stats: &cellv1.SchedulerStats{}})
	if status.Code(err) != codes.NotFound {
		t.Fatalf("stats of a forgotten scheduler: %v", err)
	}
	if _, err := sched.RegisterScheduler(ctxT(t), &cellv1.RegisterSchedulerRequest{Name: "one-too-many"}); err != nil {
		t.Fatalf("registration after a slot was freed: %v", err)
	}
	c.restart(Options{Now: clock.Now, SchedulerTTL: time.Minute, MaxSchedulers: 6, GCInterval: 10 * time.Millisecond})
	names, _ = c.store.Schedulers()
	if got := strings.Join(names, ","); got != "batch,chatty,gpu,one-too-many,owner,service" {
		t.Fatalf("registered after restart: %s", got)
	}
}

// Memory is given back once collections deleted releaseAfterTasks tasks
// in total, whether in one big job or in many small ones (a cell churning
// small jobs once kept the garbage of hundreds of thousands of deleted
// tasks resident until the Go runtime's two-minute forced collection).
func TestCollectorReleasesMemoryAfterManySmallDeletions(t *testing.T) {
	tests := []struct {
		name         string
		jobs, perJob int
		releases     float64
	}{
		{"many small jobs", 2 * releaseAfterTasks / 5000, 5000, 2},
		{"one big job", 1, releaseAfterTasks, 1},
		{"fewer tasks than the threshold", 4, releaseAfterTasks / 5, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clock := &fakeClock{t: time.Unix(1_700_000_000, 0)}
			c := newTestCell(t, Options{Now: clock.Now, JobRetention: time.Hour, GCInterval: 10 * time.Millisecond, NoSync: true,
				Metrics: NewMetrics(prometheus.NewRegistry())})
			// Job i finishes at minute i, so each is deleted by a
			// collection of its own.
			for i := range tc.jobs {
				j := c.submit(batchSpec(fmt.Sprintf("j%d", i), uint32(tc.perJob), 10, 1))
				if _, err := c.jobs.StopJob(ctxT(t), &cellv1.StopJobRequest{IdOrName: j.Id}); err != nil {
					t.Fatal(err)
				}
				clock.Add(time.Minute)
			}
			clock.Add(time.Hour - time.Duration(tc.jobs)*time.Minute - 30*time.Second)
			for i := range tc.jobs {
				clock.Add(time.Minute)
				deleted := float64((i + 1) * tc.perJob)
				waitFor(t, fmt.Sprintf("job %d to be deleted", i), func() bool { return testutil.ToFloat64(c.store.m.gcTasks) == deleted })
			}
			deleted := float64(tc.jobs * tc.perJob)
			waitFor(t, "the releases", func() bool { return testutil.ToFloat64(c.store.m.gcReleases) >= tc.releases })
			time.Sleep(100 * time.Millisecond) // and no more
			if got := testutil.ToFloat64(c.store.m.gcReleases); got != tc.releases {
				t.Fatalf("%v releases after deleting %v tasks, want %v", got, deleted, tc.releases)
			}
		})
	}
}
