// Package replication makes a cell of three (or five) cell servers out of
// one: the change log of the cell-state store is an R3 NATS JetStream
// stream, written by one leader and applied by every other server.
//
// Contract:
//   - The stream CELL_LOG holds one message per revision, at the stream
//     sequence equal to the revision (a cellv1.ReplicatedRevision: the
//     revision's encoded WatchResponse plus the scheduler registrations and
//     tenant policies it set). JetStream replicates it with Raft: a
//     message is acknowledged once a quorum of servers stored it.
//   - One server leads: it holds the key "leader" of the KV bucket
//     CELL_LEASE, whose TTL (Config.LeaseTTL, default 2 s) expires it
//     unless the leader renews it (every TTL/8). Only the leader's store
//     commits (cellstate.RoleLeader); each round's revisions are appended
//     with Nats-Expected-Last-Sequence = the revision before, and the
//     round is acknowledged to callers and published to watchers only
//     after the quorum acknowledged every revision of it. So the log has
//     a single writer: an append from any other history (a deposed leader
//     that still believes it leads: paused, partitioned) is refused by
//     JetStream, and a store whose append was refused reports ErrFenced
//     and is restarted from its disk as a follower. A leader also stops
//     appending once its lease is older than 3/4 of the TTL.
//   - A new leader first applies the log to its end (it was following it
//     already), then commits; its first append is fenced on its revision.
//   - Followers apply the log continuously (ordered consumer from their
//     revision + 1) through their store's commit loop: same revisions,
//     same objects, group-committed to their own Pebble and published to
//     their own watchers. They serve reads (Snapshot, Watch, GetJob, lists,
//     logs) and answer writes with Unavailable + ErrorInfo NOT_LEADER
//     naming the leader's address (clients follow it: proto/cellclient).
//   - Failover is the lease's TTL plus a few round trips, by construction:
//     the Raft leaders of the log and of the lease are kept off the cell
//     leader (moved before its first append, checked every 2 s while it
//     leads; a move of the log's excludes appends), so the cell leader's
//     death never also costs a JetStream Raft election; an append attempt
//     waits at most 1 s for its acknowledgement and is then published
//     again under the same message id (JetStream drops proposals in
//     flight at a Raft leader change without an answer); a server behind
//     the log leaves a free lease to a current one for up to 1 s; a
//     follower's consumer heartbeats every second, so one whose server
//     died is made again within 2 s. Each phase is logged at Info
//     ("failover: ..."), with the Raft leaders as the server sees them.
//   - Every server serves under the replicated cell's identity (bucket
//     CELL_META, written once by the first server), so a client that moves
//     between servers keeps its watch and its revision numbers.
//   - The log is bounded (retention.go): JetStream limits with DiscardOld
//     keep the newest --replicated-log-revisions (default 1,000,000)
//     revisions within --replicated-log-bytes (default 1 GiB) on each
//     server. Limits rather than a leader-driven purge behind the slowest
//     follower: a follower that is down (or wiped) must not hold every
//     server's disk hostage, and a store is rebuilt from a snapshot anyway
//     when it is too far behind. Dropping the oldest messages never moves
//     the last sequence, so appends fenced on it are unaffected. The
//     stream is one per cell: the last server to start sets its limits.
//   - A server catches up from the log when its store's revision + 1 is
//     in the log. A server whose store is behind the log's first sequence,
//     or empty while the log is not (new or wiped data directory),
//     rebuilds from a peer's snapshot (snapshot.go) while it starts:
//     every following server answers on NATS request/reply under the
//     server-only subject prefix cell.replication.snapshot.> (agents may
//     publish only their heartbeats and answer only their log requests;
//     schedulers and users have no NATS access). The starting server
//     collects offers (name, revision, cell id) from its peers (1 s at
//     most) and asks the most advanced peer of its own cell whose
//     revision can follow the log; the
//     peer takes a Pebble checkpoint of its store (consistent, at a
//     revision read back from it), lists its files with sizes and SHA-256
//     and sends them in chunks of at most 1 MiB, at most 2 transfers at a
//     time, each dropped after 30 s of silence, 64 GiB at most. The
//     receiver bounds and checks the manifest (names, sizes, cell,
//     revision), writes the files to <store>.incoming.partial, checks each
//     file's SHA-256 and that the copy opens at the manifest's revision,
//     syncs, and renames it to <store>.incoming; Start then returns
//     ErrSnapshotFetched, the server closes its store, InstallSnapshot
//     swaps the directories by renames (a crash between them is finished
//     at the next start; a partial transfer is deleted), and the server
//     starts again on the snapshot, following the log from its revision.
//     An empty store whose log is complete replays it when no peer offers
//     a snapshot within 3 attempts.
//   - A follower whose log delivery skips revisions (the log dropped them
//     while it was slow or paused) never applies across the gap: it fails
//     (ErrFenced) and the server restarts, which rebuilds it. A server
//     that won the lease and finds the log starts after its revision
//     releases the lease and does the same.
//   - Guarantee: no acknowledged revision is lost while a majority of the
//     servers (and their JetStream data) survives. Not guaranteed: a
//     revision whose append timed out may or may not be in the log (the
//     caller got an error: the outcome is unknown, as with any RPC that
//     fails in flight); losing a majority of servers' disks loses the cell.
package replication
