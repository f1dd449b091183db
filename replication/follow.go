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

// startFollowing starts applying the log after the store's revision.
func (n *Node) startFollowing() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.startFollowingLocked()
}

func (n *Node) startFollowingLocked() {
	if n.follow != nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	n.follow, n.followed = cancel, make(chan struct{})
	go n.followLoop(ctx, n.followed)
}

func (n *Node) stopFollowing() {
	n.mu.Lock()
	cancel, done := n.follow, n.followed
	n.follow, n.followed = nil, nil
	n.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
}

// followLoop applies the log to the store until ctx ends.
func (n *Node) followLoop(ctx context.Context, done chan struct{}) {
	defer close(done)
	for ctx.Err() == nil {
		from := n.cfg.Store.Revision() + 1
		cons, err := n.stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
			FilterSubjects: []string{LogSubject}, DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: from,
		})
		if err != nil {
			if ctx.Err() == nil {
				n.note("consumer "+err.Error(), "follow: making the log's consumer failed", "err", err)
				sleep(ctx, 100*time.Millisecond)
			}
			continue
		}
		if err := n.apply(ctx, cons); err != nil && ctx.Err() == nil {
			if errors.Is(err, errDiverged) || errors.Is(err, errBehindLog) {
				n.fail(err)
				return
			}
			n.note("fetch "+err.Error(), "follow: applying the log failed; again", "err", err)
			sleep(ctx, 50*time.Millisecond)
		}
	}
}

var errDiverged = errors.New("replicated log and store diverge")

func (n *Node) apply(ctx context.Context, cons jetstream.Consumer) error {
	msgs := make(chan jetstream.Msg, applyBatch)
	errc := make(chan error, 1)
	cc, err := cons.Consume(func(m jetstream.Msg) {
		select {
		case msgs <- m:
		case <-ctx.Done():
		}
	}, jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
		select {
		case errc <- err:
		default:
		}
	}),
		// Pull requests of 2 s, so JetStream heartbeats every second: when
		// the server that hosted the consumer dies, the consumer is made
		// again elsewhere after 2 s without a heartbeat (the default, 5 s
		// heartbeats, leaves a follower 10 s behind; if the leader dies
		// meanwhile, the new one has that much to read first).
		jetstream.PullExpiry(2*time.Second))
	if err != nil {
		return err
	}
	defer cc.Stop()
	for {
		var revs []*cellv1.ReplicatedRevision
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-errc:
			n.note("consume "+err.Error(), "follow: consuming the log", "err", err, "revision", n.cfg.Store.Revision())
			continue
		case m := <-msgs:
			r, err := decode(m)
			if err != nil {
				return err
			}
			revs = append(revs, r)
		}
	drain:
		for len(revs) < applyBatch {
			select {
			case m := <-msgs:
				r, err := decode(m)
				if err != nil {
					return err
				}
				revs = append(revs, r)
			default:
				break drain
			}
		}
		want := n.cfg.Store.Revision() + 1
		if got, expected := firstGap(revs, want); got != 0 {
			// The log dropped what this store misses (retention.go):
			// restart on a peer's snapshot.
			return fmt.Errorf("%w: the log delivered revision %d where this store needs %d", errBehindLog, got, expected)
		}
		if revs[0].Revision != want {
			return fmt.Errorf("follow: log delivered revision %d, want %d", revs[0].Revision, want)
		}
		if err := n.cfg.Store.Apply(context.WithoutCancel(ctx), revs); err != nil {
			if errors.Is(err, cellstate.ErrClosed) {
				return err
			}
			return fmt.Errorf("%w: %v", errDiverged, err)
		}
		if revs[len(revs)-1].Revision >= n.startLast {
			n.caughtUp.Store(true)
		}
	}
}

func decode(m jetstream.Msg) (*cellv1.ReplicatedRevision, error) {
	r := &cellv1.ReplicatedRevision{}
	if err := proto.Unmarshal(m.Data(), r); err != nil {
		return nil, fmt.Errorf("%w: undecodable message: %v", errDiverged, err)
	}
	return r, nil
}
