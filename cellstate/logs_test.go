package cellstate

import (
	"context"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
	"github.com/omegacell/omegacell/proto/identity"
	"github.com/omegacell/omegacell/proto/limits"
)

// logCell is a testCell whose gRPC server reaches agents over a real
// embedded NATS server.
type logCell struct {
	*testCell
	nc   *nats.Conn // the server's
	url  string
	logs cellv1.JobServiceClient
}

func newLogCell(t *testing.T, o LogOptions) *logCell {
	t.Helper()
	nc := startNATS(t)
	c := newTestCell(t, Options{})
	o.Conn = nc
	g := NewServer(c.store, ServerOptions{Insecure: true, Logs: o}).GRPCServer()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go g.Serve(lis)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(); g.Stop() }) // before the store closes
	return &logCell{testCell: c, nc: nc, url: nc.ConnectedUrl(), logs: cellv1.NewJobServiceClient(conn)}
}

// runningTaskOn submits a one-task job and places it on machine.
func (c *logCell) runningTaskOn(machine string) *cellv1.TaskRef {
	job := c.submit(batchSpec("j-"+strings.ReplaceAll(machine, ".", "-"), 1, 100, 1<<20))
	c.place(job, 0, machine)
	return &cellv1.TaskRef{JobId: job.Id}
}

func openFDs(t *testing.T) int {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	return len(fds)
}

// settled waits until the goroutines are back within slack of base.
func settled(t *testing.T, base, slack int) int {
	t.Helper()
	n := runtime.NumGoroutine()
	for deadline := time.Now().Add(5 * time.Second); n > base+slack && time.Now().Before(deadline); n = runtime.NumGoroutine() {
		time.Sleep(20 * time.Millisecond)
	}
	return n
}

// concurrentLogs sends n GetTaskLogs at once and returns their errors and
// durations, and the most goroutines seen meanwhile.
func concurrentLogs(t *testing.T, client cellv1.JobServiceClient, ref *cellv1.TaskRef, n int) ([]error, []time.Duration, int) {
	t.Helper()
	var peak atomic.Int64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			if g := int64(runtime.NumGoroutine()); g > peak.Load() {
				peak.Store(g)
			}
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
		}
	}()
	errs, took := make([]error, n), make([]time.Duration, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			began := time.Now()
			_, errs[i] = client.GetTaskLogs(ctx, &cellv1.GetTaskLogsRequest{Task: ref})
			took[i] = time.Since(began)
		}()
	}
	wg.Wait()
	close(stop)
	<-sampled
	return errs, took, int(peak.Load())
}

// An old agent still sends log_address (field 5) pointing at a listener
// of its choice, or at the cell server itself: the field is unknown now,
// never stored or echoed, and GetTaskLogs dials nothing.
func TestHostileOldLogAddressIsIgnored(t *testing.T) {
	c := newLogCell(t, LogOptions{Timeout: 2 * time.Second})
	trap, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var dialed atomic.Int64
	go func() {
		for {
			conn, err := trap.Accept()
			if err != nil {
				return
			}
			dialed.Add(1)
			conn.Close()
		}
	}()
	defer trap.Close()
	for _, target := range []struct{ machine, addr string }{
		{"trap", trap.Addr().String()},
		{"self", c.conn.Target()},
	} {
		req := &cellv1.RegisterMachineRequest{Id: target.machine, Capacity: &cellv1.Resources{CpuMilli: 4000, MemoryBytes: 4 * gib}}
		old := protowire.AppendTag(nil, 5, protowire.BytesType) // log_address, as old agents send it
		req.ProtoReflect().SetUnknown(protowire.AppendString(old, target.addr))
		if _, err := c.machines.RegisterMachine(ctxT(t), req); err != nil {
			t.Fatalf("an old agent's registration is refused: %v", err)
		}
		got, err := c.machines.GetMachine(ctxT(t), &cellv1.GetMachineRequest{Id: target.machine})
		if err != nil {
			t.Fatal(err)
		}
		if wire, _ := proto.Marshal(got); strings.Contains(string(wire), target.addr) {
			t.Fatalf("machine %s echoes the address it registered: %v", target.machine, got)
		}
		ref := c.runningTaskOn(target.machine)
		base := runtime.NumGoroutine()
		errs, took, peak := concurrentLogs(t, c.logs, ref, 4)
		for i, err := range errs {
			if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "machine "+target.machine) || took[i] > 2*time.Second {
				t.Fatalf("logs of a task on %s: %v after %v; want Unavailable naming the machine within 2s", target.machine, err, took[i])
			}
		}
		if peak-base > 100 {
			t.Errorf("4 log calls for %s took the goroutines from %d to %d", target.machine, base, peak)
		}
	}
	if n := dialed.Load(); n != 0 {
		t.Fatalf("the server dialed the registered address %d times", n)
	}
}

