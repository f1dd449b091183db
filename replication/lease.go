package replication

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/omegacell/omegacell/cellstate"
	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
)

// run campaigns for the lease and renews it while leading.
func (n *Node) run() {
	defer close(n.done)
	tick := time.NewTicker(n.cfg.LeaseTTL / 8)
	defer tick.Stop()
	var placed time.Time
	for {
		select {
		case <-n.stop:
			return
		case <-tick.C:
		}
		n.mu.Lock()
		leading, reloading := n.leading, n.reloading
		n.mu.Unlock()
		switch {
		case leading:
			n.renew()
			if placed.Before(n.leadingSince()) {
				placed = time.Now() // campaign placed them before leading
			}
			if time.Since(placed) > placeEvery {
				placed = time.Now()
				n.placeRaftLeaders()
			}
		case !reloading:
			n.campaign()
		}
	}
}

// placeRaftLeaders keeps the Raft leadership of the log and of the lease
// off this server (the cell's leader) for as long as it leads, not only
// when it wins: a Raft election in those groups (a server restarted, a
// loaded machine missed heartbeats) may put it back here, and then the
// cell leader's death would cost a Raft election on top of the lease's
// TTL. In the background; one at a time.
func (n *Node) placeRaftLeaders() {
	if !n.placing.CompareAndSwap(false, true) {
		return
	}
	n.bg.Add(1)
	go func() {
		defer n.bg.Done()
		defer n.placing.Store(false)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		n.moveRaftLeaders(ctx)
	}()
}

func (n *Node) leadingSince() time.Time {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.wonAt
}

func (n *Node) raftLeaders() string {
	if n.cfg.RaftLeaders == nil {
		return ""
	}
	return n.cfg.RaftLeaders()
}

// note logs a failover event at Info, at most every 500 ms per key (a
// failing step retried every few milliseconds logs once in a while).
func (n *Node) note(key, msg string, args ...any) {
	n.noteMu.Lock()
	if n.noted == nil {
		n.noted = map[string]time.Time{}
	}
	if t, ok := n.noted[key]; ok && time.Since(t) < 500*time.Millisecond {
		n.noteMu.Unlock()
		return
	}
	if len(n.noted) > 256 {
		clear(n.noted)
	}
	n.noted[key] = time.Now()
	n.noteMu.Unlock()
	n.log.Info(msg, append(args, "raft", n.raftLeaders())...)
}

// sawHolder logs a change of the lease's holder ("": free).
func (n *Node) sawHolder(name string) {
	n.mu.Lock()
	prev := n.holder
	n.holder = name
	n.mu.Unlock()
	if prev != name {
		n.log.Info("failover: lease holder changed", "from", prev, "to", name, "raft", n.raftLeaders())
	}
}

func (n *Node) renew() {
	ctx, cancel := context.WithTimeout(context.Background(), n.cfg.LeaseTTL/2)
	defer cancel()
	n.mu.Lock()
	rev := n.leaseRev
	n.mu.Unlock()
	newRev, err := n.lease.Update(ctx, leaseKey, n.value, rev)
	n.mu.Lock()
	defer n.mu.Unlock()
	if err == nil {
		n.leaseRev, n.renewedAt = newRev, time.Now()
		return
	}
	if time.Since(n.renewedAt) < n.cfg.LeaseTTL*3/4 && !wrongLast(err) {
		// A slow or failed renewal (the bucket's Raft group may be
		// electing): try again on the next tick. Appends stop on their
		// own once the lease is 3/4 of its TTL old.
		return
	}
	n.log.Warn("lost the lease; stepping down", "err", err)
	n.leading = false
	n.cfg.Store.SetRole(cellstate.RoleFollower)
	n.cfg.Store.SetLeaderAddress("")
	n.startFollowingLocked()
}

