package cellstate

import (
	"encoding/binary"

	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
	"github.com/omegacell/omegacell/txn"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// changeSet collects the objects one operation changed: the content of one
// revision. A task changed twice in a row by one operation (failed, then
// pending again) is recorded once, in its final version.
type changeSet struct {
	rev      uint64
	machines []*machine
	mIdx     map[string]int
	tasks    []*task
	jobs     []*cellv1.Job
	jIdx     map[string]int
	// touchedJobs are jobs whose tasks changed (their state is refreshed
	// at the end of the operation).
	touchedJobs map[string]struct{}
	// schedulers newly registered (durable, not part of the watch stream).
	schedulers []string
}

func newChangeSet(rev uint64) *changeSet { return &changeSet{rev: rev} }

func (c *changeSet) empty() bool {
	return len(c.machines) == 0 && len(c.tasks) == 0 && len(c.jobs) == 0 && len(c.schedulers) == 0
}

func (c *changeSet) machine(m *machine) {
	if c.mIdx == nil {
		c.mIdx = make(map[string]int)
	}
	if i, ok := c.mIdx[m.m.ID]; ok {
		c.machines[i] = m
		return
	}
	c.mIdx[m.m.ID] = len(c.machines)
	c.machines = append(c.machines, m)
}

func (c *changeSet) task(t *task) {
	if n := len(c.tasks); n > 0 && c.tasks[n-1].t.Key == t.t.Key {
		c.tasks[n-1] = t
	} else {
		c.tasks = append(c.tasks, t)
	}
	if c.touchedJobs == nil {
		c.touchedJobs = make(map[string]struct{})
	}
	c.touchedJobs[t.t.Key.Job] = struct{}{}
}

func (c *changeSet) job(j *cellv1.Job) {
	if c.jIdx == nil {
		c.jIdx = make(map[string]int)
	}
	if i, ok := c.jIdx[j.Id]; ok {
		c.jobs[i] = j
		return
	}
	c.jIdx[j.Id] = len(c.jobs)
	c.jobs = append(c.jobs, j)
}

// --- durable keys ---

var (
	prefixMachine   = []byte("m/")
	prefixJob       = []byte("j/")
	prefixTask      = []byte("t/")
	prefixScheduler = []byte("s/")
	prefixLog       = []byte("l/")
	keyRevision     = []byte("meta/revision")
	keyCompacted    = []byte("meta/compacted")
)

func machineKey(id string) []byte { return append(append([]byte(nil), prefixMachine...), id...) }
func jobKey(id string) []byte     { return append(append([]byte(nil), prefixJob...), id...) }
func schedulerKey(n string) []byte {
	return append(append([]byte(nil), prefixScheduler...), n...)
}

func taskKey(k txn.TaskKey) []byte {
	b := make([]byte, 0, len(prefixTask)+len(k.Job)+5)
	b = append(append(append(b, prefixTask...), k.Job...), '/')
	return binary.BigEndian.AppendUint32(b, k.Index)
}

func logKey(rev uint64) []byte {
	return binary.BigEndian.AppendUint64(append([]byte(nil), prefixLog...), rev)
}

func uint64Value(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

// --- encoding ---

// Field numbers of cellv1.WatchResponse and cellv1.Change, for assembling
// a log entry from objects that are already marshalled.
const (
	fieldWatchRevision = 1
	fieldWatchChanges  = 2
	fieldChangeMachine = 1
	fieldChangeJob     = 2
	fieldChangeTask    = 3
)

var marshal = proto.MarshalOptions{Deterministic: true}

// encodedEntry is one revision, encoded, plus what writing it needs.
type encodedEntry struct {
	rev  uint64
	data []byte // an encoded cellv1.WatchResponse
	// objects: key and encoded value of every changed object.
	keys, values [][]byte
	cs           *changeSet
}

// encode marshals every changed object once and assembles the log entry
// (a WatchResponse) from the same bytes.
func encode(cs *changeSet) (*encodedEntry, error) {
	n := len(cs.machines) + len(cs.tasks) + len(cs.jobs)
	e := &encodedEntry{rev: cs.rev, keys: make([][]byte, 0, n), values: make([][]byte, 0, n), cs: cs}
	buf := protowire.AppendTag(nil, fieldWatchRevision, protowire.VarintType)
	buf = protowire.AppendVarint(buf, cs.rev)
	add := func(key []byte, field protowire.Number, m proto.Message) error {
		b, err := marshal.Marshal(m)
		if err != nil {
			return err
		}
		e.keys, e.values = append(e.keys, key), append(e.values, b)
		inner := protowire.SizeTag(field) + protowire.SizeBytes(len(b))
		buf = protowire.AppendTag(buf, fieldWatchChanges, protowire.BytesType)
		buf = protowire.AppendVarint(buf, uint64(inner))
		buf = protowire.AppendTag(buf, field, protowire.BytesType)
		buf = protowire.AppendBytes(buf, b)
		return nil
	}
	for _, m := range cs.machines {
		if err := add(machineKey(m.m.ID), fieldChangeMachine, m.pb()); err != nil {
			return nil, err
		}
	}
	for _, j := range cs.jobs {
		if err := add(jobKey(j.Id), fieldChangeJob, j); err != nil {
			return nil, err
		}
	}
	for _, t := range cs.tasks {
		if err := add(taskKey(t.t.Key), fieldChangeTask, t.pb()); err != nil {
			return nil, err
		}
	}
	for _, name := range cs.schedulers {
		e.keys, e.values = append(e.keys, schedulerKey(name)), append(e.values, []byte{1})
	}
	e.data = buf
	return e, nil
}
