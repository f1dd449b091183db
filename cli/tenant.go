package cli

import (
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/proto"

	"github.com/omegacell/omegacell/jobspec"
	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
)

// TenantCommand returns `tenant` with create, update, set-quota, list and
// status: the tenants an admin decides (weight for fair share, highest
// priority band, quotas per band) and what they use. dial reaches the
// cell; with a nil dial the command gets its own --server flag.
func TenantCommand(dial Dialer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "tenant",
		Short: "Create tenants, set their quotas, and see their use",
		Args:  cobra.NoArgs,
	}
	if dial == nil {
		dial = ServerFlag(cmd.PersistentFlags())
	}
	format := addOutputFlag(cmd)
	cmd.AddCommand(tenantListCommand(dial, format), tenantCreateCommand(dial, format), tenantUpdateCommand(dial, format),
		tenantSetQuotaCommand(dial, format), tenantStatusCommand(dial, format))
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

func parseBand(flag, s string) (cellv1.PriorityBand, error) {
	if b, ok := bandNames[s]; ok {
		return b, nil
	}
	return 0, fmt.Errorf("%s %q: want production, batch or best-effort", flag, s)
}

var bandCompletion = cobra.FixedCompletions([]string{"production", "batch", "best-effort"}, cobra.ShellCompDirectiveNoFileComp)

// tenantFlags are the flags of create and update.
type tenantFlags struct {
	weight  uint32
	maxBand string
}

func (f *tenantFlags) add(cmd *cobra.Command) {
	cmd.Flags().Uint32Var(&f.weight, "weight", 1, "weight for weighted fair share (1-1000)")
	cmd.Flags().StringVar(&f.maxBand, "max-band", "batch", "highest band the tenant may submit at: production, batch or best-effort")
	_ = cmd.RegisterFlagCompletionFunc("max-band", bandCompletion)
}

func tenantCreateCommand(dial Dialer, format func() (outputFormat, error)) *cobra.Command {
	var f tenantFlags
	cmd := &cobra.Command{
		Use:   "create NAME [--weight W] [--max-band production|batch|best-effort]",
		Short: "Create a tenant (admin)",
		Long: `Creates tenant NAME with a weight for weighted fair share and the highest
priority band its users may submit at (best-effort < 100 <= batch < 200 <=
production). A tenant nobody created may submit up to batch, with weight 1
and no quota. Quotas: cell tenant set-quota. Admin only.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			band, err := parseBand("--max-band", f.maxBand)
			if err != nil {
				return err
			}
			s, err := openSession(cmd, dial, format)
			if err != nil {
				return err
			}
			defer s.Close()
			resp, err := cellv1.NewTenantServiceClient(s.conn).CreateTenant(s.ctx, &cellv1.CreateTenantRequest{
				Tenant: &cellv1.Tenant{Name: args[0], MaxBand: band, Weight: f.weight},
			})
			if err != nil {
				return rpcError("tenant create", err)
			}
			if s.format != formatTable {
				return writeProto(cmd.OutOrStdout(), s.format, resp)
			}
			t := resp.GetTenant()
			fmt.Fprintf(cmd.OutOrStdout(), "tenant %s created: weight %d, may submit up to %s\n", t.GetName(), t.GetWeight(), bandName(t.GetMaxBand()))
			return nil
		},
	}
	f.add(cmd)
	return cmd
}

func tenantUpdateCommand(dial Dialer, format func() (outputFormat, error)) *cobra.Command {
	var f tenantFlags
	cmd := &cobra.Command{
		Use:   "update NAME [--weight W] [--max-band production|batch|best-effort]",
		Short: "Change a tenant's weight or highest band (admin)",
		Long: `Changes the flags given of tenant NAME and keeps the rest (its quotas too).
Creates the tenant if nobody did. Admin only.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var band cellv1.PriorityBand
			if cmd.Flags().Changed("max-band") {
				var err error
				if band, err = parseBand("--max-band", f.maxBand); err != nil {
					return err
				}
			}
			return updateTenant(cmd, dial, format, "tenant update", args[0], func(t *cellv1.Tenant) {
				if cmd.Flags().Changed("weight") {
					t.Weight = f.weight
				}
				if band != 0 {
					t.MaxBand = band
				}
			})
		},
	}
	f.add(cmd)
	return cmd
}

