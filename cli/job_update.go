package cli

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/omegacell/omegacell/jobspec"
	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
)

// Changing a running job (issue 13): plan, history, revert, scale, and
// what run, status and --wait show of versions and rollouts.

// ExitError ends a command with a given exit status; an empty message
// prints nothing (`job plan` exits 1 when there are changes).
type ExitError struct {
	Code int
	Msg  string
}

func (e *ExitError) Error() string { return e.Msg }

// Plan exit statuses, as `nomad job plan`'s.
const (
	planNoChanges = 0
	planChanges   = 1
	planError     = 2
)

func (j *jobCommands) updateCommands() []*cobra.Command {
	return []*cobra.Command{j.planCommand(), j.historyCommand(), j.revertCommand(), j.scaleCommand()}
}

func (j *jobCommands) planCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "plan FILE",
		Short: "Show what `job run FILE` would change, changing nothing",
		Long: `Compares the spec in FILE with the live job of that name: the fields that
differ, the tasks that would be created, replaced (a rolling update),
updated in place or stopped, and whether a task fits some machine of the
cell now and ever. Exits 0 when nothing would change, 1 when something
would and every task can run, 2 on an error or when a task could never run
or would be refused (as nomad job plan).`,
		Example:           `  cell job plan examples/jobs/service.yaml`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: completeSpecFiles,
		RunE: func(cmd *cobra.Command, args []string) error {
			spec, err := readSpec(args[0], cmd.InOrStdin())
			if err != nil {
				return &ExitError{Code: planError, Msg: err.Error()}
			}
			s, err := openSession(cmd, j.dial, j.format)
			if err != nil {
				return &ExitError{Code: planError, Msg: err.Error()}
			}
			defer s.Close()
			resp, err := cellv1.NewJobVersionServiceClient(s.conn).PlanJob(s.ctx, &cellv1.PlanJobRequest{Spec: spec})
			if err != nil {
				return &ExitError{Code: planError, Msg: rpcError("job plan", err).Error()}
			}
			if s.format != formatTable {
				if err := writeProto(cmd.OutOrStdout(), s.format, resp); err != nil {
					return err
				}
			} else {
				writePlan(cmd.OutOrStdout(), spec, resp)
			}
			if code := planExit(resp); code != planNoChanges {
				return &ExitError{Code: code}
			}
			return nil
		},
	}
}

// planExit is the plan's exit status.
func planExit(p *cellv1.PlanJobResponse) int {
	switch {
	case p.GetRefused() != "" || !p.GetFeasibility().GetEver():
		return planError
	case p.GetExists() && len(p.GetDiff()) == 0:
		return planNoChanges
	}
	return planChanges
}

// writePlan prints a plan (golden-tested: testdata/plan-*.golden).
func writePlan(w io.Writer, spec *cellv1.JobSpec, p *cellv1.PlanJobResponse) {
	name := spec.GetName()
	switch {
	case !p.GetExists():
		fmt.Fprintf(w, "+ job %s: new (version 1)\n", name)
	case p.GetRefused() != "":
		fmt.Fprintf(w, "! job %s: refused: %s\n", name, p.GetRefused())
		return
	case len(p.GetDiff()) == 0:
		fmt.Fprintf(w, "= job %s: no changes (version %d)\n", name, p.GetVersion())
	default:
		fmt.Fprintf(w, "~ job %s: version %d -> %d\n", name, p.GetVersion(), p.GetVersion()+1)
		for _, d := range p.GetDiff() {
			switch {
			case d.GetOld() == "":
				fmt.Fprintf(w, "    + %s: %s\n", d.GetPath(), d.GetNew())
			case d.GetNew() == "":
				fmt.Fprintf(w, "    - %s: %s\n", d.GetPath(), d.GetOld())
			default:
				fmt.Fprintf(w, "    ~ %s: %s => %s\n", d.GetPath(), d.GetOld(), d.GetNew())
			}
		}
	}
	var what []string
	for _, c := range []struct {
		n    uint32
		verb string
	}{{p.GetCreate(), "create"}, {p.GetReplace(), "replace (rolling)"}, {p.GetInPlace(), "update in place"}, {p.GetStop(), "stop"}} {
		if c.n > 0 {
			what = append(what, fmt.Sprintf("%s %d", c.verb, c.n))
		}
	}
	if len(what) == 0 {
		what = []string{"none"}
	}
	fmt.Fprintf(w, "Tasks: %s\n", strings.Join(what, ", "))
	f := p.GetFeasibility()
	fmt.Fprintf(w, "Fits now: %s\n", yesNo(f.GetNow(), f.GetMachinesNow()))
	fmt.Fprintf(w, "Fits ever: %s\n", yesNo(f.GetEver(), f.GetMachinesEver()))
	if r := f.GetReason(); r != "" {
		fmt.Fprintf(w, "Why: %s\n", r)
	}
}

