package agent

import (
	"context"
	"errors"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
	"github.com/omegacell/omegacell/proto/credentials"
)

// silentServer accepts watches and never sends on them, like a server
// behind a half-open connection; GetMachine answers NotFound, or hangs
// when hang is set.
type silentServer struct {
	cellv1.UnimplementedStateServiceServer
	cellv1.UnimplementedMachineServiceServer
	hang   atomic.Bool
	probes atomic.Int64
}

func (s *silentServer) Watch(_ *cellv1.WatchRequest, stream grpc.ServerStreamingServer[cellv1.WatchResponse]) error {
	<-stream.Context().Done()
	return nil
}

func (s *silentServer) GetMachine(ctx context.Context, _ *cellv1.GetMachineRequest) (*cellv1.GetMachineResponse, error) {
	s.probes.Add(1)
	if s.hang.Load() {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return nil, status.Error(codes.NotFound, "no such machine")
}

func TestWatchdogEndsAWatchOnlyWhenTheServerIsGone(t *testing.T) {
	srv := &silentServer{}
	g := grpc.NewServer()
	cellv1.RegisterStateServiceServer(g, srv)
	cellv1.RegisterMachineServiceServer(g, srv)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = g.Serve(lis) }()
	defer g.Stop()

	f := newFleet(discard, &fakeRunner{})
	f.add(&cellv1.RegisterMachineRequest{Id: "m1"})
	d, err := newDriver(discard, lis.Addr().String(), credentials.Client{Insecure: true}, f, nil, "m1")
	if err != nil {
		t.Fatal(err)
	}
	defer d.cc.Close()
	d.watchSilence, d.watchProbeTimeout = 50*time.Millisecond, 100*time.Millisecond

	// A silent watch on a server that answers is kept: a filtered watch
	// may rightly hear nothing for a long time.
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	err = d.watch(ctx, 1)
	cancel()
	if errors.Is(err, errWatchDead) || srv.probes.Load() < 3 {
		t.Fatalf("watch on a live server ended with %v after %d probes, want it kept until the caller's deadline", err, srv.probes.Load())
	}

	// Once the server stops answering, the watch ends.
	srv.hang.Store(true)
	began := time.Now()
	err = d.watch(context.Background(), 1)
	if !errors.Is(err, errWatchDead) {
		t.Fatalf("watch on an unresponsive server: %v, want errWatchDead", err)
	}
	if took := time.Since(began); took > 5*time.Second {
		t.Fatalf("took %v to notice", took)
	}
}