// updateTenant reads a tenant, changes it and writes it back, refused if
// someone changed it meanwhile (expected_mod_revision).
func updateTenant(cmd *cobra.Command, dial Dialer, format func() (outputFormat, error), what, name string, change func(*cellv1.Tenant)) error {
	s, err := openSession(cmd, dial, format)
	if err != nil {
		return err
	}
	defer s.Close()
	c := cellv1.NewTenantServiceClient(s.conn)
	got, err := c.GetTenant(s.ctx, &cellv1.GetTenantRequest{Name: name})
	if err != nil {
		return rpcError(what, err)
	}
	t := proto.Clone(got.GetTenant()).(*cellv1.Tenant)
	change(t)
	resp, err := c.UpdateTenant(s.ctx, &cellv1.UpdateTenantRequest{Tenant: t, ExpectedModRevision: got.GetTenant().GetModRevision()})
	if err != nil {
		return rpcError(what, err)
	}
	if s.format != formatTable {
		return writeProto(cmd.OutOrStdout(), s.format, resp)
	}
	writeTenantSummary(cmd.OutOrStdout(), resp.GetTenant())
	return nil
}

func writeTenantSummary(w io.Writer, t *cellv1.Tenant) {
	fmt.Fprintf(w, "tenant %s: weight %d, may submit up to %s; production quota %s; batch quota %s\n",
		t.GetName(), t.GetWeight(), bandName(t.GetMaxBand()), quotaText(t.GetProduction(), false), quotaText(t.GetBatch(), true))
}

