package cli

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/omegacell/omegacell/cellstate"
	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
	"github.com/omegacell/omegacell/proto/credentials"
)

// realCell is a real store behind a real gRPC server, which can stop and
// start again on one loopback address, or give the address to another
// cell.
type realCell struct {
	t     *testing.T
	dir   string
	store *cellstate.Store
	srv   *grpc.Server
}

func (c *realCell) start(addr string) string {
	c.t.Helper()
	st, err := cellstate.Open(cellstate.Options{Dir: c.dir, NoSync: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		c.t.Fatal(err)
	}
	var lis net.Listener
	for try := 0; ; try++ {
		if lis, err = net.Listen("tcp", addr); err == nil || try == 50 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		st.Close()
		c.t.Fatal(err)
	}
	c.store, c.srv = st, cellstate.NewServer(st, cellstate.ServerOptions{Insecure: true}).GRPCServer()
	go c.srv.Serve(lis)
	return lis.Addr().String()
}

func (c *realCell) stop() {
	if c.store == nil {
		return
	}
	c.store.CloseWatchers()
	c.srv.Stop()
	c.store.Close()
	c.store = nil
}

// lockedBuffer is a bytes.Buffer safe for one writer and one reader.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestWaitAcrossCellsOnOneAddress: `job run --wait` notices a restarted
// cell (a new incarnation) and says so, and when another cell takes over
// the address it ends with an error that says the job's cell was
// replaced, rather than "not found" as if the id were mistyped.
func TestWaitAcrossCellsOnOneAddress(t *testing.T) {
	a := &realCell{t: t, dir: t.TempDir()}
	b := &realCell{t: t, dir: t.TempDir()}
	addr := a.start("127.0.0.1:0")
	t.Cleanup(func() { a.stop(); b.stop() })
	conn, err := Dial(context.Background(), addr, credentials.Client{Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := cellv1.NewJobServiceClient(conn)
	sub, err := client.SubmitJob(context.Background(), &cellv1.SubmitJobRequest{Spec: &cellv1.JobSpec{
		Name: "waits", Scheduler: "batch", Priority: 100, Count: 1,
		Task: &cellv1.TaskTemplate{Command: "/bin/true", Resources: &cellv1.Resources{CpuMilli: 100, MemoryBytes: 1 << 20}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	var out lockedBuffer
	done := make(chan error, 1)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	go func() {
		_, err := waitForJob(ctx, client, sub.Job.Id, &out, waitOptions{poll: 20 * time.Millisecond})
		done <- err
	}()
	until := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting until %s; output:\n%s", what, out.String())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	until("the wait shows the job pending", func() bool { return strings.Contains(out.String(), "waits  pending") })

	a.stop()
	a.start(addr)
	until("the wait notices the restart", func() bool { return strings.Contains(out.String(), "the cell server changed") })

	a.stop()
	b.start(addr)
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "no longer knows it") {
			t.Fatalf("wait ended with %v, want the job's cell replaced", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("wait did not end after another cell took the address; output:\n%s", out.String())
	}
}
