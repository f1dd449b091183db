package main

import (
	"github.com/spf13/cobra"

	"github.com/omegacell/omegacell/cli"
)

// addCommands mounts the commands that live in other packages.
func addCommands(root *cobra.Command) {
	root.AddCommand(cli.JobCommand(nil), cli.MachineCommand(nil), cli.SchedulerCommand(nil))
}