func (n *Node) campaign() {
	if !n.caughtUp.Load() {
		return // a server far behind the log leaves the lead to one that is not
	}
	ctx, cancel := context.WithTimeout(context.Background(), n.cfg.LeaseTTL)
	defer cancel()
	e, gerr := n.lease.Get(ctx, leaseKey)
	switch {
	case gerr == nil:
		var l cellv1.ReplicaLease
		if proto.Unmarshal(e.Value(), &l) == nil {
			n.cfg.Store.SetLeaderAddress(l.GrpcAddress)
			n.sawHolder(l.Name)
		}
		n.freeSince = time.Time{}
		return
	case errors.Is(gerr, jetstream.ErrKeyNotFound), errors.Is(gerr, jetstream.ErrKeyDeleted):
		n.sawHolder("")
		if n.freeSince.IsZero() {
			n.freeSince, n.deferFor = time.Now(), n.deferral()
		}
		if free := time.Since(n.freeSince); free < n.deferFor {
			n.note("defer", "failover: behind the log; leaving the free lease to a current server", "defer", n.deferFor, "free_for", free)
			return
		}
	default:
		n.note("get "+gerr.Error(), "failover: reading the lease failed", "err", gerr)
	}
	t0 := time.Now()
	rev, err := n.lease.Create(ctx, leaseKey, n.value)
	if err != nil {
		if !errors.Is(err, jetstream.ErrKeyExists) {
			n.note("campaign "+err.Error(), "failover: creating the lease failed", "err", err, "took", time.Since(t0))
		}
		return
	}
	won := time.Now()
	n.sawHolder(n.cfg.Name)
	n.log.Info("won the lease; catching up with the log", "revision", n.cfg.Store.Revision(), "create_took", won.Sub(t0), "raft", n.raftLeaders())
	// Read the log to its end before committing anything, holding the
	// lease meanwhile. The follower loop stops first; what it had not
	// applied is read here message by message (no consumer to recreate
	// if the old leader's server hosted it).
	n.stopFollowing()
	renewed := won
	var last uint64
	for {
		if time.Since(won) > catchUpLimit {
			err = fmt.Errorf("not caught up after %v", catchUpLimit)
		}
		if err == nil && time.Since(renewed) > n.cfg.LeaseTTL/4 {
			rctx, rcancel := context.WithTimeout(context.Background(), n.cfg.LeaseTTL/2)
			rev, err = n.lease.Update(rctx, leaseKey, n.value, rev)
			rcancel()
			renewed = time.Now()
			if err != nil {
				n.log.Info("failover: renewing the lease while catching up failed", "err", err, "since_won", time.Since(won), "raft", n.raftLeaders())
			}
		}
		if err == nil {
			ictx, icancel := context.WithTimeout(context.Background(), n.cfg.LeaseTTL/2)
			var info *jetstream.StreamInfo
			step, t1 := "stream info", time.Now()
			if info, err = n.stream.Info(ictx); err == nil {
				last = info.State.LastSeq
				step = "reading the log"
				err = n.readTo(ictx, min(last, n.cfg.Store.Revision()+catchUpBatch))
			}
			icancel()
			if err != nil {
				n.note("catchup "+err.Error(), "failover: catching up failed", "step", step, "err", err, "took", time.Since(t1), "since_won", time.Since(won))
			} else if d := time.Since(t1); d > 200*time.Millisecond {
				n.log.Info("failover: caught up (slow)", "log_last", last, "took", d, "since_won", time.Since(won))
			}
			if err != nil && !errors.Is(err, errDiverged) && time.Since(won) < catchUpLimit {
				err = nil // the log's Raft group may be electing: again
				sleep(context.Background(), 20*time.Millisecond)
				continue
			}
		}
		if err != nil || n.cfg.Store.Revision() >= last {
			break
		}
	}
	if err != nil {
		n.log.Warn("could not catch up after winning the lease; releasing it", "err", err)
		dctx, dcancel := context.WithTimeout(context.Background(), time.Second)
		_ = n.lease.Delete(dctx, leaseKey, jetstream.LastRevision(rev))
		dcancel()
		if errors.Is(err, errDiverged) {
			n.fail(err)
			return
		}
		n.startFollowing()
		return
	}
	// Before the first append: a Raft leader moved while appends are in
	// flight drops them unanswered.
	mctx, mcancel := context.WithTimeout(context.Background(), n.cfg.LeaseTTL/4)
	n.moveRaftLeaders(mctx)
	mcancel()
	if time.Since(renewed) > n.cfg.LeaseTTL/4 {
		rctx, rcancel := context.WithTimeout(context.Background(), n.cfg.LeaseTTL/2)
		rev, err = n.lease.Update(rctx, leaseKey, n.value, rev)
		rcancel()
		renewed = time.Now()
		if err != nil {
			n.log.Warn("failover: lost the lease before leading", "err", err)
			n.startFollowing()
			return
		}
	}
	n.mu.Lock()
	n.leading, n.leaseRev, n.renewedAt, n.epoch = true, rev, renewed, fmt.Sprintf("%s-%d", n.cfg.Name, rev)
	n.wonAt, n.acked = won, false
	n.mu.Unlock()
	n.cfg.Store.SetLeaderAddress(n.cfg.Address)
	n.cfg.Store.SetRole(cellstate.RoleLeader)
	n.log.Info("leading the cell", "revision", n.cfg.Store.Revision(), "log_last", last, "took", time.Since(won))
}

