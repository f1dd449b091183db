package replication

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
)

// appender is the store's Replicator: it appends a round to the log,
// each revision fenced on the one before.
type appender struct{ n *Node }

func (a appender) Append(revs []*cellv1.ReplicatedRevision) error {
	n := a.n
	n.mu.Lock()
	valid := n.leading && time.Since(n.renewedAt) < n.cfg.LeaseTTL*3/4
	epoch := n.epoch
	n.mu.Unlock()
	if !valid {
		return errors.New("the lease ran out before the round was appended")
	}
	start := time.Now()
	n.appendGate.RLock()
	defer n.appendGate.RUnlock()
	deadline := start.Add(appendWait)
	msgs := make([]*nats.Msg, len(revs))
	futures := make([]jetstream.PubAckFuture, len(revs))
	for i, r := range revs {
		data, err := proto.Marshal(r)
		if err != nil {
			return err
		}
		msgs[i] = &nats.Msg{Subject: LogSubject, Data: data}
		if futures[i], err = n.js.PublishMsgAsync(msgs[i], appendOpts(epoch, r.Revision)...); err != nil {
			futures = futures[:i]
			break
		}
	}
	// Each acknowledgement is awaited for at most appendAttempt after the
	// one before: a message JetStream dropped without an answer is
	// published again at once (appendEach), not after appendWait.
	timeout := time.NewTimer(appendAttempt)
	defer timeout.Stop()
	for i := range revs {
		var err error
		if i < len(futures) {
			select {
			case ack := <-futures[i].Ok():
				if ack.Sequence != revs[i].Revision {
					return fmt.Errorf("revision %d stored at sequence %d", revs[i].Revision, ack.Sequence)
				}
				timeout.Reset(appendAttempt) // Go 1.23 timers: no stale tick after Reset
				continue
			case err = <-futures[i].Err():
			case <-timeout.C:
				err = fmt.Errorf("no acknowledgement within %v", appendAttempt)
			}
		}
		if wrongLast(err) {
			return fmt.Errorf("append revision %d: another leader appended (%w)", revs[i].Revision, err)
		}
		n.note("append "+epoch, "failover: append attempt failed; publishing again", "revision", revs[i].Revision, "err", err, "round_took", time.Since(start))
		// The stream may be electing its Raft leader: append again, one
		// by one. The message id makes an append that did reach the log
		// answer as a duplicate of itself; the expected sequence still
		// fences any other writer.
		if err := n.appendEach(revs[i:], msgs[i:], epoch, deadline); err != nil {
			n.log.Warn("failover: append failed", "revision", revs[i].Revision, "err", err, "round_took", time.Since(start), "raft", n.raftLeaders())
			return err
		}
		break
	}
	n.firstAck(len(revs), start)
	return nil
}

// firstAck logs the first acknowledged round of a leadership.
func (n *Node) firstAck(revs int, start time.Time) {
	n.mu.Lock()
	first, won := !n.acked, n.wonAt
	n.acked = true
	n.mu.Unlock()
	if first {
		n.log.Info("failover: first append acknowledged", "revisions", revs, "append_took", time.Since(start), "since_won", time.Since(won))
	}
}

func (n *Node) appendEach(revs []*cellv1.ReplicatedRevision, msgs []*nats.Msg, epoch string, deadline time.Time) error {
	for i := 0; i < len(revs); {
		d := time.Now().Add(appendAttempt)
		if deadline.Before(d) {
			d = deadline
		}
		ctx, cancel := context.WithDeadline(context.Background(), d)
		// A new message: the asynchronous publisher may still hold the
		// first one.
		m := &nats.Msg{Subject: msgs[i].Subject, Data: msgs[i].Data}
		t0 := time.Now()
		ack, err := n.js.PublishMsg(ctx, m, appendOpts(epoch, revs[i].Revision)...)
		cancel()
		switch {
		case err == nil && ack.Sequence != revs[i].Revision:
			return fmt.Errorf("revision %d stored at sequence %d", revs[i].Revision, ack.Sequence)
		case err == nil:
			i++
			continue
		case wrongLast(err):
			return fmt.Errorf("append revision %d: another leader appended (%w)", revs[i].Revision, err)
		case !time.Now().Before(deadline):
			return fmt.Errorf("append revision %d: %w", revs[i].Revision, err)
		}
		n.note("appendEach "+epoch, "failover: append attempt failed; publishing again", "revision", revs[i].Revision, "err", err, "took", time.Since(t0))
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

func appendOpts(epoch string, rev uint64) []jetstream.PublishOpt {
	return []jetstream.PublishOpt{jetstream.WithExpectLastSequence(rev - 1), jetstream.WithMsgID(epoch + "-" + strconv.FormatUint(rev, 10))}
}

// wrongLast reports JetStream's refusal of an append whose expected last
// sequence is not the stream's.
func wrongLast(err error) bool {
	var je jetstream.JetStreamError
	if err == nil || !errors.As(err, &je) || je.APIError() == nil {
		return false
	}
	c := je.APIError().ErrorCode
	return c == jetstream.JSErrCodeStreamWrongLastSequence || c == jetstream.JSErrCodeStreamWrongLastSequenceConstant
}
