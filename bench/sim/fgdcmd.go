package sim

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
)

// fgdFlags select and configure the FGD protocol in run and sweep.
type fgdFlags struct {
	protocol string
	policies []string
	seeds    []string
	inflate  float64
	maxPods  int
}

func (f *fgdFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.protocol, "protocol", "", `"fgd": FGD's Fig. 9a experiment on the Alibaba trace (--alibaba-nodes, --alibaba-pods): pods arrive in a seeded random order, inflated to --inflate × the GPU capacity, never leave; reports the GPU allocation ratio`)
	fl.StringSliceVar(&f.policies, "policies", []string{"omegacell"}, "FGD protocol: policies to run ("+strings.Join(FGDPolicies, ", ")+", or all)")
	fl.StringSliceVar(&f.seeds, "seeds", []string{"42-51"}, "FGD protocol sweep: seeds, a list or ranges such as 42-51 (run uses --seed)")
	fl.Float64Var(&f.inflate, "inflate", 1.3, "FGD protocol: GPU requested at the end as a multiple of the cell's GPU capacity")
	fl.IntVar(&f.maxPods, "max-pods", 0, "FGD protocol: stop after this many arrivals (0: the whole workload)")
}

// check validates the protocol flags and returns the policies.
func (f *fgdFlags) check(alibabaNodes, alibabaPods []string) ([]string, error) {
	if f.protocol != "fgd" {
		return nil, fmt.Errorf("--protocol: %q is not a protocol (fgd)", truncate(f.protocol))
	}
	if len(alibabaNodes) == 0 || len(alibabaPods) == 0 {
		return nil, fmt.Errorf("--protocol fgd: needs --alibaba-nodes and --alibaba-pods")
	}
	if !(f.inflate > 0 && f.inflate <= 10) {
		return nil, fmt.Errorf("--inflate: %v is outside (0, 10]", f.inflate)
	}
	if f.maxPods < 0 {
		return nil, fmt.Errorf("--max-pods: %d is negative", f.maxPods)
	}
	policies := f.policies
	if len(policies) == 1 && policies[0] == "all" {
		policies = FGDPolicies
	}
	for _, p := range policies {
		if !slicesContains(FGDPolicies, p) {
			return nil, fmt.Errorf("--policies: %q is not one of %s", truncate(p), strings.Join(FGDPolicies, ", "))
		}
	}
	return policies, nil
}

func slicesContains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// truncate quotes at most 100 bytes of an outside value.
func truncate(s string) string {
	if len(s) > 100 {
		return s[:100] + "…"
	}
	return s
}

// parseSeeds reads "42-51" ranges and single seeds.
func parseSeeds(specs []string) ([]uint64, error) {
	var out []uint64
	for _, s := range specs {
		lo, hi, isRange := strings.Cut(s, "-")
		a, err := strconv.ParseUint(lo, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("--seeds: %q is not a seed or a range such as 42-51", truncate(s))
		}
		b := a
		if isRange {
			if b, err = strconv.ParseUint(hi, 10, 64); err != nil || b < a || b-a >= 1000 {
				return nil, fmt.Errorf("--seeds: %q is not a range of at most 1,000 seeds such as 42-51", truncate(s))
			}
		}
		for x := a; x <= b; x++ {
			out = append(out, x)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("--seeds: none given")
	}
	return out, nil
}

// runFGD is `cell bench sim run --protocol fgd`: one run per policy.
func (f *runFlags) runFGD(cmd *cobra.Command, asJSON bool) error {
	policies, err := f.fgd.check(f.alibabaNodes, f.alibabaPods)
	if err != nil {
		return err
	}
	ft, err := ReadFGDTrace(f.alibabaNodes, f.alibabaPods)
	if err != nil {
		return err
	}
	var results []*FGDResult
	for _, p := range policies {
		r, err := RunFGD(ft, FGDConfig{Policy: p, Seed: f.seed, Inflate: f.fgd.inflate, MaxPods: f.fgd.maxPods})
		if err != nil {
			return err
		}
		results = append(results, r)
	}
	if asJSON {
		enc := json.NewEncoder(cmd.OutOrStdout())
		enc.SetIndent("", "  ")
		return enc.Encode(results)
	}
	tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "FGD protocol: %d machines, %d GPUs, %d trace pods, inflate %.2f, seed %d\n\n", len(ft.Machines), results[0].GPUMilli/1000, len(ft.Pods), f.fgd.inflate, f.seed)
	fmt.Fprintln(tw, "policy\tallocation %\tarrived\tplaced\tfailed\tfragmented GPU\tidle GPU\tidle behind CPU\tCPU s\twall s\tCPU µs/pod\twall µs/pod\tmax µs\t")
	for _, r := range results {
		fmt.Fprintf(tw, "%s\t%.2f\t%d\t%d\t%d\t%.1f\t%.1f\t%.1f\t%.2f\t%.2f\t%.0f\t%.0f\t%.0f\t\n", r.Policy, 100*r.Allocation, r.Arrived, r.Placed, r.Failed,
			float64(r.FragmentedGPUMilli)/1000, float64(r.IdleGPUMilli)/1000, float64(r.IdleBehindCPU)/1000, r.CPUSeconds, r.WallSeconds,
			r.DecisionCPUMicros, r.DecisionMicros, r.DecisionMicrosMax)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, r := range results {
		if r.Cut != "" {
			fmt.Fprintf(cmd.ErrOrStderr(), "%s: %s\n", r.Policy, r.Cut)
		}
	}
	return nil
}

// sweepFGD is `cell bench sim sweep --protocol fgd`: policies × seeds.
func (f *runFlags) sweepFGD(cmd *cobra.Command, out string, formats []string) error {
	policies, err := f.fgd.check(f.alibabaNodes, f.alibabaPods)
	if err != nil {
		return err
	}
	seeds, err := parseSeeds(f.fgd.seeds)
	if err != nil {
		return err
	}
	ft, err := ReadFGDTrace(f.alibabaNodes, f.alibabaPods)
	if err != nil {
		return err
	}
	sw := FGDSweep{Name: "fgd-openb", Policies: policies, Seeds: seeds, Inflate: f.fgd.inflate, MaxPods: f.fgd.maxPods}
	start := time.Now()
	res, err := sw.Run(ft, func(r *FGDResult) {
		if !f.quiet {
			fmt.Fprintf(cmd.ErrOrStderr(), "%-16s seed %d: %.2f%% (%.1fs)\n", r.Policy, r.Seed, 100*r.Allocation, r.WallSeconds)
		}
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "%d runs in %.1fs\n", len(res.Runs), time.Since(start).Seconds())
	files, err := res.Write(out, formats)
	if err != nil {
		return err
	}
	res.WriteTable(cmd.OutOrStdout())
	for _, file := range files {
		fmt.Fprintln(cmd.OutOrStdout(), "wrote", file)
	}
	return nil
}
