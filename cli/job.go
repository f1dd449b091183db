package cli

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/omegacell/omegacell/jobspec"
	"github.com/omegacell/omegacell/pbconv"
	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
	"github.com/omegacell/omegacell/proto/cellclient"
	"github.com/omegacell/omegacell/txn"
)

// callTimeout bounds each single call (not --wait, which polls).
const callTimeout = 30 * time.Second

// defaultTaskRows is how many tasks `job status` lists without --all-tasks.
const defaultTaskRows = 20

// JobCommand returns `job` with its subcommands run, status, list, stop and
// logs. dial reaches the cell; with a nil dial the command gets its own
// --server flag (see ServerFlag).
func JobCommand(dial Dialer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "job",
		Short: "Submit, follow and stop jobs",
		Long: `Submit jobs described by job specs (YAML or JSON, see examples/jobs), follow
their progress, read their logs and stop them. Every subcommand accepts
-o json or -o yaml to print the API response instead of a table.`,
		Args: cobra.NoArgs,
	}
	if dial == nil {
		dial = ServerFlag(cmd.PersistentFlags())
	}
	j := &jobCommands{dial: dial, format: addOutputFlag(cmd)}
	cmd.AddCommand(j.runCommand(), j.statusCommand(), j.listCommand(), j.stopCommand(), j.logsCommand())
	cmd.AddCommand(j.updateCommands()...) // issue 13: plan, history, revert, scale
	return cmd
}

type jobCommands struct {
	dial   Dialer
	format func() (outputFormat, error)
}

// client dials the cell; call the returned close when done.
func (j *jobCommands) client(ctx context.Context) (cellv1.JobServiceClient, func(), error) {
	conn, err := j.dial(ctx)
	if err != nil {
		return nil, nil, err
	}
	return cellv1.NewJobServiceClient(conn), func() { _ = conn.Close() }, nil
}

func (j *jobCommands) runCommand() *cobra.Command {
	var wait waitOptions
	var waitFlag bool
	cmd := &cobra.Command{
		Use:   "run FILE",
		Short: "Submit the job described in FILE (YAML or JSON; - reads stdin)",
		Long: `Submits the job described in FILE. With --wait, shows a live progress line
(pending / placed / running / done / failed) until the job finishes — for a
service, until all its tasks run — and exits non-zero if it failed or was
stopped.`,
		Example: `  cell job run examples/jobs/batch-array.yaml --wait
  cell job run job.yaml -o json`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: completeSpecFiles,
		RunE: func(cmd *cobra.Command, args []string) error {
			format, err := j.format()
			if err != nil {
				return err
			}
			spec, err := readSpec(args[0], cmd.InOrStdin())
			if err != nil {
				return err
			}
			client, closeConn, err := j.client(cmd.Context())
			if err != nil {
				return err
			}
			defer closeConn()

			ctx, cancel := context.WithTimeout(cmd.Context(), callTimeout)
			resp, err := client.SubmitJob(ctx, &cellv1.SubmitJobRequest{Spec: spec, WarnInfeasible: true})
			cancel()
			if err != nil {
				return rpcError("job run", err)
			}
			for _, w := range resp.GetWarnings() {
				fmt.Fprintln(cmd.ErrOrStderr(), "warning: "+w)
			}
			job := resp.GetJob()
			out := cmd.OutOrStdout()
			if format == formatTable && (job.GetVersion() > 1 || resp.GetRevision() == 0) {
				fmt.Fprintln(out, versionLine(job, resp.GetRevision(), "updated")) // a new version (issue 13)
			} else if format == formatTable {
				fmt.Fprintf(out, "job %s submitted: id %s, %s scheduler, %d %s, priority %d (%s)\n",
					job.GetSpec().GetName(), job.GetId(), job.GetSpec().GetScheduler(), job.GetSpec().GetCount(),
					plural(int(job.GetSpec().GetCount()), "task", "tasks"), job.GetSpec().GetPriority(), txn.BandOf(job.GetSpec().GetPriority()))
			}
			if !waitFlag {
				if format != formatTable {
					return writeProto(out, format, resp)
				}
				return nil
			}
			final, werr := waitForJob(cmd.Context(), client, job.GetId(), cmd.ErrOrStderr(), wait)
			if done, _ := finished(final); done {
				if format == formatTable {
					fmt.Fprintln(out, outcomeLine(final))
				} else if err := writeProto(out, format, final); err != nil {
					return err
				}
			}
			return werr
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&waitFlag, "wait", "w", false, "follow the job until it finishes (a service: until all tasks run)")
	f.DurationVar(&wait.timeout, "timeout", 0, "with --wait, give up after this long (0: no limit)")
	f.DurationVar(&wait.poll, "poll-interval", 500*time.Millisecond, "with --wait, how often to ask the cell")
	_ = f.MarkHidden("poll-interval")
	return cmd
}

// readSpec parses the spec in file, or in stdin for "-".
func readSpec(file string, stdin io.Reader) (*cellv1.JobSpec, error) {
	if file != "-" {
		return jobspec.ParseFile(file)
	}
	data, err := io.ReadAll(io.LimitReader(stdin, jobspec.MaxSpecBytes+1))
	if err != nil {
		return nil, fmt.Errorf("reading the spec from stdin: %w", err)
	}
	spec, err := jobspec.Parse(data)
	var errs jobspec.Errors
	if errors.As(err, &errs) {
		for _, e := range errs {
			e.File = "<stdin>"
		}
	}
	return spec, err
}

func (j *jobCommands) statusCommand() *cobra.Command {
	var allTasks bool
	cmd := &cobra.Command{
		Use:               "status ID|NAME",
		Short:             "Show a job, its task counts and its tasks",
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: j.completeJobs,
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := openSession(cmd, j.dial, j.format)
			if err != nil {
				return err
			}
			defer s.Close()
			ctx, format, client := s.ctx, s.format, cellv1.NewJobServiceClient(s.conn)
			resp, err := client.GetJob(ctx, &cellv1.GetJobRequest{IdOrName: args[0], IncludeTasks: true, Explain: true})
			if err != nil {
				return rpcError("job status", err)
			}
			if format != formatTable {
				return writeProto(cmd.OutOrStdout(), format, resp)
			}
			rows := defaultTaskRows
			if allTasks {
				rows = -1
			}
			writeJobStatus(cmd.OutOrStdout(), resp, rows)
			events := defaultEventRows
			if allTasks {
				events = -1
			}
			writeTaskEvents(cmd.OutOrStdout(), resp.GetTasks(), now(), events)
			return nil
		},
	}
	cmd.Flags().BoolVar(&allTasks, "all-tasks", false, fmt.Sprintf("list every task (default: the first %d)", defaultTaskRows))
	return cmd
}

