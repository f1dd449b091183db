package webui

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/omegacell/omegacell/cellstate/authz"
	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
	"github.com/omegacell/omegacell/proto/identity"
)

// A client is one open page's event stream. The hub marks rows dirty in
// it (a set: a row changed ten times is sent once, as it is when sent);
// the client's goroutine sends them at most every flushEvery. Memory is
// bounded by the cell's rows, not by the rate of change: past maxDirty
// rows the client is resent everything instead. A browser that does not
// read its stream slows only its own goroutine, and one that does not
// read for writeTimeout is cut off.
type client struct {
	id   identity.Identity
	wake chan struct{}

	mu   sync.Mutex
	full bool
	ms   map[string]struct{}
	js   map[string]struct{}

	// Owned by the client's goroutine: what the identity may see, decided
	// by the API's own authorization table (authz.Decide).
	seeMachines, seeSchedulers bool
	tenants                    map[string]bool
}

const (
	maxDirty     = 20_000
	flushEvery   = 250 * time.Millisecond
	writeTimeout = 30 * time.Second
)

func newClient(id identity.Identity) *client {
	c := &client{id: id, wake: make(chan struct{}, 1), full: true, ms: map[string]struct{}{}, js: map[string]struct{}{}, tenants: map[string]bool{}}
	_, err := authz.Decide(cellv1.MachineService_ListMachines_FullMethodName, id, nil)
	c.seeMachines = err == nil
	_, err = authz.Decide(cellv1.SchedulerService_ListSchedulers_FullMethodName, id, nil)
	c.seeSchedulers = err == nil
	return c
}

func (c *client) mark(ms, js []string) {
	c.mu.Lock()
	if !c.full {
		if c.seeMachines {
			for _, id := range ms {
				c.ms[id] = struct{}{}
			}
		}
		for _, id := range js {
			c.js[id] = struct{}{}
		}
		if len(c.ms)+len(c.js) > maxDirty {
			c.full, c.ms, c.js = true, map[string]struct{}{}, map[string]struct{}{}
		}
	}
	c.mu.Unlock()
	c.signal()
}

func (c *client) markFull() {
	c.mu.Lock()
	c.full, c.ms, c.js = true, map[string]struct{}{}, map[string]struct{}{}
	c.mu.Unlock()
	c.signal()
}

func (c *client) signal() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// take returns what is dirty and clears it.
func (c *client) take() (full bool, ms, js map[string]struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	full, c.full = c.full, false
	// The maps handed out are never written again: mark writes new ones.
	if len(c.ms) > 0 {
		ms, c.ms = c.ms, map[string]struct{}{}
	}
	if len(c.js) > 0 {
		js, c.js = c.js, map[string]struct{}{}
	}
	return
}

// visibleJob is whether the identity may read a job of this tenant: the
// API's GetJob rule, asked once per tenant.
func (c *client) visibleJob(tenant string) bool {
	ok, seen := c.tenants[tenant]
	if !seen {
		_, err := authz.Decide(cellv1.JobService_GetJob_FullMethodName, c.id, &authz.Facts{Tenant: tenant})
		ok = err == nil
		if len(c.tenants) < 10_000 {
			c.tenants[tenant] = ok
		}
	}
	return ok
}