func yesNo(ok bool, machines uint32) string {
	if ok {
		return fmt.Sprintf("yes (%d %s)", machines, plural(int(machines), "machine", "machines"))
	}
	return "no"
}

func (j *jobCommands) historyCommand() *cobra.Command {
	return &cobra.Command{
		Use:               "history ID|NAME",
		Short:             "List a job's kept versions (the newest ten), newest first",
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: j.completeJobs,
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := openSession(cmd, j.dial, j.format)
			if err != nil {
				return err
			}
			defer s.Close()
			resp, err := cellv1.NewJobVersionServiceClient(s.conn).ListJobVersions(s.ctx, &cellv1.ListJobVersionsRequest{IdOrName: args[0]})
			if err != nil {
				return rpcError("job history", err)
			}
			if s.format != formatTable {
				return writeProto(cmd.OutOrStdout(), s.format, resp)
			}
			writeHistory(cmd.OutOrStdout(), resp)
			return nil
		},
	}
}

func writeHistory(w io.Writer, resp *cellv1.ListJobVersionsResponse) {
	t := newTable(w)
	row(t, "VERSION", "SUBMITTED", "COUNT", "COMMAND", "CHANGE")
	for _, v := range resp.GetVersions() {
		mark := strconv.FormatUint(v.GetVersion(), 10)
		if v.GetVersion() == resp.GetCurrent() {
			mark += " (current)"
		}
		task := v.GetSpec().GetTask()
		row(t, mark, formatTime(v.GetSubmitTimeUnixNano()), strconv.Itoa(int(v.GetSpec().GetCount())),
			oneLine(strings.Join(append([]string{task.GetCommand()}, task.GetArgs()...), " "), 50), v.GetCause())
	}
	t.Flush()
}

func (j *jobCommands) revertCommand() *cobra.Command {
	return &cobra.Command{
		Use:               "revert ID|NAME VERSION",
		Short:             "Submit a kept version of a job again, as a new version",
		Args:              cobra.ExactArgs(2),
		ValidArgsFunction: j.completeJobs,
		RunE: func(cmd *cobra.Command, args []string) error {
			v, err := strconv.ParseUint(args[1], 10, 64)
			if err != nil || v == 0 {
				return fmt.Errorf("job revert: VERSION %q: want a version number (cell job history %s lists them)", args[1], args[0])
			}
			s, err := openSession(cmd, j.dial, j.format)
			if err != nil {
				return err
			}
			defer s.Close()
			resp, err := cellv1.NewJobVersionServiceClient(s.conn).RevertJob(s.ctx, &cellv1.RevertJobRequest{IdOrName: args[0], Version: v})
			if err != nil {
				return rpcError("job revert", err)
			}
			if s.format != formatTable {
				return writeProto(cmd.OutOrStdout(), s.format, resp)
			}
			fmt.Fprintln(cmd.OutOrStdout(), versionLine(resp.GetJob(), resp.GetRevision(), fmt.Sprintf("reverted to version %d", v)))
			return nil
		},
	}
}

func (j *jobCommands) scaleCommand() *cobra.Command {
	return &cobra.Command{
		Use:               "scale ID|NAME COUNT",
		Short:             "Set a job's task count (scaling down stops the highest indexes)",
		Args:              cobra.ExactArgs(2),
		ValidArgsFunction: j.completeJobs,
		RunE: func(cmd *cobra.Command, args []string) error {
			n, err := strconv.ParseUint(args[1], 10, 32)
			if err != nil || n == 0 || n > jobspec.MaxCount {
				return fmt.Errorf("job scale: COUNT %q: want 1..%d", args[1], jobspec.MaxCount)
			}
			s, err := openSession(cmd, j.dial, j.format)
			if err != nil {
				return err
			}
			defer s.Close()
			resp, err := cellv1.NewJobVersionServiceClient(s.conn).ScaleJob(s.ctx, &cellv1.ScaleJobRequest{IdOrName: args[0], Count: uint32(n)})
			if err != nil {
				return rpcError("job scale", err)
			}
			if s.format != formatTable {
				return writeProto(cmd.OutOrStdout(), s.format, resp)
			}
			fmt.Fprintln(cmd.OutOrStdout(), versionLine(resp.GetJob(), resp.GetRevision(), fmt.Sprintf("scaled to %d", n)))
			return nil
		},
	}
}

// versionLine says what a change made of a job.
func versionLine(job *cellv1.Job, revision uint64, what string) string {
	name := job.GetSpec().GetName()
	if revision == 0 {
		return fmt.Sprintf("job %s unchanged (version %d)", name, job.GetVersion())
	}
	s := fmt.Sprintf("job %s %s: version %d", name, what, job.GetVersion())
	if r := job.GetRollout(); r.GetVersion() == job.GetVersion() && r.GetState() == cellv1.RolloutState_ROLLOUT_STATE_RUNNING {
		s += fmt.Sprintf(", rolling out to %d %s", r.GetDesired(), plural(int(r.GetDesired()), "replica", "replicas"))
	}
	return s
}

