package cellstate

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
	"github.com/omegacell/omegacell/proto/limits"
	"github.com/omegacell/omegacell/txn"
)

// DefaultSubjectPrefix prefixes every NATS subject of a cell.
const DefaultSubjectPrefix = "omegacell"

// HeartbeatSubject is the root of the subjects agents publish
// cellv1.HeartbeatBatch messages on (limits.HeartbeatSubject: one per
// agent or fleet).
func HeartbeatSubject(prefix string) string { return prefix + ".heartbeats" }

// LivenessOptions configure heartbeat tracking.
type LivenessOptions struct {
	Conn   *nats.Conn
	Prefix string // default DefaultSubjectPrefix
	// Grace is how long a machine may stay silent before it is marked down
	// and its tasks are lost (default 10 s).
	Grace time.Duration
	// MaxDownPerCheck bounds how many machines one check marks down, so a
	// network blip does not reshuffle the whole cell at once (default 50).
	MaxDownPerCheck int
	// CheckEvery is the period of the down check (default Grace/4).
	CheckEvery time.Duration
	Metrics    *Metrics
}

// Liveness tracks heartbeats and usage received over NATS and marks
// silent machines down. Heartbeat times are measured on the server's clock
// when they arrive, so agents' clock skew does not matter. It is not
// revisioned: after a server restart every machine gets a full grace
// period from the restart, so a restart never loses tasks.
type Liveness struct {
	store *Store
	opts  LivenessOptions
	start time.Time

	mu        sync.Mutex
	last      map[string]time.Time
	usage     map[string]*cellv1.Usage
	taskUsage map[txn.TaskKey]*cellv1.TaskUsage

	sub  *nats.Subscription
	stop chan struct{}
	done chan struct{}
}

// StartLiveness subscribes to heartbeats and starts the down check. Close
// stops both.
func StartLiveness(store *Store, o LivenessOptions) (*Liveness, error) {
	if o.Prefix == "" {
		o.Prefix = DefaultSubjectPrefix
	}
	if o.Grace == 0 {
		o.Grace = 10 * time.Second
	}
	if o.MaxDownPerCheck == 0 {
		o.MaxDownPerCheck = 50
	}
	if o.CheckEvery == 0 {
		o.CheckEvery = o.Grace / 4
	}
	l := &Liveness{
		store: store, opts: o, start: time.Now(),
		last: make(map[string]time.Time), usage: make(map[string]*cellv1.Usage), taskUsage: make(map[txn.TaskKey]*cellv1.TaskUsage),
		stop: make(chan struct{}), done: make(chan struct{}),
	}
	sub, err := o.Conn.Subscribe(limits.HeartbeatWildcard(o.Prefix), l.onMessage)
	if err != nil {
		return nil, fmt.Errorf("liveness: subscribe %s: %w", HeartbeatSubject(o.Prefix), err)
	}
	// Heartbeats of a large fleet arrive in bursts; let NATS buffer them.
	if err := sub.SetPendingLimits(1<<16, 256<<20); err != nil {
		sub.Unsubscribe()
		return nil, fmt.Errorf("liveness: pending limits: %w", err)
	}
	l.sub = sub
	go l.checkLoop()
	return l, nil
}

// Close stops the subscription and the down check.
func (l *Liveness) Close() {
	select {
	case <-l.stop:
		return
	default:
	}
	l.sub.Unsubscribe()
	close(l.stop)
	<-l.done
}

func (l *Liveness) onMessage(msg *nats.Msg) {
	batch := &cellv1.HeartbeatBatch{}
	if err := proto.Unmarshal(msg.Data, batch); err != nil {
		l.opts.Metrics.badMessage()
		l.store.log.Debug("refused malformed heartbeat batch", "subject", msg.Subject, "err", err)
		return
	}
	hbs, dropped := l.acceptHeartbeats(msg.Subject, batch.Heartbeats)
	for range dropped {
		l.opts.Metrics.badMessage()
	}
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, hb := range hbs {
		if hb.MachineId == "" || len(hb.MachineId) > 253 {
			l.opts.Metrics.badMessage()
			continue
		}
		l.last[hb.MachineId] = now
		if hb.Usage != nil {
			l.usage[hb.MachineId] = hb.Usage
			l.opts.Metrics.observeUsage(hb.MachineId, hb.Usage)
		}
		for _, tu := range hb.Tasks {
			if tu.GetTask() != nil && tu.Usage != nil {
				l.taskUsage[txn.TaskKey{Job: tu.Task.JobId, Index: tu.Task.Index}] = tu
			}
		}
	}
	l.opts.Metrics.heartbeat(len(hbs))
}

