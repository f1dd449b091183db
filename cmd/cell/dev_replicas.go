package main

import (
	"fmt"
	"log/slog"

	"github.com/omegacell/omegacell/cellserver"
)

// startDevServers starts the cell dev's servers: one, or with --replicas N
// a replicated cell of N servers in this process
// (cellserver.StartLocalCluster: data in --data/replica-1 … replica-N,
// gRPC on --listen for the first). It returns the first server, all of
// them, and the address list the parts dial.
func startDevServers(c devConfig, log *slog.Logger) (first *cellserver.Server, all []*cellserver.Server, addrs string, err error) {
	if c.replicas <= 1 {
		srv, err := cellserver.Start(c.server, log)
		if err != nil {
			return nil, nil, "", err
		}
		return srv, []*cellserver.Server{srv}, srv.Addr(), nil
	}
	all, err = cellserver.StartLocalCluster(c.server, c.replicas, log)
	if err != nil {
		return nil, nil, "", fmt.Errorf("--replicas %d: %w", c.replicas, err)
	}
	return all[0], all, cellserver.Addrs(all), nil
}
