package cli

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"strconv"

	"github.com/spf13/cobra"

	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
)

// SchedulerCommand returns `scheduler` with list. dial reaches the cell;
// with a nil dial the command gets its own --server flag.
func SchedulerCommand(dial Dialer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "scheduler",
		Short: "List the cell's schedulers and how they are doing",
		Args:  cobra.NoArgs,
	}
	if dial == nil {
		dial = ServerFlag(cmd.PersistentFlags())
	}
	var format func() (outputFormat, error)
	list := &cobra.Command{
		Use:   "list",
		Short: "List schedulers: pending tasks, busyness, conflict fraction, queue",
		Long: `Lists every registered scheduler with the Omega paper's figures: BUSY is the
fraction of time it spent deciding and CONFLICTS the conflicted claims per
accepted claim, both over the last minute as the scheduler reported them
(- before its first report); PENDING, ACCEPTED and CONFLICTED are counted by
the store.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := openSession(cmd, dial, format)
			if err != nil {
				return err
			}
			defer s.Close()
			f := s.format
			resp, err := cellv1.NewSchedulerServiceClient(s.conn).ListSchedulers(s.ctx, &cellv1.ListSchedulersRequest{})
			if err != nil {
				return rpcError("scheduler list", err)
			}
			if f != formatTable {
				return writeProto(cmd.OutOrStdout(), f, resp)
			}
			writeSchedulerList(cmd.OutOrStdout(), resp.GetSchedulers())
			return nil
		},
	}
	// -o is list's own: `cell scheduler` itself runs a scheduler.
	format = outputFlagOn(list, list.Flags())
	cmd.AddCommand(list)
	return cmd
}

// writeSchedulerList prints one row per scheduler, by name.
func writeSchedulerList(w io.Writer, schedulers []*cellv1.SchedulerInfo) {
	schedulers = slices.Clone(schedulers)
	slices.SortFunc(schedulers, func(a, b *cellv1.SchedulerInfo) int { return cmp.Compare(a.GetName(), b.GetName()) })
	t := newTable(w)
	row(t, "NAME", "BUILTIN", "PENDING", "QUEUED JOBS", "BUSY", "CONFLICTS", "ACCEPTED", "CONFLICTED", "REPORTED")
	for _, s := range schedulers {
		builtin := "no"
		if s.GetBuiltin() {
			builtin = "yes"
		}
		queued, busy, conflicts, reported := "-", "-", "-", "-"
		if st := s.GetStats(); st != nil {
			queued = strconv.Itoa(int(st.GetQueuedJobs()))
			busy = fmt.Sprintf("%.1f%%", 100*st.GetBusyness())
			conflicts = fmt.Sprintf("%.3f", st.GetConflictFraction())
			reported = formatTime(st.GetReportTimeUnixNano())
		}
		row(t, s.GetName(), builtin, strconv.Itoa(int(s.GetPendingTasks())), queued, busy, conflicts,
			strconv.FormatUint(s.GetClaimsAccepted(), 10), strconv.FormatUint(s.GetClaimsConflicted(), 10), reported)
	}
	t.Flush()
}
