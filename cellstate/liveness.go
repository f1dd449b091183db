package cellstate

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
	"github.com/omegacell/omegacell/proto/identity"
	"github.com/omegacell/omegacell/proto/limits"
	"github.com/omegacell/omegacell/txn"
)

// DefaultSubjectPrefix prefixes every NATS subject of a cell.
const DefaultSubjectPrefix = "omegacell"

// HeartbeatSubject is the root of the subjects agents publish
// cellv1.HeartbeatBatch messages on (limits.HeartbeatSubject: one per
// agent or fleet).
func HeartbeatSubject(prefix string) string { return prefix + ".heartbeats" }

// HeartbeatSubjects are the subjects the server listens to: one per
// agent or fleet below HeartbeatSubject (limits.HeartbeatWildcard).
func HeartbeatSubjects(prefix string) []string { return []string{limits.HeartbeatWildcard(prefix)} }

// Pending limits of the heartbeat subscriptions. A 10,000-machine fleet
// sends a few batches of at most 1 MB a second; these absorb tens of
// seconds of that, and bound what a flood can make the server hold.
const (
	heartbeatPendingMsgs  = 1 << 18
	heartbeatPendingBytes = 128 << 20
)

// LivenessOptions configure heartbeat tracking.
type LivenessOptions struct {
	// Conn receives heartbeats; best a connection of its own, so a flood
	// of heartbeats does not delay the server's other NATS traffic.
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
//
// Only registered machines are tracked: a heartbeat naming an unknown
// machine is counted and dropped without allocating anything (no map
// entry, no metric series). Usage is kept per machine (the last sample of
// the machine and of its tasks), so memory is bounded by the machines.
//
// Silence the server caused is not a machine's silence: when the
// subscription dropped messages (a slow consumer: a flood outran it) or
// the connection to NATS was down, heartbeats may have been lost, so every
// machine gets a fresh grace from that moment. A flood can therefore delay
// marking a dead machine down, never mark a live one down.
type Liveness struct {
	store *Store
	opts  LivenessOptions
	start time.Time

	mu       sync.Mutex
	machines map[string]*machineLive // registered machines only
	// blind is the last moment heartbeats may have been lost.
	blind      time.Time
	dropped    int    // subscriptions' dropped messages seen so far
	reconnects uint64 // connection's reconnects seen so far

	subs  []*nats.Subscription
	marks []*markStream // per subscription (see watermark.go)
	stop  chan struct{}
	done  chan struct{}
}

// machineLive is what heartbeats said about one machine.
type machineLive struct {
	id    string
	last  time.Time // zero: none since the server started
	usage *cellv1.Usage
	tasks []*cellv1.TaskUsage // of the last sample
	down  bool                // as of the last check (series removed)
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
		store: store, opts: o, start: time.Now(), machines: make(map[string]*machineLive),
		stop: make(chan struct{}), done: make(chan struct{}),
	}
	for id := range store.machineStates() {
		l.machines[id] = &machineLive{id: id}
	}
	l.reconnects = o.Conn.Stats().Reconnects
	for _, subject := range HeartbeatSubjects(o.Prefix) {
		i := len(l.marks)
		l.marks = append(l.marks, &markStream{subject: markSubject(subject)})
		sub, err := o.Conn.Subscribe(subject, func(msg *nats.Msg) { l.onMessage(i, msg) })
		if err == nil {
			err = sub.SetPendingLimits(heartbeatPendingMsgs, heartbeatPendingBytes)
		}
		if err != nil {
			l.unsubscribe()
			return nil, fmt.Errorf("liveness: subscribe %s: %w", subject, err)
		}
		l.subs = append(l.subs, sub)
	}
	go l.checkLoop()
	return l, nil
}

func (l *Liveness) unsubscribe() {
	for _, sub := range l.subs {
		sub.Unsubscribe()
	}
}

// Close stops the subscription and the down check.
func (l *Liveness) Close() {
	select {
	case <-l.stop:
		return
	default:
	}
	l.unsubscribe()
	close(l.stop)
	<-l.done
}

