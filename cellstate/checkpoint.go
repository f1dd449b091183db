package cellstate

import (
	"fmt"

	"github.com/cockroachdb/pebble/v2"
	"google.golang.org/protobuf/proto"

	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
	"github.com/omegacell/omegacell/txn"
)

// Checkpoints. A commit writes only its log record (one Pebble key per
// revision); the current objects reach Pebble in checkpoints: every object
// changed since the previous checkpoint, in its newest version, written in
// one synced batch with the checkpoint's revision. Recovery loads the
// objects and replays the log after that revision. This is etcd's
// WAL-plus-snapshot design: the log is the truth, written once, and an
// object changed by a thousand transactions is checkpointed once.
//
// A checkpoint runs on its own goroutine (owned by the Store, awaited by
// Close) so encoding a few hundred thousand objects never stalls commits;
// the objects it encodes are immutable versions. One runs at a time.

// dirtySet holds the newest version of every object changed since the
// last checkpoint began.
type dirtySet struct {
	machines map[string]*machine
	jobs     map[string]*cellv1.Job
	tasks    map[txn.TaskKey]*task
	revs     uint64
}

func newDirtySet() *dirtySet {
	return &dirtySet{machines: map[string]*machine{}, jobs: map[string]*cellv1.Job{}, tasks: map[txn.TaskKey]*task{}}
}

func (d *dirtySet) add(cs *changeSet) {
	for _, m := range cs.machines {
		d.machines[m.m.ID] = m
	}
	for _, j := range cs.jobs {
		d.jobs[j.Id] = j
	}
	for _, t := range cs.tasks {
		d.tasks[t.t.Key] = t
	}
	d.revs++
}

func (d *dirtySet) size() int { return len(d.machines) + len(d.jobs) + len(d.tasks) }

// maybeCheckpoint starts a checkpoint at rev (the loop's durable revision)
// when enough changed and none is running.
func (s *Store) maybeCheckpoint(rev uint64) {
	if s.dirty.revs == 0 || s.checkpointBusy.Load() ||
		(s.dirty.size() < s.opts.CheckpointObjects && s.dirty.revs < s.opts.CheckpointRevisions) {
		return
	}
	d := s.dirty
	s.dirty = newDirtySet()
	s.checkpointBusy.Store(true)
	s.checkpoints.Add(1)
	go func() {
		defer s.checkpoints.Done()
		defer s.checkpointBusy.Store(false)
		if err := s.writeCheckpoint(d, rev); err != nil {
			// The log still holds everything after the previous
			// checkpoint (compaction never passes it), so nothing is
			// lost; the next checkpoint retries with fresher objects, but
			// these must not be forgotten: fold them back.
			s.log.Error("checkpoint failed; will retry", "revision", rev, "err", err)
			s.requeueDirty(d)
		}
	}()
}

func (s *Store) writeCheckpoint(d *dirtySet, rev uint64) error {
	b := s.db.NewBatch()
	defer b.Close()
	put := func(key []byte, m proto.Message) error {
		v, err := marshal.Marshal(m)
		if err != nil {
			return err
		}
		return b.Set(key, v, nil)
	}
	var buf []byte
	for id, m := range d.machines {
		buf = appendMachineRecord(buf[:0], m)
		if err := b.Set(machineKey(id), buf, nil); err != nil {
			return err
		}
	}
	for id, j := range d.jobs {
		if err := put(jobKey(id), j); err != nil {
			return err
		}
	}
	for k, t := range d.tasks {
		buf = appendTaskRecord(buf[:0], t)
		if err := b.Set(taskKey(k), buf, nil); err != nil {
			return err
		}
	}
	if err := b.Set(keyCheckpoint, uint64Value(rev), nil); err != nil {
		return err
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("commit checkpoint: %w", err)
	}
	s.checkpointRev.Store(rev)
	s.m.checkpoint(d.size())
	return nil
}

// requeueDirty merges a failed checkpoint's objects back, keeping newer
// versions that changed since.
func (s *Store) requeueDirty(d *dirtySet) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, m := range d.machines {
		if _, newer := s.dirty.machines[id]; !newer {
			s.dirty.machines[id] = m
		}
	}
	for id, j := range d.jobs {
		if _, newer := s.dirty.jobs[id]; !newer {
			s.dirty.jobs[id] = j
		}
	}
	for k, t := range d.tasks {
		if _, newer := s.dirty.tasks[k]; !newer {
			s.dirty.tasks[k] = t
		}
	}
	s.dirty.revs += d.revs
}