// writeJobStatus prints a job as a block of fields, then its tasks (at
// most maxRows of them; -1: all).
func writeJobStatus(w io.Writer, resp *cellv1.GetJobResponse, maxRows int) {
	job, spec := resp.GetJob(), resp.GetJob().GetSpec()
	t := newTable(w)
	field := func(name, value string) { row(t, name+":", value) }
	field("Job", spec.GetName())
	field("ID", job.GetId())
	if spec.GetTenant() != "" {
		field("Tenant", spec.GetTenant())
	}
	field("Scheduler", spec.GetScheduler())
	field("Priority", fmt.Sprintf("%d (%s)", spec.GetPriority(), txn.BandOf(spec.GetPriority())))
	kind := jobKindName(spec.GetKind())
	if spec.GetGang() {
		kind += ", gang (all tasks or none)"
	}
	field("Kind", kind)
	field("State", displayState(job, resp.GetCounts()))
	field("Tasks", fmt.Sprintf("%d: %s", taskTotal(resp.GetCounts()), countsText(resp.GetCounts())))
	if len(spec.GetLabels()) > 0 {
		field("Labels", formatLabels(spec.GetLabels()))
	}
	updateFields(field, job, resp.GetCounts())
	field("Resources", resourcesText(spec.GetTask().GetResources())+" per task")
	if cs := pbconv.Constraints(spec.GetTask().GetConstraints()); len(cs) > 0 {
		texts := make([]string, len(cs))
		for i, c := range cs {
			texts[i] = c.String()
		}
		field("Constraints", strings.Join(texts, "; "))
	}
	if k := spec.GetTask().GetSpreadKey(); k != "" {
		field("Spread over", k)
	}
	if d := disruptionText(spec); d != "" {
		field("Disruption", d)
	}
	field("Command", strings.Join(append([]string{spec.GetTask().GetCommand()}, spec.GetTask().GetArgs()...), " "))
	field("Submitted", formatTime(job.GetSubmitTimeUnixNano()))
	if job.GetPlacedUnixNano() != 0 {
		field("Placed", formatTime(job.GetPlacedUnixNano()))
	}
	if job.GetFinishTimeUnixNano() != 0 {
		field("Finished", formatTime(job.GetFinishTimeUnixNano()))
	}
	if r := job.GetQueuedReason(); r != "" {
		field("Queued", oneLine(r, 200)) // waiting for its tenant's quota (issue 12)
	}
	if e := resp.GetExplanation(); e != "" {
		field("Why pending", oneLine(e, 400))
	}
	if r := job.GetUnschedulableReason(); r != "" {
		field("Unschedulable", fmt.Sprintf("%s (after %d attempts)", oneLine(r, 200), job.GetAttempts()))
	}
	if m := job.GetMessage(); m != "" {
		field("Message", oneLine(m, 200))
	}
	t.Flush()

	tasks := slices.Clone(resp.GetTasks())
	if len(tasks) == 0 {
		return
	}
	slices.SortFunc(tasks, func(a, b *cellv1.Task) int { return cmp.Compare(a.GetIndex(), b.GetIndex()) })
	fmt.Fprintln(w)
	t = newTable(w)
	row(t, "TASK", "STATE", "MACHINE", "ATTEMPT", "FAILURES", "EXIT", "STARTED", "CPU USED/REQ", "MEMORY USED/REQ", "MESSAGE")
	for i, task := range tasks {
		if maxRows >= 0 && i == maxRows {
			t.Flush()
			fmt.Fprintf(w, "... and %d more tasks (--all-tasks lists them all)\n", len(tasks)-maxRows)
			return
		}
		exit := "-"
		if task.GetState() == cellv1.TaskState_TASK_STATE_SUCCEEDED || task.GetState() == cellv1.TaskState_TASK_STATE_FAILED {
			exit = strconv.Itoa(int(task.GetExitCode()))
		}
		row(t, strconv.Itoa(int(task.GetIndex())), taskStateText(task), cmp.Or(task.GetMachineId(), "-"),
			strconv.Itoa(int(task.GetAttempt())), strconv.Itoa(int(task.GetFailures())), exit,
			formatTime(task.GetStartTimeUnixNano()), taskCPU(task), taskMemory(task), oneLine(task.GetMessage(), 60))
	}
	t.Flush()
}

