package webui

import (
	"errors"
	"fmt"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
	"github.com/omegacell/omegacell/proto/wirefmt"
)

// watchDecoder applies one watch stream's frames (encoded WatchResponses)
// to the hub. A revision too large for one message comes as fragments:
// each is applied as it comes (so no revision is ever held decoded), the
// hub's revision advances at the last one, and a frame of another
// revision in between is an error (as cellclient.Assembler). The result
// is the one of applying the whole revision at once, jobs first: a job
// upserted in a later fragment than its tasks counts them, and one
// deleted in an earlier fragment stays deleted (the cell writes jobs
// before tasks and deletions anyway; see cellstate's encode).
type watchDecoder struct {
	h    *hub
	cell *cellv1.CellIdentity
	rev  uint64 // the newest whole revision received (for messages)

	// The revision whose fragments are arriving.
	open    bool
	openRev uint64
	changed bool // it had changes so far
	// Jobs it deleted so far, and the count moves of its tasks whose job
	// had no row yet (job id to moves), for its later fragments.
	deleted map[string]bool
	orphans map[string]*[nBuckets]int32
}

// frame applies one frame of the stream; an error ends the watch (the
// hub resnapshots), and nothing of a malformed frame is applied.
func (d *watchDecoder) frame(b []byte) error {
	var w watchHead
	if err := w.parse(b); err != nil {
		return fmt.Errorf("watch from %d: %w", d.rev, err)
	}
	if w.compact != 0 {
		return fmt.Errorf("watch from %d: compacted", d.rev)
	}
	if !w.cell.same(d.cell) {
		return errors.New("watch: another cell incarnation answered")
	}
	if d.open && (w.rev != d.openRev || w.progress) {
		return fmt.Errorf("watch: revision %d arrived in the middle of revision %d's fragments", w.rev, d.openRev)
	}
	if err := d.apply(b, &w); err != nil {
		return fmt.Errorf("watch from %d: %w", d.rev, err)
	}
	if w.fragment {
		d.open, d.openRev = true, w.rev
		return nil
	}
	d.rev = max(d.rev, w.rev)
	d.open, d.openRev, d.changed, d.deleted, d.orphans = false, 0, false, nil, nil
	return nil
}

