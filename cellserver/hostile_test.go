package cellserver_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/omegacell/omegacell/cellserver"
	"github.com/omegacell/omegacell/internal/celltest"
	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
)

func eventually(t *testing.T, what string, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for: %s", within, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// 20,000 registrations of distinct scheduler names keep at most the cap;
// the rest are refused with ResourceExhausted, and silent ones are
// forgotten after the TTL, so new names fit again.
func TestHostileSchedulerRegistrationsAreBounded(t *testing.T) {
	const maxSchedulers = 200
	c := celltest.StartWith(t, func(cfg *cellserver.Config) {
		cfg.MaxSchedulers = maxSchedulers
		cfg.SchedulerTTL = 2 * time.Second
	})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	sched := cellv1.NewSchedulerServiceClient(c.Conn)
	var accepted, refused atomic.Int64
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < 20_000; i += 8 {
				_, err := sched.RegisterScheduler(ctx, &cellv1.RegisterSchedulerRequest{Name: fmt.Sprintf("s-%05d", i)})
				switch status.Code(err) {
				case codes.OK:
					accepted.Add(1)
				case codes.ResourceExhausted:
					refused.Add(1)
					if !strings.Contains(err.Error(), "max-schedulers") {
						t.Errorf("refusal does not name the cap: %v", err)
					}
				default:
					t.Errorf("register: %v", err)
				}
			}
		}()
	}
	wg.Wait()
	// Silent ones expire meanwhile (the TTL is short), so more than the
	// cap may be accepted over time; never more than the cap at once.
	names, _ := c.Server.Store().Schedulers()
	if len(names) > maxSchedulers || accepted.Load() < maxSchedulers-3 || refused.Load() == 0 || accepted.Load()+refused.Load() != 20_000 {
		t.Fatalf("registered %d, accepted %d, refused %d; want at most %d registered", len(names), accepted.Load(), refused.Load(), maxSchedulers)
	}
	// The cell keeps serving: listing works; after the TTL the silent ones
	// are gone and a new scheduler registers.
	if _, err := sched.ListSchedulers(ctx, &cellv1.ListSchedulersRequest{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "silent schedulers are forgotten", 10*time.Second, func() bool {
		names, _ := c.Server.Store().Schedulers()
		return len(names) == 3
	})
	if _, err := sched.RegisterScheduler(ctx, &cellv1.RegisterSchedulerRequest{Name: "newcomer"}); err != nil {
		t.Fatal(err)
	}
}

// The cell-wide pending cap refuses a submission that would pass it with
// ResourceExhausted naming the cap, and the cell keeps serving.
func TestHostilePendingTasksAreCapped(t *testing.T) {
	c := celltest.StartWith(t, func(cfg *cellserver.Config) { cfg.MaxPendingTasks = 250_000 })
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	jobs := cellv1.NewJobServiceClient(c.Conn)
	spec := func(name string, n uint32) *cellv1.JobSpec {
		return &cellv1.JobSpec{Name: name, Scheduler: "batch", Count: n,
			Task: &cellv1.TaskTemplate{Command: "/bin/true", Resources: &cellv1.Resources{CpuMilli: 1, MemoryBytes: 1}}}
	}
	for i := range 2 {
		if _, err := jobs.SubmitJob(ctx, &cellv1.SubmitJobRequest{Spec: spec(fmt.Sprintf("big-%d", i), 100_000)}); err != nil {
			t.Fatal(err)
		}
	}
	_, err := jobs.SubmitJob(ctx, &cellv1.SubmitJobRequest{Spec: spec("big-2", 100_000)})
	if status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "cap of 250000 pending tasks") {
		t.Fatalf("over the cap: %v", err)
	}
	if _, err := jobs.SubmitJob(ctx, &cellv1.SubmitJobRequest{Spec: spec("small", 10)}); err != nil {
		t.Fatalf("a job within the cap: %v", err)
	}
	if _, err := jobs.StopJob(ctx, &cellv1.StopJobRequest{IdOrName: "big-0"}); err != nil {
		t.Fatal(err)
	}
	if _, err := jobs.SubmitJob(ctx, &cellv1.SubmitJobRequest{Spec: spec("big-2", 100_000)}); err != nil {
		t.Fatalf("after stopping a job, room again: %v", err)
	}
}

// A finished job is deleted after a short retention: watchers get the
// deletion, the name is reusable, and the cell keeps serving.
func TestHostileFinishedJobsAreDeletedAfterRetention(t *testing.T) {
	c := celltest.StartWith(t, func(cfg *cellserver.Config) { cfg.JobRetention = 300 * time.Millisecond })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	jobs := cellv1.NewJobServiceClient(c.Conn)
	spec := &cellv1.JobSpec{Name: "short", Scheduler: "batch", Count: 1000,
		Task: &cellv1.TaskTemplate{Command: "/bin/true", Resources: &cellv1.Resources{CpuMilli: 1, MemoryBytes: 1}}}
	first, err := jobs.SubmitJob(ctx, &cellv1.SubmitJobRequest{Spec: spec})
	if err != nil {
		t.Fatal(err)
	}
	watch, err := cellv1.NewStateServiceClient(c.Conn).Watch(ctx, &cellv1.WatchRequest{StartRevision: first.Revision})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := jobs.StopJob(ctx, &cellv1.StopJobRequest{IdOrName: "short"}); err != nil {
		t.Fatal(err)
	}
	for {
		r, err := watch.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Changes) == 1 && r.Changes[0].GetDeleted().GetJobId() == first.Job.Id {
			break
		}
	}
	if _, err := jobs.GetJob(ctx, &cellv1.GetJobRequest{IdOrName: first.Job.Id}); status.Code(err) != codes.NotFound {
		t.Fatalf("deleted job: %v", err)
	}
	second, err := jobs.SubmitJob(ctx, &cellv1.SubmitJobRequest{Spec: spec})
	if err != nil {
		t.Fatalf("the name again: %v", err)
	}
	if g, err := jobs.GetJob(ctx, &cellv1.GetJobRequest{IdOrName: "short"}); err != nil || g.Job.Id != second.Job.Id {
		t.Fatalf("by name: %v %v", g, err)
	}
	if deleted, _ := c.Metric(t, "omegacell_store_deleted_tasks_total"); deleted != 1000 {
		t.Fatalf("deleted tasks metric %v, want 1000", deleted)
	}
}