// onMessage takes one HeartbeatBatch. It decodes by hand (protowire) so
// that a heartbeat is matched to a registered machine before anything is
// allocated: bad or unknown payloads cost a scan of their bytes.
func (l *Liveness) onMessage(i int, msg *nats.Msg) {
	if l.isMark(i, msg) {
		return
	}
	// The subject names the sender (an agent's machine, or a simulated
	// fleet: limits.HeartbeatSubject); NATS lets only that sender publish
	// there, and it may speak only for its machines.
	name, fleet, ok := limits.HeartbeatSender(l.opts.Prefix, msg.Subject)
	if !ok {
		l.opts.Metrics.heartbeat(0, 0, 1)
		return
	}
	sender := identity.Identity{Role: identity.Agent, Name: name, Fleet: fleet}
	now := time.Now()
	var known, unknown, bad int
	l.mu.Lock()
	err := forEachField(msg.Data, func(num protowire.Number, typ protowire.Type, v []byte) error {
		if num != 1 || typ != protowire.BytesType {
			return nil // not a heartbeat: skipped, like proto's unknown fields
		}
		switch l.heartbeat(v, now, sender) {
		case hbKnown:
			known++
		case hbUnknown:
			unknown++
		default:
			bad++
		}
		return nil
	})
	l.mu.Unlock()
	if err != nil {
		bad++
		l.store.log.Debug("refused malformed heartbeat batch", "subject", msg.Subject, "err", err)
	}
	l.opts.Metrics.heartbeat(known, unknown, bad)
}

type hbOutcome int

const (
	hbKnown hbOutcome = iota
	hbUnknown
	hbBad
)

// heartbeat applies one encoded Heartbeat (l.mu held).
func (l *Liveness) heartbeat(data []byte, now time.Time, sender identity.Identity) hbOutcome {
	var id, usage []byte
	var tasks [][]byte
	err := forEachField(data, func(num protowire.Number, typ protowire.Type, v []byte) error {
		if typ != protowire.BytesType {
			return nil
		}
		switch num {
		case 1:
			id = v
		case 3:
			usage = v
		case 4:
			tasks = append(tasks, v) // only a sampling heartbeat has tasks
		}
		return nil
	})
	if err != nil || len(id) == 0 || len(id) > maxMachineIDLen {
		return hbBad
	}
	m := l.machines[string(id)] // no allocation: the compiler reuses id's bytes
	if m == nil {
		return hbUnknown
	}
	if !sender.SpeaksFor(m.id) {
		return hbBad // another machine's heartbeat: forged
	}
	m.last = now
	if usage == nil {
		return hbKnown
	}
	u := &cellv1.Usage{}
	if proto.Unmarshal(usage, u) != nil {
		return hbBad
	}
	m.usage = u
	m.tasks = m.tasks[:0:0]
	for _, raw := range tasks {
		tu := &cellv1.TaskUsage{}
		if proto.Unmarshal(raw, tu) == nil && tu.GetTask() != nil && tu.Usage != nil {
			m.tasks = append(m.tasks, tu)
		}
	}
	if !m.down {
		l.opts.Metrics.observeUsage(m.id, u)
	}
	return hbKnown
}

// maxMachineIDLen bounds a machine id in a heartbeat (a DNS name).
const maxMachineIDLen = 253

// forEachField calls fn with every field of an encoded message.
func forEachField(b []byte, fn func(num protowire.Number, typ protowire.Type, v []byte) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		var v []byte
		if typ == protowire.BytesType {
			v, n = protowire.ConsumeBytes(b)
		} else {
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		if err := fn(num, typ, v); err != nil {
			return err
		}
	}
	return nil
}

// seen records that a machine is alive (it just registered).
func (l *Liveness) seen(id string, at time.Time) {
	l.mu.Lock()
	m := l.machines[id]
	if m == nil {
		m = &machineLive{id: id}
		l.machines[id] = m
	}
	m.last = at
	l.mu.Unlock()
}

// lastSeen is when a machine was last heard of, counting the server's
// start and any moment heartbeats may have been lost as heard.
func (l *Liveness) lastSeen(m *machineLive) time.Time {
	last := l.start
	if m != nil && m.last.After(last) {
		last = m.last
	}
	if l.blind.After(last) {
		last = l.blind
	}
	return last
}

// fill adds the latest heartbeat time and usage to an API machine.
func (l *Liveness) fill(m *cellv1.Machine) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if ml := l.machines[m.Id]; ml != nil {
		if !ml.last.IsZero() {
			m.LastHeartbeatUnixNano = ml.last.UnixNano()
		}
		m.Usage = ml.usage
	}
}

// fillTask adds the latest usage sample of the task's current attempt.
func (l *Liveness) fillTask(t *cellv1.Task) {
	l.mu.Lock()
	defer l.mu.Unlock()
	ml := l.machines[t.MachineId]
	if ml == nil {
		return
	}
	for _, tu := range ml.tasks {
		if tu.Task.JobId == t.JobId && tu.Task.Index == t.Index && tu.Attempt == t.Attempt {
			t.Usage = tu.Usage
			return
		}
	}
}

