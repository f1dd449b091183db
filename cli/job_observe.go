package cli

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
)

// What `job status` and `job list` show of issue 13: task events with
// ages as `kubectl describe` shows them, why tasks are pending, and list
// filters (state, tenant, labels) with ages and -o wide.

// now is the clock ages are computed against (tests fix it).
var now = time.Now

// defaultEventRows is how many of the latest events `job status` shows
// without --all-tasks.
const defaultEventRows = 40

// age renders how long ago t was, as kubectl does: 45s, 3m12s, 42m, 5h, 3d.
func age(ns int64, now time.Time) string {
	if ns == 0 {
		return "-"
	}
	d := max(now.Sub(time.Unix(0, ns)), 0)
	switch {
	case d < 2*time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < 10*time.Minute:
		return fmt.Sprintf("%dm%ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 3*time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

// eventText says what happened, in words.
func eventText(e *cellv1.TaskEvent) (kind, text string) {
	kind = enumName(e.GetKind().String(), "TASK_EVENT_KIND_")
	msg := e.GetMessage()
	switch e.GetKind() {
	case cellv1.TaskEventKind_TASK_EVENT_KIND_PLACED:
		text = fmt.Sprintf("placed on %s by scheduler %s", e.GetMachineId(), e.GetScheduler())
	case cellv1.TaskEventKind_TASK_EVENT_KIND_STARTED:
		text = "started on " + e.GetMachineId()
	case cellv1.TaskEventKind_TASK_EVENT_KIND_READY:
		text = "ready"
	case cellv1.TaskEventKind_TASK_EVENT_KIND_SUCCEEDED:
		text = "exited with code 0"
	case cellv1.TaskEventKind_TASK_EVENT_KIND_FAILED:
		text = fmt.Sprintf("exited with code %d", e.GetExitCode())
		if msg != "" {
			text += ": " + msg
		}
	case cellv1.TaskEventKind_TASK_EVENT_KIND_LOST:
		text = cmp.Or(msg, "lost with machine "+e.GetMachineId())
	default: // killed, preempted, evicted: the message says by whom and why
		text = cmp.Or(msg, kind)
	}
	return kind, text
}

// writeTaskEvents prints the events of tasks, oldest first, the latest
// maxRows of them (-1: all).
func writeTaskEvents(w io.Writer, tasks []*cellv1.Task, now time.Time, maxRows int) {
	type ev struct {
		task uint32
		e    *cellv1.TaskEvent
	}
	var all []ev
	for _, t := range tasks {
		for _, e := range t.GetEvents() {
			all = append(all, ev{t.GetIndex(), e})
		}
	}
	if len(all) == 0 {
		return
	}
	slices.SortStableFunc(all, func(a, b ev) int {
		return cmp.Or(cmp.Compare(a.e.GetTimeUnixNano(), b.e.GetTimeUnixNano()), cmp.Compare(a.task, b.task))
	})
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Events:")
	if maxRows >= 0 && len(all) > maxRows {
		fmt.Fprintf(w, "  (the latest %d of %d; --all-tasks shows every one)\n", maxRows, len(all))
		all = all[len(all)-maxRows:]
	}
	t := newTable(w)
	row(t, "  AGE", "TASK", "ATTEMPT", "EVENT", "MACHINE", "MESSAGE")
	for _, x := range all {
		kind, text := eventText(x.e)
		row(t, "  "+age(x.e.GetTimeUnixNano(), now), strconv.Itoa(int(x.task)), strconv.Itoa(int(x.e.GetAttempt())), kind,
			cmp.Or(x.e.GetMachineId(), "-"), oneLine(text, 100))
	}
	t.Flush()
}

// jobFilter is `job list`'s --state, --tenant and --selector.
type jobFilter struct {
	states   []string
	tenant   string
	selector string
	labels   map[string]string
}

func (f *jobFilter) addFlags(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringSliceVar(&f.states, "state", nil, "only jobs in these states (pending, running, succeeded, failed, stopped; finished ones imply --all)")
	fl.StringVar(&f.tenant, "tenant", "", "only jobs of this tenant")
	fl.StringVarP(&f.selector, "selector", "l", "", "only jobs with these labels (key=value,...)")
}

// parse checks the flags; it reports whether finished jobs are needed.
func (f *jobFilter) parse() (finished bool, err error) {
	for _, s := range f.states {
		switch strings.ToLower(s) {
		case "pending", "running":
		case "succeeded", "failed", "stopped":
			finished = true
		default:
			return false, fmt.Errorf("--state %q: want pending, running, succeeded, failed or stopped", s)
		}
	}
	if f.selector != "" {
		f.labels = make(map[string]string)
		for _, term := range strings.Split(f.selector, ",") {
			k, v, ok := strings.Cut(strings.TrimSpace(term), "=")
			if !ok || k == "" {
				return false, fmt.Errorf("--selector %q: want key=value[,key=value...]", f.selector)
			}
			f.labels[k] = v
		}
	}
	return finished, nil
}

func (f *jobFilter) keep(s *cellv1.JobSummary) bool {
	job := s.GetJob()
	if len(f.states) > 0 && !slices.ContainsFunc(f.states, func(st string) bool { return strings.EqualFold(st, jobStateName(job.GetState())) }) {
		return false
	}
	if f.tenant != "" && job.GetSpec().GetTenant() != f.tenant {
		return false
	}
	for k, v := range f.labels {
		if got, ok := job.GetSpec().GetLabels()[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// wideOutput reports whether -o wide was asked for (a table with more
// columns; the -o check maps it to a table).
func wideOutput(cmd *cobra.Command) bool {
	f := cmd.Flags().Lookup("output")
	return f != nil && strings.EqualFold(f.Value.String(), "wide")
}

// writeJobTable prints one row per job, oldest first; wide adds the
// tenant, kind, labels and submit time, and the whole note.
func writeJobTable(w io.Writer, jobs []*cellv1.JobSummary, now time.Time, wide bool) {
	jobs = slices.Clone(jobs)
	slices.SortFunc(jobs, func(a, b *cellv1.JobSummary) int {
		return cmp.Or(
			cmp.Compare(a.GetJob().GetSubmitTimeUnixNano(), b.GetJob().GetSubmitTimeUnixNano()),
			cmp.Compare(a.GetJob().GetSpec().GetName(), b.GetJob().GetSpec().GetName()),
			cmp.Compare(a.GetJob().GetId(), b.GetJob().GetId()))
	})
	t := newTable(w)
	head := []string{"NAME", "ID", "SCHEDULER", "PRIORITY", "STATE", "TASKS", "PENDING", "PLACED", "RUNNING", "DONE", "FAILED", "AGE"}
	if wide {
		head = append(head, "TENANT", "KIND", "LABELS", "SUBMITTED")
	}
	row(t, append(head, "NOTE")...)
	noteLen := 50
	if wide {
		noteLen = 200
	}
	for _, s := range jobs {
		job, c := s.GetJob(), s.GetCounts()
		spec := job.GetSpec()
		note := "-"
		if r := job.GetUnschedulableReason(); r != "" {
			note = "unschedulable: " + oneLine(r, noteLen)
		} else if r := job.GetQueuedReason(); r != "" {
			note = "queued: " + oneLine(r, noteLen) // waiting for its tenant's quota (issue 12)
		} else if m := job.GetMessage(); m != "" && job.GetState() == cellv1.JobState_JOB_STATE_FAILED {
			note = oneLine(m, noteLen)
		}
		cells := []string{spec.GetName(), job.GetId(), spec.GetScheduler(), strconv.Itoa(int(spec.GetPriority())),
			displayState(job, c), strconv.Itoa(int(taskTotal(c))), // issue 13: crash-looping, rolling-out
			strconv.Itoa(int(c.GetPending())), strconv.Itoa(int(c.GetAssigned())), strconv.Itoa(int(c.GetRunning())),
			strconv.Itoa(int(c.GetSucceeded())), strconv.Itoa(int(c.GetFailed())), age(job.GetSubmitTimeUnixNano(), now)}
		if wide {
			cells = append(cells, cmp.Or(spec.GetTenant(), "-"), jobKindName(spec.GetKind()), formatLabels(spec.GetLabels()),
				formatTime(job.GetSubmitTimeUnixNano()))
		}
		row(t, append(cells, note)...)
	}
	t.Flush()
}

// taskTotal is the number of tasks a job has (a system job's count is
// only its bound).
func taskTotal(c *cellv1.TaskCounts) uint32 {
	return c.GetPending() + c.GetAssigned() + c.GetRunning() + c.GetSucceeded() + c.GetFailed() + c.GetLost() + c.GetKilled()
}
