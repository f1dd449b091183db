package main

import (
	"time"

	"github.com/spf13/cobra"

	"github.com/omegacell/omegacell/cellserver"
)

func newServerCommand() *cobra.Command {
	var c cellserver.Config
	var peers []string
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run the cell-state store and its gRPC API",
		Long: `Runs the cell-state store (Pebble in --data), its gRPC API on --listen, Prometheus
metrics on --metrics, and an embedded NATS server on loopback for agents'
heartbeats (or uses --nats to point at an external NATS cluster).

Every connection is mutually authenticated with TLS 1.3: on its first start
the server creates the cell's certificate authority in --data/pki, its own
certificate and an admin credential bundle in --data/pki/admin (ca.pem,
cert.pem, key.pem), which every cell command run from the directory above
--data finds by itself. An admin issues credentials for schedulers, agents
and users with ` + "`cell credentials issue`" + `. --insecure turns all of that off.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c.Cluster.Peers = peers
			return runServer(cmd.Context(), c)
		},
	}
	f := cmd.Flags()
	f.StringVar(&c.DataDir, "data", "./cell-data", "directory of the store (Pebble)")
	f.StringVar(&c.Listen, "listen", "127.0.0.1:7070", "gRPC listen address")
	f.StringVar(&c.Metrics, "metrics", "127.0.0.1:7071", "Prometheus /metrics listen address (empty: off)")
	f.StringVar(&c.NATSURL, "nats", "", "external NATS URL (nats://host:4222); empty embeds a NATS server")
	f.StringVar(&c.NATSListen, "nats-listen", "127.0.0.1:-1", "embedded NATS listen address (port -1: any free port)")
	f.DurationVar(&c.Grace, "grace", 10*time.Second, "silence after which a machine is marked down and its tasks are lost")
	f.DurationVar(&c.Heartbeat, "heartbeat", time.Second, "heartbeat interval agents are told to use")
	f.Uint64Var(&c.LogRetention, "log-retention", 10_000, "revisions of change log kept for watchers")
	f.Uint64Var(&c.CheckpointRevisions, "checkpoint-revisions", 20_000, "write a checkpoint of the current objects at least this often (revisions); bounds what a restart replays")
	f.BoolVar(&c.Insecure, "insecure", false, "no TLS and no authentication: anyone who reaches the ports is admin (trusted machines only; logged as a warning)")
	f.StringSliceVar(&c.TLSSANs, "tls-san", nil, "extra host names or IP addresses for the server's certificate (repeatable), e.g. the address clients dial")
	c.RegisterLimitFlags(f)
	f.StringVar(&c.Cluster.Name, "name", "", "cluster mode: this server's name in the cell (unique)")
	f.StringVar(&c.Cluster.Listen, "cluster-listen", "127.0.0.1:7072", "cluster mode: address of the cluster routes between the cell's servers")
	f.StringSliceVar(&peers, "peers", nil, "cluster mode: the cluster addresses of every server of the cell (host:port,...); empty: a single server")
	f.StringVar(&c.Cluster.Advertise, "advertise", "", "cluster mode: the gRPC address clients reach this server at (default --listen)")
	f.DurationVar(&c.Cluster.LeaseTTL, "lease-ttl", 0, "cluster mode: a leader silent this long is replaced (default 2s)")
	registerReplicatedLogFlags(f, &c.Cluster)
	f.BoolVar(&c.NoSync, "unsafe-no-sync", false, "skip fsync on commit (benchmarks only: acknowledged commits can be lost)")
	return cmd
}
