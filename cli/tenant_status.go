package cli

import (
	"fmt"
	"io"
	"strconv"

	"github.com/spf13/cobra"

	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
)

func tenantStatusCommand(dial Dialer, format func() (outputFormat, error)) *cobra.Command {
	return &cobra.Command{
		Use:   "status NAME",
		Short: "A tenant's quota, use, pending and queued work, borrowed capacity and dominant share per band",
		Long: `Shows tenant NAME per band: its quota, what its running tasks use (IN USE),
what its admitted jobs request (ADMITTED: pending and running tasks, what
admission counts), the part of IN USE above the quota (BORROWED), pending
tasks, queued jobs and tasks, and its dominant share: the largest
fraction of the cell's capacity (machines not down) it uses of CPU, memory
or GPU. A user may see its own tenants.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := openSession(cmd, dial, format)
			if err != nil {
				return err
			}
			defer s.Close()
			resp, err := cellv1.NewTenantServiceClient(s.conn).GetTenant(s.ctx, &cellv1.GetTenantRequest{Name: args[0]})
			if err != nil {
				return rpcError("tenant status", err)
			}
			if s.format != formatTable {
				return writeProto(cmd.OutOrStdout(), s.format, resp)
			}
			writeTenantStatus(cmd.OutOrStdout(), resp)
			return nil
		},
	}
}

func writeTenantStatus(w io.Writer, resp *cellv1.GetTenantResponse) {
	t := resp.GetTenant()
	fmt.Fprintf(w, "tenant %s: weight %d, may submit up to %s (revision %d)\n", t.GetName(), t.GetWeight(), bandName(t.GetMaxBand()), resp.GetRevision())
	fmt.Fprintf(w, "cell capacity: %s\n\n", amountsText(resp.GetCellCapacity()))
	tw := newTable(w)
	row(tw, "BAND", "QUOTA", "IN USE", "ADMITTED", "BORROWED", "PENDING", "QUEUED", "DOMINANT SHARE")
	u := t.GetUsage()
	for _, b := range []struct {
		name  string
		quota string
		use   *cellv1.BandUsage
	}{
		{"production", quotaText(t.GetProduction(), false), u.GetProduction()},
		{"batch", quotaText(t.GetBatch(), true), u.GetBatch()},
		{"best-effort", "none", u.GetBestEffort()},
	} {
		row(tw, b.name, b.quota, amountsText(b.use.GetInUse()), amountsText(b.use.GetAdmitted()), amountsText(b.use.GetBorrowed()),
			strconv.FormatUint(uint64(b.use.GetPendingTasks()), 10),
			fmt.Sprintf("%d jobs, %d tasks", b.use.GetQueuedJobs(), b.use.GetQueuedTasks()),
			fmt.Sprintf("%.1f%%", 100*b.use.GetDominantShare()))
	}
	tw.Flush()
}
