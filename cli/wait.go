package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
	"github.com/omegacell/omegacell/proto/cellclient"
)

type waitOptions struct {
	poll    time.Duration // between GetJob calls
	timeout time.Duration // 0: wait as long as it takes
}

// waitForJob polls the job until it finishes and shows its progress on w.
// A batch job finishes when it succeeds, fails or is stopped; a service
// never finishes by itself, so waiting for one ends once all its tasks
// run. It returns the last response and, when the job failed, was stopped
// or the wait was cut short, an error saying so.
//
// Polling GetJob (rather than following StateService.Watch, which carries
// every change of the whole cell) costs one small call per interval, and
// it survives a restart of the server: an Unavailable answer is shown and
// retried.
//
// The timeout is checked after each answer rather than imposed on the
// calls, so the first answer is always shown.
//
// Every answer names the cell incarnation that sent it. When that changes
// (the server restarted, was restored from a copy, or another cell took
// over the address) the wait says so and starts over from what the new
// incarnation says, never comparing it with the old one's answers; a job
// the new incarnation does not know is reported as such, not as a
// mistyped id.
func waitForJob(ctx context.Context, client cellv1.JobServiceClient, id string, w io.Writer, opts waitOptions) (*cellv1.GetJobResponse, error) {
	var deadline time.Time
	if opts.timeout > 0 {
		deadline = time.Now().Add(opts.timeout)
	}
	line := newProgressLine(w)
	defer line.finish()
	var last *cellv1.GetJobResponse
	var cell *cellv1.CellIdentity // the incarnation that answered last
	answered := false
	for {
		call, cancel := context.WithTimeout(ctx, callTimeout)
		resp, err := client.GetJob(call, &cellv1.GetJobRequest{IdOrName: id})
		cancel()
		if err == nil && !cellclient.SameCell(cell, resp.GetCell()) {
			if cell != nil {
				line.show(fmt.Sprintf("the cell server changed (%s, was %s); reading the job again", cellclient.Describe(resp.GetCell()), cellclient.Describe(cell)))
			}
			last = nil // the old incarnation's answers say nothing about the new one
		}
		if err == nil {
			cell, answered = resp.GetCell(), true
		}
		switch {
		case status.Code(err) == codes.NotFound && answered:
			// The job was there: the server now answering is another
			// cell, or this one restored from a copy older than the job.
			line.finish()
			return last, fmt.Errorf("job %s was in %s, but the cell server at this address no longer knows it: another cell took over the address, or the cell was restored from an older copy",
				id, cellclient.Describe(cell))
		case err == nil:
			last = resp
			line.show(progressText(resp))
			if done, failure := finished(resp); done {
				if failure != "" {
					line.finish()
					return resp, withFailedTaskHint(ctx, client, resp, failure)
				}
				return resp, nil
			}
		case status.Code(err) == codes.Unavailable && ctx.Err() == nil:
			line.show("cell server unavailable, retrying: " + oneLine(status.Convert(err).Message(), 80))
		case ctx.Err() != nil:
			return last, waitCut(last, "")
		default:
			return last, rpcError("job run --wait", err)
		}
		if !deadline.IsZero() && !time.Now().Before(deadline) {
			return last, waitCut(last, fmt.Sprintf("after --timeout %v", opts.timeout))
		}
		select {
		case <-ctx.Done():
			return last, waitCut(last, "")
		case <-time.After(opts.poll):
		}
	}
}

// finished reports whether waiting is over and, if the job did not do what
// was asked of it, why.
func finished(resp *cellv1.GetJobResponse) (done bool, failure string) {
	job := resp.GetJob()
	switch job.GetState() {
	case cellv1.JobState_JOB_STATE_SUCCEEDED:
		return true, ""
	case cellv1.JobState_JOB_STATE_FAILED:
		return true, "failed"
	case cellv1.JobState_JOB_STATE_STOPPED:
		return true, "was stopped"
	}
	switch job.GetSpec().GetKind() {
	case cellv1.JobKind_JOB_KIND_SERVICE:
		return serviceFinished(job, resp.GetCounts()) // ready replicas, rollouts (issue 13)
	case cellv1.JobKind_JOB_KIND_SYSTEM:
		if job.GetRollout() != nil { // a new version rolls out as a service's does
			return serviceFinished(job, resp.GetCounts())
		}
	}
	return false, ""
}

