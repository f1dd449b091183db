package cellstate

import (
	"encoding/binary"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
	"google.golang.org/protobuf/encoding/protowire"

	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
)

// Checkpoints. A commit writes only its log record (one Pebble key per
// revision); the current objects reach Pebble in checkpoints: every object
// changed since the previous checkpoint, in its newest version, written in
// one synced batch with the checkpoint's revision. Recovery loads the
// objects and replays the log after that revision. This is etcd's
// WAL-plus-snapshot design: the log is the truth, written once, and an
// object changed by a thousand transactions is checkpointed once.
//
// Tasks are checkpointed in chunks of taskChunk consecutive tasks of a job,
// one Pebble key per chunk: schedulers place a job's tasks together, and
// Pebble's cost is per key. A chunk with one changed task is rewritten
// whole; the trigger counts written tasks, so that amplification is
// bounded per checkpoint.
//
// A checkpoint runs on its own goroutine (owned by the Store, awaited by
// Close) so encoding never stalls commits; the objects it encodes are
// immutable versions, collected under the loop's lock. One runs at a time.

const taskChunk = 256

type chunkKey struct {
	job   string
	chunk uint32
}

// dirtySet names every object changed since the last checkpoint began.
type dirtySet struct {
	machines map[string]*machine
	jobs     map[string]*cellv1.Job
	chunks   map[chunkKey]struct{}
	last     chunkKey // consecutive tasks of one chunk skip the map
	// deleted are jobs deleted since (job id -> task count): the
	// checkpoint deletes their objects.
	deleted map[string]int
	revs    uint64
	// chunkTasks counts the tasks the dirty chunks hold (a 1-task job's
	// chunk is one task, not taskChunk).
	chunkTasks int
}

func newDirtySet() *dirtySet {
	return &dirtySet{machines: map[string]*machine{}, jobs: map[string]*cellv1.Job{}, chunks: map[chunkKey]struct{}{}, deleted: map[string]int{}}
}

// add records a revision's changes; jobTasks tells how many tasks a job
// has (to size its last chunk).
func (d *dirtySet) add(cs *changeSet, jobTasks func(job string) int) {
	for _, m := range cs.machines {
		d.machines[m.m.ID] = m
	}
	for _, j := range cs.jobs {
		d.jobs[j.Id] = j
	}
	for _, t := range cs.tasks {
		k := chunkKey{t.t.Key.Job, t.t.Key.Index / taskChunk}
		if k == d.last {
			continue
		}
		d.last = k
		if _, seen := d.chunks[k]; !seen {
			d.chunks[k] = struct{}{}
			d.chunkTasks += min(taskChunk, jobTasks(k.job)-int(k.chunk)*taskChunk)
		}
	}
	for _, dj := range cs.deleted {
		d.forget(dj.id, dj.tasks)
	}
	d.revs++
}

// forget replaces whatever d holds of a deleted job by its deletion.
func (d *dirtySet) forget(id string, tasks int) {
	delete(d.jobs, id)
	for c := range (tasks + taskChunk - 1) / taskChunk {
		k := chunkKey{id, uint32(c)}
		if _, ok := d.chunks[k]; ok {
			delete(d.chunks, k)
			d.chunkTasks -= min(taskChunk, tasks-c*taskChunk)
		}
	}
	d.last = chunkKey{}
	d.deleted[id] = tasks
}

// writes is how many objects a checkpoint of d writes.
func (d *dirtySet) writes() int {
	return len(d.machines) + len(d.jobs) + d.chunkTasks + len(d.deleted)
}

// checkpoint is a dirty set resolved to the versions of one revision.
type checkpoint struct {
	rev      uint64
	machines []*machine
	jobs     []*cellv1.Job
	chunks   []chunkTasks
	deleted  []string  // jobs whose objects are deleted
	dirty    *dirtySet // to fold back if writing fails
}

type chunkTasks struct {
	key   chunkKey
	tasks []*task
}

// resolve collects the current versions of d's objects. The caller holds
// the loop's lock (or is the loop at shutdown).
func (s *Store) resolve(d *dirtySet, rev uint64) *checkpoint {
	c := &checkpoint{rev: rev, dirty: d, chunks: make([]chunkTasks, 0, len(d.chunks))}
	for _, m := range d.machines {
		c.machines = append(c.machines, m)
	}
	for _, j := range d.jobs {
		c.jobs = append(c.jobs, j)
	}
	for id := range d.deleted {
		c.deleted = append(c.deleted, id)
	}
	for k := range d.chunks {
		tasks := s.st.jobs[k.job].tasks
		lo := int(k.chunk) * taskChunk
		hi := min(lo+taskChunk, len(tasks))
		c.chunks = append(c.chunks, chunkTasks{k, append([]*task(nil), tasks[lo:hi]...)})
	}
	return c
}

