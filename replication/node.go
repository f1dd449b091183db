package replication

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/omegacell/omegacell/cellstate"
	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
)

// Names in JetStream. The subjects are under the cell's own prefix, which
// agents may neither publish nor subscribe to (cellserver's natsauth).
const (
	StreamName   = "CELL_LOG"
	LogSubject   = "cell.replication.log"
	LeaseBucket  = "CELL_LEASE"
	MetaBucket   = "CELL_META"
	leaseKey     = "leader"
	identityKey  = "identity"
	DefaultTTL   = 2 * time.Second
	applyBatch   = 512
	catchUpLimit = 30 * time.Second
	appendWait   = 5 * time.Second
	// appendAttempt bounds one attempt of an append: a message that
	// JetStream dropped without an answer (its stream leader stepped down
	// or lost quorum while the message was in flight) is published again
	// after it, under the same message id, instead of waiting out
	// appendWait.
	appendAttempt = time.Second
	// placeEvery is how often a leader checks that it leads neither the
	// log's nor the lease's Raft group.
	placeEvery = 2 * time.Second
	// A server more than deferBelow revisions behind the log waits
	// deferPerRevision per revision (at most maxDeferral) before it takes
	// a free lease (deferral).
	deferBelow       = 64
	deferPerRevision = 500 * time.Microsecond
	maxDeferral      = time.Second
	// catchUpBatch is how many revisions a new leader reads and applies
	// between two renewals of its lease.
	catchUpBatch = 128
	setupTimeout = 2 * time.Minute
)

// ErrFenced is what a Node reports when its store may not go on: an append
// was refused (another leader appended first, the lease ran out, no
// quorum) or a replicated revision could not be applied. The server
// restarts its store from disk, as a follower.
var ErrFenced = errors.New("replication: fenced")

// Config configures a Node.
type Config struct {
	// Name is this server's name in the cluster (unique).
	Name string
	// Address is the gRPC address clients reach this server at.
	Address string
	// Conn is a connection to this server's embedded NATS (JetStream).
	Conn *nats.Conn
	// Store is this server's copy of the cell.
	Store *cellstate.Store
	// Replicas of the stream and buckets (default 3).
	Replicas int
	// LeaseTTL: a leader that has not renewed its lease for this long is
	// replaced (default 2 s).
	LeaseTTL time.Duration
	Logger   *slog.Logger
	// RaftLeaders, when set, describes the leaders of JetStream's Raft
	// groups as this server sees them (for the failover logs).
	RaftLeaders func() string
	// LogMaxBytes and LogMaxRevisions bound the replicated log (0: the
	// defaults, negative: unbounded; retention.go).
	LogMaxBytes     int64
	LogMaxRevisions int64
	// MaxSnapshotBytes bounds a snapshot sent or received (0: default).
	MaxSnapshotBytes uint64
	// Failed is told once when the node's store may not go on (ErrFenced).
	Failed func(error)
}

// Node is one server's part in a replicated cell.
type Node struct {
	cfg    Config
	log    *slog.Logger
	js     jetstream.JetStream
	stream jetstream.Stream
	lease  jetstream.KeyValue
	value  []byte // this server's lease value

	mu        sync.Mutex
	leading   bool
	leaseRev  uint64
	renewedAt time.Time
	epoch     string             // this leadership's name, in message ids
	reloading bool               // the store is dropping a refused round
	follow    context.CancelFunc // stops the follower loop
	followed  chan struct{}      // closed when it returned

	wonAt     time.Time     // when this leadership's lease was won
	acked     bool          // this leadership's first append was acknowledged
	holder    string        // the lease's holder when last seen ("": free)
	freeSince time.Time     // run's: since when the lease is seen free
	deferFor  time.Duration // run's: how long to leave it to others (deferral)

	placing     atomic.Bool                      // moveRaftLeaders is running
	leaseStream atomic.Pointer[jetstream.Stream] // the lease bucket's stream (moveRaftLeaders)
	appendGate  sync.RWMutex                     // appends hold it shared, a move of the log's Raft leader exclusively
	noteMu      sync.Mutex
	noted       map[string]time.Time // throttles repeated failover logs

	caughtUp  atomic.Bool // applied the log as far as it went at start
	startLast uint64      // where the log ended at start
	bg        sync.WaitGroup
	snap      *snapshotServer // sends copies of the store to peers

	failOnce sync.Once
	stop     chan struct{}
	done     chan struct{}
}

