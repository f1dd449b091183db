package webui_test

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/omegacell/omegacell/cellstate"
	"github.com/omegacell/omegacell/internal/celltest"
	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
	"github.com/omegacell/omegacell/proto/cellclient"
	"github.com/omegacell/omegacell/proto/identity"
	"github.com/omegacell/omegacell/webui"
)

// TestWireViewFollowsARealCell: a web view on a real cell (mutual TLS over
// loopback, the view's read-only identity) follows a revision too large
// for one message (a 100,000-task submission, in fragments) and a stop of
// a job through its wire-format watch, without reading the cell again,
// and its copy is then exactly what the proto path makes of a Snapshot
// of the cell.
func TestWireViewFollowsARealCell(t *testing.T) {
	if testing.Short() {
		t.Skip("submits 100,000 tasks")
	}
	c := celltest.Start(t)
	self := identity.Identity{Role: identity.Scheduler, Name: "webview"}
	dial, err := c.Credentials(t, self).DialOption(c.Addr)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(c.Addr, dial, grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(cellclient.MaxMessageBytes)))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	u, err := webui.New(webui.Options{API: cellstate.NewServer(c.Server.Store(), cellstate.ServerOptions{}), Conn: conn, Self: self})
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	for u.Snapshots() == 0 {
		if ctx.Err() != nil {
			t.Fatal("timed out waiting for the view's first snapshot")
		}
		time.Sleep(20 * time.Millisecond)
	}

	jobs := cellv1.NewJobServiceClient(c.Conn)
	submit := func(name string, count uint32) *cellv1.Job {
		t.Helper()
		r, err := jobs.SubmitJob(ctx, &cellv1.SubmitJobRequest{Spec: &cellv1.JobSpec{
			Name: name, Scheduler: "batch", Count: count,
			Task: &cellv1.TaskTemplate{Command: "/bin/true", Resources: &cellv1.Resources{CpuMilli: 10, MemoryBytes: 1 << 20}},
		}})
		if err != nil {
			t.Fatal(err)
		}
		return r.Job
	}
	submit("big", 100_000)
	small := submit("small", 10)
	if _, err := jobs.StopJob(ctx, &cellv1.StopJobRequest{IdOrName: small.Id}); err != nil {
		t.Fatal(err)
	}
	// The cell may still move (schedulers note why jobs wait): compare
	// when the view is at the snapshot's revision.
	for {
		rev, viewRev, same, tasks, err := webui.ViewVersusProtoSnapshot(ctx, u, c.Conn)
		if err != nil {
			t.Fatal(err)
		}
		if viewRev == rev {
			if !same {
				t.Fatalf("at revision %d the view's copy differs from the proto path's snapshot", rev)
			}
			if tasks < 100_010 {
				t.Fatalf("the snapshot holds %d tasks; want 100,010", tasks)
			}
			t.Logf("at revision %d: the view's copy of %d tasks is the proto path's", rev, tasks)
			break
		}
		for u.Revision() < rev && ctx.Err() == nil {
			time.Sleep(20 * time.Millisecond)
		}
		if ctx.Err() != nil {
			t.Fatalf("timed out: the view at revision %d, the cell at %d", u.Revision(), rev)
		}
	}
	if n := u.Snapshots(); n != 1 {
		t.Fatalf("the view read the whole cell %d times; want once", n)
	}
}