// maybeCheckpoint starts a checkpoint at rev (the round's durable
// revision, the loop's lock held) when enough changed and none is running.
func (s *Store) maybeCheckpoint(rev uint64) {
	if s.dirty.revs == 0 || s.checkpointBusy.Load() ||
		(s.dirty.writes() < s.opts.CheckpointObjects && s.dirty.revs < s.opts.CheckpointRevisions) {
		return
	}
	c := s.resolve(s.dirty, rev)
	s.dirty = newDirtySet()
	s.checkpointBusy.Store(true)
	s.checkpoints.Add(1)
	go func() {
		defer s.checkpoints.Done()
		defer s.checkpointBusy.Store(false)
		if err := s.writeCheckpoint(c); err != nil {
			// The log still holds everything after the previous
			// checkpoint (compaction never passes it), so nothing is
			// lost; fold the set back so the next checkpoint covers it.
			s.log.Error("checkpoint failed; will retry", "revision", rev, "err", err)
			s.requeueDirty(c.dirty)
		}
	}()
}

// objects counts what the checkpoint writes.
func (c *checkpoint) objects() int {
	n := len(c.machines) + len(c.jobs) + len(c.deleted)
	for _, ch := range c.chunks {
		n += len(ch.tasks)
	}
	return n
}

func chunkStoreKey(k chunkKey) []byte {
	b := make([]byte, 0, len(prefixTaskChunk)+len(k.job)+5)
	b = append(append(append(b, prefixTaskChunk...), k.job...), '/')
	return binary.BigEndian.AppendUint32(b, k.chunk)
}

func (s *Store) writeCheckpoint(c *checkpoint) error {
	b := s.db.NewBatch()
	defer b.Close()
	var buf, rec []byte
	for _, m := range c.machines {
		buf = appendMachineRecord(buf[:0], m)
		if err := b.Set(machineKey(m.m.ID), buf, nil); err != nil {
			return err
		}
	}
	for _, j := range c.jobs {
		v, err := marshal.Marshal(j)
		if err != nil {
			return err
		}
		if err := b.Set(jobKey(j.Id), v, nil); err != nil {
			return err
		}
	}
	for _, ch := range c.chunks {
		buf = buf[:0]
		for _, t := range ch.tasks {
			rec = appendTaskRecord(rec[:0], t)
			buf = protowire.AppendBytes(buf, rec)
		}
		if err := b.Set(chunkStoreKey(ch.key), buf, nil); err != nil {
			return err
		}
	}
	for _, id := range c.deleted {
		if err := deleteJobObjects(b, id); err != nil {
			return err
		}
	}
	if err := b.Set(keyCheckpoint, uint64Value(c.rev), nil); err != nil {
		return err
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("commit checkpoint: %w", err)
	}
	s.checkpointRev.Store(c.rev)
	s.m.checkpoint(c.objects())
	return nil
}

// decodeChunk splits a checkpointed chunk into its task records.
func decodeChunk(v []byte, each func(rec []byte) error) error {
	for len(v) > 0 {
		rec, n := protowire.ConsumeBytes(v)
		if n < 0 {
			return fmt.Errorf("malformed task chunk: %w", protowire.ParseError(n))
		}
		if err := each(rec); err != nil {
			return err
		}
		v = v[n:]
	}
	return nil
}

// requeueDirty merges a failed checkpoint's set back.
func (s *Store) requeueDirty(d *dirtySet) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, m := range d.machines {
		if _, newer := s.dirty.machines[id]; !newer {
			s.dirty.machines[id] = m
		}
	}
	for id, j := range d.jobs {
		if _, newer := s.dirty.jobs[id]; !newer && s.st.jobs[id] != nil {
			s.dirty.jobs[id] = j
		}
	}
	for id, n := range d.deleted {
		s.dirty.deleted[id] = n
	}
	for k := range d.chunks {
		if s.st.jobs[k.job] == nil {
			continue // deleted since: the newer set deletes its objects
		}
		if _, seen := s.dirty.chunks[k]; !seen {
			s.dirty.chunks[k] = struct{}{}
			s.dirty.chunkTasks += min(taskChunk, len(s.st.jobs[k.job].tasks)-int(k.chunk)*taskChunk)
		}
	}
	s.dirty.revs += d.revs
}