// serveEvents is GET /api/events: server-sent events, "full" first (and
// after any resync), then "delta" with the rows that changed, and "stats"
// every sampleEvery.
func (u *UI) serveEvents(w http.ResponseWriter, r *http.Request, id identity.Identity) {
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	c := newClient(id)
	u.hub.add(c)
	defer u.hub.remove(c)
	ctx := r.Context()
	stats := time.NewTicker(sampleEvery)
	defer stats.Stop()
	send := func(event string, data []byte) bool {
		_ = rc.SetWriteDeadline(time.Now().Add(writeTimeout))
		buf := make([]byte, 0, len(data)+32)
		buf = append(buf, "event: "...)
		buf = append(buf, event...)
		buf = append(buf, "\ndata: "...)
		buf = append(buf, data...)
		buf = append(buf, "\n\n"...)
		if _, err := w.Write(buf); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	if !send("stats", u.statsJSON(c)) {
		return
	}
	for {
		full, ms, js := c.take()
		if full || len(ms) > 0 || len(js) > 0 {
			event := "delta"
			if full {
				event = "full"
			}
			if !send(event, u.rowsJSON(c, full, ms, js)) {
				return
			}
			select { // coalesce: at most one batch of rows per flushEvery
			case <-ctx.Done():
				return
			case <-time.After(flushEvery):
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-c.wake:
		case <-stats.C:
			if !send("stats", u.statsJSON(c)) {
				return
			}
		}
	}
}

// rowsJSON encodes rows as arrays (a 10,000-machine cell is ~1 MB):
// machine [id, zone, rack, state, cpu, mem, gpu capacity, cpu, mem, gpu
// reserved, cpu, mem used]; job [id, name, tenant, scheduler, kind,
// state, submit ms, reason, pending, placed, running, done, failed, cpu,
// mem, gpu per task]; gone: ids of jobs deleted or no longer visible.
func (u *UI) rowsJSON(c *client, full bool, ms, js map[string]struct{}) []byte {
	h := u.hub
	h.mu.RLock()
	defer h.mu.RUnlock()
	b := []byte(`{"rev":`)
	b = strconv.AppendUint(b, h.rev, 10)
	b = append(b, `,"machines":[`...)
	first := true
	addM := func(m *machineRow) {
		if !first {
			b = append(b, ',')
		}
		first = false
		b = append(b, '[')
		b = appendStr(b, m.id)
		b = append(b, ',')
		b = appendStr(b, m.zone)
		b = append(b, ',')
		b = appendStr(b, m.rack)
		b = append(b, ',')
		b = strconv.AppendInt(b, int64(m.state), 10)
		for _, v := range [8]int64{m.cap[0], m.cap[1], m.cap[2], m.alloc[0], m.alloc[1], m.alloc[2], m.used[0], m.used[1]} {
			b = append(b, ',')
			b = strconv.AppendInt(b, v, 10)
		}
		b = append(b, ']')
	}
	if c.seeMachines {
		if full {
			for _, m := range h.machines {
				addM(m)
			}
		} else {
			for id := range ms {
				if m := h.machines[id]; m != nil {
					addM(m)
				}
			}
		}
	}
	b = append(b, `],"jobs":[`...)
	first = true
	var gone []string
	addJ := func(j *jobRow) {
		if !first {
			b = append(b, ',')
		}
		first = false
		b = append(b, '[')
		for i, s := range [4]string{j.id, j.name, j.tenant, j.scheduler} {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendStr(b, s)
		}
		for _, v := range [3]int64{int64(j.kind), int64(j.state), j.submit} {
			b = append(b, ',')
			b = strconv.AppendInt(b, v, 10)
		}
		b = append(b, ',')
		b = appendStr(b, j.reason)
		for _, v := range j.counts {
			b = append(b, ',')
			b = strconv.AppendInt(b, int64(v), 10)
		}
		for _, v := range j.res {
			b = append(b, ',')
			b = strconv.AppendInt(b, v, 10)
		}
		b = append(b, ']')
	}
	if full {
		for _, j := range h.jobs {
			if c.visibleJob(j.tenant) {
				addJ(j)
			}
		}
	} else {
		for id := range js {
			if j := h.jobs[id]; j != nil && c.visibleJob(j.tenant) {
				addJ(j)
			} else if j == nil {
				gone = append(gone, id)
			}
		}
	}
	b = append(b, `],"gone":`...)
	g, _ := json.Marshal(gone)
	b = append(b, g...)
	b = append(b, `,"full":`...)
	b = strconv.AppendBool(b, full)
	return append(b, '}')
}

func appendStr(b []byte, s string) []byte {
	q, _ := json.Marshal(s)
	return append(b, q...)
}

// statsJSON is the "stats" event: the cell's totals, placements per
// second, commit latency and (to those who may list schedulers) each
// scheduler's history.
func (u *UI) statsJSON(c *client) []byte {
	now := time.Now()
	out := map[string]any{"place": u.hub.series.placements(now), "lat": u.hub.series.latency(), "pages": u.hub.clientCount()}
	if c.seeMachines {
		out["totals"] = u.hub.totals()
	}
	if c.seeSchedulers {
		out["scheds"] = u.hub.series.schedulerHistory()
	}
	b, _ := json.Marshal(out)
	return b
}

// sample runs every sampleEvery: usage from heartbeats, the commit
// latency histogram and the schedulers' figures.
func (u *UI) sample(ctx context.Context) {
	t := time.NewTicker(sampleEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := time.Now()
		if u.opts.Usage != nil {
			u.hub.sampleUsage(u.opts.Usage)
		}
		if u.opts.CommitLatency != nil {
			sum, n := u.opts.CommitLatency()
			u.hub.series.commitLatency(now, sum, n)
		}
		cctx, cancel := context.WithTimeout(identity.NewContext(ctx, u.opts.Self), 5*time.Second)
		if resp, err := u.opts.API.ListSchedulers(cctx, &cellv1.ListSchedulersRequest{}); err == nil {
			u.hub.series.schedulers(now, resp.Schedulers)
		}
		cancel()
	}
}
