package cellserver

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// A server started on port 0 everywhere serves gRPC, /metrics and an
// embedded NATS at the addresses it reports, keeps what it acknowledged
// across a restart on the same data directory, and shuts down cleanly.
func TestStartServesAndRestartKeepsState(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{DataDir: dir, Listen: "127.0.0.1:0", Metrics: "127.0.0.1:0", NATSListen: "127.0.0.1:-1", Insecure: true}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	s, err := Start(cfg, quiet)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(s.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	reg := &cellv1.RegisterMachineRequest{Id: "m1", Capacity: &cellv1.Resources{CpuMilli: 4000, MemoryBytes: 8 << 30}}
	r, err := cellv1.NewMachineServiceClient(conn).RegisterMachine(ctx, reg)
	if err != nil {
		t.Fatalf("register through %s: %v", s.Addr(), err)
	}
	if r.NatsUrl != s.NATSURL() || !strings.HasPrefix(s.NATSURL(), "nats://127.0.0.1:") {
		t.Errorf("agents are told NATS %q; the server embeds %q", r.NatsUrl, s.NATSURL())
	}
	nc, err := nats.Connect(s.NATSURL(), nats.Timeout(5*time.Second))
	if err != nil {
		t.Fatalf("embedded NATS at %s: %v", s.NATSURL(), err)
	}
	nc.Close()

	resp, err := http.Get("http://" + s.MetricsAddr() + "/metrics")
	if err != nil {
		t.Fatalf("metrics at %q: %v", s.MetricsAddr(), err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"omegacell_store_revision", "go_goroutines"} {
		if !strings.Contains(string(page), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	s.Close()

	s2, err := Start(cfg, quiet)
	if err != nil {
		t.Fatalf("restart on the same data: %v", err)
	}
	defer s2.Close()
	if s2.Addr() == "" || s2.MetricsAddr() == "" {
		t.Fatalf("restarted server reports addresses %q, %q", s2.Addr(), s2.MetricsAddr())
	}
	conn2, err := grpc.NewClient(s2.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn2.Close()
	m, err := cellv1.NewMachineServiceClient(conn2).GetMachine(ctx, &cellv1.GetMachineRequest{Id: "m1"})
	if err != nil || m.GetMachine().GetCapacity().GetCpuMilli() != 4000 {
		t.Fatalf("machine after restart = %v, %v", m, err)
	}
}

// Start refuses what it cannot do, naming the flag, and leaves nothing
// running (the data directory's store can be opened again).
func TestStartErrors(t *testing.T) {
	dir := t.TempDir()
	busy, err := Start(Config{DataDir: t.TempDir(), Listen: "127.0.0.1:0", NATSListen: "127.0.0.1:-1"}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	for _, c := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"listen address in use", Config{DataDir: dir, Listen: busy.Addr(), NATSListen: "127.0.0.1:-1"}, "--listen"},
		{"metrics address in use", Config{DataDir: dir, Listen: "127.0.0.1:0", Metrics: busy.Addr(), NATSListen: "127.0.0.1:-1"}, "--metrics"},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, err := Start(c.cfg, quiet)
			if err == nil {
				s.Close()
				t.Fatal("started")
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q does not name %s", err, c.want)
			}
		})
	}
	ok, err := Start(Config{DataDir: dir, Listen: "127.0.0.1:0", NATSListen: "127.0.0.1:-1"}, quiet)
	if err != nil {
		t.Fatalf("the store was left open by a failed start: %v", err)
	}
	ok.Close()
}
