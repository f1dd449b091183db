package webui

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"google.golang.org/protobuf/proto"

	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
	"github.com/omegacell/omegacell/proto/cellclient"
	"github.com/omegacell/omegacell/proto/identity"
)

// The proto path the hub took before wire.go (gRPC decoded every response
// into messages, cellclient.Assembler joined fragments, apply folded
// whole revisions), kept as the reference the wire path must match.

// refSnapshot is the old snapshot loop over decoded chunks.
func refSnapshot(h *hub, chunks [][]byte) (*cellv1.CellIdentity, error) {
	machines := map[string]*machineRow{}
	jobs := map[string]*jobRow{}
	tasks := map[string]map[uint32]taskRow{}
	var rev uint64
	var cell *cellv1.CellIdentity
	for n := 0; ; n++ {
		if n == len(chunks) {
			if n > 0 {
				break
			}
			return nil, fmt.Errorf("snapshot chunk %d: %w", n, errors.New("EOF"))
		}
		r := &cellv1.SnapshotResponse{}
		if err := proto.Unmarshal(chunks[n], r); err != nil {
			return nil, fmt.Errorf("snapshot chunk %d: %w", n, err)
		}
		if n == 0 {
			cell = r.GetCell()
		} else if !cellclient.SameCell(cell, r.GetCell()) {
			return nil, errors.New("snapshot: chunks from two cell incarnations")
		}
		rev = r.Revision
		for _, m := range r.Machines {
			machines[m.Id] = machineFromPB(m, h.oldMachine(m.Id))
		}
		for _, j := range r.Jobs {
			jobs[j.Id] = jobFromPB(j, nil)
		}
		for _, t := range r.Tasks {
			b := bucket(t.State)
			if tasks[t.JobId] == nil {
				tasks[t.JobId] = map[uint32]taskRow{}
			}
			tasks[t.JobId][t.Index] = taskRow{bucket: int8(b), machine: t.MachineId}
		}
		if r.Last {
			break
		}
	}
	for id, ts := range tasks {
		if j := jobs[id]; j != nil {
			for _, t := range ts {
				j.counts[t.bucket]++
			}
		}
	}
	h.mu.Lock()
	h.machines, h.jobs, h.tasks, h.rev, h.synced = machines, jobs, tasks, rev, true
	h.mu.Unlock()
	h.snapshots.Add(1)
	h.markAllFull()
	return cell, nil
}

// newSnapshot runs the wire path's snapshot over chunks as hub.snapshot
// does over its stream.
func newSnapshot(h *hub, chunks [][]byte) (*cellv1.CellIdentity, error) {
	s := newSnapDecoder(h)
	for n := 0; ; n++ {
		if n == len(chunks) {
			if n > 0 {
				break
			}
			return nil, fmt.Errorf("snapshot chunk %d: %w", n, errors.New("EOF"))
		}
		last, err := s.chunk(chunks[n])
		if err != nil {
			return nil, err
		}
		if last {
			break
		}
	}
	s.install()
	return s.cell, nil
}

// refWatch is the old watch loop's body over decoded responses.
type refWatch struct {
	h     *hub
	cell  *cellv1.CellIdentity
	rev   uint64
	whole cellclient.Assembler
}

func (w *refWatch) frame(b []byte) error {
	r := &cellv1.WatchResponse{}
	if err := proto.Unmarshal(b, r); err != nil {
		return fmt.Errorf("watch from %d: %w", w.rev, err)
	}
	if r.CompactRevision != 0 {
		return fmt.Errorf("watch from %d: compacted", w.rev)
	}
	if !cellclient.SameCell(w.cell, r.GetCell()) {
		return errors.New("watch: another cell incarnation answered")
	}
	r, err := w.whole.Add(r)
	if err != nil {
		return err
	}
	if r == nil {
		return nil
	}
	refApply(w.h, r)
	w.rev = max(w.rev, r.Revision)
	return nil
}

// refApply is the old hub.apply: one whole revision, jobs first.
func refApply(h *hub, r *cellv1.WatchResponse) {
	if len(r.Changes) == 0 {
		return
	}
	var ms, js []string
	placed := 0
	h.mu.Lock()
	h.rev = max(h.rev, r.Revision)
	for _, c := range r.Changes {
		if j := c.GetJob(); j != nil {
			h.jobs[j.Id] = jobFromPB(j, h.jobs[j.Id])
			js = append(js, j.Id)
		}
	}
	for _, c := range r.Changes {
		switch {
		case c.GetMachine() != nil:
			m := c.GetMachine()
			h.machines[m.Id] = machineFromPB(m, h.machines[m.Id])
			ms = append(ms, m.Id)
		case c.GetTask() != nil:
			t := c.GetTask()
			b := int8(bucket(t.State))
			of := h.tasks[t.JobId]
			if of == nil {
				of = map[uint32]taskRow{}
				h.tasks[t.JobId] = of
			}
			old, had := of[t.Index]
			of[t.Index] = taskRow{bucket: b, machine: t.MachineId}
			if j := h.jobs[t.JobId]; j != nil && (!had || old.bucket != b) {
				if had {
					j.counts[old.bucket]--
				}
				j.counts[b]++
				js = append(js, j.id)
			}
			if b == bPlaced && (!had || old.bucket != bPlaced) {
				placed++
			}
		case c.GetDeleted().GetJobId() != "":
			id := c.GetDeleted().GetJobId()
			delete(h.jobs, id)
			delete(h.tasks, id)
			js = append(js, id)
		}
	}
	h.mu.Unlock()
	h.series.placed(time.Now(), placed)
	h.markDirty(ms, js)
}

// hubState is what a hub holds, comparable with reflect.DeepEqual.
type hubState struct {
	Rev      uint64
	Synced   bool
	Machines map[string]machineRow
	Jobs     map[string]jobRow
	Tasks    map[string]map[uint32]taskRow
	Placed   int64
	Full     bool     // the client's dirty set: a full resend
	Dirty    []string // or these rows ("m/"+machine, "j/"+job), sorted
}

// state takes the hub's copy and its client's dirty rows (clearing them).
func state(h *hub, c *client) hubState {
	h.mu.RLock()
	s := hubState{Rev: h.rev, Synced: h.synced, Machines: map[string]machineRow{}, Jobs: map[string]jobRow{}, Tasks: map[string]map[uint32]taskRow{}}
	for id, m := range h.machines {
		s.Machines[id] = *m
	}
	for id, j := range h.jobs {
		s.Jobs[id] = *j
	}
	for id, ts := range h.tasks {
		s.Tasks[id] = maps.Clone(ts)
	}
	h.mu.RUnlock()
	h.series.mu.Lock()
	for _, n := range h.series.placeN {
		s.Placed += int64(n)
	}
	h.series.mu.Unlock()
	full, ms, js := c.take()
	s.Full = full
	for id := range ms {
		s.Dirty = append(s.Dirty, "m/"+id)
	}
	for id := range js {
		s.Dirty = append(s.Dirty, "j/"+id)
	}
	slices.Sort(s.Dirty)
	return s
}

// testHub is a hub with one admin page open whose first full resend was
// taken.
func testHub() (*hub, *client) {
	h := newHub(nil, nil)
	c := newClient(identity.Identity{Role: identity.Admin})
	h.add(c)
	c.take()
	return h, c
}