// 100 concurrent log requests for a machine whose agent is gone: each
// answers Unavailable at once, naming the machine, and the server's
// goroutines and file descriptors stay bounded and come back.
func TestHostileLogRequestsForADeadAgent(t *testing.T) {
	c := newLogCell(t, LogOptions{Timeout: 2 * time.Second})
	c.addMachine("gone.example.com", nil, 4000, 4*gib, 0)
	ref := c.runningTaskOn("gone.example.com")
	baseG, baseFD := runtime.NumGoroutine(), openFDs(t)
	errs, took, peak := concurrentLogs(t, c.logs, ref, 100)
	for i, err := range errs {
		if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "machine gone.example.com") || took[i] > 2*time.Second {
			t.Fatalf("call %d: %v after %v; want Unavailable naming the machine within the 2s deadline", i, err, took[i])
		}
	}
	// Clients tell the agent's absence from the server's by its ErrorInfo.
	details := status.Convert(errs[0]).Details()
	if len(details) != 1 {
		t.Fatalf("details %v; want one ErrorInfo", details)
	}
	if info, ok := details[0].(*errdetails.ErrorInfo); !ok || info.Reason != ReasonAgentUnavailable || info.Metadata["machine"] != "gone.example.com" {
		t.Fatalf("details %v; want an ErrorInfo %s naming the machine", details, ReasonAgentUnavailable)
	}
	// 100 callers and 100 gRPC handlers, and a few of gRPC's own.
	if peak-baseG > 300 {
		t.Errorf("goroutines went from %d to %d during 100 log calls", baseG, peak)
	}
	if g := settled(t, baseG, 10); g > baseG+10 {
		t.Errorf("goroutines %d after the calls, %d before", g, baseG)
	}
	if fd := openFDs(t); fd > baseFD+5 {
		t.Errorf("open fds %d after the calls, %d before", fd, baseFD)
	}
	t.Logf("100 calls: goroutines %d before, %d at most; fds %d before, %d after", baseG, peak, baseFD, openFDs(t))
}

