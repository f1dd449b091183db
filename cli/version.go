package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/omegacell/omegacell/internal/buildinfo"
	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
	"github.com/omegacell/omegacell/proto/cellclient"
)

// versionTimeout bounds the call that asks the server its version.
const versionTimeout = 5 * time.Second

// VersionCommand returns `version`: this binary's version and, unless
// --client, the version of the cell server it reaches (from the header
// every server answer carries), as `kubectl version` does. An unreachable
// server is reported, not an error. dial reaches the cell; nil gives the
// command its own --server flag.
func VersionCommand(dial Dialer) *cobra.Command {
	var clientOnly bool
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the version of this binary and of the cell server",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "client: %s (%s)\n", buildinfo.Version(), buildinfo.GoVersion())
			if clientOnly {
				return nil
			}
			fmt.Fprintf(out, "server: %s\n", serverVersion(cmd.Context(), dial))
			return nil
		},
	}
	if dial == nil {
		dial = ServerFlag(cmd.Flags())
	}
	cmd.Flags().BoolVar(&clientOnly, "client", false, "only this binary's version")
	return cmd
}

// serverVersion asks the cell the cheapest question any identity may ask
// and reads the version header of its answer.
func serverVersion(ctx context.Context, dial Dialer) string {
	ctx, cancel := context.WithTimeout(ctx, versionTimeout)
	defer cancel()
	conn, err := dial(ctx)
	if err != nil {
		return "not reachable: " + err.Error()
	}
	defer conn.Close()
	var md metadata.MD
	_, err = cellv1.NewJobServiceClient(conn).ListJobs(ctx, &cellv1.ListJobsRequest{PageSize: 1}, grpc.Header(&md))
	if v := md.Get(cellclient.VersionHeader); len(v) > 0 {
		return v[0]
	}
	if err != nil {
		return "not reachable: " + rpcError("version", err).Error()
	}
	return "unknown (the server sends no version)"
}
