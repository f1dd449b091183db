package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	grpccreds "google.golang.org/grpc/credentials"

	"github.com/omegacell/omegacell/cellstate"
	"github.com/omegacell/omegacell/internal/celltest"
	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
	"github.com/omegacell/omegacell/proto/credentials"
)

// cellBinary is the `cell` binary built once for the tests that run it
// as a child process.
var cellBinary string

func TestMain(m *testing.M) {
	path, cleanup, err := celltest.Build(".", "cell")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	cellBinary = path
	code := m.Run()
	cleanup()
	os.Exit(code)
}

// childServer is `cell server` running as a child process.
type childServer struct {
	cmd  *exec.Cmd
	addr string
	conn *grpc.ClientConn
}

var readyRE = regexp.MustCompile(`cell server ready"? grpc=(\S+)`)

func startChildServer(t *testing.T, dataDir string, extra ...string) *childServer {
	t.Helper()
	args := append([]string{"server", "--data", dataDir, "--listen", "127.0.0.1:0", "--metrics", "", "--nats-listen", "127.0.0.1:-1"}, extra...)
	cmd := exec.Command(cellBinary, args...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addrc := make(chan string, 1)
	var logMu sync.Mutex
	var log []string
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			logMu.Lock()
			log = append(log, sc.Text())
			logMu.Unlock()
			if m := readyRE.FindStringSubmatch(sc.Text()); m != nil {
				addrc <- m[1]
			}
		}
		io.Copy(io.Discard, stderr)
	}()
	s := &childServer{cmd: cmd}
	select {
	case s.addr = <-addrc:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		cmd.Wait()
		logMu.Lock()
		defer logMu.Unlock()
		t.Fatalf("cell server did not become ready; its log:\n%s", strings.Join(log, "\n"))
	}
	admin, err := credentials.Load(filepath.Join(dataDir, "pki", "admin"))
	if err != nil {
		t.Fatal(err)
	}
	s.conn, err = grpc.NewClient(s.addr, grpc.WithTransportCredentials(grpccreds.NewTLS(admin.ClientTLS("127.0.0.1"))))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.kill)
	return s
}

func (s *childServer) kill() {
	if s.cmd.ProcessState == nil {
		s.cmd.Process.Signal(syscall.SIGKILL)
		s.cmd.Wait()
	}
	s.conn.Close()
}

