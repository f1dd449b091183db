package main

import (
	"fmt"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"

	"github.com/omegacell/omegacell/cellstate"
	"github.com/omegacell/omegacell/cli"
	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
)

func newCheckCommand() *cobra.Command {
	var dial cli.Dialer
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Verify the cell invariant on a running server (no overcommit, no task placed twice)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			conn, err := dial(cmd.Context())
			if err != nil {
				return err
			}
			defer conn.Close()
			snap, err := readSnapshot(cmd, conn)
			if err != nil {
				return err
			}
			if err := cellstate.CheckSnapshot(snap.Machines, snap.Jobs, snap.Tasks); err != nil {
				return fmt.Errorf("invariant broken at revision %d: %w", snap.Revision, err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "ok: revision %d, %d machines, %d jobs, %d tasks: no machine or GPU device over capacity, no task placed twice\n",
				snap.Revision, len(snap.Machines), len(snap.Jobs), len(snap.Tasks))
			return nil
		},
	}
	dial = cli.ServerFlag(cmd.Flags())
	return cmd
}

// readSnapshot reads the whole cell at one revision.
func readSnapshot(cmd *cobra.Command, conn *grpc.ClientConn) (*cellv1.SnapshotResponse, error) {
	stream, err := cellv1.NewStateServiceClient(conn).Snapshot(cmd.Context(), &cellv1.SnapshotRequest{})
	if err != nil {
		return nil, err
	}
	all := &cellv1.SnapshotResponse{}
	for {
		r, err := stream.Recv()
		if err != nil {
			return nil, fmt.Errorf("snapshot: %w", err)
		}
		all.Revision = r.Revision
		all.Machines = append(all.Machines, r.Machines...)
		all.Jobs = append(all.Jobs, r.Jobs...)
		all.Tasks = append(all.Tasks, r.Tasks...)
		if r.Last {
			return all, nil
		}
	}
}
