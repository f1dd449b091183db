package cellstate

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"google.golang.org/protobuf/proto"

	"github.com/omegacell/omegacell/pbconv"
	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
	"github.com/omegacell/omegacell/txn"
)

// Options configure a Store.
type Options struct {
	// Dir is the Pebble directory (created if missing).
	Dir string
	// NoSync skips fsync on commit. Only for benchmarks that measure
	// everything but the disk; never for a real cell.
	NoSync bool
	// LogRetention is how many recent revisions the change log keeps for
	// watchers (default 10,000: with 1,000-claim transactions a revision is
	// ~200 KB, so the log stays within a few GB).
	LogRetention uint64
	// MaxBatch bounds the operations taken into one group commit
	// (default 1024).
	MaxBatch int
	// Now is the clock (default time.Now). Tests pass a fake one.
	Now func() time.Time
	// Logger (default slog.Default()).
	Logger *slog.Logger
	// Metrics receives the store's metrics (nil: none).
	Metrics *Metrics
	// CheckpointObjects and CheckpointRevisions bound the work since the
	// last checkpoint: a checkpoint starts when it would write that many
	// objects (tasks counted by whole chunks) or that many revisions
	// passed (defaults 200,000 and 20,000); they bound how much log a
	// recovery replays.
	CheckpointObjects   int
	CheckpointRevisions uint64
	// JobRetention is how long a finished job (and its tasks) is kept
	// before it is deleted (default 24 h; negative: kept forever). See
	// gc.go.
	JobRetention time.Duration
	// MaxPendingTasks caps the pending tasks of the whole cell: a job that
	// would pass it is refused with ResourceExhausted (default 1,000,000;
	// negative: no cap). A per-tenant cap comes with tenant quotas.
	MaxPendingTasks int
	// SchedulerTTL is how long a scheduler without live jobs may stay
	// silent (no registration, commit or figures) before its registration
	// is forgotten (default 5 min; negative: never).
	SchedulerTTL time.Duration
	// MaxSchedulers caps registered schedulers, builtins included
	// (default 1,000; negative: no cap).
	MaxSchedulers int
	// GCInterval is how often the collector looks for finished jobs and
	// silent schedulers (default an eighth of the shorter of JobRetention
	// and SchedulerTTL, between 10 ms and 30 s).
	GCInterval time.Duration
}