// TestCrashSafety commits under load from several clients, SIGKILLs the
// server at random moments, restarts it, and checks that every
// acknowledged change is there and that the invariant holds.
func TestCrashSafety(t *testing.T) {
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(2026, 11))
	const machines, rounds, clients = 16, 4, 4

	type ack struct {
		job     string
		index   uint32
		machine string
	}
	var acked []ack
	var ackedJobs []string
	for round := range rounds {
		// Checkpoints every few revisions, so kills also land during and
		// between checkpoints, not only in log replay.
		srv := startChildServer(t, dir, "--checkpoint-revisions", "7")
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		mc := cellv1.NewMachineServiceClient(srv.conn)
		jc := cellv1.NewJobServiceClient(srv.conn)
		sc := cellv1.NewStateServiceClient(srv.conn)

		// Everything acknowledged before the crash must have survived it.
		verify(t, ctx, srv.conn, round, func(tasks map[string]*cellv1.Task, jobs map[string]bool) {
			for _, j := range ackedJobs {
				if !jobs[j] {
					t.Fatalf("round %d: acknowledged job %s lost", round, j)
				}
			}
			for _, a := range acked {
				tk := tasks[fmt.Sprintf("%s/%d", a.job, a.index)]
				if tk == nil || tk.MachineId != a.machine || tk.State != cellv1.TaskState_TASK_STATE_ASSIGNED {
					t.Fatalf("round %d: acknowledged claim %s/%d -> %s lost (now %v)", round, a.job, a.index, a.machine, tk)
				}
			}
		})
		for i := range machines {
			_, err := mc.RegisterMachine(ctx, &cellv1.RegisterMachineRequest{
				Id: fmt.Sprintf("m%02d", i), Capacity: &cellv1.Resources{CpuMilli: 64000, MemoryBytes: 256 << 30, GpuMilli: 4000},
			})
			if err != nil {
				t.Fatalf("round %d: register: %v", round, err)
			}
		}
		resp, err := jc.SubmitJob(ctx, &cellv1.SubmitJobRequest{Spec: &cellv1.JobSpec{
			Name: fmt.Sprintf("load-%d", round), Scheduler: "batch", Priority: 100, Count: 1500,
			Task: &cellv1.TaskTemplate{Command: "x", Resources: &cellv1.Resources{CpuMilli: 100, MemoryBytes: 1 << 20, GpuMilli: 10}},
		}})
		if err != nil {
			t.Fatal(err)
		}
		job := resp.Job
		ackedJobs = append(ackedJobs, job.Id)

		var mu sync.Mutex
		var wg sync.WaitGroup
		next := uint32(0)
		for cl := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				crng := rand.New(rand.NewPCG(uint64(round), uint64(cl)))
				for {
					mu.Lock()
					start := next
					n := uint32(1 + crng.IntN(20))
					if start+n > job.Spec.Count {
						mu.Unlock()
						return
					}
					next += n
					mu.Unlock()
					req := &cellv1.CommitRequest{Scheduler: "batch"}
					for i := start; i < start+n; i++ {
						req.Claims = append(req.Claims, &cellv1.Claim{
							Task: &cellv1.TaskRef{JobId: job.Id, Index: i}, MachineId: fmt.Sprintf("m%02d", crng.IntN(machines)),
							Resources: job.Spec.Task.Resources, Devices: []*cellv1.DeviceShare{{Device: uint32(crng.IntN(4)), Milli: 10}},
						})
					}
					r, err := sc.Commit(ctx, req)
					if err != nil {
						return // the server died: this commit was never acknowledged
					}
					mu.Lock()
					for i, res := range r.Results {
						if res.Outcome == cellv1.ClaimOutcome_CLAIM_OUTCOME_ACCEPTED {
							acked = append(acked, ack{job.Id, req.Claims[i].Task.Index, req.Claims[i].MachineId})
						}
					}
					mu.Unlock()
				}
			}()
		}
		time.Sleep(time.Duration(10+rng.IntN(120)) * time.Millisecond)
		srv.cmd.Process.Signal(syscall.SIGKILL)
		srv.cmd.Wait()
		wg.Wait()
		cancel()
		srv.conn.Close()
		t.Logf("round %d: killed with %d acknowledged claims so far (%d of this round's tasks handed out)", round, len(acked), next)
		if next >= job.Spec.Count {
			t.Logf("round %d: the load finished before the kill", round)
		}
	}
	srv := startChildServer(t, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	verify(t, ctx, srv.conn, rounds, func(tasks map[string]*cellv1.Task, jobs map[string]bool) {
		for _, a := range acked {
			tk := tasks[fmt.Sprintf("%s/%d", a.job, a.index)]
			if tk == nil || tk.MachineId != a.machine {
				t.Fatalf("final: acknowledged claim %s/%d -> %s lost", a.job, a.index, a.machine)
			}
		}
	})
	if len(acked) == 0 {
		t.Fatal("no commit was acknowledged: the test did not test anything")
	}
}

// verify reads a snapshot, checks the invariant, and hands the tasks and
// jobs to check.
func verify(t *testing.T, ctx context.Context, conn *grpc.ClientConn, round int, check func(map[string]*cellv1.Task, map[string]bool)) {
	t.Helper()
	stream, err := cellv1.NewStateServiceClient(conn).Snapshot(ctx, &cellv1.SnapshotRequest{})
	if err != nil {
		t.Fatal(err)
	}
	all := &cellv1.SnapshotResponse{}
	for {
		r, err := stream.Recv()
		if err != nil {
			t.Fatalf("round %d: snapshot: %v", round, err)
		}
		all.Machines = append(all.Machines, r.Machines...)
		all.Jobs = append(all.Jobs, r.Jobs...)
		all.Tasks = append(all.Tasks, r.Tasks...)
		if r.Last {
			break
		}
	}
	if err := cellstate.CheckSnapshot(all.Machines, all.Jobs, all.Tasks); err != nil {
		t.Fatalf("round %d: invariant broken after restart: %v", round, err)
	}
	tasks := make(map[string]*cellv1.Task, len(all.Tasks))
	for _, tk := range all.Tasks {
		tasks[fmt.Sprintf("%s/%d", tk.JobId, tk.Index)] = tk
	}
	jobs := make(map[string]bool)
	for _, j := range all.Jobs {
		jobs[j.Id] = true
	}
	check(tasks, jobs)
}
