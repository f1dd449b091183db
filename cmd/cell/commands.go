package main

import (
	"github.com/spf13/cobra"

	"github.com/omegacell/omegacell/agent"
	"github.com/omegacell/omegacell/bench/load"
	"github.com/omegacell/omegacell/bench/sim"
	"github.com/omegacell/omegacell/cli"
)

// addCommands mounts the commands that live in other packages.
func addCommands(root *cobra.Command) {
	root.AddCommand(cli.JobCommand(nil), cli.MachineCommand(nil), cli.CredentialsCommand(nil), cli.TenantCommand(nil), cli.UICommand(), cli.VersionCommand(nil), newSchedulerCommand(), agent.Command())
	bench := &cobra.Command{Use: "bench", Short: "Benchmarks: the Omega-style simulator and end-to-end load"}
	bench.AddCommand(sim.Command(), load.Command())
	root.AddCommand(bench)
}