func (o *Options) defaults() {
	if o.LogRetention == 0 {
		o.LogRetention = 10_000
	}
	if o.MaxBatch == 0 {
		o.MaxBatch = 1024
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.CheckpointObjects == 0 {
		o.CheckpointObjects = 200_000
	}
	if o.CheckpointRevisions == 0 {
		o.CheckpointRevisions = 20_000
	}
	if o.JobRetention == 0 {
		o.JobRetention = DefaultJobRetention
	}
	if o.MaxPendingTasks == 0 {
		o.MaxPendingTasks = DefaultMaxPendingTasks
	}
	if o.SchedulerTTL == 0 {
		o.SchedulerTTL = DefaultSchedulerTTL
	}
	if o.MaxSchedulers == 0 {
		o.MaxSchedulers = DefaultMaxSchedulers
	}
}

// MemTableBytes is the size of Pebble's memtables (see Open). Two arenas
// of this size stay resident in a cell that has written that much log.
const MemTableBytes = 4 << 20

// writeStallLogger logs Pebble's write stalls (every commit waits
// through one) at Warn, with their reason and length.
func writeStallLogger(log *slog.Logger) *pebble.EventListener {
	var mu sync.Mutex
	var began time.Time
	var reason string
	return &pebble.EventListener{
		WriteStallBegin: func(info pebble.WriteStallBeginInfo) {
			mu.Lock()
			began, reason = time.Now(), info.Reason
			mu.Unlock()
		},
		WriteStallEnd: func() {
			mu.Lock()
			d, r := time.Since(began), reason
			mu.Unlock()
			log.Warn("store: writes stalled", "reason", r, "for", d.Round(time.Millisecond))
		},
	}
}

// ErrClosed is returned for operations on a closed or failed store.
var ErrClosed = errors.New("cellstate: store is closed")

// Store is the cell-state store. All methods are safe for concurrent use.
type Store struct {
	opts Options
	db   *pebble.DB
	log  *slog.Logger
	m    *Metrics

	mu sync.RWMutex // guards st; held for writing by the loop per round
	st *state

	hub *hub

	reqs    chan *request
	stop    chan struct{}
	stopped chan struct{}

	failMu sync.Mutex
	failed error // set when a durable write failed; the store is dead

	compacted uint64 // newest revision no longer in the log (loop-owned)
	// revHint is the newest durable revision, for work done outside the
	// loop that only needs an estimate (bulk.go).
	revHint atomic.Uint64

	identity cellIdentity // set once by Open (identity.go)

	repl atomic.Pointer[replica] // nil: single server (replica.go)

	// Checkpoints (see checkpoint.go). dirty is loop-owned; a checkpoint
	// in flight owns the set it was handed.
	dirty          *dirtySet
	checkpointRev  atomic.Uint64 // newest durable checkpoint
	checkpointBusy atomic.Bool
	checkpoints    sync.WaitGroup

	deletedUnreleased int           // tasks deleted since memory was last released (gc.go; gcLoop-owned)
	releaseGap        time.Duration // memory is released again releaseGap after releaseNext's release (gc.go; gcLoop-owned); 0: done
	releaseNext       time.Time
	gcStop            chan struct{} // closed by Close to stop gcLoop
	gcDone            chan struct{} // closed when gcLoop returns
	drains            drainRunner   // the drain controller (drain.go)
	onSchedulersGone  atomic.Pointer[func([]string)]
}

// request is one operation waiting for the commit loop.
type request struct {
	op     operation
	result any
	err    error
	rev    uint64
	done   chan struct{}
	queued time.Time
}

// operation is something the commit loop applies to the state. run must
// validate everything before it changes anything, so that an operation that
// returns an error leaves the state untouched.
type operation interface {
	run(s *state) (any, error)
}

// Open opens (or creates) the store in opts.Dir and rebuilds the in-memory
// state from Pebble.
func Open(opts Options) (*Store, error) {
	opts.defaults()
	// Memtables of 4 MiB: Pebble keeps two arenas resident once they are
	// filled (the current one and one recycled for the next), whatever the
	// cell holds, so their size is memory that never comes back (issue 11:
	// 2 x 64 MB kept the RSS of a cell that had seen a million tasks at four
	// times the empty cell's; at 16 MiB the arenas were still +14 MiB over
	// the empty cell's after a million tasks passed). Flushing every 4 MiB
	// of log costs nothing measurable (CommitThroughput and bench load
	// basic side by side: 16 vs 4 MiB within noise); a revision over half a
	// memtable (a big submission) is flushed as its own table. Writes stall
	// only when 32 memtables' worth (128 MiB) wait for a flush, as with 8 of
	// 16 MiB before.
	// L0 may hold many files before compacting: most of what is flushed is
	// log that compaction of the log will soon delete whole (range
	// deletions drop covered files without rewriting them), so compacting
	// it early only copies bytes that are about to vanish.
	db, err := pebble.Open(opts.Dir, &pebble.Options{
		Logger:                      quietLogger{opts.Logger},
		MemTableSize:                MemTableBytes,
		MemTableStopWritesThreshold: 32,
		L0CompactionThreshold:       16,
		L0StopWritesThreshold:       64,
		EventListener:               writeStallLogger(opts.Logger),
	})
	if errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EWOULDBLOCK) {
		// Pebble's directory lock is held: another process has this store.
		return nil, fmt.Errorf("cellstate: %s is in use by another process (another cell server or cell dev on the same data directory?): %w", opts.Dir, err)
	}
	if err != nil {
		return nil, fmt.Errorf("cellstate: open pebble in %s: %w", opts.Dir, err)
	}
	s := &Store{
		opts:    opts,
		db:      db,
		log:     opts.Logger,
		m:       opts.Metrics,
		st:      newState(),
		reqs:    make(chan *request, 4096),
		stop:    make(chan struct{}),
		stopped: make(chan struct{}),
		dirty:   newDirtySet(),
		gcStop:  make(chan struct{}),
		gcDone:  make(chan struct{}),
	}
	s.st.limits = stateLimits{maxPending: max(opts.MaxPendingTasks, 0), maxSchedulers: max(opts.MaxSchedulers, 0)}
	s.st.seen = newSchedulerClock(opts.Now().UnixNano())
	if err := s.recover(); err != nil {
		db.Close()
		return nil, err
	}
	s.m.attach(s) // per-tenant metrics read the ledger (tenant_metrics.go)
	s.warnOvercommit()
	s.st.recoverGC()
	s.st.recoverReaping()
	if err := s.loadIdentity(); err != nil {
		db.Close()
		return nil, err
	}
	s.hub = newHub(s.st.rev, s.compacted, db)
	s.m.setRevision(s.st.rev)
	s.revHint.Store(s.st.rev)
	s.m.attachPebble(db)
	go s.loop()
	go s.gcLoop()
	s.drains.start(s)
	return s, nil
}

