package cellstate

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/omegacell/omegacell/cellstate/authz"
	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
	"github.com/omegacell/omegacell/proto/identity"
	"github.com/omegacell/omegacell/proto/limits"
)

// Task logs stay on the machines that ran the tasks. GetTaskLogs asks the
// agent of the task's last machine for them over NATS request/reply, on
// that machine's own subject (limits.LogsSubject): the server dials no
// address a client gave it, so no registration can point it at itself or
// at anything else. Each agent answers one page of at most 64 KiB
// (cellv1.AgentLogsReply); the server pages through a read as large as the
// caller asked for (tail_bytes, default 1 MiB), pinning the attempt after
// the first page so the pages are of one attempt's output.
//
// Every call is bounded: a deadline (LogOptions.Timeout, or the caller's
// if sooner) covers the wait for a slot and every page; slots bound the
// requests in flight server-wide and per caller (its authenticated
// identity, or the peer's host on a connection without one). A request costs
// the server one handler goroutine (gRPC's) and no file descriptor: NATS
// multiplexes replies over the one connection's inbox subscription.

// LogOptions bound GetTaskLogs. Zero values take the defaults.
type LogOptions struct {
	// Conn carries log requests to the agents; nil: GetTaskLogs answers
	// Unavailable.
	Conn *nats.Conn
	// Timeout bounds one GetTaskLogs call, slot wait included (default 5 s).
	Timeout time.Duration
	// MaxInFlight bounds GetTaskLogs calls talking to agents at once,
	// server-wide (default 32); MaxInFlightPerCaller per caller (default 8).
	// Each holds at most 4 MiB of output, so log reads hold at most
	// MaxInFlight × 4 MiB of memory.
	MaxInFlight          int
	MaxInFlightPerCaller int
}

// Defaults and bounds of GetTaskLogs.
const (
	DefaultLogTimeout              = 5 * time.Second
	DefaultLogMaxInFlight          = 32
	DefaultLogMaxInFlightPerCaller = 8
	// defaultLogTail is what tail_bytes 0 reads; maxLogTail keeps an
	// answer under gRPC's default 4 MiB receive limit.
	defaultLogTail = 1 << 20
	maxLogTail     = 4<<20 - 64<<10
	// logPage is what one AgentLogsRequest asks for; the agent caps it at
	// 64 KiB and below the NATS max payload, and the server takes what it
	// gets.
	logPage = 64 << 10
	// maxAgentMessage bounds an agent's error message quoted to the caller.
	maxAgentMessage = 1 << 10
)

// SimulatedLabel marks the machines of a simulated fleet (`cell agent
// --simulate`): they run no processes and keep no logs.
const SimulatedLabel = "simulated"

// logProxy sends log requests to agents within its bounds.
type logProxy struct {
	nc        *nats.Conn
	prefix    string
	timeout   time.Duration
	slots     chan struct{}
	perCaller int

	mu      sync.Mutex
	callers map[string]*callerSlots // absent when no call of the caller holds or awaits a slot
}

// callerSlots are one caller's slots and the calls holding or awaiting one.
type callerSlots struct {
	slots chan struct{}
	users int
}

func newLogProxy(o LogOptions, prefix string) *logProxy {
	if o.Timeout <= 0 {
		o.Timeout = DefaultLogTimeout
	}
	if o.MaxInFlight <= 0 {
		o.MaxInFlight = DefaultLogMaxInFlight
	}
	if o.MaxInFlightPerCaller <= 0 {
		o.MaxInFlightPerCaller = DefaultLogMaxInFlightPerCaller
	}
	return &logProxy{
		nc: o.Conn, prefix: prefix, timeout: o.Timeout,
		slots: make(chan struct{}, o.MaxInFlight), perCaller: o.MaxInFlightPerCaller,
		callers: make(map[string]*callerSlots),
	}
}

