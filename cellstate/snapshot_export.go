package cellstate

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"

	"github.com/cockroachdb/pebble/v2"
)

// Snapshots of a replica's store (issue 15): a server whose store is
// empty or behind the start of the replicated log is rebuilt from a copy
// of a live peer's store (package replication moves the files). The copy
// is a Pebble checkpoint: a consistent image of the database (immutable
// tables hard-linked, the WAL and manifest copied), so it opens as a
// store at the revision it was taken at, with the peer's checkpointed
// objects and local log, the revocation list and the tenants included.

// ExportCheckpoint writes a consistent copy of the store's database to
// dir (which must not exist; on the store's file system, so tables are
// hard-linked rather than copied) and returns the revision the copy opens
// at. Commits go on meanwhile; the copy holds every revision durable
// before the call.
func (s *Store) ExportCheckpoint(dir string) (uint64, error) {
	if err := s.db.Checkpoint(dir, pebble.WithFlushedWAL()); err != nil {
		return 0, fmt.Errorf("cellstate: checkpoint the store into %s: %w", dir, err)
	}
	rev, err := PeekRevision(dir)
	if err != nil {
		return 0, err
	}
	return rev, nil
}

// Dir is the store's directory.
func (s *Store) Dir() string { return s.opts.Dir }

// PeekRevision reads the revision of a store directory that no store has
// open (read-only: nothing in it changes).
func PeekRevision(dir string) (uint64, error) {
	db, err := pebble.Open(dir, &pebble.Options{ReadOnly: true, Logger: quietLogger{slog.Default()}})
	if err != nil {
		return 0, fmt.Errorf("cellstate: open %s read-only: %w", dir, err)
	}
	defer db.Close()
	v, closer, err := db.Get(keyRevision)
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("cellstate: read the revision of %s: %w", dir, err)
	}
	defer closer.Close()
	if len(v) != 8 {
		return 0, fmt.Errorf("cellstate: %s: malformed revision (%d bytes)", dir, len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}
