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
)

// hub is the one watch of the server's web view: it follows the cell
// (Snapshot, then Watch) into its copy and marks what changed dirty in
// every open page's client; each client's own goroutine sends those rows
// (see client.go). The hub never waits for a client.
type hub struct {
	log  *slog.Logger
	conn grpc.ClientConnInterface // Snapshot and Watch (wire.go)

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
		log: log, conn: conn,
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
	stream, err := h.openStream(ctx, cellv1.StateService_Snapshot_FullMethodName, &cellv1.SnapshotRequest{})
	if err != nil {
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	s := newSnapDecoder(h)
	var f frame
	defer f.release()
	for n := 0; ; n++ {
		err := stream.RecvMsg(&f)
		if errors.Is(err, io.EOF) && n > 0 {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("snapshot chunk %d: %w", n, err)
		}
		last, err := s.chunk(f.bytes())
		f.release()
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
	stream, err := h.openStream(ctx, cellv1.StateService_Watch_FullMethodName, &cellv1.WatchRequest{StartRevision: rev})
	if err != nil {
		return fmt.Errorf("watch: %w", err)
	}
	d := &watchDecoder{h: h, cell: cell, rev: rev}
	var f frame
	defer f.release()
	for {
		if err := stream.RecvMsg(&f); err != nil {
			return fmt.Errorf("watch from %d: %w", d.rev, err)
		}
		err := d.frame(f.bytes())
		f.release()
		if err != nil {
			return err
		}
	}
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
