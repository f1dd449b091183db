package cellserver

import (
	"context"
	"testing"
	"time"

	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
)

// TestWebViewFollowsBigRevisions: a revision larger than gRPC's default
// message limit (a 100,000-task submission, a stop of it) reaches the web
// view's watch in fragments up to the server's limit; the view applies
// them and never falls back to reading the whole cell again (its
// connection once kept the 4 MiB default: every big revision broke the
// watch and cost a snapshot of every object).
func TestWebViewFollowsBigRevisions(t *testing.T) {
	if testing.Short() {
		t.Skip("submits 100,000 tasks")
	}
	s, err := Start(Config{DataDir: t.TempDir(), Listen: "127.0.0.1:0", Metrics: "127.0.0.1:0", NATSListen: "127.0.0.1:-1", NoSync: true}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	conn := adminConn(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		for !ok() {
			if ctx.Err() != nil {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitFor("the web view's first snapshot", func() bool { return s.ui.Snapshots() == 1 })

	jobs := cellv1.NewJobServiceClient(conn)
	r, err := jobs.SubmitJob(ctx, &cellv1.SubmitJobRequest{Spec: &cellv1.JobSpec{
		Name: "big", Scheduler: "batch", Count: 100_000,
		Task: &cellv1.TaskTemplate{Command: "/bin/true", Resources: &cellv1.Resources{CpuMilli: 10, MemoryBytes: 1 << 20}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := jobs.StopJob(ctx, &cellv1.StopJobRequest{IdOrName: r.Job.Id}); err != nil {
		t.Fatal(err)
	}
	list, err := jobs.ListJobs(ctx, &cellv1.ListJobsRequest{IncludeFinished: true})
	if err != nil {
		t.Fatal(err)
	}
	waitFor("the web view to reach the stop's revision", func() bool { return s.ui.Revision() >= list.Revision })
	if n := s.ui.Snapshots(); n != 1 {
		t.Fatalf("the web view read the whole cell %d times; want once (its watch broke on a big revision)", n)
	}
}
