package agent

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/omegacell/omegacell/agent/procstat"
	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
)

// BenchmarkTenThousandMachines runs a `cell server` as its own process and
// 10,000 simulated machines heartbeating at the server's 1 Hz in this one,
// and reports the CPU each side uses while the fleet is steady (percent of
// one core), and how long registering the fleet took. Needs a built cell
// binary:
//
//	go build -o /tmp/cell ./cmd/cell
//	CELL_BIN=/tmp/cell go test -run '^$' -bench TenThousandMachines -benchtime 1x ./agent/
func BenchmarkTenThousandMachines(b *testing.B) {
	bin := os.Getenv("CELL_BIN")
	if bin == "" {
		b.Skip("set CELL_BIN to a built cell binary (go build -o /tmp/cell ./cmd/cell)")
	}
	const machines = 10_000
	window := 10 * time.Second
	if s := os.Getenv("SCALE_WINDOW"); s != "" {
		window, _ = time.ParseDuration(s)
	}
	for range b.N {
		addr := freeAddr(b)
		server := exec.Command(bin, "server", "--data", filepath.Join(b.TempDir(), "cell"), "--listen", addr,
			"--metrics", "", "--heartbeat", "1s", "--log-level", "warn")
		server.Stderr = os.Stderr
		if err := server.Start(); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = server.Process.Kill(); _ = server.Wait() })
		waitForServer(b, addr)

		sim, err := NewSimulation(SimConfig{Server: addr, Machines: machines, Profile: DefaultProfile(), Logger: discard})
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		began := time.Now()
		go func() { done <- sim.Run(ctx) }()
		select {
		case <-sim.Synced():
		case <-time.After(2 * time.Minute):
			b.Fatal("fleet did not register and sync within 2 minutes")
		}
		b.ReportMetric(time.Since(began).Seconds(), "s-to-register")
		time.Sleep(3 * time.Second) // steady state

		serverBefore := cpuOf(b, server.Process.Pid)
		selfBefore := cpuOf(b, os.Getpid())
		beatsBefore := sim.hb.heartbeats.Load()
		start := time.Now()
		time.Sleep(window)
		elapsed := time.Since(start)
		b.ReportMetric(percentOfCore(cpuOf(b, server.Process.Pid)-serverBefore, elapsed), "server-%core")
		b.ReportMetric(percentOfCore(cpuOf(b, os.Getpid())-selfBefore, elapsed), "fleet-%core")
		b.ReportMetric(float64(sim.hb.heartbeats.Load()-beatsBefore)/elapsed.Seconds(), "heartbeats/s")

		cancel()
		if err := <-done; err != nil {
			b.Fatal(err)
		}
	}
}

func freeAddr(b *testing.B) string {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer lis.Close()
	return lis.Addr().String()
}

func waitForServer(b *testing.B, addr string) {
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	defer cc.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := cellv1.NewMachineServiceClient(cc).ListMachines(ctx, &cellv1.ListMachinesRequest{})
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("cell server at %s not answering: %v", addr, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// cpuOf is the CPU time a process has used (all its threads).
func cpuOf(b *testing.B, pid int) time.Duration {
	p, err := procstat.ReadProcess("/proc", pid)
	if err != nil {
		b.Fatal(err)
	}
	return time.Duration(p.CPUTicks) * time.Second / procstat.TicksPerSecond
}

func percentOfCore(cpu, elapsed time.Duration) float64 {
	return 100 * cpu.Seconds() / elapsed.Seconds()
}