// Start joins the cluster's stream and buckets (creating them on first
// start), adopts the replicated cell's identity, and starts following;
// the node campaigns for the lease in the background. The store must not
// serve before Start returns.
func Start(ctx context.Context, cfg Config) (*Node, error) {
	if cfg.Replicas == 0 {
		cfg.Replicas = 3
	}
	if cfg.LeaseTTL == 0 {
		cfg.LeaseTTL = DefaultTTL
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.MaxSnapshotBytes == 0 {
		cfg.MaxSnapshotBytes = DefaultMaxSnapshotBytes
	}
	maxBytes, maxMsgs := logLimits(cfg)
	js, err := jetstream.New(cfg.Conn, jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		return nil, err
	}
	n := &Node{cfg: cfg, log: cfg.Logger.With("replica", cfg.Name), js: js, stop: make(chan struct{}), done: make(chan struct{})}
	n.value, err = proto.Marshal(&cellv1.ReplicaLease{Name: cfg.Name, GrpcAddress: cfg.Address})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, setupTimeout)
	defer cancel()
	// JetStream's cluster needs a quorum of servers before anything can be
	// created: retry until then.
	err = retry(ctx, n.log, "create the replicated log", func(ctx context.Context) error {
		n.stream, err = js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
			Name: StreamName, Subjects: []string{LogSubject}, Replicas: cfg.Replicas, Storage: jetstream.FileStorage,
			Retention: jetstream.LimitsPolicy, Discard: jetstream.DiscardOld, MaxMsgSize: -1,
			MaxBytes: maxBytes, MaxMsgs: maxMsgs,
			Description: "omegacell change log: one message per revision, sequence = revision",
		})
		return err
	})
	if err != nil {
		return nil, err
	}
	err = retry(ctx, n.log, "create the lease bucket", func(ctx context.Context) error {
		n.lease, err = js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: LeaseBucket, TTL: cfg.LeaseTTL, History: 1, Replicas: cfg.Replicas, Storage: jetstream.FileStorage})
		return err
	})
	if err != nil {
		return nil, err
	}
	if err := n.adoptIdentity(ctx); err != nil {
		return nil, err
	}
	cfg.Store.EnableReplication(appender{n}, n.fenced)
	if err := n.checkPosition(ctx); err != nil {
		return nil, err
	}
	n.startFollowing()
	if n.snap, err = serveSnapshots(cfg.Conn, cfg.Store, cfg.Name, cfg.MaxSnapshotBytes, n.log); err != nil {
		n.stopFollowing()
		return nil, err
	}
	n.waitCurrent(ctx)
	go n.run()
	return n, nil
}

// waitCurrent waits (bounded by ctx) until this server's copies of the log
// and of the lease are current in their Raft groups: a server that just
// came back is not counted on for a quorum before it caught up, so the
// loss of another server right after does not stall the log.
func (n *Node) waitCurrent(ctx context.Context) {
	for _, name := range []string{StreamName, "KV_" + LeaseBucket} {
		for ctx.Err() == nil {
			ictx, cancel := context.WithTimeout(ctx, 2*time.Second)
			info, err := n.js.Stream(ictx, name)
			var si *jetstream.StreamInfo
			if err == nil {
				si, err = info.Info(ictx)
			}
			cancel()
			if err == nil && si.Cluster != nil && replicaCurrent(si.Cluster, n.cfg.Name) {
				break
			}
			sleep(ctx, 100*time.Millisecond)
		}
	}
}

func replicaCurrent(c *jetstream.ClusterInfo, name string) bool {
	if c.Leader == name {
		return true
	}
	for _, p := range c.Replicas {
		if p.Name == name {
			return p.Current && p.Lag == 0
		}
	}
	return false
}

