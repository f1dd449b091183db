package cli

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/omegacell/omegacell/jobspec"
	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
)

// Cordon, drain and status of machines (issue 14).

// drainPoll is how often `machine drain` reads the drain's progress.
var drainPoll = 500 * time.Millisecond

// machineStateText is a machine's state as operators say it: a DRAINING
// machine is "cordoned" unless a drain runs or ran on it.
func machineStateText(m *cellv1.Machine) string {
	d := m.GetDrain()
	switch {
	case m.GetState() == cellv1.MachineState_MACHINE_STATE_DOWN && d != nil:
		return "down, cordoned"
	case d == nil || m.GetState() != cellv1.MachineState_MACHINE_STATE_DRAINING:
		return machineStateName(m.GetState())
	case !d.GetDraining():
		return "cordoned"
	case d.GetDoneUnixNano() != 0:
		return "drained"
	}
	return "draining"
}

// drainProgress is one line about a drain: counts, deadline, what it waits
// for.
func drainProgress(d *cellv1.MachineDrain, now time.Time) string {
	s := fmt.Sprintf("evicted %d, %d left", d.GetEvicted(), d.GetRemaining())
	if n := d.GetForced(); n > 0 {
		s += fmt.Sprintf(", %d forced at the deadline", n)
	}
	if d.GetIgnoreBatch() {
		s += ", batch tasks left to finish"
	}
	if d.GetDoneUnixNano() != 0 {
		return s + fmt.Sprintf("; done in %s", time.Duration(d.GetDoneUnixNano()-d.GetDrainStartUnixNano()).Round(100*time.Millisecond))
	}
	s += fmt.Sprintf("; deadline in %s", time.Unix(0, d.GetDeadlineUnixNano()).Sub(now).Round(time.Second))
	if w := d.GetWaiting(); w != "" {
		s += "; waiting: " + w
	}
	return s
}

func (m *machineCommands) machineArg() cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		return m.machineIDs(cmd.Context()), cobra.ShellCompDirectiveNoFileComp
	}
}

// cordonCommand is `machine cordon ID` (on) or `machine uncordon ID`.
func (m *machineCommands) cordonCommand(on bool) *cobra.Command {
	use, short, action := "uncordon ID", "Allow new placements on a machine again (ends a drain)", cellv1.DrainAction_DRAIN_ACTION_UNCORDON
	if on {
		use, short, action = "cordon ID", "Stop new placements on a machine; what runs there keeps running", cellv1.DrainAction_DRAIN_ACTION_CORDON
	}
	return &cobra.Command{
		Use:               use,
		Short:             short,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: m.machineArg(),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := openSession(cmd, m.dial, m.format)
			if err != nil {
				return err
			}
			defer s.Close()
			resp, err := cellv1.NewMachineServiceClient(s.conn).DrainMachine(s.ctx, &cellv1.DrainMachineRequest{Id: args[0], Action: action})
			if err != nil {
				return rpcError("machine "+strings.Fields(use)[0], err)
			}
			if s.format != formatTable {
				return writeProto(cmd.OutOrStdout(), s.format, resp)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "machine %s is %s\n", resp.GetMachine().GetId(), machineStateText(resp.GetMachine()))
			return nil
		},
	}
}

