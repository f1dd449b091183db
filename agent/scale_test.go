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

	"github.com/omegacell/omegacell/agent/procstat"
	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
	"github.com/omegacell/omegacell/proto/credentials"
	"github.com/omegacell/omegacell/proto/identity"
)

// BenchmarkTenThousandMachines runs a `cell server` as its own process and
// 10,000 simulated machines heartbeating at the server's 1 Hz in this one,
// and reports the CPU each side uses while the fleet is steady (percent of
// one core), and how long registering the fleet took: with mutual TLS and
// authenticated NATS (a fleet credential), as `cell server` runs by
// default, and with --insecure, side by side. Needs a built cell binary:
//
//	go build -o /tmp/cell ./cmd/cell
//	CELL_BIN=/tmp/cell go test -run '^$' -bench TenThousandMachines -benchtime 1x ./agent/
func BenchmarkTenThousandMachines(b *testing.B) {
	bin := os.Getenv("CELL_BIN")
	if bin == "" {
		b.Skip("set CELL_BIN to a built cell binary (go build -o /tmp/cell ./cmd/cell)")
	}
	window := 10 * time.Second
	if s := os.Getenv("SCALE_WINDOW"); s != "" {
		window, _ = time.ParseDuration(s)
	}
	for _, mode := range []string{"mtls", "insecure"} {
		b.Run(mode, func(b *testing.B) { benchTenThousandMachines(b, bin, window, mode == "insecure") })
	}
}

func benchTenThousandMachines(b *testing.B, bin string, window time.Duration, insecureMode bool) {
	const machines = 10_000
	for range b.N {
		addr := freeAddr(b)
		data := filepath.Join(b.TempDir(), "cell")
		args := []string{"server", "--data", data, "--listen", addr, "--metrics", "", "--heartbeat", "1s", "--log-level", "warn"}
		if insecureMode {
			args = append(args, "--insecure")
		}
		server := exec.Command(bin, args...)
		server.Stderr = os.Stderr
		if err := server.Start(); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = server.Process.Kill(); _ = server.Wait() })
		creds := waitForServer(b, addr, filepath.Join(data, "pki", "admin"), insecureMode)

		sim, err := NewSimulation(SimConfig{Server: addr, Credentials: creds, Machines: machines, Profile: DefaultProfile(), Logger: discard})
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

// waitForServer waits until the server answers, and returns the fleet's
// credentials: insecure, or a fleet credential for "sim" requested with
// the admin bundle the server wrote in adminDir.
func waitForServer(b *testing.B, addr, adminDir string, insecureMode bool) credentials.Client {
	deadline := time.Now().Add(30 * time.Second)
	admin := credentials.Client{Insecure: insecureMode}
	for !insecureMode && admin.Bundle == nil {
		bundle, err := credentials.Load(adminDir)
		if err != nil && time.Now().After(deadline) {
			b.Fatalf("no admin bundle: %v", err)
		}
		admin.Bundle = bundle
		time.Sleep(50 * time.Millisecond)
	}
	transport, err := admin.DialOption(addr)
	if err != nil {
		b.Fatal(err)
	}
	cc, err := grpc.NewClient(addr, transport)
	if err != nil {
		b.Fatal(err)
	}
	defer cc.Close()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := cellv1.NewMachineServiceClient(cc).ListMachines(ctx, &cellv1.ListMachinesRequest{})
		cancel()
		if err == nil {
			if insecureMode {
				return admin
			}
			fleet, err := identity.NewFleet("sim")
			if err != nil {
				b.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			bundle, _, _, _, err := credentials.Request(ctx, cc, fleet, time.Hour)
			if err != nil {
				b.Fatal(err)
			}
			return credentials.Client{Bundle: bundle}
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