// Close stops the commit loop (answering queued operations with ErrClosed)
// and closes Pebble.
func (s *Store) Close() error {
	select {
	case <-s.stop:
		return nil
	default:
	}
	// The collector and the drain controller first, while the loop still
	// answers their operations.
	s.drains.close()
	close(s.gcStop)
	<-s.gcDone
	close(s.stop)
	<-s.stopped
	s.checkpoints.Wait()
	s.hub.close()
	// A final checkpoint makes the next start replay nothing.
	if s.Err() == nil && s.dirty.revs > 0 {
		if err := s.writeCheckpoint(s.resolve(s.dirty, s.st.rev)); err != nil {
			s.log.Warn("final checkpoint failed; the next start replays the log", "err", err)
		}
	}
	s.m.detachPebble(s.db)
	return s.db.Close()
}

// CloseWatchers ends every watch stream (they get UNAVAILABLE), so a
// graceful shutdown of the gRPC server does not wait on them.
func (s *Store) CloseWatchers() { s.hub.close() }

// Err returns the error that killed the store, if a durable write failed.
func (s *Store) Err() error {
	s.failMu.Lock()
	defer s.failMu.Unlock()
	return s.failed
}

// Revision returns the current (durable) revision.
func (s *Store) Revision() uint64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.st.rev
}

// do queues an operation and waits until it is durable (or fails).
func (s *Store) do(ctx context.Context, op operation) (any, uint64, error) {
	r := &request{op: op, done: make(chan struct{}), queued: time.Now()}
	select {
	case s.reqs <- r:
	case <-s.stop:
		return nil, 0, ErrClosed
	case <-ctx.Done():
		return nil, 0, ctx.Err()
	}
	// Once queued, the operation will be decided; wait for the answer even
	// if ctx ends, so a caller never mistakes a durable change for a lost
	// one. The loop answers every request it takes, also on shutdown.
	<-r.done
	return r.result, r.rev, r.err
}

// loop is the single commit loop: it takes rounds of queued operations,
// applies them one at a time, writes the round with one synced batch, and
// only then answers and publishes. An operation too large for one round
// (slice.go) is carried: each round runs one slice of it first, then the
// operations queued meanwhile, so its size never shows in anyone else's
// wait; its caller is answered after its last slice is durable.
func (s *Store) loop() {
	defer close(s.stopped)
	batch := make([]*request, 0, s.opts.MaxBatch)
	var carry []*request
	for {
		batch = append(batch[:0], carry...)
		if len(batch) == 0 && len(s.st.reaping) == 0 {
			select {
			case r := <-s.reqs:
				batch = append(batch, r)
			case <-s.stop:
				s.drainClosed()
				return
			}
		} else {
			select {
			case <-s.stop:
				// Finish what was started (a few rounds), answering
				// its callers, then refuse the rest.
				for len(carry) > 0 {
					carry = s.round(carry)
				}
				s.drainClosed()
				return
			default:
			}
		}
	fill:
		for len(batch) < s.opts.MaxBatch {
			select {
			case r := <-s.reqs:
				batch = append(batch, r)
			default:
				break fill
			}
		}
		carry = s.round(s.withReaper(batch))
	}
}

