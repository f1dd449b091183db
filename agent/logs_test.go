package agent

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
	"github.com/omegacell/omegacell/proto/limits"
)

// writeTaskFiles lays out attempt directories under tasks.
func writeTaskFiles(t *testing.T, tasks string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		path := filepath.Join(tasks, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// logClient asks a log server over real NATS, as the cell server does.
type logClient struct {
	t       *testing.T
	nc      *nats.Conn
	subject string
}

func attachLogServer(t *testing.T, ns *server.Server, srv *logServer) *logClient {
	t.Helper()
	agentConn, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(agentConn.Close)
	if err := srv.attach(agentConn, "testcell"); err != nil {
		t.Fatal(err)
	}
	if err := agentConn.Flush(); err != nil { // the subscription is in place
		t.Fatal(err)
	}
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	subject, err := limits.LogsSubject("testcell", srv.machineID)
	if err != nil {
		t.Fatal(err)
	}
	return &logClient{t: t, nc: nc, subject: subject}
}

func (c *logClient) ask(req *cellv1.AgentLogsRequest) *cellv1.AgentLogsReply {
	c.t.Helper()
	data, err := proto.Marshal(req)
	if err != nil {
		c.t.Fatal(err)
	}
	msg, err := c.nc.Request(c.subject, data, 5*time.Second)
	if err != nil {
		c.t.Fatalf("request on %s: %v", c.subject, err)
	}
	reply := &cellv1.AgentLogsReply{}
	if err := proto.Unmarshal(msg.Data, reply); err != nil {
		c.t.Fatal(err)
	}
	return reply
}

func TestLogServerAnswersOverNATS(t *testing.T) {
	tasks := t.TempDir()
	writeTaskFiles(t, tasks, map[string]string{
		"job-1/0.1/stdout":  "first attempt\n",
		"job-1/0.2/stdout":  "0123456789",
		"job-1/0.2/stderr":  "boom\n",
		"job-1/0.10/stdout": "tenth attempt\n", // 10 > 2: numeric, not lexical
		"job-1/1.1/stdout":  "",
	})
	// Index 3 ran only as attempt 2, and has not written anything yet.
	if err := os.MkdirAll(filepath.Join(tasks, "job-1", "3.2"), 0o755); err != nil {
		t.Fatal(err)
	}
	// A machine id with dots: its subject token escapes them.
	const id = "node-1.example.com"
	c := attachLogServer(t, startNATS(t), &logServer{log: discard, tasksDir: tasks, machineID: id})
	if c.subject != "testcell.logs.node-1~example~com" {
		t.Fatalf("subject %q", c.subject)
	}

	at := func(off int64) *int64 { return &off }
	att := func(a uint32) *uint32 { return &a }
	task := func(index uint32) *cellv1.TaskRef { return &cellv1.TaskRef{JobId: "job-1", Index: index} }
	tests := []struct {
		name string
		req  *cellv1.AgentLogsRequest
		code codes.Code
		want *cellv1.AgentLogsReply // code OK: data, offset, size, attempt, more
	}{
		{"latest attempt's stdout", &cellv1.AgentLogsRequest{Task: task(0)}, codes.OK,
			&cellv1.AgentLogsReply{Data: []byte("tenth attempt\n"), Size: 14, Attempt: 10}},
		{"a named attempt, its end", &cellv1.AgentLogsRequest{Task: task(0), Attempt: att(2), MaxBytes: 4}, codes.OK,
			&cellv1.AgentLogsReply{Data: []byte("6789"), Offset: 6, Size: 10, Attempt: 2}},
		{"a named attempt from an offset: more follows", &cellv1.AgentLogsRequest{Task: task(0), Attempt: att(2), Offset: at(3), MaxBytes: 4}, codes.OK,
			&cellv1.AgentLogsReply{Data: []byte("3456"), Offset: 3, Size: 10, Attempt: 2, More: true}},
		{"at the end: nothing new", &cellv1.AgentLogsRequest{Task: task(0), Attempt: att(2), Offset: at(10)}, codes.OK,
			&cellv1.AgentLogsReply{Offset: 10, Size: 10, Attempt: 2}},
		{"stderr", &cellv1.AgentLogsRequest{Task: task(0), Attempt: att(2), Stream: cellv1.LogStream_LOG_STREAM_STDERR}, codes.OK,
			&cellv1.AgentLogsReply{Data: []byte("boom\n"), Size: 5, Attempt: 2}},
		{"empty log", &cellv1.AgentLogsRequest{Task: task(1)}, codes.OK, &cellv1.AgentLogsReply{Attempt: 1}},
		{"beyond the end", &cellv1.AgentLogsRequest{Task: task(0), Attempt: att(2), Offset: at(11)}, codes.OutOfRange, nil},
		{"an attempt not here", &cellv1.AgentLogsRequest{Task: task(0), Attempt: att(3)}, codes.NotFound, nil},
		{"nothing written yet", &cellv1.AgentLogsRequest{Task: task(3)}, codes.NotFound, nil},
		{"never ran here", &cellv1.AgentLogsRequest{Task: task(2)}, codes.NotFound, nil},
		{"unknown job", &cellv1.AgentLogsRequest{Task: &cellv1.TaskRef{JobId: "job-9"}}, codes.NotFound, nil},
		{"no task", &cellv1.AgentLogsRequest{}, codes.InvalidArgument, nil},
		{"escaping job id", &cellv1.AgentLogsRequest{Task: &cellv1.TaskRef{JobId: "../job-1"}}, codes.InvalidArgument, nil},
		{"negative max", &cellv1.AgentLogsRequest{Task: task(0), MaxBytes: -1}, codes.InvalidArgument, nil},
		{"negative offset", &cellv1.AgentLogsRequest{Task: task(0), Offset: at(-1)}, codes.InvalidArgument, nil},
		{"unknown stream", &cellv1.AgentLogsRequest{Task: task(0), Stream: 7}, codes.InvalidArgument, nil},
		{"another machine's request", &cellv1.AgentLogsRequest{MachineId: "m2", Task: task(0)}, codes.InvalidArgument, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.req.MachineId == "" {
				tt.req.MachineId = id
			}
			got := c.ask(tt.req)
			if codes.Code(got.Code) != tt.code {
				t.Fatalf("code %v (%s), want %v", codes.Code(got.Code), got.Message, tt.code)
			}
			if tt.code != codes.OK {
				if got.Message == "" || len(got.Data) != 0 {
					t.Fatalf("error reply %v lacks a message or carries data", got)
				}
				return
			}
			if !proto.Equal(got, tt.want) {
				t.Fatalf("reply %v, want %v", got, tt.want)
			}
		})
	}

	// A request that is not an AgentLogsRequest is refused, not dropped.
	msg, err := c.nc.Request(c.subject, []byte{0xff, 0xff}, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	reply := &cellv1.AgentLogsReply{}
	if err := proto.Unmarshal(msg.Data, reply); err != nil || codes.Code(reply.Code) != codes.InvalidArgument {
		t.Fatalf("garbage request: %v %v", reply, err)
	}
}

// A reply never exceeds 64 KiB of data, nor the NATS server's max payload.
func TestLogServerPagesAreBounded(t *testing.T) {
	tasks := t.TempDir()
	big := bytes.Repeat([]byte("0123456789abcdef"), 16<<10) // 256 KiB
	writeTaskFiles(t, tasks, map[string]string{"job-1/0.1/stdout": string(big)})
	for _, payload := range []int32{0, 16 << 10} { // 0: the default, 1 MiB
		ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true, MaxPayload: payload})
		if err != nil {
			t.Fatal(err)
		}
		go ns.Start()
		if !ns.ReadyForConnections(10 * time.Second) {
			t.Fatal("NATS not ready")
		}
		t.Cleanup(ns.Shutdown)
		c := attachLogServer(t, ns, &logServer{log: discard, tasksDir: tasks, machineID: "m1"})
		limit := int64(maxLogPage)
		if payload != 0 {
			limit = int64(payload) - logReplyOverhead
		}
		// Page through the whole output with the largest pages asked for.
		var got []byte
		pages := 0
		for more := true; more; pages++ {
			off := int64(len(got))
			r := c.ask(&cellv1.AgentLogsRequest{MachineId: "m1", Task: &cellv1.TaskRef{JobId: "job-1"}, Offset: &off, MaxBytes: 1 << 30})
			if r.Code != 0 || int64(len(r.Data)) != min(limit, int64(len(big))-off) || r.Offset != off {
				t.Fatalf("max payload %d: page at %d: code %d %q, %d bytes at %d; want %d bytes", payload, off, r.Code, r.Message, len(r.Data), r.Offset, limit)
			}
			got, more = append(got, r.Data...), r.More
		}
		if !bytes.Equal(got, big) || pages != int((int64(len(big))+limit-1)/limit) {
			t.Fatalf("max payload %d: %d pages, %d bytes; want the %d bytes in pages of %d", payload, pages, len(got), len(big), limit)
		}
	}
}