// An agent that is connected but never answers: at most the per-caller
// slots' worth of requests reach it, and every call answers within the
// deadline — Unavailable naming the machine for those sent, and
// ResourceExhausted for those that found no free slot in time.
func TestHostileLogRequestsForAHungAgent(t *testing.T) {
	const timeout, perCaller = 500 * time.Millisecond, 4
	c := newLogCell(t, LogOptions{Timeout: timeout, MaxInFlight: 16, MaxInFlightPerCaller: perCaller})
	c.addMachine("hung", nil, 4000, 4*gib, 0)
	ref := c.runningTaskOn("hung")
	hung, err := nats.Connect(c.url)
	if err != nil {
		t.Fatal(err)
	}
	defer hung.Close()
	subject, _ := limits.LogsSubject(DefaultSubjectPrefix, "hung")
	var received atomic.Int64
	if _, err := hung.Subscribe(subject, func(*nats.Msg) { received.Add(1) }); err != nil {
		t.Fatal(err)
	}
	if err := hung.Flush(); err != nil {
		t.Fatal(err)
	}
	baseG := runtime.NumGoroutine()
	errs, took, peak := concurrentLogs(t, c.logs, ref, 100)
	unavailable := 0
	for i, err := range errs {
		switch {
		case took[i] > timeout+time.Second:
			t.Fatalf("call %d answered after %v; the deadline is %v", i, took[i], timeout)
		case status.Code(err) == codes.Unavailable && strings.Contains(err.Error(), "machine hung"):
			unavailable++
		case status.Code(err) == codes.ResourceExhausted:
		default:
			t.Fatalf("call %d: %v; want Unavailable naming the machine or ResourceExhausted", i, err)
		}
	}
	// All calls start together; the ones holding the caller's slots keep
	// them until the deadline, which the others reach waiting.
	if unavailable < perCaller || received.Load() > int64(unavailable) {
		t.Fatalf("%d calls answered Unavailable, %d requests reached the agent; want at least %d, and no more requests than those", unavailable, received.Load(), perCaller)
	}
	if peak-baseG > 300 {
		t.Errorf("goroutines went from %d to %d during 100 log calls", baseG, peak)
	}
	if g := settled(t, baseG, 10); g > baseG+10 {
		t.Errorf("goroutines %d after the calls, %d before", g, baseG)
	}
	// The cell keeps serving others meanwhile, and the slots came back.
	if _, err := c.jobs.GetJob(ctxT(t), &cellv1.GetJobRequest{IdOrName: ref.JobId}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.logs.GetTaskLogs(ctxT(t), &cellv1.GetTaskLogsRequest{Task: ref}); status.Code(err) != codes.Unavailable {
		t.Fatalf("a later call: %v; want Unavailable (a slot, then the agent's silence)", err)
	}
}

// A simulated machine keeps no logs, and says so; so does a server
// without NATS, for any machine.
func TestLogsOfMachinesThatKeepNone(t *testing.T) {
	c := newLogCell(t, LogOptions{Timeout: 2 * time.Second})
	c.addMachine("sim-1", map[string]string{SimulatedLabel: "true"}, 4000, 4*gib, 0)
	ref := c.runningTaskOn("sim-1")
	_, err := c.logs.GetTaskLogs(ctxT(t), &cellv1.GetTaskLogsRequest{Task: ref})
	if status.Code(err) != codes.Unimplemented || !strings.Contains(err.Error(), "machine sim-1 is simulated and keeps no logs") {
		t.Fatalf("logs on a simulated machine: %v", err)
	}
	// The testCell's own server has no NATS connection.
	_, err = c.jobs.GetTaskLogs(ctxT(t), &cellv1.GetTaskLogsRequest{Task: ref})
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "no NATS") {
		t.Fatalf("logs without NATS: %v", err)
	}
	for name, req := range map[string]*cellv1.GetTaskLogsRequest{
		"stream":     {Task: ref, Stream: 3},
		"tail_bytes": {Task: ref, TailBytes: -1},
		"task":       {},
	} {
		if _, err := c.logs.GetTaskLogs(ctxT(t), req); status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), name) {
			t.Errorf("bad %s: %v", name, err)
		}
	}
}

// Slots: a caller holds at most its own share, the cell at most its
// total; a call that finds none free by its deadline is ResourceExhausted,
// and released slots serve the next call.
func TestLogSlots(t *testing.T) {
	p := newLogProxy(LogOptions{MaxInFlight: 2, MaxInFlightPerCaller: 1}, DefaultSubjectPrefix)
	soon := func() context.Context {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		t.Cleanup(cancel)
		return ctx
	}
	releaseA, err := p.acquire(soon(), "user/a")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.acquire(soon(), "user/a"); status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "of this caller") {
		t.Fatalf("a's second call: %v; want ResourceExhausted for the caller", err)
	}
	releaseB, err := p.acquire(soon(), "user/b")
	if err != nil {
		t.Fatalf("b is not held back by a: %v", err)
	}
	if _, err := p.acquire(soon(), "user/c"); status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "in this cell") {
		t.Fatalf("c with the cell full: %v; want ResourceExhausted for the cell", err)
	}
	releaseA()
	releaseC, err := p.acquire(soon(), "user/c")
	if err != nil {
		t.Fatalf("c after a released: %v", err)
	}
	releaseB()
	releaseC()
	if n := len(p.callers); n != 0 || len(p.slots) != 0 {
		t.Fatalf("%d callers and %d slots left after every release", n, len(p.slots))
	}
}

