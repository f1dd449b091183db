package cellserver

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/omegacell/omegacell/replication"
)

// Cluster mode (issue 15): several cell servers replicate one cell through
// their embedded NATS servers, clustered with JetStream (package
// replication). Every server of a cell holds the same CA (the operator
// copies <data>/pki/ca.pem and ca-key.pem of the first server into the
// others' <data>/pki before their first start; each then issues its own
// server certificate from it). The cluster routes are mutual TLS 1.3
// with those certificates: a route is accepted only from a peer that
// presents a server certificate of the cell's CA, so no agent, scheduler
// or user credential can join the cluster.

// ClusterConfig is a server's place in a replicated cell (zero: single
// server).
type ClusterConfig struct {
	// Name is this server's name in the cluster (unique, stable).
	Name string
	// Listen is the address of this server's cluster routes (host:port).
	Listen string
	// Peers are the route addresses of every server of the cell (this
	// one's may be included).
	Peers []string
	// Advertise is the gRPC address clients reach this server at (default
	// the gRPC listen address); a follower names the leader's.
	Advertise string
	// LeaseTTL is the leader lease (default replication.DefaultTTL).
	LeaseTTL time.Duration
	// LogMaxBytes and LogMaxRevisions bound the replicated log (0: the
	// defaults of package replication; negative: unbounded).
	LogMaxBytes     int64
	LogMaxRevisions int64
}

func (c ClusterConfig) enabled() bool { return len(c.Peers) > 0 }

// replicas is the replication factor: the servers of the cell.
func (c ClusterConfig) replicas() int {
	n := len(c.Peers)
	for _, p := range c.Peers {
		if p == c.Listen {
			return n
		}
	}
	return n + 1
}

// clusterNATS adds the cluster routes and JetStream to the embedded NATS
// server's options.
func (s *Server) clusterNATS(c Config, o *server.Options) error {
	cl := c.Cluster
	if cl.Name == "" {
		return errors.New("--name: a clustered server needs a name, unique in the cell")
	}
	if s.pki == nil {
		return errors.New("--peers: cluster mode needs the cell's PKI (not --insecure)")
	}
	host, port, err := splitHostPort(cl.Listen)
	if err != nil {
		return fmt.Errorf("--cluster-listen: %w", err)
	}
	setRaftTiming()
	o.ServerName = cl.Name
	o.JetStream = true
	o.StoreDir = filepath.Join(c.DataDir, "jetstream")
	// JetStream fsyncs every write, as the store does (unless benchmarks
	// ask for no sync).
	o.SyncAlways = !c.NoSync
	// A revision is one message: as large as NATS allows.
	o.MaxPayload = 64 << 20
	o.Cluster = server.ClusterOpts{Name: "omegacell", Host: host, Port: port, TLSConfig: s.routeTLS(), TLSTimeout: 5, NoAdvertise: false}
	for _, p := range cl.Peers {
		if p == cl.Listen {
			continue
		}
		u, err := url.Parse("nats-route://" + p)
		if err != nil {
			return fmt.Errorf("--peers %q: %w", p, err)
		}
		o.Routes = append(o.Routes, u)
	}
	return nil
}

// routeTLS is the TLS of cluster routes, both ways: each side presents its
// server certificate, and accepts only a server certificate of the cell's
// CA (an agent's or user's certificate is a client certificate and is
// refused).
func (s *Server) routeTLS() *tls.Config {
	pool := s.pki.CA.Pool()
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{s.pki.Server},
		RootCAs:      pool,
		ClientAuth:   tls.RequireAnyClientCert,
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) == 0 {
				return errors.New("cluster route: no certificate")
			}
			leaf, err := x509.ParseCertificate(raw[0])
			if err != nil {
				return err
			}
			_, err = leaf.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
			if err != nil {
				return fmt.Errorf("cluster route: not a server certificate of this cell: %w", err)
			}
			return nil
		},
	}
}

// startReplication joins the replicated cell (before gRPC serves).
func (s *Server) startReplication(c Config) error {
	adv := c.Cluster.Advertise
	if adv == "" {
		adv = s.addr
	}
	n, err := replication.Start(context.Background(), replication.Config{
		Name: c.Cluster.Name, Address: adv, Conn: s.nc, Store: s.store, Replicas: c.Cluster.replicas(),
		LeaseTTL: c.Cluster.LeaseTTL, Logger: s.log, RaftLeaders: s.raftLeaders,
		LogMaxBytes: c.Cluster.LogMaxBytes, LogMaxRevisions: c.Cluster.LogMaxRevisions,
		Failed: func(err error) {
			select {
			case s.errc <- err:
			default:
			}
		},
	})
	if err != nil {
		return err
	}
	s.repl = n
	return nil
}

// Leading reports whether this server commits: always in single-server
// mode, only while it holds the lease in cluster mode.
func (s *Server) Leading() bool { return s.store.IsLeader() }

// StoreDir is the directory of the server's store (Pebble).
func (s *Server) StoreDir() string { return s.storeDir }