func (m *machineCommands) drainCommand() *cobra.Command {
	var (
		undo, ignoreBatch, detach bool
		deadline                  time.Duration
	)
	cmd := &cobra.Command{
		Use:   "drain ID",
		Short: "Cordon a machine and move its tasks away gradually, within each job's disruption budget",
		Long: `Cordons the machine (no new placements), then evicts its tasks a few at a
time: a task is evicted only while fewer of its job's tasks are unavailable
than the job's disruption budget (disruption: {maxUnavailable: N} in its
spec; 1 for a service by default, no limit for a batch job), so a service
keeps its replicas up while they move to other machines. Whatever is still
there at --deadline is evicted at once. --ignore-batch leaves batch tasks to
finish. The command follows the drain until it is done (--detach returns at
once; cell machine status ID shows the progress). The machine stays
cordoned afterwards: cell machine uncordon ID.`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: m.machineArg(),
		RunE: func(cmd *cobra.Command, args []string) error {
			if deadline < 0 {
				return fmt.Errorf("--deadline %v: want a positive duration", deadline)
			}
			req := &cellv1.DrainMachineRequest{Id: args[0], Action: cellv1.DrainAction_DRAIN_ACTION_DRAIN,
				DeadlineMs: deadline.Milliseconds(), IgnoreBatch: ignoreBatch}
			if undo {
				req = &cellv1.DrainMachineRequest{Id: args[0], Action: cellv1.DrainAction_DRAIN_ACTION_UNCORDON}
			}
			s, err := openSession(cmd, m.dial, m.format)
			if err != nil {
				return err
			}
			defer s.Close()
			client := cellv1.NewMachineServiceClient(s.conn)
			resp, err := client.DrainMachine(s.ctx, req)
			if err != nil {
				return rpcError("machine drain", err)
			}
			out := cmd.OutOrStdout()
			if s.format != formatTable {
				return writeProto(out, s.format, resp)
			}
			mc := resp.GetMachine()
			fmt.Fprintf(out, "machine %s is %s\n", mc.GetId(), machineStateText(mc))
			if undo || detach || mc.GetDrain().GetDoneUnixNano() != 0 {
				if d := mc.GetDrain(); d.GetDraining() {
					fmt.Fprintln(out, drainProgress(d, time.Now()))
				}
				return nil
			}
			return followDrain(cmd.Context(), client, mc, out)
		},
	}
	f := cmd.Flags()
	f.DurationVar(&deadline, "deadline", time.Hour, "evict whatever is left at once after this long")
	f.BoolVar(&ignoreBatch, "ignore-batch", false, "leave batch tasks to finish instead of evicting them (until the deadline)")
	f.BoolVar(&detach, "detach", false, "start the drain and return; do not follow it")
	f.BoolVar(&undo, "undo", false, "same as cell machine uncordon")
	_ = f.MarkHidden("undo")
	return cmd
}

// followDrain prints the drain's progress whenever it changes, until it
// is done or ctx ends (Ctrl-C leaves the drain running).
func followDrain(ctx context.Context, client cellv1.MachineServiceClient, mc *cellv1.Machine, out io.Writer) error {
	last := ""
	for {
		d := mc.GetDrain()
		if !d.GetDraining() {
			fmt.Fprintf(out, "the drain of %s was cancelled (machine %s)\n", mc.GetId(), machineStateText(mc))
			return nil
		}
		line := drainProgress(d, time.Now())
		// The deadline countdown alone is not news.
		key := fmt.Sprint(d.GetEvicted(), d.GetRemaining(), d.GetForced(), d.GetWaiting(), d.GetDoneUnixNano())
		if key != last {
			fmt.Fprintln(out, line)
			last = key
		}
		if d.GetDoneUnixNano() != 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(drainPoll):
		}
		cctx, cancel := context.WithTimeout(ctx, callTimeout)
		resp, err := client.GetMachine(cctx, &cellv1.GetMachineRequest{Id: mc.GetId()})
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return rpcError("machine drain", err)
		}
		mc = resp.GetMachine()
	}
}

func (m *machineCommands) statusCommand() *cobra.Command {
	return &cobra.Command{
		Use:               "status ID",
		Short:             "Show a machine: capacity, reserved and used resources, labels, health, GPUs, drain, and its tasks with their usage",
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: m.machineArg(),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := openSession(cmd, m.dial, m.format)
			if err != nil {
				return err
			}
			defer s.Close()
			resp, err := cellv1.NewMachineServiceClient(s.conn).GetMachine(s.ctx, &cellv1.GetMachineRequest{Id: args[0]})
			if err != nil {
				return rpcError("machine status", err)
			}
			if s.format != formatTable {
				return writeProto(cmd.OutOrStdout(), s.format, resp)
			}
			// Job names for the task list, one read per job.
			names := make(map[string]string)
			jobs := cellv1.NewJobServiceClient(s.conn)
			for _, t := range resp.GetTasks() {
				if _, ok := names[t.GetJobId()]; ok {
					continue
				}
				names[t.GetJobId()] = t.GetJobId()
				if j, err := jobs.GetJob(s.ctx, &cellv1.GetJobRequest{IdOrName: t.GetJobId()}); err == nil {
					names[t.GetJobId()] = j.GetJob().GetSpec().GetName()
				}
			}
			writeMachineStatus(cmd.OutOrStdout(), resp, names, time.Now())
			return nil
		},
	}
}

