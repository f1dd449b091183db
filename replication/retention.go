package replication

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
)

// The replicated log is bounded (JetStream limits, DiscardOld): it keeps
// the newest LogMaxRevisions revisions within LogMaxBytes, so it is a
// window for followers that were briefly away, not the cell's history.
// Each server's store holds the history (checkpointed objects plus its
// own local log); a server whose store is behind the window (or empty)
// rebuilds from a peer's snapshot (snapshot.go) and follows the log from
// the snapshot's revision on. Appends fenced on the expected last
// sequence are unaffected: dropping the oldest messages never changes
// the stream's last sequence.
//
// Defaults: 1,000,000 revisions and 1 GiB per server. A revision is one
// commit round's changes (a scheduler's claims, a submission, a status
// report: typically 0.2-2 KB), so the window covers an outage of about
// 15 minutes at a sustained 1,000 commits/s (a server restart or an
// upgrade takes seconds to minutes) and longer at the usual lower rates;
// the byte bound keeps a burst of large submissions from using more than
// 1 GiB of each server's disk, at the price of a shorter window during
// that burst. Replaying the window costs about a minute on a follower
// (its commit loop applies tens of thousands of revisions a second), so
// a follower further behind is better served by a snapshot anyway.
const (
	DefaultLogMaxBytes     int64 = 1 << 30
	DefaultLogMaxRevisions int64 = 1_000_000
)

// logLimits are the stream's MaxBytes and MaxMsgs (-1: none).
func logLimits(cfg Config) (maxBytes, maxMsgs int64) {
	pick := func(v, def int64) int64 {
		switch {
		case v == 0:
			return def
		case v < 0:
			return -1
		}
		return v
	}
	return pick(cfg.LogMaxBytes, DefaultLogMaxBytes), pick(cfg.LogMaxRevisions, DefaultLogMaxRevisions)
}

// errBehindLog: the log no longer holds the revisions after the store's.
var errBehindLog = errors.New("replication: the store is behind the start of the replicated log")

// rebuildIfBehind fetches a peer's snapshot when the store cannot follow
// the log from its revision: the log starts after the store's next
// revision (retention dropped what it misses), or the store is empty
// while the log is not (a new or wiped server). It returns
// ErrSnapshotFetched once the snapshot waits next to the store, nil when
// the store can follow. An empty store whose log still starts at
// revision 1 replays it when no peer offers a snapshot in time.
func (n *Node) rebuildIfBehind(ctx context.Context, rev uint64, st *jetstream.StreamState) error {
	if st.LastSeq == 0 {
		return nil // nothing was ever committed
	}
	behind := rev+1 < st.FirstSeq
	if !behind && rev > 0 {
		return nil
	}
	minRev := max(rev+1, 1)
	if st.FirstSeq > 1 {
		minRev = max(minRev, st.FirstSeq-1)
	}
	reason := "the store is empty"
	if behind {
		reason = "the store is behind the start of the log"
	}
	n.log.Info("rebuilding from a peer's snapshot", "why", reason, "revision", rev, "log_first", st.FirstSeq, "log_last", st.LastSeq)
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), SnapshotTimeout)
	defer cancel()
	o := fetchOptions{nc: n.cfg.Conn, self: n.cfg.Name, cellID: n.cfg.Store.Identity().GetId(), minRev: minRev,
		storeDir: n.cfg.Store.Dir(), maxBytes: n.cfg.MaxSnapshotBytes, peers: n.cfg.Replicas - 1, log: n.log}
	for attempt := 1; ; attempt++ {
		res, err := fetchSnapshot(fctx, o)
		if err == nil {
			rate := float64(res.Bytes) / (1 << 20) / max(res.Took.Seconds(), 1e-3)
			n.log.Info("fetched a peer's snapshot", "peer", res.Peer, "revision", res.Revision, "files", res.Files,
				"bytes", res.Bytes, "took", res.Took, "mib_per_s", fmt.Sprintf("%.1f", rate))
			return fmt.Errorf("%w (from %s at revision %d)", ErrSnapshotFetched, res.Peer, res.Revision)
		}
		if !behind && attempt >= 3 {
			n.log.Warn("no peer sent a snapshot; replaying the whole log instead", "err", err)
			return nil
		}
		if fctx.Err() != nil {
			return fmt.Errorf("replication: this store is at revision %d, the log starts at %d, and no peer's snapshot could be fetched: %w", rev, st.FirstSeq, err)
		}
		if attempt%5 == 1 {
			n.log.Warn("fetching a peer's snapshot failed; retrying", "attempt", attempt, "err", err)
		}
		sleep(fctx, time.Second)
	}
}

// firstGap returns the first revision of revs that skips ahead of the
// one expected there (want, then each revision's successor), with the
// expected one; 0 when none does.
func firstGap(revs []*cellv1.ReplicatedRevision, want uint64) (got, expected uint64) {
	for _, r := range revs {
		if r.Revision > want {
			return r.Revision, want
		}
		want = r.Revision + 1
	}
	return 0, 0
}

// behindLog turns a failed read of revision seq into errDiverged (the
// store fails; its server restarts and rebuilds from a snapshot) when the
// log no longer holds seq: a new leader behind the log's start must not
// hold the lease retrying until its catch-up limit.
func (n *Node) behindLog(ctx context.Context, seq uint64, err error) error {
	if !errors.Is(err, jetstream.ErrMsgNotFound) {
		return err
	}
	info, ierr := n.stream.Info(ctx)
	if ierr != nil || seq >= info.State.FirstSeq {
		return err
	}
	return fmt.Errorf("%w (%w: revision %d, the log starts at %d)", errDiverged, errBehindLog, seq, info.State.FirstSeq)
}