func tenantSetQuotaCommand(dial Dialer, format func() (outputFormat, error)) *cobra.Command {
	var band, cpu, memory, gpu, borrowCPU, borrowMemory, borrowGPU string
	var pending uint32
	var remove bool
	cmd := &cobra.Command{
		Use:   "set-quota NAME --band production|batch --cpu C --memory M --gpu G [--borrow-cpu … --borrow-memory … --borrow-gpu …] [--pending-tasks N]",
		Short: "Set a tenant's quota in a band (admin)",
		Long: `Sets tenant NAME's quota in a band: CPU ("8", "500m"), memory ("64Gi"),
GPUs ("8", "0.5": whole and fractional alike) and, with --pending-tasks, a
cap on its pending and queued tasks. A kind left out is 0: none of it.
Production quota is a guarantee; batch quota is nominal and may borrow
idle capacity up to the --borrow-* limits, reclaimed by preemption when
other tenants need their quota. Best-effort has no quota. --remove drops
the band's quota (no limit). Admin only.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			b, err := parseBand("--band", band)
			if err != nil {
				return err
			}
			if b == cellv1.PriorityBand_PRIORITY_BAND_BEST_EFFORT {
				return fmt.Errorf("--band best-effort: best-effort has no quota (it is always preemptible)")
			}
			var q *cellv1.BandQuota
			if !remove {
				nominal, err := parseAmounts("--", cpu, memory, gpu)
				if err != nil {
					return err
				}
				borrow, err := parseAmounts("--borrow-", borrowCPU, borrowMemory, borrowGPU)
				if err != nil {
					return err
				}
				if b == cellv1.PriorityBand_PRIORITY_BAND_PRODUCTION && proto.Size(borrow) > 0 {
					return fmt.Errorf("--borrow-*: production quota is a guarantee and does not borrow")
				}
				q = &cellv1.BandQuota{Nominal: nominal, BorrowLimit: borrow, MaxPendingTasks: pending}
			}
			return updateTenant(cmd, dial, format, "tenant set-quota", args[0], func(t *cellv1.Tenant) {
				if b == cellv1.PriorityBand_PRIORITY_BAND_PRODUCTION {
					t.Production = q
				} else {
					t.Batch = q
				}
			})
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&band, "band", "", "production or batch")
	fl.StringVar(&cpu, "cpu", "0", "CPU quota (cores: 8, 0.5, 500m)")
	fl.StringVar(&memory, "memory", "0", "memory quota (64Gi, 512Mi)")
	fl.StringVar(&gpu, "gpu", "0", "GPU quota (8, 0.5)")
	fl.StringVar(&borrowCPU, "borrow-cpu", "0", "batch: CPU the tenant may borrow above its quota")
	fl.StringVar(&borrowMemory, "borrow-memory", "0", "batch: memory the tenant may borrow above its quota")
	fl.StringVar(&borrowGPU, "borrow-gpu", "0", "batch: GPUs the tenant may borrow above its quota")
	fl.Uint32Var(&pending, "pending-tasks", 0, "cap on the tenant's pending and queued tasks in the band (0: the cell's cap only)")
	fl.BoolVar(&remove, "remove", false, "drop the band's quota (no limit)")
	_ = cmd.MarkFlagRequired("band")
	_ = cmd.RegisterFlagCompletionFunc("band", cobra.FixedCompletions([]string{"production", "batch"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

func parseAmounts(prefix, cpu, memory, gpu string) (*cellv1.QuotaAmounts, error) {
	c, err := jobspec.ParseCPU(cpu)
	if err != nil {
		return nil, fmt.Errorf("%scpu %q: %w", prefix, cpu, err)
	}
	m, err := jobspec.ParseBytes(memory)
	if err != nil {
		return nil, fmt.Errorf("%smemory %q: %w", prefix, memory, err)
	}
	g, err := jobspec.ParseGPU(gpu)
	if err != nil {
		return nil, fmt.Errorf("%sgpu %q: %w", prefix, gpu, err)
	}
	return &cellv1.QuotaAmounts{CpuMilli: c, MemoryBytes: m, GpuMilli: g}, nil
}

func amountsText(a *cellv1.QuotaAmounts) string {
	return fmt.Sprintf("cpu %s, memory %s, gpu %s", jobspec.FormatCPU(a.GetCpuMilli()), jobspec.FormatBytes(a.GetMemoryBytes()), jobspec.FormatGPU(a.GetGpuMilli()))
}

func quotaText(q *cellv1.BandQuota, batch bool) string {
	if q == nil {
		return "none"
	}
	s := amountsText(q.GetNominal())
	if batch && proto.Size(q.GetBorrowLimit()) > 0 {
		s += " (+ borrow " + amountsText(q.GetBorrowLimit()) + ")"
	}
	if q.GetMaxPendingTasks() > 0 {
		s += fmt.Sprintf(", pending tasks %d", q.GetMaxPendingTasks())
	}
	return s
}

func tenantListCommand(dial Dialer, format func() (outputFormat, error)) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the created tenants (others may submit up to batch, weight 1, no quota)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := openSession(cmd, dial, format)
			if err != nil {
				return err
			}
			defer s.Close()
			resp, err := cellv1.NewTenantServiceClient(s.conn).ListTenants(s.ctx, &cellv1.ListTenantsRequest{})
			if err != nil {
				return rpcError("tenant list", err)
			}
			if s.format != formatTable {
				return writeProto(cmd.OutOrStdout(), s.format, resp)
			}
			writeTenantList(cmd.OutOrStdout(), resp.GetTenants())
			return nil
		},
	}
}

func writeTenantList(w io.Writer, tenants []*cellv1.Tenant) {
	t := newTable(w)
	row(t, "TENANT", "WEIGHT", "MAX BAND", "PRODUCTION QUOTA", "BATCH QUOTA", "REVISION")
	for _, p := range tenants {
		row(t, p.GetName(), strconv.FormatUint(uint64(p.GetWeight()), 10), bandName(p.GetMaxBand()),
			quotaText(p.GetProduction(), false), quotaText(p.GetBatch(), true), strconv.FormatUint(p.GetModRevision(), 10))
	}
	t.Flush()
}