// withFailedTaskHint builds the error for a failed or stopped job, naming
// the first failed task and how to read its output.
func withFailedTaskHint(ctx context.Context, client cellv1.JobServiceClient, resp *cellv1.GetJobResponse, failure string) error {
	name := resp.GetJob().GetSpec().GetName()
	msg := fmt.Sprintf("job %s %s", name, failure)
	if m := resp.GetJob().GetMessage(); m != "" {
		msg += ": " + oneLine(m, 200)
	}
	call, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	full, err := client.GetJob(call, &cellv1.GetJobRequest{IdOrName: resp.GetJob().GetId(), IncludeTasks: true})
	if err != nil {
		return errors.New(msg)
	}
	for _, t := range full.GetTasks() {
		if t.GetState() == cellv1.TaskState_TASK_STATE_FAILED {
			msg += fmt.Sprintf("; task %d: %s; its output: cell job logs %s --task %d --stderr",
				t.GetIndex(), oneLine(t.GetMessage(), 80), name, t.GetIndex())
			break
		}
	}
	return errors.New(msg)
}

// waitCut explains why waiting stopped early (after a timeout, or when
// interrupted); the job itself goes on.
func waitCut(last *cellv1.GetJobResponse, after string) error {
	if last == nil {
		return errors.New("stopped waiting before the cell answered; the job was submitted")
	}
	name, state := last.GetJob().GetSpec().GetName(), jobStateName(last.GetJob().GetState())
	if after != "" {
		return fmt.Errorf("job %s is still %s %s; it keeps going (cell job status %s)", name, state, after, name)
	}
	return fmt.Errorf("stopped waiting; job %s is %s and keeps going (cell job status %s)", name, state, name)
}

// progressText is the live line: "web  running  pending 0, placed 1, ...".
func progressText(resp *cellv1.GetJobResponse) string {
	job := resp.GetJob()
	s := fmt.Sprintf("%s  %s  %s", job.GetSpec().GetName(), displayState(job, resp.GetCounts()), countsText(resp.GetCounts()))
	if job.GetSpec().GetKind() == cellv1.JobKind_JOB_KIND_SERVICE {
		s += ", " + replicasText(job, resp.GetCounts())
	}
	if r := job.GetRollout(); r.GetState() == cellv1.RolloutState_ROLLOUT_STATE_RUNNING {
		s += "  (" + rolloutText(r) + ")"
	}
	if r := job.GetUnschedulableReason(); r != "" {
		s += "  (unschedulable: " + oneLine(r, 80) + ")"
	}
	if r := job.GetQueuedReason(); r != "" {
		s += "  (queued: " + oneLine(r, 80) + ")"
	}
	return s
}

// outcomeLine is printed when waiting ends.
func outcomeLine(resp *cellv1.GetJobResponse) string {
	job := resp.GetJob()
	s := fmt.Sprintf("job %s %s: %s", job.GetSpec().GetName(), displayState(job, resp.GetCounts()), countsText(resp.GetCounts()))
	if job.GetFinishTimeUnixNano() > 0 && job.GetSubmitTimeUnixNano() > 0 {
		s += fmt.Sprintf(" (%v after submission)", time.Duration(job.GetFinishTimeUnixNano()-job.GetSubmitTimeUnixNano()).Round(time.Millisecond))
	}
	return s
}

// progressLine shows a line that changes over time. On a terminal it is
// rewritten in place (carriage return, erase line) with the time waited;
// elsewhere (a file, a pipe, a test) each new text is printed on its own
// line once, so logs stay readable and deterministic.
type progressLine struct {
	w        io.Writer
	terminal bool
	start    time.Time
	last     string
	open     bool // a terminal line is being rewritten
}

func newProgressLine(w io.Writer) *progressLine {
	return &progressLine{w: w, terminal: isTerminal(w), start: time.Now()}
}

func (p *progressLine) show(text string) {
	if p.terminal {
		fmt.Fprintf(p.w, "\r\033[K%s  [%v]", text, time.Since(p.start).Round(time.Second))
		p.open = true
		return
	}
	if text != p.last {
		fmt.Fprintln(p.w, text)
	}
	p.last = text
}

// finish ends a terminal line; safe to call more than once.
func (p *progressLine) finish() {
	if p.open {
		fmt.Fprintln(p.w)
		p.open = false
	}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