func (s *Store) drainClosed() {
	for {
		select {
		case r := <-s.reqs:
			r.err = ErrClosed
			close(r.done)
		default:
			return
		}
	}
}

// round applies one batch of operations, commits it durably, answers and
// publishes. It returns the requests whose operations have slices left.
func (s *Store) round(batch []*request) (carry []*request) {
	start := time.Now()
	if err := s.Err(); err != nil {
		s.fail(batch, fmt.Errorf("%w: %v", ErrClosed, err))
		return nil
	}
	s.mu.Lock()
	st := s.st
	st.now = s.opts.Now().UnixNano()
	wb := s.db.NewBatch()
	rp := s.repl.Load()
	leading := rp.leading() // one role for the whole round (replica.go)
	entries, werr := s.apply(st, batch, wb, rp, leading)
	if werr == nil && len(entries) > 0 {
		// In cluster mode the quorum has the round before Pebble does.
		werr = rp.append(entries, leading)
	}
	if werr == nil && len(entries) > 0 {
		werr = s.persist(wb, st.rev)
	}
	wb.Close()
	if werr == nil {
		s.maybeCheckpoint(st.rev)
	}
	s.mu.Unlock()

	if werr != nil {
		// The in-memory state now holds changes that are not durable: the
		// store must not serve anything more. Callers get an error; the
		// process restarts and recovers from Pebble.
		s.failMu.Lock()
		s.failed = fmt.Errorf("cellstate: durable write failed: %w", werr)
		s.failMu.Unlock()
		s.log.Error("store failed; refusing further operations", "err", werr)
		s.fail(batch, s.failed)
		return nil
	}
	s.revHint.Store(st.rev)
	s.hub.publish(entries)
	done := time.Now()
	for _, r := range batch {
		if r.err == nil && r.more() {
			carry = append(carry, r)
			continue
		}
		if r.done == nil {
			continue // the loop's own work (the reaper)
		}
		close(r.done)
		s.m.observeOp(r, done)
	}
	s.m.observeRound(len(batch), len(entries), done.Sub(start), st.rev)
	return carry
}

// apply runs each operation of a round (one slice of a sliced one) on the
// state, in order (the caller holds the write lock), and adds the revision of each that changed something
// to wb. An operation that fails leaves the state untouched and gets no
// revision. A non-nil error means wb could not be built: the state holds
// changes that will never be durable.
func (s *Store) apply(st *state, batch []*request, wb *pebble.Batch, rp *replica, leading bool) ([]*encodedEntry, error) {
	var entries []*encodedEntry
	for _, r := range batch {
		if r.err = rp.admit(r.op, leading); r.err != nil {
			continue
		}
		cs := newChangeSet(st.rev + 1)
		st.changes = cs
		r.result, r.err = r.op.run(st)
		if r.err == nil {
			st.admitQueued() // quota.go: room may have appeared
		}
		if r.err == nil && !cs.empty() {
			st.refreshJobs()
			e, err := encode(cs)
			if err == nil {
				err = writeEntry(wb, e)
			}
			if err != nil {
				st.changes = nil
				return nil, err
			}
			st.rev = cs.rev
			r.rev = cs.rev
			entries = append(entries, e)
			s.dirty.add(cs, st.jobTasks)
		}
		st.changes = nil
	}
	return entries, nil
}

