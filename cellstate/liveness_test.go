package cellstate

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"

	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
	"github.com/omegacell/omegacell/proto/limits"
)

// startNATS runs an embedded NATS server for the test and connects to it.
func startNATS(t *testing.T) *nats.Conn {
	t.Helper()
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoSigs: true, NoLog: true})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(5 * time.Second) {
		t.Fatal("nats not ready")
	}
	t.Cleanup(ns.Shutdown)
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// publishBeats publishes heartbeats as the simulated fleet "sim" would:
// its machines are sim-<digits>.
func publishBeats(t *testing.T, nc *nats.Conn, ids []string, usage bool) {
	t.Helper()
	subject, err := limits.FleetHeartbeatSubject(DefaultSubjectPrefix, "sim")
	if err != nil {
		t.Fatal(err)
	}
	b := &cellv1.HeartbeatBatch{}
	for _, id := range ids {
		hb := &cellv1.Heartbeat{MachineId: id}
		if usage {
			hb.Usage = &cellv1.Usage{CpuMilli: 100, MemoryBytes: 1 << 20}
		}
		b.Heartbeats = append(b.Heartbeats, hb)
	}
	data, err := proto.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Publish(subject, data); err != nil {
		t.Fatal(err)
	}
}

// Heartbeats (with usage) for 100,000 unknown machines add no entry to
// the liveness maps and no metric series, and barely any heap; a machine
// marked down loses its per-machine series.
func TestHostileUnknownMachineHeartbeatsAllocateNothing(t *testing.T) {
	nc := startNATS(t)
	reg := prometheus.NewRegistry()
	metrics := NewMetrics(reg)
	c := newTestCell(t, Options{Metrics: metrics})
	c.addMachine("sim-1", nil, 4000, 4*gib, 0)
	c.addMachine("sim-2", nil, 4000, 4*gib, 0)
	live, err := StartLiveness(c.store, LivenessOptions{Conn: nc, Grace: 500 * time.Millisecond, CheckEvery: 50 * time.Millisecond, Metrics: metrics})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(live.Close)
	publishBeats(t, nc, []string{"sim-1", "sim-2"}, true)
	waitFor(t, "the known machines' usage", func() bool { return seriesOf(metrics.usageCPU) == 2 })

	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	const unknown = 100_000
	ids := make([]string, 1000)
	for b := range unknown / len(ids) {
		for i := range ids {
			ids[i] = fmt.Sprintf("sim-%07d", 1_000_000+b*len(ids)+i)
		}
		publishBeats(t, nc, ids, true)
		publishBeats(t, nc, []string{"sim-1", "sim-2"}, true) // they stay up meanwhile
	}
	garbage, _ := limits.FleetHeartbeatSubject(DefaultSubjectPrefix, "sim")
	nc.Publish(garbage, []byte("\x0a\xff\xff garbage"))
	waitFor(t, "every unknown heartbeat counted", func() bool {
		return counterValue(metrics.unknownHeartbeats) == unknown
	})
	var after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&after)
	live.mu.Lock()
	tracked := len(live.machines)
	live.mu.Unlock()
	if tracked != 2 {
		t.Fatalf("liveness tracks %d machines after unknown heartbeats; want 2", tracked)
	}
	for _, v := range []*prometheus.GaugeVec{metrics.usageCPU, metrics.usageMem} {
		if n := seriesOf(v); n != 2 {
			t.Fatalf("%d usage series after unknown heartbeats; want 2", n)
		}
	}
	if bad := counterValue(metrics.badMessages); bad != 1 {
		t.Fatalf("bad messages %v, want 1 (the garbage)", bad)
	}
	if grew := int64(after.HeapInuse) - int64(before.HeapInuse); grew > 4<<20 {
		t.Fatalf("heap in use grew by %d bytes over %d unknown heartbeats", grew, unknown)
	}

	// "sim-2" goes silent: marked down, its series go; "sim-1" keeps its.
	deadline := time.Now().Add(10 * time.Second)
	for {
		publishBeats(t, nc, []string{"sim-1"}, false)
		m, err := c.store.GetMachine("sim-2")
		if err != nil {
			t.Fatal(err)
		}
		if m.Machine.State == cellv1.MachineState_MACHINE_STATE_DOWN {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("silent machine never marked down")
		}
		time.Sleep(20 * time.Millisecond)
	}
	waitFor(t, "the down machine's series to go", func() bool {
		return seriesOf(metrics.usageCPU) == 1 && seriesOf(metrics.reservedCPU) == 1
	})
	if m, _ := c.store.GetMachine("sim-1"); m.Machine.State != cellv1.MachineState_MACHINE_STATE_READY {
		t.Fatalf("heartbeating machine is %v", m.Machine.State)
	}
}

// When the server's subscription dropped heartbeats (a slow consumer, as
// NATS reports it), silence up to then proves nothing: every machine gets
// a fresh grace from the moment the drop was noticed, then real silence
// marks a machine down as usual.
func TestHostileLostHeartbeatsGiveAFreshGrace(t *testing.T) {
	const grace = time.Second
	nc := startNATS(t)
	c := newTestCell(t, Options{})
	c.addMachine("m1", nil, 4000, 4*gib, 0) // never heartbeats
	t0 := time.Now()
	live, err := StartLiveness(c.store, LivenessOptions{Conn: nc, Grace: grace, CheckEvery: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(live.Close)
	state := func() cellv1.MachineState {
		m, err := c.store.GetMachine("m1")
		if err != nil {
			t.Fatal(err)
		}
		return m.Machine.State
	}
	time.Sleep(800 * time.Millisecond)
	// The subscription reports dropped messages, as nats.go does when its
	// pending limits overflow (the next check sees more than before).
	live.mu.Lock()
	live.dropped = -1_000_000
	live.mu.Unlock()
	time.Sleep(time.Until(t0.Add(1500 * time.Millisecond)))
	if st := state(); st != cellv1.MachineState_MACHINE_STATE_READY {
		t.Fatalf("%v after the start, a grace of %v and a drop: %v; want ready until a grace after the drop", time.Since(t0), grace, st)
	}
	waitFor(t, "the silent machine to be marked down a grace after the drop", func() bool {
		return state() == cellv1.MachineState_MACHINE_STATE_DOWN
	})
	if since := time.Since(t0); since < 1800*time.Millisecond {
		t.Fatalf("marked down %v after the start; the drop at 0.8 s should give a grace to 1.8 s", since)
	}
}

// seriesOf counts a collector's series.
func seriesOf(c prometheus.Collector) int {
	ch := make(chan prometheus.Metric, 1<<16)
	c.Collect(ch)
	close(ch)
	return len(ch)
}

// counterValue reads a counter.
func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		return -1
	}
	return m.GetCounter().GetValue()
}