// apply folds the changes of one frame into the copy and marks their rows
// dirty.
func (d *watchDecoder) apply(b []byte, w *watchHead) error {
	h := d.h
	// First, without the lock: decode the few jobs and machines and check
	// every other change, so that a malformed frame changes nothing.
	var jobs []*cellv1.Job
	var machines []*cellv1.Machine
	n := 0
	err := eachChange(b, func(c change) error {
		n++
		switch c.kind {
		case wirefmt.ChangeMachine:
			m := &cellv1.Machine{}
			if err := c.decode(m); err != nil {
				return fmt.Errorf("machine change: %w", err)
			}
			machines = append(machines, m)
		case wirefmt.ChangeJob:
			j := &cellv1.Job{}
			if err := c.decode(j); err != nil {
				return fmt.Errorf("job change: %w", err)
			}
			jobs = append(jobs, j)
		case wirefmt.ChangeTask:
			if _, err := c.task(); err != nil {
				return fmt.Errorf("task change: %w", err)
			}
		case wirefmt.ChangeDeleted:
			if _, err := c.deletedJob(); err != nil {
				return fmt.Errorf("deletion: %w", err)
			}
		case wirefmt.ChangeTenant:
			if err := c.decode(&cellv1.Tenant{}); err != nil {
				return fmt.Errorf("tenant change: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	d.changed = d.changed || n > 0
	closes := !w.fragment && d.changed // the last frame of a revision with changes
	if n == 0 && !closes {
		return nil
	}
	more := w.fragment // later frames of this revision follow
	var ms, js []string
	placed := 0
	h.mu.Lock()
	// Jobs first: a new job's tasks come in the same revision.
	for _, j := range jobs {
		js = append(js, j.Id)
		if d.deleted[j.Id] {
			continue // deleted by an earlier fragment: the job came first
		}
		old := h.jobs[j.Id]
		r := jobFromPB(j, old)
		if o := d.orphans[j.Id]; o != nil && old == nil {
			for b := range r.counts {
				r.counts[b] += o[b]
			}
			delete(d.orphans, j.Id)
		}
		h.jobs[j.Id] = r
	}
	mi := 0
	_ = eachChange(b, func(c change) error { // checked above
		switch c.kind {
		case wirefmt.ChangeMachine:
			m := machines[mi]
			mi++
			h.machines[m.Id] = machineFromPB(m, h.machines[m.Id])
			ms = append(ms, m.Id)
		case wirefmt.ChangeTask:
			t, _ := c.task()
			var p bool
			js, p = d.task(&t, js, more)
			if p {
				placed++
			}
		case wirefmt.ChangeDeleted:
			id, _ := c.deletedJob()
			if id == "" {
				return nil
			}
			delete(h.jobs, id)
			delete(h.tasks, id)
			js = append(js, id)
			if more {
				if d.deleted == nil {
					d.deleted = map[string]bool{}
				}
				d.deleted[id] = true
				delete(d.orphans, id)
			}
		}
		return nil
	})
	if closes {
		h.rev = max(h.rev, w.rev)
	}
	h.mu.Unlock()
	h.series.placed(time.Now(), placed)
	h.markDirty(ms, js)
	return nil
}

// task applies one task change (h.mu held) and reports whether it was
// just placed. Its job's id is appended to js when its counts moved. It
// allocates only for a job or machine the hub has not seen.
func (d *watchDecoder) task(t *taskWire, js []string, more bool) ([]string, bool) {
	h := d.h
	b := int8(bucket(t.state))
	j := h.jobs[string(t.job)]
	of := h.tasks[string(t.job)]
	if of == nil {
		key := string(t.job)
		if j != nil {
			key = j.id
		}
		of = map[uint32]taskRow{}
		h.tasks[key] = of
	}
	old, had := of[t.index]
	of[t.index] = taskRow{bucket: b, machine: machineName(t.machine, old.machine, h.machines)}
	if had && old.bucket == b {
		return js, false
	}
	switch {
	case j != nil:
		if had {
			j.counts[old.bucket]--
		}
		j.counts[b]++
		if n := len(js); n == 0 || js[n-1] != j.id {
			js = append(js, j.id)
		}
	case more:
		// Its job may come in a later fragment of the revision.
		o := d.orphans[string(t.job)]
		if o == nil {
			o = new([nBuckets]int32)
			if d.orphans == nil {
				d.orphans = map[string]*[nBuckets]int32{}
			}
			d.orphans[string(t.job)] = o
		}
		if had {
			o[old.bucket]--
		}
		o[b]++
	}
	return js, b == bPlaced
}

// snapDecoder builds the hub's copy from a snapshot's chunks (encoded
// SnapshotResponses); install puts it in place.
type snapDecoder struct {
	h        *hub
	machines map[string]*machineRow
	jobs     map[string]*jobRow
	tasks    map[string]map[uint32]taskRow
	rev      uint64
	cell     *cellv1.CellIdentity
	n        int // chunks applied
}

func newSnapDecoder(h *hub) *snapDecoder {
	return &snapDecoder{h: h, machines: map[string]*machineRow{}, jobs: map[string]*jobRow{}, tasks: map[string]map[uint32]taskRow{}}
}

// chunk folds one chunk in and reports whether it is the last.
func (s *snapDecoder) chunk(b []byte) (last bool, err error) {
	var c cellWire
	var rev uint64
	err = eachField(b, func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error {
		if typ == protowire.VarintType {
			switch num {
			case wirefmt.SnapRevision:
				rev = x
			case wirefmt.SnapLast:
				last = x != 0
			}
			return nil
		}
		if typ != protowire.BytesType {
			return nil
		}
		switch num {
		case wirefmt.SnapCell:
			return c.merge(v)
		case wirefmt.SnapMachines:
			m := &cellv1.Machine{}
			if err := proto.Unmarshal(v, m); err != nil {
				return fmt.Errorf("machine: %w", err)
			}
			s.machines[m.Id] = machineFromPB(m, s.h.oldMachine(m.Id))
		case wirefmt.SnapJobs:
			j := &cellv1.Job{}
			if err := proto.Unmarshal(v, j); err != nil {
				return fmt.Errorf("job: %w", err)
			}
			s.jobs[j.Id] = jobFromPB(j, nil)
		case wirefmt.SnapTasks:
			var t taskWire
			if err := t.merge(v); err != nil {
				return fmt.Errorf("task: %w", err)
			}
			s.task(&t)
		case wirefmt.SnapTenants: // not shown, but checked as the proto path did
			if err := proto.Unmarshal(v, &cellv1.Tenant{}); err != nil {
				return fmt.Errorf("tenant: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("snapshot chunk %d: %w", s.n, err)
	}
	if s.n == 0 {
		s.cell = c.identity()
	} else if !c.same(s.cell) {
		return false, errors.New("snapshot: chunks from two cell incarnations")
	}
	s.rev = rev
	s.n++
	return last, nil
}

func (s *snapDecoder) task(t *taskWire) {
	of := s.tasks[string(t.job)]
	if of == nil {
		of = map[uint32]taskRow{}
		s.tasks[string(t.job)] = of
	}
	of[t.index] = taskRow{bucket: int8(bucket(t.state)), machine: machineName(t.machine, "", s.machines)}
}

// machineName is a task's machine id as a string: the one its row (prev)
// or its machine's row already holds when they match, so a task change
// allocates no string for a machine the hub knows.
func machineName(id []byte, prev string, machines map[string]*machineRow) string {
	switch {
	case len(id) == 0:
		return ""
	case prev == string(id):
		return prev
	}
	if m := machines[string(id)]; m != nil {
		return m.id
	}
	return string(id)
}

// install counts the jobs' tasks and makes the snapshot the hub's copy.
func (s *snapDecoder) install() {
	for id, ts := range s.tasks {
		if j := s.jobs[id]; j != nil {
			for _, t := range ts {
				j.counts[t.bucket]++
			}
		}
	}
	h := s.h
	h.mu.Lock()
	h.machines, h.jobs, h.tasks, h.rev, h.synced = s.machines, s.jobs, s.tasks, s.rev, true
	h.mu.Unlock()
	h.snapshots.Add(1)
	h.markAllFull()
}
