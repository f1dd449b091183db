package main

import (
	"context"
	"errors"
	"log/slog"

	"github.com/omegacell/omegacell/cellserver"
	"github.com/omegacell/omegacell/replication"
)

// runServer runs a cell server until ctx ends. A replica whose store was
// fenced (it lost the lead while committing, see package replication)
// restarts from its disk as a follower, in this process.
func runServer(ctx context.Context, c cellserver.Config) error {
	for {
		s, err := cellserver.Start(c, slog.Default())
		if err != nil {
			return err
		}
		err = s.Wait(ctx)
		if !errors.Is(err, replication.ErrFenced) || ctx.Err() != nil {
			return err
		}
		slog.Warn("restarting the server from its disk as a follower", "err", err)
	}
}

// registerReplicatedLogFlags adds the bounds of the replicated log (the
// defaults are argued in package replication, retention.go). The stream
// is one for the cell: the server that starts last sets its limits.
func registerReplicatedLogFlags(f interface {
	Int64Var(p *int64, name string, value int64, usage string)
}, c *cellserver.ClusterConfig) {
	f.Int64Var(&c.LogMaxRevisions, "replicated-log-revisions", replication.DefaultLogMaxRevisions,
		"cluster mode: revisions the replicated log keeps (a follower further behind rebuilds from a peer's snapshot; negative: no bound)")
	f.Int64Var(&c.LogMaxBytes, "replicated-log-bytes", replication.DefaultLogMaxBytes,
		"cluster mode: bytes the replicated log keeps on each server (negative: no bound)")
}
