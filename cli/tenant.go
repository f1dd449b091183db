package cli

import (
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
)

// TenantCommand returns `tenant` with set and list: the tenant policies
// an admin decides (today the highest priority band a tenant's users may
// submit at). dial reaches the cell; with a nil dial the command gets its
// own --server flag.
func TenantCommand(dial Dialer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "tenant",
		Short: "Set and list tenant policies (admin)",
		Args:  cobra.NoArgs,
	}
	if dial == nil {
		dial = ServerFlag(cmd.PersistentFlags())
	}
	format := addOutputFlag(cmd)
	cmd.AddCommand(tenantListCommand(dial, format), tenantSetCommand(dial, format))
	return cmd
}

// bandNames are the --max-band values, in API order.
var bandNames = map[string]cellv1.PriorityBand{
	"best-effort": cellv1.PriorityBand_PRIORITY_BAND_BEST_EFFORT,
	"batch":       cellv1.PriorityBand_PRIORITY_BAND_BATCH,
	"production":  cellv1.PriorityBand_PRIORITY_BAND_PRODUCTION,
}

func bandName(b cellv1.PriorityBand) string {
	for n, v := range bandNames {
		if v == b {
			return n
		}
	}
	return strings.ToLower(strings.TrimPrefix(b.String(), "PRIORITY_BAND_"))
}

func tenantSetCommand(dial Dialer, format func() (outputFormat, error)) *cobra.Command {
	var maxBand string
	cmd := &cobra.Command{
		Use:   "set NAME --max-band production|batch|best-effort",
		Short: "Create or change a tenant's policy",
		Long: `Sets the policy of tenant NAME. --max-band is the highest priority band the
tenant's users may submit jobs at (best-effort < 100 <= batch < 200 <=
production); a tenant without a policy may submit up to batch. Admin only.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			band, ok := bandNames[maxBand]
			if !ok {
				return fmt.Errorf("--max-band %q: want production, batch or best-effort", maxBand)
			}
			s, err := openSession(cmd, dial, format)
			if err != nil {
				return err
			}
			defer s.Close()
			resp, err := cellv1.NewTenantServiceClient(s.conn).SetTenantPolicy(s.ctx, &cellv1.SetTenantPolicyRequest{
				Policy: &cellv1.TenantPolicy{Name: args[0], MaxBand: band},
			})
			if err != nil {
				return rpcError("tenant set", err)
			}
			if s.format != formatTable {
				return writeProto(cmd.OutOrStdout(), s.format, resp)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "tenant %s may submit up to %s\n", resp.GetPolicy().GetName(), bandName(resp.GetPolicy().GetMaxBand()))
			return nil
		},
	}
	cmd.Flags().StringVar(&maxBand, "max-band", "", "highest band the tenant may submit at: production, batch or best-effort")
	_ = cmd.MarkFlagRequired("max-band")
	_ = cmd.RegisterFlagCompletionFunc("max-band", cobra.FixedCompletions(
		[]string{"production", "batch", "best-effort"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

func tenantListCommand(dial Dialer, format func() (outputFormat, error)) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List tenant policies (tenants without one may submit up to batch)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := openSession(cmd, dial, format)
			if err != nil {
				return err
			}
			defer s.Close()
			resp, err := cellv1.NewTenantServiceClient(s.conn).ListTenantPolicies(s.ctx, &cellv1.ListTenantPoliciesRequest{})
			if err != nil {
				return rpcError("tenant list", err)
			}
			if s.format != formatTable {
				return writeProto(cmd.OutOrStdout(), s.format, resp)
			}
			writeTenantList(cmd.OutOrStdout(), resp.GetPolicies())
			return nil
		},
	}
}

func writeTenantList(w io.Writer, policies []*cellv1.TenantPolicy) {
	t := newTable(w)
	row(t, "TENANT", "MAX BAND", "REVISION")
	for _, p := range policies {
		row(t, p.GetName(), bandName(p.GetMaxBand()), strconv.FormatUint(p.GetModRevision(), 10))
	}
	t.Flush()
}