// countsText renders task counts in the words of the progress line.
func countsText(c *cellv1.TaskCounts) string {
	s := fmt.Sprintf("pending %d, placed %d, running %d, done %d, failed %d",
		c.GetPending(), c.GetAssigned(), c.GetRunning(), c.GetSucceeded(), c.GetFailed())
	if n := c.GetLost(); n > 0 {
		s += fmt.Sprintf(", lost %d", n)
	}
	if n := c.GetKilled(); n > 0 {
		s += fmt.Sprintf(", killed %d", n)
	}
	if n := c.GetRetired(); n > 0 {
		s += fmt.Sprintf(", retired %d", n)
	}
	return s
}

// resourcesText renders a request in spec units: "cpu 500m, memory 512Mi".
func resourcesText(r *cellv1.Resources) string {
	var parts []string
	if v := r.GetCpuMilli(); v != 0 {
		parts = append(parts, "cpu "+jobspec.FormatCPU(v))
	}
	if v := r.GetMemoryBytes(); v != 0 {
		parts = append(parts, "memory "+jobspec.FormatBytes(v))
	}
	if v := r.GetDiskBytes(); v != 0 {
		parts = append(parts, "disk "+jobspec.FormatBytes(v))
	}
	if v := r.GetGpuMilli(); v != 0 {
		parts = append(parts, "gpu "+jobspec.FormatGPU(v))
	}
	if len(parts) == 0 {
		return "nothing"
	}
	return strings.Join(parts, ", ")
}

func (j *jobCommands) listCommand() *cobra.Command {
	var all bool
	var scheduler string
	var filter jobFilter
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List live jobs (--all: finished ones too)",
		Example: `  cell job list --state pending,failed --tenant ml
  cell job list -l team=ml -o wide`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			finished, err := filter.parse()
			if err != nil {
				return err
			}
			all = all || finished
			s, err := openSession(cmd, j.dial, j.format)
			if err != nil {
				return err
			}
			defer s.Close()
			ctx, format, client := s.ctx, s.format, cellv1.NewJobServiceClient(s.conn)
			resp, err := cellclient.ListJobs(ctx, client, &cellv1.ListJobsRequest{Scheduler: scheduler, IncludeFinished: all})
			if err != nil {
				return rpcError("job list", err)
			}
			resp.Jobs = slices.DeleteFunc(resp.Jobs, func(s *cellv1.JobSummary) bool { return !filter.keep(s) })
			if format != formatTable {
				return writeProto(cmd.OutOrStdout(), format, resp)
			}
			if len(resp.GetJobs()) == 0 {
				hint := ""
				if !all {
					hint = " (--all includes finished jobs)"
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "no jobs%s\n", hint)
				return nil
			}
			writeJobTable(cmd.OutOrStdout(), resp.GetJobs(), now(), wideOutput(cmd))
			return nil
		},
	}
	cmd.Flags().BoolVarP(&all, "all", "a", false, "include finished (succeeded, failed, stopped) jobs")
	cmd.Flags().StringVar(&scheduler, "scheduler", "", "only jobs of this scheduler")
	filter.addFlags(cmd)
	return cmd
}