// writeMachineStatus renders one machine like `kubectl describe node`.
func writeMachineStatus(w io.Writer, resp *cellv1.GetMachineResponse, jobNames map[string]string, now time.Time) {
	mc := resp.GetMachine()
	capacity, alloc, usage := mc.GetCapacity(), mc.GetAllocated(), mc.GetUsage()
	t := newTable(w)
	field := func(name, value string) { row(t, name+":", value) }
	field("Machine", mc.GetId())
	field("State", machineStateText(mc))
	field("Labels", formatLabels(mc.GetLabels()))
	if hb := mc.GetLastHeartbeatUnixNano(); hb != 0 {
		field("Heartbeat", fmt.Sprintf("%s ago", now.Sub(time.Unix(0, hb)).Round(100*time.Millisecond)))
	} else {
		field("Heartbeat", "none since the server started")
	}
	if r := mc.GetRegisteredBy(); r != "" {
		field("Registered by", r)
	}
	if d := mc.GetDrain(); d != nil {
		field("Cordoned", formatTime(d.GetCordonTimeUnixNano()))
		if d.GetDraining() {
			field("Drain", drainProgress(d, now))
		}
	}
	t.Flush()
	fmt.Fprintln(w)
	t = newTable(w)
	row(t, "RESOURCE", "CAPACITY", "RESERVED", "USED")
	cpuUsed, memUsed := "-", "-"
	if usage != nil {
		cpuUsed, memUsed = jobspec.FormatCPU(usage.GetCpuMilli()), jobspec.HumanBytes(usage.GetMemoryBytes())
	}
	row(t, "cpu", jobspec.FormatCPU(capacity.GetCpuMilli()), jobspec.FormatCPU(alloc.GetCpuMilli())+percentOf(alloc.GetCpuMilli(), capacity.GetCpuMilli()), cpuUsed)
	row(t, "memory", jobspec.HumanBytes(capacity.GetMemoryBytes()), jobspec.HumanBytes(alloc.GetMemoryBytes())+percentOf(alloc.GetMemoryBytes(), capacity.GetMemoryBytes()), memUsed)
	row(t, "disk", jobspec.HumanBytes(capacity.GetDiskBytes()), jobspec.HumanBytes(alloc.GetDiskBytes())+percentOf(alloc.GetDiskBytes(), capacity.GetDiskBytes()), "-")
	if capacity.GetGpuMilli() > 0 {
		row(t, "gpu", jobspec.FormatGPU(capacity.GetGpuMilli()), jobspec.FormatGPU(alloc.GetGpuMilli())+percentOf(alloc.GetGpuMilli(), capacity.GetGpuMilli()), "-")
	}
	t.Flush()
	if used := mc.GetDeviceUsedMilli(); len(used) > 0 {
		fmt.Fprintln(w)
		t = newTable(w)
		row(t, "GPU", "IN USE", "MEMORY", "TASKS")
		holders := make(map[uint32][]string)
		for _, tk := range resp.GetTasks() {
			for _, d := range tk.GetDevices() {
				holders[d.GetDevice()] = append(holders[d.GetDevice()], fmt.Sprintf("%s/%d", cmp.Or(jobNames[tk.GetJobId()], tk.GetJobId()), tk.GetIndex()))
			}
		}
		for i, u := range used {
			mem := "-"
			if b := mc.GetGpuMemoryBytes(); b > 0 {
				mem = jobspec.HumanBytes(b)
			}
			row(t, strconv.Itoa(i), jobspec.FormatGPU(int64(u)), mem, cmp.Or(strings.Join(holders[uint32(i)], ", "), "-"))
		}
		t.Flush()
	}
	fmt.Fprintln(w)
	tasks := slices.Clone(resp.GetTasks())
	if len(tasks) == 0 {
		fmt.Fprintln(w, "No tasks.")
		return
	}
	slices.SortFunc(tasks, func(a, b *cellv1.Task) int {
		return cmp.Or(cmp.Compare(jobNames[a.GetJobId()], jobNames[b.GetJobId()]), cmp.Compare(a.GetJobId(), b.GetJobId()), cmp.Compare(a.GetIndex(), b.GetIndex()))
	})
	t = newTable(w)
	row(t, "JOB", "TASK", "STATE", "ATTEMPT", "STARTED", "CPU USED/REQ", "MEMORY USED/REQ")
	for _, tk := range tasks {
		row(t, cmp.Or(jobNames[tk.GetJobId()], tk.GetJobId()), strconv.Itoa(int(tk.GetIndex())), taskStateName(tk.GetState()),
			strconv.Itoa(int(tk.GetAttempt())), formatTime(tk.GetStartTimeUnixNano()), taskCPU(tk), taskMemory(tk))
	}
	t.Flush()
}

// percentOf is " (N%)" of part in whole, or "" when whole is 0.
func percentOf(part, whole int64) string {
	if whole <= 0 {
		return ""
	}
	return fmt.Sprintf(" (%d%%)", part*100/whole)
}