// GetTaskLogs reads a task's output from the agent of the machine it ran
// on last. UNAVAILABLE names the machine whose agent did not answer;
// UNIMPLEMENTED says the machine is simulated and keeps no logs (so
// `cell job logs -f` stops rather than waits, as it does for a machine
// that may come back).
func (s *Server) GetTaskLogs(ctx context.Context, r *cellv1.GetTaskLogsRequest) (*cellv1.GetTaskLogsResponse, error) {
	if err := validateGetTaskLogs(r); err != nil {
		return nil, err
	}
	if _, err := s.authorize(ctx, cellv1.JobService_GetTaskLogs_FullMethodName, func(identity.Identity) *authz.Facts {
		jf, _ := s.store.jobFacts(r.Task.JobId) // unknown: tenant "" (no user's)
		return &authz.Facts{Job: r.Task.JobId, Tenant: jf.tenant}
	}); err != nil {
		return nil, err
	}
	t, err := s.store.Task(r.Task.JobId, r.Task.Index)
	if err != nil {
		return nil, grpcError(err)
	}
	if t.LastMachineId == "" {
		return nil, status.Errorf(codes.FailedPrecondition, "task %s/%d has not run anywhere yet", r.Task.JobId, r.Task.Index)
	}
	machine := t.LastMachineId
	if s.logs.nc == nil {
		return nil, status.Errorf(codes.Unavailable, "machine %s: this cell server has no NATS connection to reach agents", machine)
	}
	ctx, cancel := context.WithTimeout(ctx, s.logs.timeout)
	defer cancel()
	release, err := s.logs.acquire(ctx, callerOf(ctx))
	if err != nil {
		return nil, err
	}
	defer release()
	out, err := s.logs.read(ctx, machine, r)
	if errors.Is(err, nats.ErrNoResponders) && s.store.machineSimulated(machine) {
		return nil, status.Errorf(codes.Unimplemented, "machine %s is simulated and keeps no logs", machine)
	}
	if err != nil {
		return nil, logStatus(machine, s.logs.timeout, err)
	}
	out.TaskState = t.State
	return out, nil
}

// callerOf names the caller for the per-caller bound: its authenticated
// identity when the connection carries one (identity.FromContext), else
// the peer's host.
func callerOf(ctx context.Context) string {
	if id, ok := identity.FromContext(ctx); ok {
		return id.String()
	}
	p, ok := peer.FromContext(ctx)
	if !ok || p.Addr == nil {
		return ""
	}
	if host, _, err := net.SplitHostPort(p.Addr.String()); err == nil {
		return host
	}
	return p.Addr.String()
}

// acquire waits for a per-caller and a server-wide slot until ctx ends.
func (p *logProxy) acquire(ctx context.Context, caller string) (release func(), err error) {
	p.mu.Lock()
	c := p.callers[caller]
	if c == nil {
		c = &callerSlots{slots: make(chan struct{}, p.perCaller)}
		p.callers[caller] = c
	}
	c.users++
	p.mu.Unlock()
	leave := func() {
		p.mu.Lock()
		if c.users--; c.users == 0 {
			delete(p.callers, caller)
		}
		p.mu.Unlock()
	}
	select {
	case c.slots <- struct{}{}:
	case <-ctx.Done():
		leave()
		return nil, status.Errorf(codes.ResourceExhausted, "task logs: %d log requests of this caller are in flight; none ended before the deadline", p.perCaller)
	}
	select {
	case p.slots <- struct{}{}:
	case <-ctx.Done():
		<-c.slots
		leave()
		return nil, status.Errorf(codes.ResourceExhausted, "task logs: %d log requests are in flight in this cell; none ended before the deadline", cap(p.slots))
	}
	return func() {
		<-p.slots
		<-c.slots
		leave()
	}, nil
}