func (j *jobCommands) stopCommand() *cobra.Command {
	return &cobra.Command{
		Use:               "stop ID|NAME",
		Short:             "Stop a job: its tasks are killed and it is not placed again",
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: j.completeJobs,
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := openSession(cmd, j.dial, j.format)
			if err != nil {
				return err
			}
			defer s.Close()
			ctx, format, client := s.ctx, s.format, cellv1.NewJobServiceClient(s.conn)
			resp, err := client.StopJob(ctx, &cellv1.StopJobRequest{IdOrName: args[0]})
			if err != nil {
				return rpcError("job stop", err)
			}
			if format != formatTable {
				return writeProto(cmd.OutOrStdout(), format, resp)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "job %s (%s) is %s\n", resp.GetJob().GetSpec().GetName(), resp.GetJob().GetId(), jobStateName(resp.GetJob().GetState()))
			return nil
		},
	}
}

func (j *jobCommands) logsCommand() *cobra.Command {
	var task uint32
	var stderr, follow bool
	var tail string
	cmd := &cobra.Command{
		Use:   "logs ID|NAME",
		Short: "Print a task's captured stdout (or --stderr)",
		Long: `Prints the output a task wrote, as captured by the agent that ran it. With
-o json or -o yaml the API response is printed instead (data in base64).

With --follow, keeps printing what the task writes until it ends (or
Ctrl-C); when the task runs again, a line on stderr names the new attempt
and its output follows from its start.`,
		Example: `  cell job logs train-llm --task 3 --stderr --tail 64Ki
  cell job logs hello -f`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: j.completeJobs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var tailBytes int64
			if tail != "" {
				var err error
				if tailBytes, err = jobspec.ParseBytes(tail); err != nil {
					return fmt.Errorf("--tail: %w", err)
				}
			}
			s, err := openSession(cmd, j.dial, j.format)
			if err != nil {
				return err
			}
			defer s.Close()
			ctx, format, client := s.ctx, s.format, cellv1.NewJobServiceClient(s.conn)
			if follow && format != formatTable {
				return errFollowFormat
			}
			job, err := client.GetJob(ctx, &cellv1.GetJobRequest{IdOrName: args[0]})
			if err != nil {
				return rpcError("job logs", err)
			}
			if n := job.GetJob().GetSpec().GetCount(); task >= n {
				return fmt.Errorf("job logs: --task %d: job %s has %d %s (0..%d)", task, job.GetJob().GetSpec().GetName(), n, plural(int(n), "task", "tasks"), n-1)
			}
			stream := cellv1.LogStream_LOG_STREAM_STDOUT
			if stderr {
				stream = cellv1.LogStream_LOG_STREAM_STDERR
			}
			req := &cellv1.GetTaskLogsRequest{
				Task:      &cellv1.TaskRef{JobId: job.GetJob().GetId(), Index: task},
				Stream:    stream,
				TailBytes: tailBytes,
			}
			if follow {
				return followLogs(cmd.Context(), client, req, cmd.OutOrStdout(), cmd.ErrOrStderr())
			}
			resp, err := client.GetTaskLogs(ctx, req)
			if err != nil {
				return rpcError("job logs", err)
			}
			if format != formatTable {
				return writeProto(cmd.OutOrStdout(), format, resp)
			}
			_, err = cmd.OutOrStdout().Write(resp.GetData())
			return err
		},
	}
	f := cmd.Flags()
	f.Uint32Var(&task, "task", 0, "task index")
	f.BoolVar(&stderr, "stderr", false, "print stderr instead of stdout")
	f.BoolVarP(&follow, "follow", "f", false, "keep printing the output as the task writes it, until it ends")
	f.StringVar(&tail, "tail", "", "print at most this much from the end, e.g. 64Ki (default: the server's, 1Mi)")
	return cmd
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
