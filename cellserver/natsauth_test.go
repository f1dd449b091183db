package cellserver

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	"github.com/omegacell/omegacell/cellstate"
	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
	"github.com/omegacell/omegacell/proto/credentials"
	"github.com/omegacell/omegacell/proto/identity"
	"github.com/omegacell/omegacell/proto/limits"
)

// natsClient connects to the cell's NATS with b (nil: no certificate) and
// collects the asynchronous errors NATS reports (permission violations).
func natsClient(t *testing.T, s *Server, b *credentials.Bundle, withTLS bool) (*nats.Conn, chan error, error) {
	t.Helper()
	errs := make(chan error, 16)
	opts := []nats.Option{nats.Timeout(5 * time.Second), nats.NoReconnect(),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { errs <- err })}
	if withTLS {
		tc := &credentials.Bundle{Roots: s.CA().Pool()} // trusts the cell's CA
		if b != nil {
			tc = b
		}
		c := tc.ClientTLS("127.0.0.1")
		if b == nil {
			c.Certificates = nil
		}
		opts = append(opts, nats.Secure(c))
	}
	nc, err := nats.Connect(s.NATSURL(), opts...)
	if err == nil {
		t.Cleanup(nc.Close)
	}
	return nc, errs, err
}

// permissionError waits for NATS to report a permission violation.
// Expecting none, it waits less.
func permissionError(t *testing.T, nc *nats.Conn, errs chan error, wait time.Duration) error {
	t.Helper()
	_ = nc.Flush()
	select {
	case err := <-errs:
		return err
	case <-time.After(wait):
		return nil
	}
}

