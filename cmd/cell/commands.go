package main

import "github.com/spf13/cobra"

// addCommands mounts the commands that live in other packages.
func addCommands(root *cobra.Command) {
}