// persist completes a round's batch (the revision, log compaction) and
// writes it with one synced commit: when it returns nil, every revision
// of the round is durable and may be acknowledged and published.
func (s *Store) persist(wb *pebble.Batch, rev uint64) error {
	if err := wb.Set(keyRevision, uint64Value(rev), nil); err != nil {
		return err
	}
	if err := s.maybeCompact(wb, rev); err != nil {
		return err
	}
	opt := pebble.Sync
	if s.opts.NoSync {
		opt = pebble.NoSync
	}
	return wb.Commit(opt)
}

// fail answers every caller of a round with err.
func (s *Store) fail(batch []*request, err error) {
	for _, r := range batch {
		if r.done == nil {
			continue
		}
		r.result, r.rev, r.err = nil, 0, err
		close(r.done)
	}
}

// writeEntry writes a revision's log record (and the rare scheduler
// registrations, which are not part of the watch stream).
func writeEntry(wb *pebble.Batch, e *encodedEntry) error {
	if err := wb.Set(logKey(e.rev), e.data, nil); err != nil {
		return err
	}
	for _, name := range e.cs.schedulers {
		if err := wb.Set(schedulerKey(name), []byte{1}, nil); err != nil {
			return err
		}
	}
	for _, name := range e.cs.schedulersGone {
		if err := wb.Delete(schedulerKey(name), nil); err != nil {
			return err
		}
	}
	if err := writeVersions(wb, e.cs); err != nil {
		return err
	}
	return writeTenants(wb, e.cs.tenants)
}

// maybeCompact drops log entries older than the retention, in steps so a
// delete range is written at most every 1/16 of the retention.
func (s *Store) maybeCompact(wb *pebble.Batch, rev uint64) error {
	keep := s.opts.LogRetention
	if rev <= keep {
		return nil
	}
	// Never drop what a recovery would replay: the log after the newest
	// durable checkpoint.
	target := min(rev-keep, s.checkpointRev.Load())
	step := max(keep/16, 1)
	if target < s.compacted+step {
		return nil
	}
	if err := wb.DeleteRange(logKey(s.compacted+1), logKey(target+1), nil); err != nil {
		return err
	}
	if err := wb.Set(keyCompacted, uint64Value(target), nil); err != nil {
		return err
	}
	s.compacted = target
	s.hub.setCompacted(target)
	return nil
}