// A new connection (a server restart elsewhere) moves the subscription.
func TestLogServerFollowsItsConnection(t *testing.T) {
	ns := startNATS(t)
	tasks := t.TempDir()
	writeTaskFiles(t, tasks, map[string]string{"job-1/0.1/stdout": "x"})
	srv := &logServer{log: discard, tasksDir: tasks, machineID: "m1"}
	c := attachLogServer(t, ns, srv)
	first := srv.sub
	second, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	if err := srv.attach(second, "testcell"); err != nil {
		t.Fatal(err)
	}
	if err := second.Flush(); err != nil {
		t.Fatal(err)
	}
	if first.IsValid() {
		t.Fatal("the first subscription is still valid after attaching to a new connection")
	}
	if r := c.ask(&cellv1.AgentLogsRequest{MachineId: "m1", Task: &cellv1.TaskRef{JobId: "job-1"}}); string(r.Data) != "x" {
		t.Fatalf("after moving: %v", r)
	}
	if err := (&logServer{log: discard, machineID: "not a name"}).attach(second, "testcell"); err == nil {
		t.Fatal("a machine id that is no machine name got a subject")
	}
}

// FuzzLogServerAnswer: whatever bytes arrive on the logs subject, the
// agent answers without panicking, with at most a page of data that lies
// within the file it read, and reads nothing outside its tasks directory.
func FuzzLogServerAnswer(f *testing.F) {
	tasks := f.TempDir()
	for name, content := range map[string]string{
		"job-1/0.1/stdout":   "0123456789",
		"job-1/0.2/stderr":   "boom\n",
		"outside/0.1/stdout": "not a job of this machine's tasks? it is, but harmless",
	} {
		path := filepath.Join(tasks, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			f.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			f.Fatal(err)
		}
	}
	secret := filepath.Join(filepath.Dir(tasks), "secret")
	_ = os.MkdirAll(filepath.Join(secret, "0.1"), 0o755)
	_ = os.WriteFile(filepath.Join(secret, "0.1", "stdout"), []byte("SECRET"), 0o644)
	s := &logServer{log: discard, tasksDir: tasks, machineID: "m1"}
	off, att := int64(3), uint32(2)
	for _, seed := range []*cellv1.AgentLogsRequest{
		{MachineId: "m1", Task: &cellv1.TaskRef{JobId: "job-1"}},
		{MachineId: "m1", Task: &cellv1.TaskRef{JobId: "job-1"}, Offset: &off, MaxBytes: 4},
		{MachineId: "m1", Task: &cellv1.TaskRef{JobId: "job-1"}, Attempt: &att, Stream: cellv1.LogStream_LOG_STREAM_STDERR},
		{MachineId: "m1", Task: &cellv1.TaskRef{JobId: "../secret"}},
	} {
		b, _ := proto.Marshal(seed)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		req := &cellv1.AgentLogsRequest{}
		if proto.Unmarshal(data, req) != nil {
			return
		}
		r := s.answer(req, maxLogPage)
		if r.Code != 0 {
			if len(r.Data) != 0 || len(r.Message) > 1024 {
				t.Fatalf("error reply with %d bytes of data, %d of message", len(r.Data), len(r.Message))
			}
			return
		}
		if int64(len(r.Data)) > maxLogPage || r.Offset < 0 || r.Offset+int64(len(r.Data)) > r.Size || r.More != (r.Offset+int64(len(r.Data)) < r.Size) {
			t.Fatalf("reply %d bytes at %d of %d (more %v)", len(r.Data), r.Offset, r.Size, r.More)
		}
		if bytes.Contains(r.Data, []byte("SECRET")) {
			t.Fatalf("read outside the tasks directory for %v", req)
		}
	})
}
