package cellserver

import (
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/omegacell/omegacell/proto/identity"
	"github.com/omegacell/omegacell/replication"
)

// TestAuthzNATSSnapshotSubjects: an agent's NATS connection (the only
// non-server identity NATS admits) can neither ask for a replica's
// snapshot nor listen on the snapshot subjects: they are under the
// server-only prefix (replication/snapshot.go).
func TestAuthzNATSSnapshotSubjects(t *testing.T) {
	s := startSecure(t, t.TempDir())
	attacker := bundleFor(t, s.CA(), mustID(t, identity.Agent, "node-a"), time.Now(), time.Hour)
	prefix := replication.SnapshotSubjectPrefix
	for _, tc := range []struct {
		name string
		do   func(nc *nats.Conn) error
	}{
		{"ask for snapshot offers", func(nc *nats.Conn) error { return nc.PublishRequest(prefix+".offer", "_INBOX.x", nil) }},
		{"ask a server for a snapshot", func(nc *nats.Conn) error { return nc.Publish(prefix+".7331.begin", nil) }},
		{"read snapshot chunks", func(nc *nats.Conn) error { return nc.Publish(prefix+".7331.chunk", nil) }},
		{"listen on the snapshot subjects", func(nc *nats.Conn) error { _, err := nc.SubscribeSync(prefix + ".>"); return err }},
		{"impersonate a server's snapshot service", func(nc *nats.Conn) error { _, err := nc.SubscribeSync(prefix + ".offer"); return err }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nc, errs, err := natsClient(t, s, attacker, true)
			if err != nil {
				t.Fatal(err)
			}
			if err := tc.do(nc); err != nil {
				return // refused at once
			}
			if err := permissionError(t, nc, errs, 5*time.Second); err == nil || !strings.Contains(strings.ToLower(err.Error()), "permission") {
				t.Errorf("allowed (async error %v)", err)
			}
		})
	}
}
