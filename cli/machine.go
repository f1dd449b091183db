package cli

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"slices"

	"github.com/spf13/cobra"

	"github.com/omegacell/omegacell/jobspec"
	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
	"github.com/omegacell/omegacell/proto/cellclient"
)

// MachineCommand returns `machine` with list, status, cordon, uncordon and
// drain. dial reaches the cell; with a nil dial the command gets its own
// --server flag.
func MachineCommand(dial Dialer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "machine",
		Short: "List machines, show one, cordon and drain them",
		Args:  cobra.NoArgs,
	}
	if dial == nil {
		dial = ServerFlag(cmd.PersistentFlags())
	}
	m := &machineCommands{dial: dial, format: addOutputFlag(cmd)}
	cmd.AddCommand(m.listCommand(), m.statusCommand(), m.cordonCommand(true), m.cordonCommand(false), m.drainCommand())
	return cmd
}

type machineCommands struct {
	dial   Dialer
	format func() (outputFormat, error)
}

func (m *machineCommands) client(ctx context.Context) (cellv1.MachineServiceClient, func(), error) {
	conn, err := m.dial(ctx)
	if err != nil {
		return nil, nil, err
	}
	return cellv1.NewMachineServiceClient(conn), func() { _ = conn.Close() }, nil
}

func (m *machineCommands) listCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List machines: state, reserved and used resources, labels",
		Long: `Lists every machine of the cell. RESERVED/CAPACITY columns show what placed
tasks claim against what the machine has; USED columns show what the agent
last sampled (- before the first sample).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := openSession(cmd, m.dial, m.format)
			if err != nil {
				return err
			}
			defer s.Close()
			ctx, format, client := s.ctx, s.format, cellv1.NewMachineServiceClient(s.conn)
			resp, err := cellclient.ListMachines(ctx, client, &cellv1.ListMachinesRequest{})
			if err != nil {
				return rpcError("machine list", err)
			}
			if format != formatTable {
				return writeProto(cmd.OutOrStdout(), format, resp)
			}
			if len(resp.GetMachines()) == 0 {
				fmt.Fprintln(cmd.ErrOrStderr(), "no machines (start one with cell agent, or cell dev --simulate N)")
				return nil
			}
			writeMachineList(cmd.OutOrStdout(), resp.GetMachines())
			return nil
		},
	}
}

// writeMachineList prints one row per machine, by id.
func writeMachineList(w io.Writer, machines []*cellv1.Machine) {
	machines = slices.Clone(machines)
	slices.SortFunc(machines, func(a, b *cellv1.Machine) int { return cmp.Compare(a.GetId(), b.GetId()) })
	t := newTable(w)
	row(t, "ID", "STATE", "CPU RESERVED/CAPACITY", "CPU USED", "MEMORY RESERVED/CAPACITY", "MEMORY USED", "GPU RESERVED/CAPACITY", "LABELS")
	for _, mc := range machines {
		alloc, capacity, usage := mc.GetAllocated(), mc.GetCapacity(), mc.GetUsage()
		cpuUsed, memUsed := "-", "-"
		if usage != nil {
			cpuUsed, memUsed = jobspec.FormatCPU(usage.GetCpuMilli()), jobspec.HumanBytes(usage.GetMemoryBytes())
		}
		gpu := "-"
		if capacity.GetGpuMilli() > 0 {
			gpu = jobspec.FormatGPU(alloc.GetGpuMilli()) + "/" + jobspec.FormatGPU(capacity.GetGpuMilli())
		}
		row(t, mc.GetId(), machineStateText(mc),
			jobspec.FormatCPU(alloc.GetCpuMilli())+"/"+jobspec.FormatCPU(capacity.GetCpuMilli()), cpuUsed,
			jobspec.HumanBytes(alloc.GetMemoryBytes())+"/"+jobspec.HumanBytes(capacity.GetMemoryBytes()), memUsed,
			gpu, formatLabels(mc.GetLabels()))
	}
	t.Flush()
}