// read assembles what r asks for from pages of the agent's output.
func (p *logProxy) read(ctx context.Context, machine string, r *cellv1.GetTaskLogsRequest) (*cellv1.GetTaskLogsResponse, error) {
	subject, err := limits.LogsSubject(p.prefix, machine)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "task logs: %v", err)
	}
	want := r.TailBytes
	if want == 0 {
		want = defaultLogTail
	}
	want = min(want, maxLogTail)
	ask := func(attempt *uint32, offset *int64, n int64) (*cellv1.AgentLogsReply, error) {
		return p.ask(ctx, subject, &cellv1.AgentLogsRequest{
			MachineId: machine, Task: r.Task, Stream: r.Stream, Attempt: attempt, Offset: offset, MaxBytes: min(n, logPage),
		})
	}
	if r.Offset != nil {
		// Forward from an offset: pages until want bytes or the end.
		first, err := ask(nil, r.Offset, want)
		if err != nil {
			return nil, err
		}
		out := &cellv1.GetTaskLogsResponse{Offset: first.Offset, Size: first.Size, Attempt: first.Attempt}
		out.Data = append(make([]byte, 0, min(want, first.Size-first.Offset)), first.Data...)
		for more := first.More; more && int64(len(out.Data)) < want; {
			next := out.Offset + int64(len(out.Data))
			page, err := ask(&out.Attempt, &next, want-int64(len(out.Data)))
			if err != nil || page.Offset != next || len(page.Data) == 0 {
				// What was read is whole from its offset: the caller
				// reads on from where it ends (size says more is there).
				break
			}
			out.Data, out.Size, more = append(out.Data, page.Data...), page.Size, page.More
		}
		return out, nil
	}
	// The tail: the last page first, which names the attempt and the
	// size; then, if want reaches further back, the bytes before it.
	last, err := ask(nil, nil, want)
	if err != nil {
		return nil, err
	}
	from := max(last.Size-want, 0)
	if last.Offset < from {
		return nil, status.Errorf(codes.Internal, "machine %s: the agent answered the tail from %d of %d bytes for a tail of %d", machine, last.Offset, last.Size, want)
	}
	data := make([]byte, 0, last.Size-from)
	for next := from; next < last.Offset; {
		page, err := ask(&last.Attempt, &next, last.Offset-next)
		if err != nil {
			return nil, err
		}
		if page.Offset != next || len(page.Data) == 0 {
			// An attempt's output only grows; a gap means it was removed.
			return nil, status.Errorf(codes.Aborted, "task logs: the output of attempt %d changed while it was read; try again", last.Attempt)
		}
		data = append(data, page.Data...)
		next += int64(len(page.Data))
	}
	data = append(data, last.Data...)
	return &cellv1.GetTaskLogsResponse{Data: data, Offset: from, Size: last.Size, Attempt: last.Attempt}, nil
}

// ask sends one request and decodes the agent's answer; an error answer
// becomes a status.
func (p *logProxy) ask(ctx context.Context, subject string, req *cellv1.AgentLogsRequest) (*cellv1.AgentLogsReply, error) {
	data, err := proto.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("encode log request: %w", err)
	}
	msg, err := p.nc.RequestWithContext(ctx, subject, data)
	if err != nil {
		return nil, err
	}
	reply := &cellv1.AgentLogsReply{}
	if err := proto.Unmarshal(msg.Data, reply); err != nil {
		return nil, status.Errorf(codes.Internal, "machine %s: the agent's answer is not an AgentLogsReply: %v", req.MachineId, err)
	}
	if reply.Code != 0 {
		code := codes.Code(reply.Code)
		if code > codes.Unauthenticated {
			code = codes.Unknown
		}
		m := reply.Message
		if len(m) > maxAgentMessage {
			m = m[:maxAgentMessage] + "…"
		}
		return nil, status.Errorf(code, "agent of machine %s: %s", req.MachineId, m)
	}
	if reply.Offset < 0 || reply.Offset+int64(len(reply.Data)) > reply.Size || int64(len(reply.Data)) > req.MaxBytes {
		return nil, status.Errorf(codes.Internal, "machine %s: the agent answered %d bytes at offset %d for a page of %d", req.MachineId, len(reply.Data), reply.Offset, req.MaxBytes)
	}
	return reply, nil
}

// logStatus turns a failed log read into a status naming the machine.
func logStatus(machine string, timeout time.Duration, err error) error {
	if _, ok := status.FromError(err); ok {
		return err
	}
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		return agentUnavailable(machine, "no agent answers for it (its agent is not running or not connected to NATS)")
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout):
		return agentUnavailable(machine, fmt.Sprintf("its agent did not answer in time (at most %v)", timeout))
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, "task logs: canceled")
	}
	return agentUnavailable(machine, fmt.Sprintf("cannot reach its agent over NATS: %v", err))
}

// ReasonAgentUnavailable is the google.rpc.ErrorInfo reason (domain
// "omegacell") on an UNAVAILABLE that a machine's agent caused, not the
// cell server: clients tell "the server is away" from "the agent is away"
// by it, as AIP-193 recommends, and find the machine in its metadata.
const ReasonAgentUnavailable = "AGENT_UNAVAILABLE"

func agentUnavailable(machine, why string) error {
	st := status.New(codes.Unavailable, "machine "+machine+": "+why)
	if d, err := st.WithDetails(&errdetails.ErrorInfo{Reason: ReasonAgentUnavailable, Domain: "omegacell", Metadata: map[string]string{"machine": machine}}); err == nil {
		st = d
	}
	return st.Err()
}

// machineSimulated reports whether a machine is labelled as simulated.
func (s *Store) machineSimulated(id string) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	m := s.st.machines[id]
	return m != nil && m.m.Labels[SimulatedLabel] == "true"
}
