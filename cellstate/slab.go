package cellstate

import "github.com/omegacell/omegacell/txn"

// versionSlab hands out new task versions (the store's task and its
// txn.Task) from arrays allocated for many at a time.
//
// Why: an operation on a big job makes a new version of each of up to
// 100,000 tasks in one round (a submission, a stop). Allocated one by one
// they are 200,000 small objects, and the Go runtime keeps the metadata of
// every span small objects ever occupied at once (never returned to the
// OS): after a million tasks passed through a cell, ~20 MB of its RSS was
// span and GC metadata (issue 11). In chunks of slabChunk they are a few
// large objects, and marking and sweeping them is cheaper too.
//
// The cost: a chunk stays reachable while any version in it is current
// (or still held by the watch ring), so it may keep superseded versions of
// its neighbours alive. That is bounded: a chunk holds versions of
// consecutive tasks of one job made by one operation, at most one per
// task, so each bulk operation on a job leaves at most one superseded
// version of each task behind (a job submitted and stopped holds at most
// three versions of a task, never more than its operations); and versions
// made together mostly die together (pending tasks are placed in index
// order; a stopped job's killed tasks are deleted with the job).
type versionSlab struct {
	tasks []task
	txns  []txn.Task
	pos   int // next free element of tasks and txns
	want  int // versions still expected: sizes the next chunk
}

// slabChunk is the most versions one chunk holds (~370 KB of the two
// arrays).
const slabChunk = 1024

// newVersionSlab returns a slab for about n versions.
func newVersionSlab(n int) *versionSlab { return &versionSlab{want: n} }

// next returns storage for one new version, zeroed. A nil slab returns
// nil, nil: the caller allocates the version on its own.
func (s *versionSlab) next() (*task, *txn.Task) {
	if s == nil {
		return nil, nil
	}
	if s.pos == len(s.tasks) {
		n := min(max(s.want, 1), slabChunk)
		s.tasks, s.txns, s.pos = make([]task, n), make([]txn.Task, n), 0
	}
	i := s.pos
	s.pos++
	s.want--
	return &s.tasks[i], &s.txns[i]
}

// unused gives back the storage next returned last (the version was not
// made after all).
func (s *versionSlab) unused() {
	if s == nil {
		return
	}
	s.pos--
	s.want++
	s.tasks[s.pos], s.txns[s.pos] = task{}, txn.Task{}
}