// seen records that a machine is alive (it just registered).
func (l *Liveness) seen(id string, at time.Time) {
	l.mu.Lock()
	l.last[id] = at
	l.mu.Unlock()
}

func (l *Liveness) lastSeen(id string) time.Time {
	if t, ok := l.last[id]; ok {
		return t
	}
	return l.start
}

// fill adds the latest heartbeat time and usage to an API machine.
func (l *Liveness) fill(m *cellv1.Machine) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if t, ok := l.last[m.Id]; ok {
		m.LastHeartbeatUnixNano = t.UnixNano()
	}
	m.Usage = l.usage[m.Id]
}

// fillTask adds the latest usage sample of the task's current attempt.
func (l *Liveness) fillTask(t *cellv1.Task) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if tu := l.taskUsage[txn.TaskKey{Job: t.JobId, Index: t.Index}]; tu != nil && tu.Attempt == t.Attempt {
		t.Usage = tu.Usage
	}
}

func (l *Liveness) checkLoop() {
	defer close(l.done)
	tick := time.NewTicker(l.opts.CheckEvery)
	defer tick.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-tick.C:
			l.check(time.Now())
		}
	}
}

// check marks silent machines down (the most silent first, at most
// MaxDownPerCheck) and machines that speak again up.
func (l *Liveness) check(now time.Time) {
	states := l.store.machineStates()
	type stale struct {
		id   string
		last time.Time
	}
	var silent []stale
	var back []string
	l.mu.Lock()
	for id, ms := range states {
		st := ms.state
		last := l.lastSeen(id)
		alive := now.Sub(last) <= l.opts.Grace
		switch {
		case !alive && st != txn.MachineDown:
			silent = append(silent, stale{id, last})
		case alive && st == txn.MachineDown && l.last[id].After(l.start):
			back = append(back, id)
		}
	}
	l.mu.Unlock()
	sort.Slice(silent, func(a, b int) bool { return silent[a].last.Before(silent[b].last) })
	if len(silent) > l.opts.MaxDownPerCheck {
		silent = silent[:l.opts.MaxDownPerCheck]
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if len(silent) > 0 {
		ids := make([]string, len(silent))
		for i, s := range silent {
			ids[i] = s.id
		}
		downed, err := l.store.markDown(ctx, ids)
		if err != nil {
			l.store.log.Error("marking silent machines down", "err", err)
		} else if len(downed) > 0 {
			l.store.log.Warn("machines marked down after missed heartbeats", "machines", downed, "grace", l.opts.Grace)
		}
	}
	if len(back) > 0 {
		if err := l.store.markUp(ctx, back); err != nil {
			l.store.log.Error("marking machines up", "err", err)
		} else {
			l.store.log.Info("machines heartbeat again; ready", "machines", back)
		}
	}
	l.opts.Metrics.observeMachines(states)
}

// machineStatus is what the down check needs of a machine.
type machineStatus struct {
	state     txn.MachineState
	allocated txn.Resources
}

// machineStates returns every machine's state and allocation.
func (s *Store) machineStates() map[string]machineStatus {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make(map[string]machineStatus, len(s.st.machines))
	for id, m := range s.st.machines {
		out[id] = machineStatus{m.m.State, m.m.Allocated}
	}
	return out
}

func (m *Metrics) badMessage() {
	if m != nil {
		m.badMessages.Inc()
	}
}

func (m *Metrics) heartbeat(n int) {
	if m != nil {
		m.heartbeats.Add(float64(n))
	}
}

func (m *Metrics) observeUsage(id string, u *cellv1.Usage) {
	if m != nil {
		m.usageCPU.WithLabelValues(id).Set(float64(u.CpuMilli))
		m.usageMem.WithLabelValues(id).Set(float64(u.MemoryBytes))
	}
}

func (m *Metrics) observeMachines(states map[string]machineStatus) {
	if m == nil {
		return
	}
	var n [4]int
	for id, ms := range states {
		if int(ms.state) < len(n) {
			n[ms.state]++
		}
		m.reservedCPU.WithLabelValues(id).Set(float64(ms.allocated.CPUMilli))
		m.reservedMem.WithLabelValues(id).Set(float64(ms.allocated.MemoryBytes))
	}
	for st := txn.MachineReady; st <= txn.MachineDown; st++ {
		m.machines.WithLabelValues(st.String()).Set(float64(n[st]))
	}
}
