package cellserver

import (
	"errors"
	"log/slog"
	"path/filepath"

	"github.com/omegacell/omegacell/replication"
)

// maxRebuilds bounds the restarts on fetched snapshots in one Start: a
// snapshot that is already behind the log when the server restarts on it
// (the log moved on during the transfer) is fetched again, not forever.
const maxRebuilds = 3

// Start starts a cell server. In cluster mode a server whose store is
// empty or behind the start of the replicated log fetches a peer's
// snapshot while joining (replication.Start reports
// ErrSnapshotFetched); the half-started server is then closed, the
// snapshot is installed in place of its store (replication.InstallSnapshot,
// renames only) and the server starts again on it, following the log from
// the snapshot's revision. A snapshot that a crash left fetched but not
// installed is installed here too. Single-server mode starts once, as
// before.
func Start(c Config, log *slog.Logger) (*Server, error) {
	if !c.Cluster.enabled() {
		return start(c, log)
	}
	storeDir := filepath.Join(c.DataDir, "store")
	for attempt := 0; ; attempt++ {
		if _, err := replication.InstallSnapshot(storeDir, log); err != nil {
			return nil, err
		}
		s, err := start(c, log)
		if !errors.Is(err, replication.ErrSnapshotFetched) || attempt == maxRebuilds {
			return s, err
		}
		log.Info("restarting the server on the fetched snapshot", "detail", err)
	}
}
