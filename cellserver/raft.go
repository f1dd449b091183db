package cellserver

import (
	"sync"
	"time"
	_ "unsafe" // go:linkname
)

// JetStream's Raft timing. nats-server's defaults are for WAN clusters: a
// Raft group whose leader dies elects a new one after 4-9 s, and a
// group without quorum notices after 10 s. A cell's servers share a
// LAN, and the log's and the lease's Raft groups are on the commit path
// of every failover (the issue asks for a new leader within 5 s), so the
// cluster uses shorter timeouts. nats-server offers no option for them;
// these are its own package variables (its tests set them the same way).
//
// Set once, before the embedded NATS server starts (setRaftTiming), and
// only in cluster mode: a single server has no Raft group.

//go:linkname natsMinElectionTimeout github.com/nats-io/nats-server/v2/server.minElectionTimeout
var natsMinElectionTimeout time.Duration

//go:linkname natsMaxElectionTimeout github.com/nats-io/nats-server/v2/server.maxElectionTimeout
var natsMaxElectionTimeout time.Duration

//go:linkname natsHBInterval github.com/nats-io/nats-server/v2/server.hbInterval
var natsHBInterval time.Duration

//go:linkname natsLostQuorumInterval github.com/nats-io/nats-server/v2/server.lostQuorumInterval
var natsLostQuorumInterval time.Duration

//go:linkname natsLostQuorumCheck github.com/nats-io/nats-server/v2/server.lostQuorumCheck
var natsLostQuorumCheck time.Duration

// setRaftTiming sets JetStream's Raft heartbeat to 250 ms and its election
// timeout to 1-2 s (from 1 s and 4-9 s). Call it before starting a
// clustered NATS server.
func setRaftTiming() { raftTimingOnce.Do(setRaftTimingNow) }

var raftTimingOnce sync.Once

func setRaftTimingNow() {
	natsHBInterval = 250 * time.Millisecond
	natsMinElectionTimeout = time.Second
	natsMaxElectionTimeout = 2 * time.Second
	natsLostQuorumInterval = 2500 * time.Millisecond
	natsLostQuorumCheck = 2500 * time.Millisecond
}
