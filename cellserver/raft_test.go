package cellserver

import (
	"testing"
	"time"
)

// TestRaftTiming: the linked variables are nats-server's own (a
// linkname to a missing symbol would fail to link; this checks that the
// values land and keep nats-server's ordering: heartbeat < election).
func TestRaftTiming(t *testing.T) {
	if natsMinElectionTimeout != 4*time.Second || natsHBInterval != time.Second {
		t.Fatalf("before: election %v, heartbeat %v: not nats-server's defaults (linked to the wrong variables?)", natsMinElectionTimeout, natsHBInterval)
	}
	setRaftTiming()
	if natsHBInterval >= natsMinElectionTimeout || natsMinElectionTimeout >= natsMaxElectionTimeout {
		t.Fatalf("heartbeat %v, election %v-%v", natsHBInterval, natsMinElectionTimeout, natsMaxElectionTimeout)
	}
}
