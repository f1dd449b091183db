package cellserver

import (
	"fmt"
	"strings"
	"sync"
	"time"
	_ "unsafe" // go:linkname

	"github.com/nats-io/nats-server/v2/server"

	"github.com/omegacell/omegacell/replication"
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

// raftLeaders describes, as this server sees them, the leaders of the Raft
// groups a failover depends on: JetStream's meta group, the replicated
// log and the lease bucket ("meta=s1 CELL_LOG=s2 KV_CELL_LEASE=s3"; "-"
// while a group has none). For the failover logs only: a local read, no
// request to another server.
//
// It never blocks its caller (the commit loop logs with it) for more than
// 100 ms: the read runs in its own goroutine, one at a time.
func (s *Server) raftLeaders() string {
	if s.natsSrv == nil {
		return ""
	}
	if !s.raftz.CompareAndSwap(false, true) {
		return "unknown (busy)"
	}
	out := make(chan string, 1)
	go func() {
		defer s.raftz.Store(false)
		out <- s.readRaftLeaders()
	}()
	select {
	case l := <-out:
		return l
	case <-time.After(100 * time.Millisecond):
		return "unknown (slow)"
	}
}

func (s *Server) readRaftLeaders() string {
	jsz, err := s.natsSrv.Jsz(&server.JSzOptions{Accounts: true, Streams: true})
	if err != nil || jsz == nil {
		return fmt.Sprintf("unknown (%v)", err)
	}
	or := func(s string) string {
		if s == "" {
			return "-"
		}
		return s
	}
	var b strings.Builder
	meta := ""
	if jsz.Meta != nil {
		meta = jsz.Meta.Leader
	}
	fmt.Fprintf(&b, "meta=%s", or(meta))
	for _, a := range jsz.AccountDetails {
		for _, st := range a.Streams {
			if st.Name != replication.StreamName && st.Name != "KV_"+replication.LeaseBucket {
				continue
			}
			leader := ""
			if st.Cluster != nil {
				leader = st.Cluster.Leader
			}
			fmt.Fprintf(&b, " %s=%s", st.Name, or(leader))
		}
	}
	return b.String()
}