// recover rebuilds the in-memory state: the objects of the newest
// checkpoint, then every logged revision after it, replayed in order.
func (s *Store) recover() error {
	st := s.st
	for _, m := range []struct {
		key []byte
		dst *uint64
	}{{keyRevision, &st.rev}, {keyCompacted, &s.compacted}} {
		v, closer, err := s.db.Get(m.key)
		if errors.Is(err, pebble.ErrNotFound) {
			continue
		}
		if err != nil {
			return fmt.Errorf("cellstate: read %s: %w", m.key, err)
		}
		*m.dst = binary.BigEndian.Uint64(v)
		closer.Close()
	}
	var ckpt uint64
	if v, closer, err := s.db.Get(keyCheckpoint); err == nil {
		ckpt = binary.BigEndian.Uint64(v)
		closer.Close()
	} else if !errors.Is(err, pebble.ErrNotFound) {
		return fmt.Errorf("cellstate: read checkpoint: %w", err)
	}
	s.checkpointRev.Store(ckpt)
	if ckpt < s.compacted {
		return fmt.Errorf("cellstate: log compacted to %d beyond the checkpoint at %d: cannot recover", s.compacted, ckpt)
	}

	machines := make(map[string]*cellv1.Machine)
	jobs := make(map[string]*cellv1.Job)
	tasks := make(map[txn.TaskKey]*cellv1.Task)
	err := s.scan(prefixScheduler, func(k, _ []byte) error {
		st.schedulers[string(k[len(prefixScheduler):])] = true
		return nil
	})
	if err == nil {
		err = s.recoverTenants()
	}
	if err == nil {
		err = scanObjects(s, prefixMachine, func() *cellv1.Machine { return &cellv1.Machine{} }, func(m *cellv1.Machine) { machines[m.Id] = m })
	}
	if err == nil {
		err = scanObjects(s, prefixJob, func() *cellv1.Job { return &cellv1.Job{} }, func(j *cellv1.Job) { jobs[j.Id] = j })
	}
	if err == nil {
		err = s.scan(prefixTaskChunk, func(_, v []byte) error {
			return decodeChunk(v, func(rec []byte) error {
				t := &cellv1.Task{}
				if err := proto.Unmarshal(rec, t); err != nil {
					return err
				}
				tasks[txn.TaskKey{Job: t.JobId, Index: t.Index}] = t
				return nil
			})
		})
	}
	if err != nil {
		return err
	}
	replayed := uint64(0)
	replayedDirty := newDirtySet()
	err = s.scanRange(logKey(ckpt+1), logKey(st.rev+1), func(k, v []byte) error {
		rev := decodeLogKey(k)
		if rev != ckpt+1+replayed {
			return fmt.Errorf("log revision %d missing (found %d)", ckpt+1+replayed, rev)
		}
		replayed++
		e := &cellv1.WatchResponse{}
		if err := proto.Unmarshal(v, e); err != nil {
			return fmt.Errorf("log revision %d: %w", rev, err)
		}
		for _, c := range e.Changes {
			switch o := c.Object.(type) {
			case *cellv1.Change_Machine:
				machines[o.Machine.Id] = o.Machine
				replayedDirty.machines[o.Machine.Id] = nil
			case *cellv1.Change_Job:
				jobs[o.Job.Id] = o.Job
				replayedDirty.jobs[o.Job.Id] = nil
			case *cellv1.Change_Task:
				tasks[txn.TaskKey{Job: o.Task.JobId, Index: o.Task.Index}] = o.Task
				replayedDirty.chunks[chunkKey{o.Task.JobId, o.Task.Index / taskChunk}] = struct{}{}
			case *cellv1.Change_Deleted:
				replayDeletion(o.Deleted.GetJobId(), jobs, tasks, replayedDirty)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("cellstate: replay log after checkpoint %d: %w", ckpt, err)
	}
	if ckpt+replayed != st.rev {
		return fmt.Errorf("cellstate: log ends at %d, revision is %d", ckpt+replayed, st.rev)
	}

	for id, pb := range machines {
		mr := newMachineRecord(pbconv.Machine(pb), pb.GpuMemoryBytes)
		mr.modRev = pb.ModRevision
		mr.registeredBy = pb.RegisteredBy
		mr.drain = pb.Drain
		st.machines[id] = mr
		st.noteDrain(mr)
		st.ledger.AccountMachine(nil, mr.m)
	}
	cons := make(map[string][]txn.Constraint, len(jobs)) // compiled once per job, shared by its tasks
	for id, pb := range jobs {
		cons[id] = txn.Compile(pbconv.Constraints(pb.GetSpec().GetTask().GetConstraints()))
		j := &jobEntry{job: pb, tmpl: pb.GetSpec().GetTask(), tasks: make([]*task, recoveredSlots(pb))}
		if j.tmpl.GetMaxPerMachine() > 0 {
			j.perMachine = make(map[string]uint32)
		}
		st.jobs[id] = j
		name := pb.GetSpec().GetName()
		if prev, ok := st.jobByName[name]; !ok || newerJob(pb, jobs[prev]) {
			st.jobByName[name] = id
		}
	}
	for k, pb := range tasks {
		j := st.jobs[k.Job]
		if j == nil || int(k.Index) >= len(j.tasks) {
			return fmt.Errorf("cellstate: recover: task %s has no job", k)
		}
		t := taskFromPB(pb, j.tmpl)
		t.t.Constraints = cons[k.Job]
		t.t.Tenant = j.job.GetSpec().GetTenant()
		j.tasks[k.Index] = t
		st.index(j, t)
	}
	if err := s.recoverVersions(); err != nil {
		return err
	}
	st.recoverQueues()
	for _, j := range st.jobs {
		st.recoverSystemJob(j) // system.go
	}
	for id, j := range st.jobs {
		for i, t := range j.tasks {
			if t == nil {
				return fmt.Errorf("cellstate: recover: job %s is missing task %d", id, i)
			}
		}
	}
	if err := checkInvariant(st); err != nil {
		return fmt.Errorf("cellstate: recovered state is inconsistent: %w", err)
	}
	// What was replayed is in no checkpoint yet. Checkpoint it now, before
	// anything else changes: a later checkpoint covers only later changes,
	// and once it moves the checkpoint revision past this replay, these
	// objects would exist nowhere but in a log that may be compacted.
	if replayed > 0 {
		for id := range replayedDirty.machines {
			replayedDirty.machines[id] = st.machines[id]
		}
		for id := range replayedDirty.jobs {
			replayedDirty.jobs[id] = st.jobs[id].job
		}
		replayedDirty.revs = replayed
		if err := s.writeCheckpoint(s.resolve(replayedDirty, st.rev)); err != nil {
			return fmt.Errorf("cellstate: checkpoint after replay: %w", err)
		}
	}
	s.log.Info("store recovered", "dir", s.opts.Dir, "revision", st.rev, "checkpoint", ckpt, "replayed", replayed,
		"machines", len(st.machines), "jobs", len(st.jobs), "tasks", len(tasks))
	return nil
}

// newerJob orders jobs of one name by submission (then id, for ties).
func newerJob(a, b *cellv1.Job) bool {
	if a.SubmitTimeUnixNano != b.SubmitTimeUnixNano {
		return a.SubmitTimeUnixNano > b.SubmitTimeUnixNano
	}
	return a.Id > b.Id
}

// scanObjects decodes every value under a prefix.
func scanObjects[M proto.Message](s *Store, prefix []byte, alloc func() M, put func(M)) error {
	return s.scan(prefix, func(_, v []byte) error {
		m := alloc()
		if err := proto.Unmarshal(v, m); err != nil {
			return err
		}
		put(m)
		return nil
	})
}

func taskFromPB(pb *cellv1.Task, tmpl *cellv1.TaskTemplate) *task {
	return &task{
		t:           pbconv.Task(pb, tmpl),
		exitCode:    pb.ExitCode,
		message:     pb.Message,
		submitTime:  pb.SubmitTimeUnixNano,
		assignTime:  pb.AssignTimeUnixNano,
		startTime:   pb.StartTimeUnixNano,
		finishTime:  pb.FinishTimeUnixNano,
		failures:    pb.Failures,
		notBefore:   pb.NotBeforeUnixNano,
		lastMachine: pb.LastMachineId,
		preemptedBy: pb.PreemptedByJobId,
		events:      pb.Events,
		modRev:      pb.ModRevision,
		version:     pb.Version,
		versionTime: pb.VersionTimeUnixNano,
		ready:       pb.Ready,
		readyTime:   pb.ReadyTimeUnixNano,
	}
}

func (s *Store) scan(prefix []byte, fn func(k, v []byte) error) error {
	upper := append(append([]byte(nil), prefix[:len(prefix)-1]...), prefix[len(prefix)-1]+1)
	return s.scanRange(prefix, upper, fn)
}

func (s *Store) scanRange(lower, upper []byte, fn func(k, v []byte) error) error {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return err
	}
	defer it.Close()
	for it.First(); it.Valid(); it.Next() {
		if err := fn(it.Key(), it.Value()); err != nil {
			return fmt.Errorf("cellstate: recover %q: %w", it.Key(), err)
		}
	}
	return it.Error()
}

// quietLogger routes Pebble's logging to slog at debug level.
type quietLogger struct{ l *slog.Logger }

func (q quietLogger) Infof(format string, args ...any) {
	q.l.Debug(fmt.Sprintf(format, args...), "component", "pebble")
}
func (q quietLogger) Errorf(format string, args ...any) {
	q.l.Error(fmt.Sprintf(format, args...), "component", "pebble")
}
func (q quietLogger) Fatalf(format string, args ...any) {
	q.l.Error(fmt.Sprintf(format, args...), "component", "pebble")
	panic(fmt.Sprintf(format, args...))
}
