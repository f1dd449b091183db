package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
)

// Log tails served to the cell server, which proxies GetTaskLogs here.
const (
	defaultLogTail = 1 << 20
	// maxLogTail keeps an answer under gRPC's default 4 MiB message limit.
	maxLogTail = 4<<20 - 64<<10
)

// logServer serves JobService.GetTaskLogs from the attempt directories of
// this machine; every other JobService method is unimplemented.
type logServer struct {
	cellv1.UnimplementedJobServiceServer
	tasksDir  string
	machineID string
}

// GetTaskLogs returns the end of the stdout or stderr of the latest attempt
// of a task that ran on this machine, or with an offset what follows it.
func (s *logServer) GetTaskLogs(_ context.Context, req *cellv1.GetTaskLogsRequest) (*cellv1.GetTaskLogsResponse, error) {
	ref := req.GetTask()
	if ref == nil {
		return nil, status.Error(codes.InvalidArgument, "task: required")
	}
	if err := checkJobID(ref.GetJobId()); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "task.job_id: %v", err)
	}
	file := stdoutFile
	switch req.GetStream() {
	case cellv1.LogStream_LOG_STREAM_UNSPECIFIED, cellv1.LogStream_LOG_STREAM_STDOUT:
	case cellv1.LogStream_LOG_STREAM_STDERR:
		file = stderrFile
	default:
		return nil, status.Errorf(codes.InvalidArgument, "stream: unknown value %d", req.GetStream())
	}
	tail := req.GetTailBytes()
	switch {
	case tail < 0:
		return nil, status.Errorf(codes.InvalidArgument, "tail_bytes: %d is negative", tail)
	case tail == 0:
		tail = defaultLogTail
	case tail > maxLogTail:
		tail = maxLogTail
	}
	if req.Offset != nil && req.GetOffset() < 0 {
		return nil, status.Errorf(codes.InvalidArgument, "offset: %d is negative", req.GetOffset())
	}
	dir, attempt, ok := latestAttemptDir(filepath.Join(s.tasksDir, ref.GetJobId()), ref.GetIndex())
	if !ok {
		return nil, status.Errorf(codes.NotFound, "task %s/%d never ran on machine %s", ref.GetJobId(), ref.GetIndex(), s.machineID)
	}
	from := int64(-1) // the end
	if req.Offset != nil {
		from = req.GetOffset()
	}
	data, off, size, err := readPart(filepath.Join(dir, file), from, tail)
	if err != nil {
		if errors.Is(err, errBeyondEnd) {
			return nil, status.Errorf(codes.OutOfRange, "offset: %d is beyond the end (%d bytes) of %s of task %s/%d attempt %d",
				from, size, file, ref.GetJobId(), ref.GetIndex(), attempt)
		}
		return nil, status.Errorf(codes.Internal, "read %s of task %s/%d: %v", file, ref.GetJobId(), ref.GetIndex(), err)
	}
	return &cellv1.GetTaskLogsResponse{Data: data, Offset: off, Size: size, Attempt: attempt}, nil
}

// latestAttemptDir finds <jobDir>/<index>.<attempt> with the highest attempt.
func latestAttemptDir(jobDir string, index uint32) (string, uint32, bool) {
	entries, err := os.ReadDir(jobDir)
	if err != nil {
		return "", 0, false
	}
	prefix := strconv.FormatUint(uint64(index), 10) + "."
	best, found := uint64(0), false
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), prefix)
		if !ok || !e.IsDir() {
			continue
		}
		attempt, err := strconv.ParseUint(rest, 10, 32)
		if err != nil {
			continue
		}
		if !found || attempt > best {
			best, found = attempt, true
		}
	}
	return filepath.Join(jobDir, fmt.Sprintf("%d.%d", index, best)), uint32(best), found
}

var errBeyondEnd = errors.New("offset beyond the end")

// readPart reads at most n bytes of a file: from offset from, or from the
// end when from is negative. It returns the data, where it starts and the
// file's size.
func readPart(path string, from, n int64) ([]byte, int64, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, 0, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, 0, 0, err
	}
	size := st.Size()
	if from > size {
		return nil, 0, size, errBeyondEnd
	}
	if from < 0 {
		from = max(size-n, 0)
	}
	data, err := io.ReadAll(io.NewSectionReader(f, from, min(n, size-from)))
	return data, from, size, err
}

// serveLogs starts the log server on listen and returns the address to
// register: an unspecified host (":7071", "0.0.0.0:7071") is replaced by
// this machine's host name so the cell server can reach it.
func serveLogs(listen string, srv *logServer) (addr string, stop func(), err error) {
	lis, err := net.Listen("tcp", listen)
	if err != nil {
		return "", nil, fmt.Errorf("logs listen address %q: %w", listen, err)
	}
	gs := grpc.NewServer()
	cellv1.RegisterJobServiceServer(gs, srv)
	go func() { _ = gs.Serve(lis) }()
	host, port, _ := net.SplitHostPort(lis.Addr().String())
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		if name, err := os.Hostname(); err == nil {
			host = name
		}
	}
	return net.JoinHostPort(host, port), gs.Stop, nil
}
