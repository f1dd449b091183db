package replication

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
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
