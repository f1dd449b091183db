package cli

import (
	"bytes"
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
)

// logStep is one scripted answer of GetTaskLogs: the offset the follower
// must ask for (-1: the tail), then the answer.
type logStep struct {
	offset int64
	resp   *cellv1.GetTaskLogsResponse
	err    error
}

// scriptedLogs answers GetTaskLogs from a script, over real gRPC.
type scriptedLogs struct {
	cellv1.UnimplementedJobServiceServer
	t     *testing.T
	mu    sync.Mutex
	steps []logStep
	calls int
}

func (s *scriptedLogs) GetTaskLogs(_ context.Context, req *cellv1.GetTaskLogsRequest) (*cellv1.GetTaskLogsResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.calls >= len(s.steps) {
		s.t.Errorf("call %d: the script has %d steps", s.calls+1, len(s.steps))
		return nil, status.Error(codes.Internal, "script exhausted")
	}
	step := s.steps[s.calls]
	s.calls++
	got := int64(-1)
	if req.Offset != nil {
		got = req.GetOffset()
	}
	if got != step.offset {
		s.t.Errorf("call %d asked for offset %d, want %d", s.calls, got, step.offset)
	}
	return step.resp, step.err
}

func serveScript(t *testing.T, s *scriptedLogs) cellv1.JobServiceClient {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	cellv1.RegisterJobServiceServer(srv, s)
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return cellv1.NewJobServiceClient(conn)
}

func logsAt(data string, offset, size int64, attempt uint32, state cellv1.TaskState) *cellv1.GetTaskLogsResponse {
	return &cellv1.GetTaskLogsResponse{Data: []byte(data), Offset: offset, Size: size, Attempt: attempt, TaskState: state}
}

func TestFollowLogs(t *testing.T) {
	old := followInterval
	followInterval = time.Millisecond
	t.Cleanup(func() { followInterval = old })
	running, pending, succeeded := cellv1.TaskState_TASK_STATE_RUNNING, cellv1.TaskState_TASK_STATE_PENDING, cellv1.TaskState_TASK_STATE_SUCCEEDED
	notYet := status.Error(codes.FailedPrecondition, "task j/0 has not run anywhere yet")
	s := &scriptedLogs{t: t, steps: []logStep{
		{-1, nil, notYet},
		{-1, nil, notYet}, // said once
		{-1, logsAt("a\n", 0, 2, 1, running), nil},
		{2, logsAt("", 2, 2, 1, running), nil},
		{2, logsAt("b\n", 2, 4, 1, running), nil},
		{4, logsAt("c", 4, 6, 1, running), nil},  // more is waiting: asked again at once
		{5, logsAt("\n", 5, 6, 1, pending), nil}, // ended; placed again
		// Attempt 3 runs on another machine: what it has at offset 6 is
		// not the continuation; start over.
		{6, logsAt("zzz", 6, 9, 3, running), nil},
		{0, logsAt("new\n", 0, 4, 3, running), nil},
		// Attempt 4 on the same machine: shorter output than printed.
		{4, nil, status.Error(codes.OutOfRange, "offset: 4 is beyond the end")},
		{0, logsAt("last\n", 0, 5, 4, succeeded), nil},
		{0, logsAt("last\n", 0, 5, 4, succeeded), nil}, // final and read to the end: done
	}}
	client := serveScript(t, s)
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req := &cellv1.GetTaskLogsRequest{Task: &cellv1.TaskRef{JobId: "j"}}
	if err := followLogs(ctx, client, req, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	if want := "a\nb\nc\nnew\nlast\n"; out.String() != want {
		t.Errorf("stdout %q, want %q", out.String(), want)
	}
	if want := "waiting: task j/0 has not run anywhere yet\n--- attempt 3 ---\n--- attempt 4 ---\n"; errOut.String() != want {
		t.Errorf("stderr %q, want %q", errOut.String(), want)
	}
	if s.calls != len(s.steps) {
		t.Errorf("%d calls for %d steps", s.calls, len(s.steps))
	}
}

func TestFollowLogsStopsOnErrorsAndCancel(t *testing.T) {
	old := followInterval
	followInterval = time.Millisecond
	t.Cleanup(func() { followInterval = old })

	// A permanent error ends the follow with the API's message.
	s := &scriptedLogs{t: t, steps: []logStep{{-1, nil, status.Error(codes.Unimplemented, "machine sim-1 serves no logs")}}}
	var out, errOut bytes.Buffer
	err := followLogs(context.Background(), serveScript(t, s), &cellv1.GetTaskLogsRequest{Task: &cellv1.TaskRef{JobId: "j"}}, &out, &errOut)
	if err == nil || !bytes.Contains([]byte(err.Error()), []byte("serves no logs")) {
		t.Errorf("error %v, want the API's message", err)
	}

	// Ctrl-C while waiting for a task to start returns cleanly.
	notYet := status.Error(codes.FailedPrecondition, "task j/0 has not run anywhere yet")
	steps := make([]logStep, 10000)
	for i := range steps {
		steps[i] = logStep{-1, nil, notYet}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := followLogs(ctx, serveScript(t, &scriptedLogs{t: t, steps: steps}), &cellv1.GetTaskLogsRequest{Task: &cellv1.TaskRef{JobId: "j"}}, &out, &errOut); err != nil {
		t.Errorf("follow ended by its context: %v", err)
	}
}
