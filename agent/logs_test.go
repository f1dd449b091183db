package agent

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
)

func TestLogServer(t *testing.T) {
	tasks := t.TempDir()
	files := map[string]string{
		"job-1/0.1/stdout":  "first attempt\n",
		"job-1/0.2/stdout":  "0123456789",
		"job-1/0.2/stderr":  "boom\n",
		"job-1/0.10/stdout": "tenth attempt\n", // 10 > 2: numeric, not lexical
		"job-1/1.1/stdout":  "",
	}
	for name, content := range files {
		path := filepath.Join(tasks, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Index 3 ran only as attempt 2: its directory is 3.2.
	if err := os.MkdirAll(filepath.Join(tasks, "job-1", "3.2"), 0o755); err != nil {
		t.Fatal(err)
	}
	addr, stop, err := serveLogs("127.0.0.1:0", &logServer{tasksDir: tasks, machineID: "m1"})
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	client := cellv1.NewJobServiceClient(cc)

	tests := []struct {
		name string
		req  *cellv1.GetTaskLogsRequest
		want string
		code codes.Code
	}{
		{"latest attempt's stdout", &cellv1.GetTaskLogsRequest{Task: &cellv1.TaskRef{JobId: "job-1"}}, "tenth attempt\n", codes.OK},
		{"empty log", &cellv1.GetTaskLogsRequest{Task: &cellv1.TaskRef{JobId: "job-1", Index: 1}, TailBytes: 4}, "", codes.OK},
		{"stderr of an attempt without it", &cellv1.GetTaskLogsRequest{Task: &cellv1.TaskRef{JobId: "job-1", Index: 3}, Stream: cellv1.LogStream_LOG_STREAM_STDERR}, "", codes.Internal},
		{"never ran here", &cellv1.GetTaskLogsRequest{Task: &cellv1.TaskRef{JobId: "job-1", Index: 2}}, "", codes.NotFound},
		{"unknown job", &cellv1.GetTaskLogsRequest{Task: &cellv1.TaskRef{JobId: "job-9"}}, "", codes.NotFound},
		{"no task", &cellv1.GetTaskLogsRequest{}, "", codes.InvalidArgument},
		{"escaping job id", &cellv1.GetTaskLogsRequest{Task: &cellv1.TaskRef{JobId: "../job-1"}}, "", codes.InvalidArgument},
		{"negative tail", &cellv1.GetTaskLogsRequest{Task: &cellv1.TaskRef{JobId: "job-1"}, TailBytes: -1}, "", codes.InvalidArgument},
		{"unknown stream", &cellv1.GetTaskLogsRequest{Task: &cellv1.TaskRef{JobId: "job-1"}, Stream: 7}, "", codes.InvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := client.GetTaskLogs(context.Background(), tt.req)
			if status.Code(err) != tt.code {
				t.Fatalf("GetTaskLogs: %v, want code %v", err, tt.code)
			}
			if string(resp.GetData()) != tt.want {
				t.Fatalf("data = %q, want %q", resp.GetData(), tt.want)
			}
		})
	}

	// Tail of attempt 2 of index 0 once attempt 10 is gone.
	if err := os.RemoveAll(filepath.Join(tasks, "job-1", "0.10")); err != nil {
		t.Fatal(err)
	}
	for stream, want := range map[cellv1.LogStream]string{cellv1.LogStream_LOG_STREAM_STDOUT: "6789", cellv1.LogStream_LOG_STREAM_STDERR: "oom\n"} {
		resp, err := client.GetTaskLogs(context.Background(), &cellv1.GetTaskLogsRequest{Task: &cellv1.TaskRef{JobId: "job-1"}, Stream: stream, TailBytes: 4})
		if err != nil || string(resp.GetData()) != want {
			t.Fatalf("%v tail 4 = %q (%v), want %q", stream, resp.GetData(), err, want)
		}
	}
	// Reading on from an offset, as `cell job logs --follow` does: attempt
	// 2's stdout is "0123456789".
	at := func(off int64) *int64 { return &off }
	offsets := []struct {
		name         string
		offset       *int64
		tail         int64
		want         string
		from, size   int64
		code         codes.Code
		wantAttempts uint32
	}{
		{"end, no offset", nil, 4, "6789", 6, 10, codes.OK, 2},
		{"from the start", at(0), 0, "0123456789", 0, 10, codes.OK, 2},
		{"from the middle, bounded", at(3), 4, "3456", 3, 10, codes.OK, 2},
		{"at the end: nothing new", at(10), 0, "", 10, 10, codes.OK, 2},
		{"beyond the end", at(11), 0, "", 0, 0, codes.OutOfRange, 0},
		{"negative", at(-1), 0, "", 0, 0, codes.InvalidArgument, 0},
	}
	for _, o := range offsets {
		t.Run("offset "+o.name, func(t *testing.T) {
			resp, err := client.GetTaskLogs(context.Background(), &cellv1.GetTaskLogsRequest{Task: &cellv1.TaskRef{JobId: "job-1"}, Offset: o.offset, TailBytes: o.tail})
			if status.Code(err) != o.code {
				t.Fatalf("GetTaskLogs: %v, want code %v", err, o.code)
			}
			if string(resp.GetData()) != o.want || resp.GetOffset() != o.from || resp.GetSize() != o.size || resp.GetAttempt() != o.wantAttempts {
				t.Fatalf("got %q at %d of %d (attempt %d), want %q at %d of %d (attempt %d)", resp.GetData(), resp.GetOffset(), resp.GetSize(), resp.GetAttempt(),
					o.want, o.from, o.size, o.wantAttempts)
			}
		})
	}

	// Other JobService methods are not the agent's.
	if _, err := client.ListJobs(context.Background(), &cellv1.ListJobsRequest{}); status.Code(err) != codes.Unimplemented {
		t.Fatalf("ListJobs on the agent: %v, want Unimplemented", err)
	}
}

func TestLogAddressNamesThisHost(t *testing.T) {
	addr, stop, err := serveLogs("0.0.0.0:0", &logServer{tasksDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	host, port, err := net.SplitHostPort(addr)
	name, _ := os.Hostname()
	if err != nil || host != name || port == "0" {
		t.Fatalf("registered log address %q, want %s:<port>", addr, name)
	}
	if _, _, err := serveLogs("256.0.0.1:0", &logServer{}); err == nil {
		t.Fatal("listening on an invalid address succeeded")
	}
}