func TestCallerOf(t *testing.T) {
	alice, err := identity.New(identity.User, "alice", "t1")
	if err != nil {
		t.Fatal(err)
	}
	tcp := &net.TCPAddr{IP: net.IPv4(10, 0, 0, 7), Port: 41234}
	tests := []struct {
		name string
		ctx  context.Context
		want string
	}{
		{"an identity", identity.NewContext(peer.NewContext(context.Background(), &peer.Peer{Addr: tcp}), alice), "user/alice"},
		{"a peer's host, any port", peer.NewContext(context.Background(), &peer.Peer{Addr: tcp}), "10.0.0.7"},
		{"nothing", context.Background(), ""},
	}
	for _, tt := range tests {
		if got := callerOf(tt.ctx); got != tt.want {
			t.Errorf("%s: %q, want %q", tt.name, got, tt.want)
		}
	}
}

// An agent is trusted only with its own logs: a reply that is not an
// AgentLogsReply, carries more than was asked, contradicts itself or has
// an unknown code is refused, and its message is quoted only in part.
func TestHostileAgentReplies(t *testing.T) {
	c := newLogCell(t, LogOptions{Timeout: 2 * time.Second})
	c.addMachine("liar", nil, 4000, 4*gib, 0)
	ref := c.runningTaskOn("liar")
	agentConn, err := nats.Connect(c.url)
	if err != nil {
		t.Fatal(err)
	}
	defer agentConn.Close()
	subject, _ := limits.LogsSubject(DefaultSubjectPrefix, "liar")
	var reply atomic.Value // []byte
	if _, err := agentConn.Subscribe(subject, func(m *nats.Msg) { _ = m.Respond(reply.Load().([]byte)) }); err != nil {
		t.Fatal(err)
	}
	if err := agentConn.Flush(); err != nil {
		t.Fatal(err)
	}
	encode := func(r *cellv1.AgentLogsReply) []byte { b, _ := proto.Marshal(r); return b }
	tests := []struct {
		name  string
		reply []byte
		tail  int64
		code  codes.Code
		want  string
	}{
		{"not a reply", []byte{0xff, 0xff, 0xff}, 0, codes.Internal, "not an AgentLogsReply"},
		{"more than asked", encode(&cellv1.AgentLogsReply{Data: make([]byte, 200), Size: 200}), 100, codes.Internal, "answered 200 bytes"},
		{"data beyond its size", encode(&cellv1.AgentLogsReply{Data: []byte("abc"), Offset: 5, Size: 6}), 0, codes.Internal, "answered 3 bytes at offset 5"},
		{"unknown code", encode(&cellv1.AgentLogsReply{Code: 99, Message: "??"}), 0, codes.Unknown, "agent of machine liar: ??"},
		{"a huge message", encode(&cellv1.AgentLogsReply{Code: uint32(codes.NotFound), Message: strings.Repeat("x", 500<<10)}), 0, codes.NotFound, "agent of machine liar: xxx"},
		{"an honest answer", encode(&cellv1.AgentLogsReply{Data: []byte("ok\n"), Size: 3, Attempt: 1}), 0, codes.OK, ""},
	}
	for _, tt := range tests {
		reply.Store(tt.reply)
		resp, err := c.logs.GetTaskLogs(ctxT(t), &cellv1.GetTaskLogsRequest{Task: ref, TailBytes: tt.tail})
		if status.Code(err) != tt.code || !strings.Contains(status.Convert(err).Message(), tt.want) {
			t.Errorf("%s: %v; want %v with %q", tt.name, err, tt.code, tt.want)
		}
		if n := len(status.Convert(err).Message()); n > 2<<10 {
			t.Errorf("%s: the error quotes %d bytes", tt.name, n)
		}
		if tt.code == codes.OK && string(resp.GetData()) != "ok\n" {
			t.Errorf("%s: %q", tt.name, resp.GetData())
		}
	}
}
