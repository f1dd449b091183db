package agent

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
)

// startNATS runs a real NATS server on a free loopback port.
func startNATS(t testing.TB) *server.Server {
	t.Helper()
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("NATS server not ready within 10s")
	}
	t.Cleanup(func() {
		ns.Shutdown()
		ns.WaitForShutdown()
	})
	return ns
}

// simFleet is a synced fleet of simulated machines that knows job j (runs
// until stopped, 1000 millicores, 1 GiB).
func simFleet(t testing.TB, regs []*cellv1.RegisterMachineRequest) *fleet {
	f := newFleet(discard, simRuntime{})
	for _, r := range regs {
		f.add(r)
	}
	f.replaceAll(nil, []*cellv1.Job{{Id: "j", Spec: &cellv1.JobSpec{Task: &cellv1.TaskTemplate{Command: "x"}}}}, 1, time.Now())
	return f
}

func TestHeartbeatsArriveOverNATS(t *testing.T) {
	ns := startNATS(t)
	regs := SimulatedMachines("hb", 3, DefaultProfile())
	f := simFleet(t, regs)
	f.applyTask(&cellv1.Task{JobId: "j", Index: 0, Attempt: 2, State: assigned, MachineId: "hb-1", ModRevision: 5,
		Resources: &cellv1.Resources{CpuMilli: 1000, MemoryBytes: 1 << 30}}, 5)
	f.sync(time.Now(), true)

	sub, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	msgs, err := sub.SubscribeSync("testcell.heartbeats.hb.fleet")
	if err != nil {
		t.Fatal(err)
	}
	if err := sub.Flush(); err != nil {
		t.Fatal(err)
	}

	hb := newHeartbeater(discard, f, simUsage{utilization: 0.5, perTask: true}, 150*time.Millisecond, 0, "test")
	hb.sender, hb.fleetSender = "hb", true
	if err := hb.configure(ns.ClientURL(), "testcell", 30*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { hb.run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	var last int64
	plain, withUsage := 0, 0
	for withUsage == 0 || plain == 0 {
		msg, err := msgs.NextMsg(5 * time.Second)
		if err != nil {
			t.Fatalf("after %d plain and %d usage batches: %v", plain, withUsage, err)
		}
		var batch cellv1.HeartbeatBatch
		if err := proto.Unmarshal(msg.Data, &batch); err != nil {
			t.Fatal(err)
		}
		if len(batch.Heartbeats) != 3 {
			t.Fatalf("batch of %d heartbeats, want all 3 machines in one message", len(batch.Heartbeats))
		}
		for i, h := range batch.Heartbeats {
			if h.MachineId != regs[i].Id {
				t.Fatalf("heartbeat %d is of %s, want %s", i, h.MachineId, regs[i].Id)
			}
			if h.TimeUnixNano <= last && i == 0 {
				t.Fatalf("heartbeat time %d not after the previous %d", h.TimeUnixNano, last)
			}
		}
		last = batch.Heartbeats[0].TimeUnixNano
		if batch.Heartbeats[0].Usage == nil {
			plain++
			continue
		}
		withUsage++
		m1 := batch.Heartbeats[1]
		if len(m1.Tasks) != 1 || m1.Tasks[0].GetAttempt() != 2 || m1.Tasks[0].GetTask().GetJobId() != "j" {
			t.Fatalf("usage heartbeat of hb-1 = %v, want the sample of j/0 attempt 2", m1)
		}
		used := m1.Tasks[0].GetUsage()
		if used.GetCpuMilli() <= 0 || used.GetCpuMilli() > 1000 || used.GetMemoryBytes() <= 0 || used.GetMemoryBytes() > 1<<30 {
			t.Fatalf("simulated usage %v is not within the reservation", used)
		}
		if m1.Usage.GetCpuMilli() != used.GetCpuMilli() || batch.Heartbeats[0].Usage.GetCpuMilli() != 0 {
			t.Fatalf("machine usage %v / %v, want the sum of their tasks", m1.Usage, batch.Heartbeats[0].Usage)
		}
	}
	if hb.heartbeats.Load() < 6 {
		t.Fatalf("published %d heartbeats, want at least two rounds of 3", hb.heartbeats.Load())
	}
}

func TestEncodeBatchesSplitsAtTheLimit(t *testing.T) {
	hbs := make([]*cellv1.Heartbeat, 3_000)
	for i := range hbs {
		hbs[i] = &cellv1.Heartbeat{MachineId: fmt.Sprintf("sim-%05d", i), TimeUnixNano: 1_700_000_000_000_000_000,
			Usage: &cellv1.Usage{CpuMilli: int64(i), MemoryBytes: int64(i) << 20}}
		for k := range i % 4 {
			hbs[i].Tasks = append(hbs[i].Tasks, &cellv1.TaskUsage{
				Task:    &cellv1.TaskRef{JobId: "0b7c6a52-2f1e-4a51-9d0e-7d1f5f0e7a11", Index: uint32(k)},
				Attempt: 1, Usage: &cellv1.Usage{CpuMilli: 100, MemoryBytes: 1 << 20}})
		}
	}
	for _, tt := range []struct{ limit int }{{16 << 10}, {maxBatchBytes - 1024}, {100}} {
		t.Run(fmt.Sprint(tt.limit), func(t *testing.T) {
			batches := encodeBatches(hbs, tt.limit)
			var got []*cellv1.Heartbeat
			total := 0
			for _, data := range batches {
				var b cellv1.HeartbeatBatch
				if err := proto.Unmarshal(data, &b); err != nil {
					t.Fatal(err)
				}
				if len(data) > tt.limit && len(b.Heartbeats) > 1 {
					t.Fatalf("batch of %d bytes holds %d heartbeats; limit %d", len(data), len(b.Heartbeats), tt.limit)
				}
				total += len(data)
				got = append(got, b.Heartbeats...)
			}
			if len(got) != len(hbs) {
				t.Fatalf("%d heartbeats came out of %d", len(got), len(hbs))
			}
			for i := range hbs {
				if !proto.Equal(got[i], hbs[i]) {
					t.Fatalf("heartbeat %d changed: %v, want %v", i, got[i], hbs[i])
				}
			}
			// Batches are full: no two neighbours would fit in one.
			if want := (total + tt.limit - 1) / tt.limit; len(batches) > 2*want && tt.limit > 1000 {
				t.Fatalf("%d batches for %d bytes at limit %d, want about %d", len(batches), total, tt.limit, want)
			}
		})
	}
}

// 10,000 plain heartbeats fit in one NATS message.
func TestTenThousandHeartbeatsFitOneMessage(t *testing.T) {
	f := simFleet(t, SimulatedMachines("sim", 10_000, DefaultProfile()))
	machines := f.running()
	hbs := make([]*cellv1.Heartbeat, len(machines))
	for i, m := range machines {
		hbs[i] = &cellv1.Heartbeat{MachineId: m.id, TimeUnixNano: time.Now().UnixNano()}
	}
	batches := encodeBatches(hbs, maxBatchBytes-1024)
	if len(batches) != 1 {
		t.Fatalf("%d batches, want 1", len(batches))
	}
	t.Logf("10,000 heartbeats: one message of %d bytes", len(batches[0]))
}

// BenchmarkHeartbeatRound10k is the agent-side cost of one heartbeat round
// of 10,000 simulated machines published to a real NATS server.
func BenchmarkHeartbeatRound10k(b *testing.B) {
	for _, usage := range []bool{false, true} {
		b.Run(fmt.Sprintf("usage=%v", usage), func(b *testing.B) {
			ns := startNATS(b)
			f := simFleet(b, SimulatedMachines("sim", 10_000, DefaultProfile()))
			for i := range 20_000 { // two tasks on every machine
				f.applyTask(&cellv1.Task{JobId: "j", Index: uint32(i), Attempt: 1, State: assigned,
					MachineId: fmt.Sprintf("sim-%04d", i%10_000), ModRevision: uint64(10 + i),
					Resources: &cellv1.Resources{CpuMilli: 500, MemoryBytes: 1 << 30}}, uint64(10+i))
			}
			f.sync(time.Now(), true)
			every := time.Hour
			if usage {
				every = 0
			}
			hb := newHeartbeater(discard, f, simUsage{utilization: 0.5, perTask: true}, every, 0, "bench")
			hb.sender, hb.fleetSender = "sim", true
			if err := hb.configure(ns.ClientURL(), "bench", time.Second); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for range b.N {
				hb.beat(time.Now())
			}
			b.StopTimer()
			b.ReportMetric(float64(hb.bytes.Load())/float64(b.N), "bytes/round")
			b.ReportMetric(float64(hb.batches.Load())/float64(b.N), "msgs/round")
		})
	}
}

// BenchmarkDecodeHeartbeatBatch10k is what a server pays to decode one
// round of 10,000 plain heartbeats.
func BenchmarkDecodeHeartbeatBatch10k(b *testing.B) {
	hbs := make([]*cellv1.Heartbeat, 10_000)
	for i := range hbs {
		hbs[i] = &cellv1.Heartbeat{MachineId: fmt.Sprintf("sim-%04d", i), TimeUnixNano: time.Now().UnixNano()}
	}
	data := encodeBatches(hbs, maxBatchBytes)[0]
	b.SetBytes(int64(len(data)))
	for range b.N {
		var batch cellv1.HeartbeatBatch
		if err := proto.Unmarshal(data, &batch); err != nil {
			b.Fatal(err)
		}
	}
}
