package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	"github.com/omegacell/omegacell/agent"
	"github.com/omegacell/omegacell/cellserver"
	"github.com/omegacell/omegacell/cellstate"
	"github.com/omegacell/omegacell/internal/celltest"
	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
	"github.com/omegacell/omegacell/proto/credentials"
	"github.com/omegacell/omegacell/proto/identity"
	"github.com/omegacell/omegacell/proto/limits"
)

// flood publishes heartbeat batches for unknown machines (and garbage)
// from several connections until stop closes, and returns how many
// heartbeats it sent. The flooder is as strong as NATS lets anyone be: an
// authenticated simulated fleet ("intruder") on its own subject.
func flood(t *testing.T, c *celltest.Cell, stop <-chan struct{}) func() int64 {
	t.Helper()
	var sent atomic.Int64
	var wg sync.WaitGroup
	batch := &cellv1.HeartbeatBatch{}
	for i := range 500 {
		batch.Heartbeats = append(batch.Heartbeats, &cellv1.Heartbeat{MachineId: fmt.Sprintf("intruder-%06d", i), TimeUnixNano: 1})
	}
	subject, err := limits.FleetHeartbeatSubject(cellstate.DefaultSubjectPrefix, "intruder")
	if err != nil {
		t.Fatal(err)
	}
	creds := c.Credentials(t, identity.Identity{Role: identity.Agent, Name: "intruder", Fleet: true})
	url := c.Server.NATSURL()
	data, err := proto.Marshal(batch)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		nc, err := nats.Connect(url, nats.Secure(creds.Bundle.ClientTLS(credentials.ServerName(url))))
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer nc.Close()
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				payload := data
				if n%7 == 0 {
					payload = []byte("\xff\xff garbage")
				}
				if nc.Publish(subject, payload) == nil && n%7 != 0 {
					sent.Add(int64(len(batch.Heartbeats)))
				}
			}
		}()
	}
	return func() int64 { wg.Wait(); return sent.Load() }
}

// A client floods the heartbeat subject for longer than twice the grace
// while a real agent runs a real task: the machine stays ready, the task
// keeps running as the same attempt, and the flood's unknown machines
// leave no metric series behind.
func TestHostileHeartbeatFloodNeverMarksALiveMachineDown(t *testing.T) {
	c := celltest.StartWith(t, func(cfg *cellserver.Config) {
		cfg.Grace = 1500 * time.Millisecond
		cfg.Heartbeat = 200 * time.Millisecond
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	a, err := agent.New(ctx, agent.Config{
		StopTasksOnExit: true,
		Server:          c.Addr, Credentials: c.Credentials(t, celltest.Identity(t, identity.Agent, "m1")), Name: "m1", DataDir: filepath.Join(t.TempDir(), "agent"), CgroupRoot: "-",
		UsageInterval: 200 * time.Millisecond, StopGrace: time.Second, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	agentCtx, stopAgent := context.WithCancel(ctx)
	agentDone := make(chan error, 1)
	go func() { agentDone <- a.Run(agentCtx) }()
	var stopOnce sync.Once
	stopAgentNow := func() { stopOnce.Do(func() { stopAgent(); <-agentDone }) }
	defer cancel()
	defer stopAgentNow()

	machines := cellv1.NewMachineServiceClient(c.Conn)
	jobs := cellv1.NewJobServiceClient(c.Conn)
	eventually(t, "the agent registers and heartbeats", 20*time.Second, func() bool {
		r, err := machines.GetMachine(ctx, &cellv1.GetMachineRequest{Id: "m1"})
		return err == nil && r.Machine.LastHeartbeatUnixNano > 0
	})
	job, err := jobs.SubmitJob(ctx, &cellv1.SubmitJobRequest{Spec: &cellv1.JobSpec{
		Name: "long", Scheduler: "batch", Count: 1,
		Task: &cellv1.TaskTemplate{Command: "/bin/sleep", Args: []string{"300"}, Resources: &cellv1.Resources{CpuMilli: 100, MemoryBytes: 1 << 20}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	r, err := cellv1.NewStateServiceClient(c.Conn).Commit(ctx, &cellv1.CommitRequest{Scheduler: "batch", Claims: []*cellv1.Claim{{
		Task: &cellv1.TaskRef{JobId: job.Job.Id}, MachineId: "m1", Resources: job.Job.Spec.Task.Resources}}})
	if err != nil || r.Accepted != 1 {
		t.Fatalf("placing the task: %v %v", r, err)
	}
	task := func() *cellv1.Task {
		g, err := jobs.GetJob(ctx, &cellv1.GetJobRequest{IdOrName: job.Job.Id, IncludeTasks: true})
		if err != nil {
			t.Fatal(err)
		}
		return g.Tasks[0]
	}
	eventually(t, "the task runs", 20*time.Second, func() bool { return task().State == cellv1.TaskState_TASK_STATE_RUNNING })

	stop := make(chan struct{})
	wait := flood(t, c, stop)
	deadline := time.Now().Add(4 * time.Second)
	for time.Now().Before(deadline) {
		m, err := machines.GetMachine(ctx, &cellv1.GetMachineRequest{Id: "m1"})
		if err != nil {
			t.Fatal(err)
		}
		if m.Machine.State != cellv1.MachineState_MACHINE_STATE_READY {
			close(stop)
			wait()
			t.Fatalf("during the flood the machine became %v", m.Machine.State)
		}
		time.Sleep(100 * time.Millisecond)
	}
	close(stop)
	sent := wait()
	// Past another grace after the flood, still up, still the same attempt.
	time.Sleep(2 * time.Second)
	m, err := machines.GetMachine(ctx, &cellv1.GetMachineRequest{Id: "m1"})
	if err != nil || m.Machine.State != cellv1.MachineState_MACHINE_STATE_READY {
		t.Fatalf("after the flood: %v %v", m.GetMachine().GetState(), err)
	}
	if tk := task(); tk.State != cellv1.TaskState_TASK_STATE_RUNNING || tk.Attempt != 1 {
		t.Fatalf("after the flood the task is %v attempt %d; want running attempt 1", tk.State, tk.Attempt)
	}
	unknown, _ := c.Metric(t, "omegacell_heartbeats_unknown_machine_total")
	dropped, _ := c.Metric(t, "omegacell_heartbeats_dropped_messages_total")
	if unknown == 0 {
		t.Fatalf("the flood sent %d heartbeats; the server counted none as unknown", sent)
	}
	for _, name := range []string{"omegacell_machine_used_cpu_millicores", "omegacell_machine_reserved_cpu_millicores"} {
		if _, series := c.Metric(t, name); series > 1 {
			t.Errorf("%s has %d series after a flood of unknown machines; want at most 1 (m1)", name, series)
		}
	}
	t.Logf("flood: %d heartbeats sent, %.0f counted unknown, %.0f messages dropped by the subscription", sent, unknown, dropped)

	// Silence that is real still counts: the agent stops, and the machine
	// is marked down (the watermark moves once the flood is over).
	stopAgentNow()
	eventually(t, "the stopped agent's machine is marked down", 15*time.Second, func() bool {
		m, err := machines.GetMachine(ctx, &cellv1.GetMachineRequest{Id: "m1"})
		return err == nil && m.Machine.State == cellv1.MachineState_MACHINE_STATE_DOWN
	})
}