// adoptIdentity makes the store serve under the replicated cell's
// identity: the first server to start writes its own; the others adopt it.
func (n *Node) adoptIdentity(ctx context.Context) error {
	var meta jetstream.KeyValue
	err := retry(ctx, n.log, "create the meta bucket", func(ctx context.Context) (err error) {
		meta, err = n.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: MetaBucket, History: 1, Replicas: n.cfg.Replicas, Storage: jetstream.FileStorage})
		return err
	})
	if err != nil {
		return err
	}
	own := n.cfg.Store.Identity()
	mine, err := proto.Marshal(&cellv1.ReplicaCell{Id: own.GetId(), Incarnation: own.GetIncarnation()})
	if err != nil {
		return err
	}
	var cell cellv1.ReplicaCell
	err = retry(ctx, n.log, "read the cell's identity", func(ctx context.Context) error {
		if _, err := meta.Create(ctx, identityKey, mine); err != nil && !errors.Is(err, jetstream.ErrKeyExists) {
			return err
		}
		e, err := meta.Get(ctx, identityKey)
		if err != nil {
			return err
		}
		return proto.Unmarshal(e.Value(), &cell)
	})
	if err != nil {
		return err
	}
	if err := n.cfg.Store.SetIdentity(cell.Id, cell.Incarnation); err != nil {
		return err
	}
	n.log.Info("replicated cell", "cell_id", cell.Id, "incarnation", cell.Incarnation)
	return nil
}

// checkPosition refuses a store that is ahead of the log (it belongs to
// another history) or behind its start (the log no longer has what it
// misses).
func (n *Node) checkPosition(ctx context.Context) error {
	var info *jetstream.StreamInfo
	err := retry(ctx, n.log, "read the log's state", func(ctx context.Context) (err error) {
		info, err = n.stream.Info(ctx)
		return err
	})
	if err != nil {
		return err
	}
	rev := n.cfg.Store.Revision()
	if rev > info.State.LastSeq {
		return fmt.Errorf("replication: this store is at revision %d, the replicated log ends at %d: the data directory belongs to another history (start this server with an empty --data)", rev, info.State.LastSeq)
	}
	if err := n.rebuildIfBehind(ctx, rev, &info.State); err != nil {
		return err
	}
	n.startLast = info.State.LastSeq
	n.caughtUp.Store(rev >= n.startLast)
	n.log.Info("following the replicated log", "revision", rev, "log_last", info.State.LastSeq)
	return nil
}

// Close stops campaigning and following (the store stays open).
func (n *Node) Close() {
	select {
	case <-n.stop:
		return
	default:
	}
	close(n.stop)
	<-n.done
	n.bg.Wait()
	n.snap.close()
	n.stopFollowing()
	n.mu.Lock()
	leading := n.leading
	n.mu.Unlock()
	if leading {
		// Hand the lease over at once instead of after its TTL.
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = n.lease.Delete(ctx, leaseKey)
	}
}

// Leading reports whether this node holds the lease and commits.
func (n *Node) Leading() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.leading
}

// fenced takes a refused append: the store drops its in-memory round
// (Reload: back to its durable revision) and follows the log again.
func (n *Node) fenced(err error) {
	n.mu.Lock()
	if n.reloading {
		n.mu.Unlock()
		return
	}
	n.reloading, n.leading = true, false
	n.mu.Unlock()
	n.log.Warn("an append was refused; dropping the round and following the log", "err", err)
	n.cfg.Store.SetRole(cellstate.RoleFollower)
	n.cfg.Store.SetLeaderAddress("")
	n.bg.Add(1)
	go func() {
		defer n.bg.Done()
		// The commit loop marks the store failed right after the refusal.
		for i := 0; i < 200 && n.cfg.Store.Err() == nil; i++ {
			time.Sleep(5 * time.Millisecond)
		}
		if rerr := n.cfg.Store.Reload(); rerr != nil {
			n.fail(fmt.Errorf("%v; reloading the store: %w", err, rerr))
			return
		}
		n.mu.Lock()
		n.reloading = false
		n.mu.Unlock()
		n.log.Info("store reloaded from disk; following", "revision", n.cfg.Store.Revision())
		n.startFollowing()
	}()
}

func (n *Node) fail(err error) {
	n.failOnce.Do(func() {
		n.log.Error("replica must restart from its disk", "err", err)
		if n.cfg.Failed != nil {
			n.cfg.Failed(fmt.Errorf("%w: %v", ErrFenced, err))
		}
	})
}

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

// retry calls fn until it succeeds or ctx ends.
func retry(ctx context.Context, log *slog.Logger, what string, fn func(context.Context) error) error {
	for attempt := 0; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := fn(actx)
		cancel()
		if err == nil {
			return nil
		}
		if attempt%10 == 9 {
			log.Info("waiting for the cluster", "step", what, "err", err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("replication: %s: %w (last error: %v)", what, ctx.Err(), err)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