// deferral is how long a server behind the log lets the free lease lie
// before it takes it, so that a current server takes it first: a new
// leader reads what it misses before it commits, message by message, and
// a follower far behind (a loaded machine, a server just restarted) would
// make the failover as slow as its reading. Proportional to how far
// behind, at most maxDeferral; none when the log cannot say (its Raft
// group electing): then the first server to ask takes the lease.
func (n *Node) deferral() time.Duration {
	ctx, cancel := context.WithTimeout(context.Background(), n.cfg.LeaseTTL/8)
	defer cancel()
	info, err := n.stream.Info(ctx)
	if err != nil {
		return 0
	}
	rev := n.cfg.Store.Revision()
	if info.State.LastSeq <= rev+deferBelow {
		return 0
	}
	return min(time.Duration(info.State.LastSeq-rev)*deferPerRevision, maxDeferral)
}

// readTo applies the log up to last, reading it message by message.
func (n *Node) readTo(ctx context.Context, last uint64) error {
	for ctx.Err() == nil {
		from := n.cfg.Store.Revision() + 1
		if from > last {
			return nil
		}
		var revs []*cellv1.ReplicatedRevision
		for seq := from; seq <= last && len(revs) < applyBatch; seq++ {
			m, err := n.stream.GetMsg(ctx, seq)
			if err != nil {
				return n.behindLog(ctx, seq, err)
			}
			r := &cellv1.ReplicatedRevision{}
			if err := proto.Unmarshal(m.Data, r); err != nil || r.Revision != seq {
				return fmt.Errorf("%w: log message %d is not revision %d (%v)", errDiverged, seq, seq, err)
			}
			revs = append(revs, r)
		}
		if err := n.cfg.Store.Apply(context.WithoutCancel(ctx), revs); err != nil {
			return fmt.Errorf("%w: %v", errDiverged, err)
		}
	}
	return ctx.Err()
}

// moveRaftLeaders asks JetStream to move the Raft leadership of the log
// and of the lease off this server. When the cell's leader also leads
// those Raft groups, its death costs JetStream's Raft election (4-9 s)
// before the log or the lease answer; when it does not, a new cell leader
// is elected as soon as the lease's TTL runs out. Best effort: on failure
// the cell still works, a later failover is only slower.
func (n *Node) moveRaftLeaders(ctx context.Context) {
	for _, name := range []string{StreamName, "KV_" + LeaseBucket} {
		s := &n.stream
		if name != StreamName {
			if s = n.leaseStream.Load(); s == nil {
				ls, err := n.js.Stream(ctx, name)
				if err != nil {
					continue
				}
				n.leaseStream.Store(&ls)
				s = &ls
			}
		}
		ictx, icancel := context.WithTimeout(ctx, n.cfg.LeaseTTL/8)
		info, err := (*s).Info(ictx)
		icancel()
		if err != nil || info.Cluster == nil || info.Cluster.Leader != n.cfg.Name {
			continue
		}
		n.stepDown(ctx, *s, name)
	}
}

// stepDown moves the Raft leadership of stream name off this server and
// waits until another server leads it. The log's leader change drops the
// proposals in flight without an answer: no append runs meanwhile
// (appendGate), so none waits for an answer that never comes.
func (n *Node) stepDown(ctx context.Context, s jetstream.Stream, name string) {
	if name == StreamName {
		n.appendGate.Lock()
		defer n.appendGate.Unlock()
	}
	// Appends wait meanwhile: not long. (Without a JetStream meta leader,
	// the request goes unanswered; the next placement tries again.)
	t0 := time.Now()
	rctx, rcancel := context.WithTimeout(ctx, n.cfg.LeaseTTL/8)
	_, err := n.cfg.Conn.RequestWithContext(rctx, "$JS.API.STREAM.LEADER.STEPDOWN."+name, nil)
	rcancel()
	if err != nil {
		n.log.Info("failover: asking JetStream to move a Raft leader off the cell leader failed", "stream", name, "err", err, "took", time.Since(t0), "raft", n.raftLeaders())
		return
	}
	ctx, cancel := context.WithTimeout(ctx, n.cfg.LeaseTTL/4)
	defer cancel()
	for ctx.Err() == nil {
		// Short attempts: the first requests after a leader change may go
		// unanswered.
		ictx, icancel := context.WithTimeout(ctx, 100*time.Millisecond)
		info, err := s.Info(ictx)
		icancel()
		if err == nil && info.Cluster != nil && info.Cluster.Leader != "" && info.Cluster.Leader != n.cfg.Name {
			break
		}
		sleep(ctx, 20*time.Millisecond)
	}
	n.log.Info("failover: moved a Raft leader off the cell leader", "stream", name, "took", time.Since(t0), "err", ctx.Err(), "raft", n.raftLeaders())
}
