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
