package agent

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/nats-io/nats.go"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
	"github.com/omegacell/omegacell/proto/limits"
)

// Task logs stay on the machine. The agent answers the cell server's
// requests for them over NATS request/reply, on the subject of its own
// machine (limits.LogsSubject), on the connection it heartbeats on: it
// listens on no port, and the server dials nothing a client named.
const (
	// maxLogPage bounds the data of one reply (the server pages through
	// larger reads); a reply also stays logReplyOverhead below the NATS
	// max payload.
	maxLogPage       = 64 << 10
	logReplyOverhead = 1 << 10
	// Requests queued for the log server beyond these are dropped by NATS
	// (the server's request then times out as Unavailable): a burst cannot
	// grow the agent's memory.
	logPendingMsgs  = 256
	logPendingBytes = 1 << 20
)

// logServer answers AgentLogsRequests from the attempt directories of
// this machine.
type logServer struct {
	log       *slog.Logger
	tasksDir  string
	machineID string

	mu  sync.Mutex
	nc  *nats.Conn
	sub *nats.Subscription
}

// attach subscribes to this machine's logs subject on nc, replacing an
// earlier subscription (the heartbeater calls it whenever its NATS
// connection or the subject prefix changes). NATS runs the handler on the
// subscription's own goroutine, one request at a time; the subscription
// ends with the connection.
func (s *logServer) attach(nc *nats.Conn, prefix string) error {
	subject, err := limits.LogsSubject(prefix, s.machineID)
	if err != nil {
		return fmt.Errorf("logs subject: %w", err)
	}
	sub, err := nc.Subscribe(subject, s.handle)
	if err != nil {
		return fmt.Errorf("subscribe to %s: %w", subject, err)
	}
	if err := sub.SetPendingLimits(logPendingMsgs, logPendingBytes); err != nil {
		_ = sub.Unsubscribe()
		return fmt.Errorf("subscribe to %s: %w", subject, err)
	}
	s.mu.Lock()
	old := s.sub
	s.nc, s.sub = nc, sub
	s.mu.Unlock()
	if old != nil {
		_ = old.Unsubscribe()
	}
	s.log.Info("serving task logs over NATS", "subject", subject)
	return nil
}

// handle answers one request. A reply that cannot be sent is the
// requester's timeout to report.
func (s *logServer) handle(m *nats.Msg) {
	if m.Reply == "" {
		return
	}
	page := s.pageLimit()
	req := &cellv1.AgentLogsRequest{}
	var reply *cellv1.AgentLogsReply
	if err := proto.Unmarshal(m.Data, req); err != nil {
		reply = logError(codes.InvalidArgument, "request: not an AgentLogsRequest: %v", err)
	} else {
		reply = s.answer(req, page)
	}
	data, err := proto.Marshal(reply)
	if err != nil {
		data, _ = proto.Marshal(logError(codes.Internal, "encode reply: %v", err))
	}
	if err := m.Respond(data); err != nil {
		s.log.Debug("log reply not sent", "err", err)
	}
}

// pageLimit is the most data one reply may carry: maxLogPage, and
// logReplyOverhead below the max payload of the NATS server.
func (s *logServer) pageLimit() int64 {
	s.mu.Lock()
	nc := s.nc
	s.mu.Unlock()
	limit := int64(maxLogPage)
	if nc != nil {
		if max := nc.MaxPayload() - logReplyOverhead; max > 0 && max < limit {
			limit = max
		}
	}
	return limit
}

func logError(code codes.Code, format string, args ...any) *cellv1.AgentLogsReply {
	return &cellv1.AgentLogsReply{Code: uint32(code), Message: fmt.Sprintf(format, args...)}
}

// answer reads the page a request asks for, at most page bytes.
func (s *logServer) answer(req *cellv1.AgentLogsRequest, page int64) *cellv1.AgentLogsReply {
	if req.GetMachineId() != s.machineID {
		return logError(codes.InvalidArgument, "machine_id: this agent speaks for machine %s, not %q", s.machineID, clip(req.GetMachineId()))
	}
	ref := req.GetTask()
	if ref == nil {
		return logError(codes.InvalidArgument, "task: required")
	}
	// Job ids are UUIDs (36 bytes); the bound keeps errors that echo them
	// short.
	if len(ref.GetJobId()) > 64 || checkJobID(ref.GetJobId()) != nil {
		return logError(codes.InvalidArgument, "task.job_id: %q cannot name a directory", clip(ref.GetJobId()))
	}
	file := stdoutFile
	switch req.GetStream() {
	case cellv1.LogStream_LOG_STREAM_UNSPECIFIED, cellv1.LogStream_LOG_STREAM_STDOUT:
	case cellv1.LogStream_LOG_STREAM_STDERR:
		file = stderrFile
	default:
		return logError(codes.InvalidArgument, "stream: unknown value %d", req.GetStream())
	}
	n := req.GetMaxBytes()
	switch {
	case n < 0:
		return logError(codes.InvalidArgument, "max_bytes: %d is negative", n)
	case n == 0 || n > page:
		n = page
	}
	if req.Offset != nil && req.GetOffset() < 0 {
		return logError(codes.InvalidArgument, "offset: %d is negative", req.GetOffset())
	}
	task := fmt.Sprintf("%s/%d", ref.GetJobId(), ref.GetIndex())
	jobDir := filepath.Join(s.tasksDir, ref.GetJobId())
	var dir string
	var attempt uint32
	if req.Attempt != nil {
		attempt = req.GetAttempt()
		dir = filepath.Join(jobDir, fmt.Sprintf("%d.%d", ref.GetIndex(), attempt))
		if st, err := os.Stat(dir); err != nil || !st.IsDir() {
			return logError(codes.NotFound, "attempt %d of task %s is not on machine %s (never ran here, or collected)", attempt, task, s.machineID)
		}
	} else {
		var ok bool
		if dir, attempt, ok = latestAttemptDir(jobDir, ref.GetIndex()); !ok {
			return logError(codes.NotFound, "task %s never ran on machine %s", task, s.machineID)
		}
	}
	from := int64(-1) // the end
	if req.Offset != nil {
		from = req.GetOffset()
	}
	data, off, size, err := readPart(filepath.Join(dir, file), from, n)
	switch {
	case errors.Is(err, errBeyondEnd):
		return logError(codes.OutOfRange, "offset: %d is beyond the end (%d bytes) of %s of task %s attempt %d", from, size, file, task, attempt)
	case errors.Is(err, fs.ErrNotExist):
		// The attempt is starting: its directory exists, its files not yet.
		return logError(codes.NotFound, "no %s of task %s attempt %d on machine %s yet", file, task, attempt, s.machineID)
	case err != nil:
		return logError(codes.Internal, "read %s of task %s attempt %d: %v", file, task, attempt, err)
	}
	return &cellv1.AgentLogsReply{Data: data, Offset: off, Size: size, Attempt: attempt, More: off+int64(len(data)) < size}
}

// clip bounds outside input echoed in an error to 100 bytes.
func clip(s string) string { return s[:min(len(s), 100)] }

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
