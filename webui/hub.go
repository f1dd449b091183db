package webui

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"

	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
	"github.com/omegacell/omegacell/proto/cellclient"
)

// hub is the one watch of the server's web view: it follows the cell
// (Snapshot, then Watch) into its copy and marks what changed dirty in
// every open page's client; each client's own goroutine sends those rows
// (see client.go). The hub never waits for a client.
type hub struct {
	log   *slog.Logger
	state cellv1.StateServiceClient

	mu       sync.RWMutex
	rev      uint64
	synced   bool // a snapshot was applied
	machines map[string]*machineRow
	jobs     map[string]*jobRow
	tasks    map[string]map[uint32]taskRow // by job, then index
	series   *series

	cmu     sync.Mutex
	clients map[*client]struct{}

	tmu   sync.Mutex
	tot   totals
	totAt time.Time

	snapshots atomic.Uint64 // snapshots taken (1 while the watch holds)
}

func newHub(conn grpc.ClientConnInterface, log *slog.Logger) *hub {
	return &hub{
		log: log, state: cellv1.NewStateServiceClient(conn),
		machines: map[string]*machineRow{}, jobs: map[string]*jobRow{}, tasks: map[string]map[uint32]taskRow{},
		series: newSeries(), clients: map[*client]struct{}{},
	}
}

// follow keeps the copy current until ctx ends: a snapshot, then the
// watch from its revision; any failure (compaction, a restart of the
// cell, a broken stream) resnapshots after a pause.
func (h *hub) follow(ctx context.Context) {
	failures := 0
	for ctx.Err() == nil {
		cell, err := h.snapshot(ctx)
		if err == nil {
			failures = 0
			err = h.watch(ctx, cell)
		}
		if ctx.Err() != nil {
			return
		}
		failures++
		h.log.Debug("web view: watch ended; resnapshotting", "err", err, "failures", failures)
		select {
		case <-ctx.Done():
			return
		case <-time.After(min(time.Duration(failures)*200*time.Millisecond, 5*time.Second)):
		}
	}
}

func (h *hub) snapshot(ctx context.Context) (*cellv1.CellIdentity, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := h.state.Snapshot(ctx, &cellv1.SnapshotRequest{})
	if err != nil {
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	machines := map[string]*machineRow{}
	jobs := map[string]*jobRow{}
	tasks := map[string]map[uint32]taskRow{}
	var rev uint64
	var cell *cellv1.CellIdentity
	for n := 0; ; n++ {
		r, err := stream.Recv()
		if errors.Is(err, io.EOF) && n > 0 {
			break
		}
		if err != nil {
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

func (h *hub) oldMachine(id string) *machineRow {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.machines[id]
}

func (h *hub) watch(ctx context.Context, cell *cellv1.CellIdentity) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	h.mu.RLock()
	rev := h.rev
	h.mu.RUnlock()
	stream, err := h.state.Watch(ctx, &cellv1.WatchRequest{StartRevision: rev})
	if err != nil {
		return fmt.Errorf("watch: %w", err)
	}
	var whole cellclient.Assembler
	for {
		r, err := stream.Recv()
		if err != nil {
			return fmt.Errorf("watch from %d: %w", rev, err)
		}
		if r.CompactRevision != 0 {
			return fmt.Errorf("watch from %d: compacted", rev)
		}
		if !cellclient.SameCell(cell, r.GetCell()) {
			return errors.New("watch: another cell incarnation answered")
		}
		if r, err = whole.Add(r); err != nil {
			return err
		}
		if r == nil {
			continue
		}
		h.apply(r)
		rev = max(rev, r.Revision)
	}
}

// apply folds one whole revision into the copy and marks its rows dirty.
func (h *hub) apply(r *cellv1.WatchResponse) {
	if len(r.Changes) == 0 {
		return
	}
	var ms, js []string
	placed := 0
	h.mu.Lock()
	h.rev = max(h.rev, r.Revision)
	// Jobs first: a new job's tasks come in the same revision.
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

// sampleUsage copies heartbeat usage into the machine rows; a machine is
// sent again only when its usage moved by at least 1% of its capacity.
func (h *hub) sampleUsage(each func(func(string, *cellv1.Usage))) {
	var ms []string
	h.mu.Lock()
	each(func(id string, u *cellv1.Usage) {
		m := h.machines[id]
		if m == nil {
			return
		}
		moved := func(old, now, capacity int64) bool {
			d := now - old
			return d*100 >= capacity || -d*100 >= capacity
		}
		if moved(m.used[0], u.CpuMilli, m.cap[resCPU]) || moved(m.used[1], u.MemoryBytes, m.cap[resMem]) {
			n := *m
			n.used = [2]int64{u.CpuMilli, u.MemoryBytes}
			h.machines[id] = &n
			ms = append(ms, id)
		}
	})
	h.mu.Unlock()
	h.markDirty(ms, nil)
}

func (h *hub) add(c *client) {
	h.cmu.Lock()
	h.clients[c] = struct{}{}
	h.cmu.Unlock()
}

func (h *hub) remove(c *client) {
	h.cmu.Lock()
	delete(h.clients, c)
	h.cmu.Unlock()
}

func (h *hub) markDirty(ms, js []string) {
	if len(ms) == 0 && len(js) == 0 {
		return
	}
	h.cmu.Lock()
	defer h.cmu.Unlock()
	for c := range h.clients {
		c.mark(ms, js)
	}
}

func (h *hub) markAllFull() {
	h.cmu.Lock()
	defer h.cmu.Unlock()
	for c := range h.clients {
		c.markFull()
	}
}

func (h *hub) clientCount() int {
	h.cmu.Lock()
	defer h.cmu.Unlock()
	return len(h.clients)
}

// totals sums the cell for the header of the Cell page, at most once a
// second however many pages ask.
func (h *hub) totals() totals {
	h.tmu.Lock()
	defer h.tmu.Unlock()
	if now := time.Now(); now.Sub(h.totAt) >= time.Second {
		h.tot, h.totAt = h.sum(), now
	}
	return h.tot
}

func (h *hub) sum() totals {
	h.mu.RLock()
	defer h.mu.RUnlock()
	var t totals
	t.Machines = len(h.machines)
	for _, m := range h.machines {
		switch m.state {
		case mDown:
			t.Down++
		case mDraining:
			t.Draining++
		}
		for i := range 3 {
			t.Cap[i] += m.cap[i]
			t.Alloc[i] += m.alloc[i]
		}
		t.Used[0] += m.used[0]
		t.Used[1] += m.used[1]
	}
	t.Jobs = len(h.jobs)
	for _, j := range h.jobs {
		for b := range nBuckets {
			t.Tasks[b] += int64(j.counts[b])
		}
	}
	return t
}
