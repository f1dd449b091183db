package main

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/spf13/cobra"

	"github.com/omegacell/omegacell/cli"
	"github.com/omegacell/omegacell/proto/credentials"
	"github.com/omegacell/omegacell/schedulers/policy/builtin"
	"github.com/omegacell/omegacell/schedulers/sdk"
)

// newSchedulerCommand is `cell scheduler`: one scheduler with a built-in
// policy as its own process (schedulers/sdk.Run), and, from package cli,
// `cell scheduler list`. Both share --server.
func newSchedulerCommand() *cobra.Command {
	var (
		policyName, name, metrics, conflict, commit string
		seed                                        uint64
		maxAttempts                                 int
	)
	cmd := cli.SchedulerCommand(nil)
	cmd.Short = "Run a scheduler with a built-in policy (or list the cell's schedulers)"
	cmd.Long = `Runs one Omega-style scheduler as a process: it keeps a local copy of the cell
(snapshot, then watch), places the pending tasks of the jobs that name it
(spec.scheduler = --name) with a built-in policy, and commits its decisions as
optimistic transactions next to every other scheduler of the cell. Conflicted
claims are retried on a fresher copy; jobs that cannot be placed are marked
unschedulable with the reason and retried when the cell changes.

Policies: ` + strings.Join(builtin.Registry().Names(), ", ") + `. --conflict and --commit override the
policy's modes (a gang is always committed all-or-nothing). SIGINT or SIGTERM
stops it gracefully. Metrics (busyness, conflict fraction, decision time, job
wait time, attempts per job) are served on --metrics.`
	cmd.Example = `  cell scheduler --policy batch --server 127.0.0.1:7070 --metrics 127.0.0.1:9101
  cell scheduler --policy service --name web-team --conflict coarse
  cell scheduler list`
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if policyName == "" {
			return fmt.Errorf("--policy is required (%s); `cell scheduler list` lists the cell's schedulers",
				strings.Join(builtin.Registry().Names(), ", "))
		}
		p, err := builtin.Lookup(policyName)
		if err != nil {
			return fmt.Errorf("--policy: %w", err)
		}
		conflictMode, err := sdk.ParseConflictMode(conflict)
		if err != nil {
			return fmt.Errorf("--conflict: %w", err)
		}
		commitMode, err := sdk.ParseCommitMode(commit)
		if err != nil {
			return fmt.Errorf("--commit: %w", err)
		}
		if maxAttempts < 1 {
			return fmt.Errorf("--max-attempts: %d must be at least 1", maxAttempts)
		}
		server, err := cmd.Flags().GetString("server")
		if err != nil {
			return err
		}
		// The SDK finds the bundle after it checked the rest of its
		// configuration.
		credDir, err := cmd.Flags().GetString("credentials")
		if err != nil {
			return err
		}
		insecure, err := cmd.Flags().GetBool("insecure")
		if err != nil {
			return err
		}
		// The root command configures slog.Default (--log-level).
		return sdk.Run(cmp.Or(cmd.Context(), context.Background()), sdk.Config{
			Server: server, Credentials: credentials.Client{Insecure: insecure}, CredentialsDir: credDir, Name: cmp.Or(name, policyName), Policy: p, Seed: seed,
			ConflictMode: conflictMode, CommitMode: commitMode, MaxAttempts: maxAttempts,
			MetricsAddr: metrics, Logger: slog.Default(),
		})
	}
	f := cmd.Flags()
	f.StringVar(&policyName, "policy", "", "placement policy: "+strings.Join(builtin.Registry().Names(), ", "))
	f.StringVar(&name, "name", "", "scheduler name jobs refer to (default: the policy's name)")
	f.StringVar(&metrics, "metrics", "", "Prometheus /metrics listen address, e.g. 127.0.0.1:9101 (empty: off)")
	f.Uint64Var(&seed, "seed", 1, "seed of the policy's random choices (same seed and cell history: same decisions)")
	f.StringVar(&conflict, "conflict", "", "conflict detection: fine or coarse (default: the policy's, fine for the built-ins)")
	f.StringVar(&commit, "commit", "", "commit mode: incremental or all-or-nothing (default: the policy's; gangs are always all-or-nothing)")
	f.IntVar(&maxAttempts, "max-attempts", sdk.DefaultMaxAttempts, "attempts in a row without an accepted claim before a job is marked unschedulable")
	_ = cmd.RegisterFlagCompletionFunc("policy", cobra.FixedCompletions(builtin.Registry().Names(), cobra.ShellCompDirectiveNoFileComp))
	_ = cmd.RegisterFlagCompletionFunc("conflict", cobra.FixedCompletions([]string{"fine", "coarse"}, cobra.ShellCompDirectiveNoFileComp))
	_ = cmd.RegisterFlagCompletionFunc("commit", cobra.FixedCompletions([]string{"incremental", "all-or-nothing"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}
