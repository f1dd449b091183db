package cellserver

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/omegacell/omegacell/cellstate"
	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
	"github.com/omegacell/omegacell/proto/identity"
	"github.com/omegacell/omegacell/proto/limits"
)

// TestAuthzNATSAttacks replays attack 11 of issue 10 as the attacker
// would, with a plain NATS client: forged heartbeats for another machine
// (on its subject, or on one's own naming it, with usage), and
// eavesdropping on heartbeats, with no credential or with another agent's.
// Each is refused, and the victim machine's liveness and usage are as
// they were.
func TestAuthzNATSAttacks(t *testing.T) {
	s := startSecure(t, t.TempDir())
	conn := adminConn(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	machines := cellv1.NewMachineServiceClient(conn)
	for _, id := range []string{"node-a", "node-b"} {
		if _, err := machines.RegisterMachine(ctx, &cellv1.RegisterMachineRequest{Id: id, Capacity: &cellv1.Resources{CpuMilli: 1000, MemoryBytes: 1 << 30}}); err != nil {
			t.Fatal(err)
		}
	}
	get := func(id string) *cellv1.Machine {
		r, err := machines.GetMachine(ctx, &cellv1.GetMachineRequest{Id: id})
		if err != nil {
			t.Fatal(err)
		}
		return r.Machine
	}
	victim := get("node-b")

	if _, _, err := natsClient(t, s, nil, false); err == nil {
		t.Error("a plaintext NATS client without credential connected")
	}
	if _, _, err := natsClient(t, s, nil, true); err == nil {
		t.Error("a TLS NATS client without certificate connected")
	}
	attacker := bundleFor(t, s.CA(), mustID(t, identity.Agent, "node-a"), time.Now(), time.Hour)
	nc, errs, err := natsClient(t, s, attacker, true)
	if err != nil {
		t.Fatal(err)
	}
	prefix := cellstate.DefaultSubjectPrefix
	own, _ := limits.HeartbeatSubject(prefix, "node-a")
	theirs, _ := limits.HeartbeatSubject(prefix, "node-b")
	forged := &cellv1.Heartbeat{MachineId: "node-b", Usage: &cellv1.Usage{CpuMilli: 999, MemoryBytes: 1 << 29}}
	for _, tc := range []struct {
		name string
		do   func() error
	}{
		{"publish node-b's heartbeat on its subject", func() error { return nc.Publish(theirs, heartbeatOf(t, forged)) }},
		{"eavesdrop on every heartbeat", func() error { _, err := nc.SubscribeSync(prefix + ".heartbeats.>"); return err }},
		{"eavesdrop on node-b's heartbeats", func() error { _, err := nc.SubscribeSync(theirs); return err }},
	} {
		if err := tc.do(); err != nil {
			continue // refused at once
		}
		if err := permissionError(t, nc, errs, 5*time.Second); err == nil || !strings.Contains(strings.ToLower(err.Error()), "permission") {
			t.Errorf("%s: allowed (async error %v)", tc.name, err)
		}
	}
	// On its own subject, a payload naming node-b is dropped by the server;
	// node-a's own heartbeat, after it on the same connection, arrives.
	before := get("node-a").LastHeartbeatUnixNano
	if err := nc.Publish(own, heartbeatOf(t, forged)); err != nil {
		t.Fatal(err)
	}
	for get("node-a").LastHeartbeatUnixNano == before {
		if ctx.Err() != nil {
			t.Fatal("node-a's own heartbeat never arrived")
		}
		if err := nc.Publish(own, heartbeatOf(t, &cellv1.Heartbeat{MachineId: "node-a"})); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	after := get("node-b")
	if after.LastHeartbeatUnixNano != victim.LastHeartbeatUnixNano || after.GetUsage().GetCpuMilli() != victim.GetUsage().GetCpuMilli() {
		t.Errorf("node-b took a forged heartbeat: last %d → %d, usage %v → %v",
			victim.LastHeartbeatUnixNano, after.LastHeartbeatUnixNano, victim.GetUsage(), after.GetUsage())
	}
}

func heartbeatOf(t *testing.T, hbs ...*cellv1.Heartbeat) []byte {
	t.Helper()
	data, err := proto.Marshal(&cellv1.HeartbeatBatch{Heartbeats: hbs})
	if err != nil {
		t.Fatal(err)
	}
	return data
}
