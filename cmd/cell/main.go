// Command cell is omegacell's one binary: the cell server, schedulers,
// agents, the job CLI, a local development cell and the benchmarks.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/omegacell/omegacell/cli"
)

func main() {
	tuneGC()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := newRootCommand().ExecuteContext(ctx); err != nil {
		code := 1
		var ee *cli.ExitError
		if errors.As(err, &ee) { // e.g. `job plan`: 1 changes, 2 errors
			code = ee.Code
		}
		if err.Error() != "" {
			fmt.Fprintln(os.Stderr, "cell:", err)
		}
		os.Exit(code)
	}
}

func newRootCommand() *cobra.Command {
	var logLevel string
	root := &cobra.Command{
		Use:           "cell",
		Short:         "omegacell: a shared-state cluster scheduler",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			var lvl slog.Level
			if err := lvl.UnmarshalText([]byte(logLevel)); err != nil {
				return fmt.Errorf("--log-level: %w", err)
			}
			slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl})))
			return nil
		},
	}
	root.PersistentFlags().StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn, error")
	root.AddCommand(newServerCommand(), newCheckCommand(), newDevCommand())
	addCommands(root)
	return root
}
