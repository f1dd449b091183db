package cellstate

import (
	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
	"github.com/omegacell/omegacell/proto/identity"
	"github.com/omegacell/omegacell/proto/limits"
)

// acceptHeartbeats keeps the heartbeats of a batch received on subject
// that its sender may send: the subject names the sender (an agent's
// machine, or a simulated fleet, see limits.HeartbeatSubject), NATS lets
// only that sender publish there, and each heartbeat must name a machine
// the sender speaks for and that is registered. Everything else is
// dropped without a trace in memory; dropped counts it.
func (l *Liveness) acceptHeartbeats(subject string, hbs []*cellv1.Heartbeat) (kept []*cellv1.Heartbeat, dropped int) {
	name, fleet, ok := limits.HeartbeatSender(l.opts.Prefix, subject)
	if !ok {
		return nil, len(hbs)
	}
	sender := identity.Identity{Role: identity.Agent, Name: name, Fleet: fleet}
	kept = hbs[:0]
	l.store.mu.RLock()
	for _, hb := range hbs {
		if _, registered := l.store.st.machines[hb.MachineId]; registered && sender.SpeaksFor(hb.MachineId) {
			kept = append(kept, hb)
		}
	}
	l.store.mu.RUnlock()
	return kept, len(hbs) - len(kept)
}
