package cellstate

import (
	"encoding/binary"

	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
	"github.com/omegacell/omegacell/proto/wirefmt"
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
	// taskChanges, when set, are the tasks' Change entries already
	// encoded (a submission, bulk.go).
	taskChanges []byte
	jobs        []*cellv1.Job
	jIdx        map[string]int
	// touchedJobs are jobs whose tasks changed (their state is refreshed
	// at the end of the operation).
	touchedJobs map[string]struct{}
	// schedulers newly registered (durable, not part of the watch stream).
	schedulers []string
	// schedulersGone are registrations that expired (see gc.go).
	schedulersGone []string
	// deleted are jobs deleted with all their tasks (see gc.go).
	deleted []deletedJob
	// tenants created or changed (durable objects; also watch changes).
	tenants []*cellv1.Tenant
	// Issue 13: job versions made, and version keys trimmed (durable, not
	// part of the watch stream; versions.go).
	versions     []versionWrite
	versionsGone [][]byte
}

func newChangeSet(rev uint64) *changeSet { return &changeSet{rev: rev} }

func (c *changeSet) empty() bool {
	return len(c.machines) == 0 && len(c.tasks) == 0 && len(c.jobs) == 0 && len(c.schedulers) == 0 &&
		len(c.schedulersGone) == 0 && len(c.deleted) == 0 && len(c.tenants) == 0
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
	prefixTaskChunk = []byte("tc/")
	prefixScheduler = []byte("s/")
	prefixLog       = []byte("l/")
	keyRevision     = []byte("meta/revision")
	keyCompacted    = []byte("meta/compacted")
	keyCheckpoint   = []byte("meta/checkpoint")
)

func machineKey(id string) []byte { return append(append([]byte(nil), prefixMachine...), id...) }
func jobKey(id string) []byte     { return append(append([]byte(nil), prefixJob...), id...) }
func schedulerKey(n string) []byte {
	return append(append([]byte(nil), prefixScheduler...), n...)
}

func logKey(rev uint64) []byte {
	return binary.BigEndian.AppendUint64(append([]byte(nil), prefixLog...), rev)
}

func uint64Value(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

// --- encoding ---

// Field numbers of cellv1.WatchResponse and cellv1.Change, for assembling
// a log entry from objects marshalled one by one.
const (
	fieldWatchRevision = wirefmt.WatchRevision
	fieldWatchChanges  = wirefmt.WatchChanges
	fieldChangeMachine = wirefmt.ChangeMachine
	fieldChangeJob     = wirefmt.ChangeJob
	fieldChangeTask    = wirefmt.ChangeTask
	fieldChangeDeleted = wirefmt.ChangeDeleted
	fieldChangeTenant  = wirefmt.ChangeTenant
)

// Objects are marshalled without sorting map keys: nothing compares the
// bytes, and sorting label maps is most of a machine's encoding cost.
var marshal = proto.MarshalOptions{}

// encodedEntry is one revision: the encoded WatchResponse that is both its
// durable log record and what unfiltered watchers are sent.
type encodedEntry struct {
	rev  uint64
	data []byte
	cs   *changeSet
	// jobs is where the job changes lie in data (machines come before,
	// tasks after), so a redacted form re-encodes only them.
	jobs [2]int
	red  redactedOnce // the form redacted watchers get (redact.go)
}

// encode assembles the log entry of a change set.
func encode(cs *changeSet) (*encodedEntry, error) {
	e := &encodedEntry{rev: cs.rev, cs: cs}
	size := 64 + 256*len(cs.jobs)
	for _, m := range cs.machines {
		size += 160 + len(m.labelsWire)
	}
	if cs.taskChanges != nil {
		size += len(cs.taskChanges)
	} else {
		size += 160 * len(cs.tasks)
	}
	buf := make([]byte, 0, size)
	buf = protowire.AppendTag(buf, fieldWatchRevision, protowire.VarintType)
	buf = protowire.AppendVarint(buf, cs.rev)
	var obj, change []byte
	for _, m := range cs.machines {
		change = appendNested(change[:0], fieldChangeMachine, &obj, func(b []byte) []byte { return appendMachineRecord(b, m) })
		buf = protowire.AppendTag(buf, fieldWatchChanges, protowire.BytesType)
		buf = protowire.AppendBytes(buf, change)
	}
	e.jobs[0] = len(buf)
	var err error
	if buf, err = appendJobChanges(buf, cs.jobs, nil); err != nil {
		return nil, err
	}
	e.jobs[1] = len(buf)
	buf = append(buf, cs.taskChanges...)
	for _, t := range cs.tasks {
		if cs.taskChanges != nil {
			break
		}
		change = appendNested(change[:0], fieldChangeTask, &obj, func(b []byte) []byte { return appendTaskRecord(b, t) })
		buf = protowire.AppendTag(buf, fieldWatchChanges, protowire.BytesType)
		buf = protowire.AppendBytes(buf, change)
	}
	for _, d := range cs.deleted {
		del := &cellv1.Change{Object: &cellv1.Change_Deleted{Deleted: &cellv1.Deletion{Object: &cellv1.Deletion_JobId{JobId: d.id}}}}
		buf = protowire.AppendTag(buf, fieldWatchChanges, protowire.BytesType)
		buf = protowire.AppendVarint(buf, uint64(marshal.Size(del)))
		if buf, err = marshal.MarshalAppend(buf, del); err != nil {
			return nil, err
		}
	}
	for _, t := range cs.tenants {
		if buf, err = appendTenantChange(buf, t); err != nil {
			return nil, err
		}
	}
	e.data = buf
	return e, nil
}

// appendJobChanges appends a Change per job, passing each through jobFn
// when it is set (redaction).
func appendJobChanges(buf []byte, jobs []*cellv1.Job, jobFn func(*cellv1.Job) *cellv1.Job) ([]byte, error) {
	for _, j := range jobs {
		if jobFn != nil {
			j = jobFn(j)
		}
		size := marshal.Size(j)
		inner := protowire.SizeTag(fieldChangeJob) + protowire.SizeBytes(size)
		buf = protowire.AppendTag(buf, fieldWatchChanges, protowire.BytesType)
		buf = protowire.AppendVarint(buf, uint64(inner))
		buf = protowire.AppendTag(buf, fieldChangeJob, protowire.BytesType)
		buf = protowire.AppendVarint(buf, uint64(size))
		var err error
		if buf, err = marshal.MarshalAppend(buf, j); err != nil {
			return nil, err
		}
	}
	return buf, nil
}
