package cellstate

import (
	"testing"

	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
	"github.com/omegacell/omegacell/proto/limits"
)

// A heartbeat counts only when its subject's sender speaks for the
// machine it names and that machine is registered; the others leave no
// trace in the liveness tables.
func TestHeartbeatSenderCheck(t *testing.T) {
	c := newTestCell(t, Options{})
	for _, id := range []string{"node-1", "node.2", "sim-001", "sim-002"} {
		c.addMachine(id, nil, 4000, 4*gib, 0)
	}
	l := &Liveness{store: c.store, opts: LivenessOptions{Prefix: DefaultSubjectPrefix}, machines: map[string]*machineLive{},
		marks: []*markStream{{subject: markSubject(limits.HeartbeatWildcard(DefaultSubjectPrefix))}}}
	heard := func() map[string]time.Time {
		out := map[string]time.Time{}
		for id, m := range l.machines {
			if !m.last.IsZero() {
				out[id] = m.last
			}
		}
		return out
	}
	agent := func(id string) string { s, _ := limits.HeartbeatSubject(DefaultSubjectPrefix, id); return s }
	fleet := func(p string) string { s, _ := limits.FleetHeartbeatSubject(DefaultSubjectPrefix, p); return s }
	cases := []struct {
		name    string
		subject string
		ids     []string
		want    []string
	}{
		{"own machine", agent("node-1"), []string{"node-1"}, []string{"node-1"}},
		{"dotted id", agent("node.2"), []string{"node.2"}, []string{"node.2"}},
		{"another machine", agent("node-1"), []string{"node.2"}, nil},
		{"unregistered", agent("ghost"), []string{"ghost"}, nil},
		{"fleet", fleet("sim"), []string{"sim-001", "sim-002", "node-1", "sim-xyz"}, []string{"sim-001", "sim-002"}},
		{"fleet unregistered", fleet("sim"), []string{"sim-999"}, nil},
		{"agent posing as fleet", agent("sim"), []string{"sim-001"}, nil},
		{"bare root subject", HeartbeatSubject(DefaultSubjectPrefix), []string{"node-1"}, nil},
		{"deep subject", agent("node-1") + ".x", []string{"node-1"}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			clear(l.machines)
			for id := range c.store.machineStates() {
				l.machines[id] = &machineLive{id: id}
			}
			b := &cellv1.HeartbeatBatch{}
			for _, id := range tc.ids {
				b.Heartbeats = append(b.Heartbeats, &cellv1.Heartbeat{MachineId: id, Usage: &cellv1.Usage{CpuMilli: 1}})
			}
			data, _ := proto.Marshal(b)
			l.onMessage(0, &nats.Msg{Subject: tc.subject, Data: data})
			if got := heard(); len(got) != len(tc.want) {
				t.Fatalf("liveness remembers %v, want %v", keys(got), tc.want)
			}
			for _, id := range tc.want {
				if _, ok := heard()[id]; !ok {
					t.Errorf("%s not recorded", id)
				}
			}
			if _, ok := l.machines["ghost"]; ok {
				t.Error("an unregistered machine is tracked")
			}
		})
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