// noticeLoss moves the blind moment to now when heartbeats may have been
// lost since the last check: a subscription dropped messages (slow
// consumer), or the connection is or was down.
func (l *Liveness) noticeLoss(now time.Time) {
	dropped := 0
	for _, sub := range l.subs {
		if n, err := sub.Dropped(); err == nil {
			dropped += n
		}
	}
	nc := l.opts.Conn
	reconnects := nc.Stats().Reconnects
	lost := dropped - l.dropped
	switch {
	case lost > 0:
		l.store.log.Warn("heartbeat subscription dropped messages (a flood outran it); every machine gets a fresh grace",
			"dropped", lost, "grace", l.opts.Grace)
		l.opts.Metrics.heartbeatsDropped(lost)
	case reconnects != l.reconnects || !nc.IsConnected():
		l.store.log.Warn("connection to NATS was interrupted; every machine gets a fresh grace", "grace", l.opts.Grace)
	default:
		return
	}
	l.dropped, l.reconnects = dropped, reconnects
	l.blind = now
}

func (l *Liveness) checkLoop() {
	defer close(l.done)
	tick := time.NewTicker(l.opts.CheckEvery)
	defer tick.Stop()
	mark := time.NewTicker(max(l.opts.Grace/10, 10*time.Millisecond))
	defer mark.Stop()
	l.sendMarks(time.Now())
	for {
		select {
		case <-l.stop:
			return
		case now := <-mark.C:
			l.sendMarks(now)
		case <-tick.C:
			l.check(time.Now())
		}
	}
}

// check marks silent machines down (the most silent first, at most
// MaxDownPerCheck) and machines that speak again up. It also follows the
// store's machine set: new machines are tracked, down machines lose their
// metric series, forgotten ones their entry.
func (l *Liveness) check(now time.Time) {
	states := l.store.machineStates()
	type stale struct {
		id   string
		last time.Time
	}
	var silent []stale
	var back []string
	l.mu.Lock()
	l.noticeLoss(now)
	// In a replicated cell only the leader marks machines, and a new
	// leader gives every machine a fresh grace from its election: what
	// the followers heard is not evidence (replica.go).
	leader := l.store.IsLeader()
	if since := l.store.leaderSince(); since.After(l.blind) {
		l.blind = since
	}
	// Silence is measured up to what the server has heard, not up to now.
	heard := l.watermark()
	for id := range l.machines {
		if _, ok := states[id]; !ok {
			delete(l.machines, id)
			l.opts.Metrics.forgetMachine(id)
		}
	}
	for id, ms := range states {
		m := l.machines[id]
		if m == nil {
			m = &machineLive{id: id}
			l.machines[id] = m
		}
		st := ms.state
		last := l.lastSeen(m)
		alive := heard.Sub(last) <= l.opts.Grace
		switch {
		case !alive && st != txn.MachineDown:
			silent = append(silent, stale{id, last})
		case st == txn.MachineDown && now.Sub(m.last) <= l.opts.Grace && m.last.After(l.start):
			back = append(back, id)
		}
		if down := st == txn.MachineDown; down != m.down {
			m.down = down
			if down {
				// A down machine has no usage; its reservations are gone.
				m.usage, m.tasks = nil, nil
				l.opts.Metrics.forgetMachine(id)
			}
		}
	}
	l.mu.Unlock()
	sort.Slice(silent, func(a, b int) bool { return silent[a].last.Before(silent[b].last) })
	if len(silent) > l.opts.MaxDownPerCheck {
		silent = silent[:l.opts.MaxDownPerCheck]
	}
	if !leader {
		silent, back = nil, nil
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

func (m *Metrics) heartbeat(known, unknown, bad int) {
	if m == nil {
		return
	}
	m.heartbeats.Add(float64(known))
	if unknown > 0 {
		m.unknownHeartbeats.Add(float64(unknown))
	}
	if bad > 0 {
		m.badMessages.Add(float64(bad))
	}
}

func (m *Metrics) heartbeatsDropped(n int) {
	if m != nil {
		m.droppedHeartbeats.Add(float64(n))
	}
}

func (m *Metrics) observeUsage(id string, u *cellv1.Usage) {
	if m != nil {
		m.usageCPU.WithLabelValues(id).Set(float64(u.CpuMilli))
		m.usageMem.WithLabelValues(id).Set(float64(u.MemoryBytes))
	}
}

// forgetMachine removes a machine's series: per-machine series exist only
// for machines that are up (down ones have no usage and no reservations).
func (m *Metrics) forgetMachine(id string) {
	if m == nil {
		return
	}
	for _, v := range []*prometheus.GaugeVec{m.usageCPU, m.usageMem, m.reservedCPU, m.reservedMem} {
		v.DeleteLabelValues(id)
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
		if ms.state == txn.MachineDown {
			continue
		}
		m.reservedCPU.WithLabelValues(id).Set(float64(ms.allocated.CPUMilli))
		m.reservedMem.WithLabelValues(id).Set(float64(ms.allocated.MemoryBytes))
	}
	for st := txn.MachineReady; st <= txn.MachineDown; st++ {
		m.machines.WithLabelValues(st.String()).Set(float64(n[st]))
	}
}