func heartbeat(t *testing.T, ids ...string) []byte {
	t.Helper()
	b := &cellv1.HeartbeatBatch{}
	for _, id := range ids {
		b.Heartbeats = append(b.Heartbeats, &cellv1.Heartbeat{MachineId: id})
	}
	data, err := proto.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// The embedded NATS admits only agents (and the server itself): an agent
// publishes on its own heartbeat subject and subscribes to its own logs
// subject, nothing else; nobody but the server hears heartbeats.
func TestNATSAuthentication(t *testing.T) {
	s := startSecure(t, t.TempDir())
	now := time.Now()
	agentA := bundleFor(t, s.CA(), mustID(t, identity.Agent, "node.a"), now, time.Hour)
	fleetID, _ := identity.NewFleet("sim")
	fleet := bundleFor(t, s.CA(), fleetID, now, time.Hour)
	user := bundleFor(t, s.CA(), mustID(t, identity.User, "eve", "ml"), now, time.Hour)
	revoked := bundleFor(t, s.CA(), mustID(t, identity.Agent, "node-r"), now, time.Hour)
	if _, err := s.revoked.Revoke(credentials.Serial(revoked.Leaf), "agent/node-r", revoked.Leaf.NotAfter); err != nil {
		t.Fatal(err)
	}
	prefix := cellstate.DefaultSubjectPrefix
	subj := func(id string) string { v, _ := limits.HeartbeatSubject(prefix, id); return v }
	fleetSubj, _ := limits.FleetHeartbeatSubject(prefix, "sim")
	logsA, _ := limits.LogsSubject(prefix, "node.a")
	logsB, _ := limits.LogsSubject(prefix, "node-b")

	t.Run("refused connections", func(t *testing.T) {
		for _, tc := range []struct {
			name    string
			b       *credentials.Bundle
			withTLS bool
		}{
			{"plaintext", nil, false},
			{"TLS without a certificate", nil, true},
			{"a user", user, true},
			{"a revoked agent", revoked, true},
		} {
			if _, _, err := natsClient(t, s, tc.b, tc.withTLS); err == nil {
				t.Errorf("%s: connected", tc.name)
			}
		}
	})

	nc, errs, err := natsClient(t, s, agentA, true)
	if err != nil {
		t.Fatalf("agent node.a: %v", err)
	}
	t.Run("agent may use its own subjects", func(t *testing.T) {
		if err := nc.Publish(subj("node.a"), heartbeat(t, "node.a")); err != nil {
			t.Fatal(err)
		}
		if _, err := nc.SubscribeSync(logsA); err != nil {
			t.Fatal(err)
		}
		if err := permissionError(t, nc, errs, 500*time.Millisecond); err != nil {
			t.Fatalf("own subjects refused: %v", err)
		}
	})
	for _, tc := range []struct {
		name string
		do   func() error
	}{
		{"publish on another agent's subject", func() error { return nc.Publish(subj("node-b"), heartbeat(t, "node-b")) }},
		{"publish on a fleet's subject", func() error { return nc.Publish(fleetSubj, heartbeat(t, "sim-1")) }},
		{"subscribe to heartbeats", func() error { _, err := nc.SubscribeSync(prefix + ".heartbeats.>"); return err }},
		{"subscribe to another agent's logs", func() error { _, err := nc.SubscribeSync(logsB); return err }},
		{"publish a log request", func() error { return nc.Publish(logsB, []byte("x")) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.do(); err != nil {
				return // refused at once
			}
			err := permissionError(t, nc, errs, 5*time.Second)
			if err == nil || !strings.Contains(strings.ToLower(err.Error()), "permission") {
				t.Fatalf("allowed (async error %v)", err)
			}
		})
	}

	fc, ferrs, err := natsClient(t, s, fleet, true)
	if err != nil {
		t.Fatalf("fleet: %v", err)
	}
	t.Run("fleet", func(t *testing.T) {
		if err := fc.Publish(fleetSubj, heartbeat(t, "sim-1")); err != nil {
			t.Fatal(err)
		}
		if err := permissionError(t, fc, ferrs, 500*time.Millisecond); err != nil {
			t.Fatalf("own subject refused: %v", err)
		}
		_ = fc.Publish(subj("sim-1"), heartbeat(t, "sim-1"))
		if err := permissionError(t, fc, ferrs, 5*time.Second); err == nil {
			t.Fatal("a fleet published on a machine's own subject")
		}
	})
}

// A registered machine's heartbeats, sent as its agent would, reach the
// server's liveness over authenticated NATS.
func TestHeartbeatsOverAuthenticatedNATS(t *testing.T) {
	s := startSecure(t, t.TempDir())
	conn := adminConn(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	machines := cellv1.NewMachineServiceClient(conn)
	if _, err := machines.RegisterMachine(ctx, &cellv1.RegisterMachineRequest{Id: "node.a", Capacity: &cellv1.Resources{CpuMilli: 1000, MemoryBytes: 1 << 30}}); err != nil {
		t.Fatal(err)
	}
	agentA := bundleFor(t, s.CA(), mustID(t, identity.Agent, "node.a"), time.Now(), time.Hour)
	nc, _, err := natsClient(t, s, agentA, true)
	if err != nil {
		t.Fatal(err)
	}
	subject, _ := limits.HeartbeatSubject(cellstate.DefaultSubjectPrefix, "node.a")
	get := func() *cellv1.Machine {
		r, err := machines.GetMachine(ctx, &cellv1.GetMachineRequest{Id: "node.a"})
		if err != nil {
			t.Fatal(err)
		}
		return r.Machine
	}
	before := get().LastHeartbeatUnixNano
	time.Sleep(5 * time.Millisecond)
	for get().LastHeartbeatUnixNano == before {
		if ctx.Err() != nil {
			t.Fatal("heartbeat never arrived")
		}
		if err := nc.Publish(subject, heartbeat(t, "node.a")); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Revoking a credential also closes the NATS connections open with it; the
// other agents' stay.
func TestRevocationClosesOpenNATSConnections(t *testing.T) {
	s := startSecure(t, t.TempDir())
	victim := bundleFor(t, s.CA(), mustID(t, identity.Agent, "node-v"), time.Now(), time.Hour)
	other := bundleFor(t, s.CA(), mustID(t, identity.Agent, "node-o"), time.Now(), time.Hour)
	vc, _, err := natsClient(t, s, victim, true)
	if err != nil {
		t.Fatal(err)
	}
	oc, _, err := natsClient(t, s, other, true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.revoked.Revoke(credentials.Serial(victim.Leaf), "agent/node-v", victim.Leaf.NotAfter); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !vc.IsClosed() {
		if time.Now().After(deadline) {
			t.Fatalf("the revoked agent's connection is still %v", vc.Status())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := oc.Flush(); err != nil || oc.IsClosed() {
		t.Fatalf("another agent's connection: %v, closed %v", err, oc.IsClosed())
	}
	if _, _, err := natsClient(t, s, victim, true); err == nil {
		t.Fatal("the revoked agent reconnected")
	}
}
