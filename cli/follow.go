package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
)

// followInterval is how often `job logs --follow` asks for more output.
var followInterval = 500 * time.Millisecond

// followLogs prints a task's output as it is written, like `kubectl logs
// -f`: first the tail, then every poll what follows the last byte printed.
// When the task runs again (a new attempt, after a failure or a lost
// machine) it says so on errOut and prints the new attempt's output from
// its start. It returns nil once the task is final and its output has been
// read to the end, or when ctx ends (Ctrl-C).
func followLogs(ctx context.Context, client cellv1.JobServiceClient, req *cellv1.GetTaskLogsRequest, out, errOut io.Writer) error {
	var attempt uint32
	waiting := ""
	for {
		resp, err := callLogs(ctx, client, req)
		switch {
		case ctx.Err() != nil:
			return nil
		case err == nil:
			waiting = ""
			if req.Offset != nil && resp.GetAttempt() != attempt {
				// A new attempt: its output starts over at byte 0.
				fmt.Fprintf(errOut, "--- attempt %d ---\n", resp.GetAttempt())
				attempt, req.Offset = resp.GetAttempt(), new(int64)
				continue
			}
			attempt = resp.GetAttempt()
			if _, err := out.Write(resp.GetData()); err != nil {
				return err
			}
			next := resp.GetOffset() + int64(len(resp.GetData()))
			req.Offset = &next
			if next < resp.GetSize() {
				continue // more than one answer's worth is waiting
			}
			if final(resp.GetTaskState()) {
				return nil
			}
		case status.Code(err) == codes.OutOfRange:
			// The output is shorter than what was printed: a new attempt
			// on the same machine. The next answer names it.
			req.Offset = new(int64)
			attempt = 0
			continue
		case transient(status.Code(err)):
			// Not placed or not started yet, or its agent is away: wait.
			if msg := status.Convert(err).Message(); msg != waiting {
				fmt.Fprintf(errOut, "waiting: %s\n", msg)
				waiting = msg
			}
		default:
			return rpcError("job logs", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(followInterval):
		}
	}
}

func callLogs(ctx context.Context, client cellv1.JobServiceClient, req *cellv1.GetTaskLogsRequest) (*cellv1.GetTaskLogsResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	return client.GetTaskLogs(ctx, req)
}

// final: the task will not run again (the store requeues a task that is
// to run again in the same revision as its end).
func final(s cellv1.TaskState) bool {
	switch s {
	case cellv1.TaskState_TASK_STATE_SUCCEEDED, cellv1.TaskState_TASK_STATE_FAILED, cellv1.TaskState_TASK_STATE_KILLED,
		cellv1.TaskState_TASK_STATE_LOST, cellv1.TaskState_TASK_STATE_PREEMPTED:
		return true
	}
	return false
}

// transient errors of a log read are worth waiting out while following.
func transient(c codes.Code) bool {
	return c == codes.FailedPrecondition || c == codes.NotFound || c == codes.Unavailable || c == codes.DeadlineExceeded
}

var errFollowFormat = errors.New("--follow prints the output as text; it cannot be combined with -o json or yaml")