// updateFields adds a job's version, rollout and replica health to `job
// status`.
func updateFields(field func(name, value string), job *cellv1.Job, c *cellv1.TaskCounts) {
	if v := job.GetVersion(); v > 0 {
		field("Version", strconv.FormatUint(v, 10))
	}
	if r := job.GetRollout(); r != nil {
		field("Rollout", rolloutText(r))
	}
	if job.GetSpec().GetKind() == cellv1.JobKind_JOB_KIND_SERVICE && jobLiveState(job.GetState()) {
		field("Replicas", replicasText(job, c))
	}
}

func jobLiveState(s cellv1.JobState) bool {
	return s == cellv1.JobState_JOB_STATE_PENDING || s == cellv1.JobState_JOB_STATE_RUNNING
}

func replicasText(job *cellv1.Job, c *cellv1.TaskCounts) string {
	s := fmt.Sprintf("%d/%d ready", c.GetReady(), job.GetSpec().GetCount())
	if n := c.GetCrashLooping(); n > 0 {
		s += fmt.Sprintf(", %d crash-looping", n)
	}
	return s
}

func rolloutText(r *cellv1.Rollout) string {
	var s string
	switch r.GetState() {
	case cellv1.RolloutState_ROLLOUT_STATE_RUNNING:
		s = fmt.Sprintf("version %d rolling out: %d/%d updated, %d healthy", r.GetVersion(), r.GetUpdated(), r.GetDesired(), r.GetHealthy())
	case cellv1.RolloutState_ROLLOUT_STATE_SUCCEEDED:
		s = fmt.Sprintf("version %d rolled out", r.GetVersion())
		if r.GetEndTimeUnixNano() > r.GetStartTimeUnixNano() {
			s += fmt.Sprintf(" in %v", time.Duration(r.GetEndTimeUnixNano()-r.GetStartTimeUnixNano()).Round(time.Millisecond))
		}
	case cellv1.RolloutState_ROLLOUT_STATE_FAILED:
		s = fmt.Sprintf("version %d failed", r.GetVersion())
	}
	if m := r.GetMessage(); m != "" {
		s += ": " + oneLine(m, 200)
	}
	return s
}

// displayState is a job's state as `job list` shows it: a live service is
// "crash-looping" while replicas fail over and over, "rolling-out" during
// a rollout, "running" once every replica is ready, else "starting".
func displayState(job *cellv1.Job, c *cellv1.TaskCounts) string {
	if job.GetSpec().GetKind() != cellv1.JobKind_JOB_KIND_SERVICE || !jobLiveState(job.GetState()) {
		return jobStateName(job.GetState())
	}
	switch {
	case c.GetCrashLooping() > 0:
		return "crash-looping"
	case job.GetRollout().GetState() == cellv1.RolloutState_ROLLOUT_STATE_RUNNING:
		return "rolling-out"
	case c.GetReady() >= job.GetSpec().GetCount():
		return "running"
	case job.GetState() == cellv1.JobState_JOB_STATE_PENDING:
		return "pending"
	}
	return "starting"
}

// serviceFinished is --wait's verdict on a live service: done once no
// rollout runs and every replica is ready; a failed rollout, one that
// rolled back, and crash-looping replicas end the wait with a failure.
func serviceFinished(job *cellv1.Job, c *cellv1.TaskCounts) (done bool, failure string) {
	r := job.GetRollout()
	switch {
	case c.GetCrashLooping() > 0:
		return true, fmt.Sprintf("is crash-looping: %d %s failing over and over", c.GetCrashLooping(), plural(int(c.GetCrashLooping()), "replica keeps", "replicas keep"))
	case r.GetState() == cellv1.RolloutState_ROLLOUT_STATE_FAILED:
		return true, "rollout " + rolloutText(r)
	case r.GetState() == cellv1.RolloutState_ROLLOUT_STATE_RUNNING:
		return false, ""
	case r.GetReverts() != 0 && r.GetVersion() == job.GetVersion():
		return true, fmt.Sprintf("version %d was rolled back (%s)", r.GetReverts(), oneLine(r.GetMessage(), 200))
	}
	return c.GetReady() >= readyWanted(job, c), ""
}

// readyWanted is how many ready tasks a live job wants: a service its
// count, a system job its tasks on machines it covers now (count keeps
// the killed tasks of machines it left).
func readyWanted(job *cellv1.Job, c *cellv1.TaskCounts) uint32 {
	n := job.GetSpec().GetCount()
	if job.GetSpec().GetKind() == cellv1.JobKind_JOB_KIND_SYSTEM {
		n -= min(n, c.GetKilled())
	}
	return n
}
