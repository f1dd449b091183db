package cellstate

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc"
	grpccreds "google.golang.org/grpc/credentials"
	"google.golang.org/protobuf/proto"

	"github.com/omegacell/omegacell/cellstate/authz"
	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
	"github.com/omegacell/omegacell/proto/credentials"
	"github.com/omegacell/omegacell/proto/identity"
)

// An authorizing cell for tests: a real store and real gRPC on loopback
// with mutual TLS, as `cell server` runs: each client presents a
// credential issued by the cell's CA for its identity.

type authzCell struct {
	t     testing.TB
	store *Store
	addr  string
	tls   *testTLS
}

func newAuthzCell(t testing.TB) *authzCell {
	t.Helper()
	x := newTestTLS(t)
	st, err := Open(Options{Dir: t.TempDir(), NoSync: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Metrics: NewMetrics(prometheus.NewRegistry())})
	if err != nil {
		t.Fatal(err)
	}
	so, gopts, _ := x.options(t, st)
	g := NewServer(st, so).GRPCServer(gopts...)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go g.Serve(lis)
	t.Cleanup(func() {
		st.CloseWatchers()
		g.Stop()
		if err := st.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	return &authzCell{t: t, store: st, addr: lis.Addr().String(), tls: x}
}

// client is one caller's connection and API clients.
type client struct {
	conn       *grpc.ClientConn
	jobs       cellv1.JobServiceClient
	machines   cellv1.MachineServiceClient
	state      cellv1.StateServiceClient
	agent      cellv1.AgentServiceClient
	schedulers cellv1.SchedulerServiceClient
	tenants    cellv1.TenantServiceClient
}

// as dials the cell with a credential of identity id, issued by the
// cell's CA (nil: TLS without a client certificate).
func (c *authzCell) as(id *identity.Identity) *client {
	c.t.Helper()
	var tc *tls.Config
	if id == nil {
		tc = (&credentials.Bundle{Roots: c.tls.cell.CA.Pool()}).ClientTLS("127.0.0.1")
		tc.Certificates = nil
	} else {
		b, err := c.tls.cell.CA.IssueBundle(*id, time.Hour)
		if err != nil {
			c.t.Fatal(err)
		}
		tc = b.ClientTLS("127.0.0.1")
	}
	conn, err := grpc.NewClient(c.addr, grpc.WithTransportCredentials(grpccreds.NewTLS(tc)),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(MaxRequestBytes)))
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { conn.Close() })
	return &client{conn: conn, jobs: cellv1.NewJobServiceClient(conn), machines: cellv1.NewMachineServiceClient(conn),
		state: cellv1.NewStateServiceClient(conn), agent: cellv1.NewAgentServiceClient(conn),
		schedulers: cellv1.NewSchedulerServiceClient(conn), tenants: cellv1.NewTenantServiceClient(conn)}
}

func mustID(t testing.TB, role identity.Role, name string, tenants ...string) *identity.Identity {
	t.Helper()
	id, err := identity.New(role, name, tenants...)
	if err != nil {
		t.Fatal(err)
	}
	return &id
}

func mustFleet(t testing.TB, prefix string) *identity.Identity {
	t.Helper()
	id, err := identity.NewFleet(prefix)
	if err != nil {
		t.Fatal(err)
	}
	return &id
}

// readSnapshot reads a whole snapshot through c.
func readSnapshot(t testing.TB, c *client) (*cellv1.SnapshotResponse, error) {
	t.Helper()
	stream, err := c.state.Snapshot(ctxT(t), &cellv1.SnapshotRequest{})
	if err != nil {
		return nil, err
	}
	all := &cellv1.SnapshotResponse{}
	for {
		chunk, err := stream.Recv()
		if err != nil {
			return nil, err
		}
		all.Revision = max(all.Revision, chunk.Revision)
		all.Machines = append(all.Machines, chunk.Machines...)
		all.Jobs = append(all.Jobs, chunk.Jobs...)
		all.Tasks = append(all.Tasks, chunk.Tasks...)
		if chunk.Last {
			return all, nil
		}
	}
}

// deniedCount reads omegacell_auth_denied_total{method,reason}.
func (c *authzCell) deniedCount(method, reason string) float64 {
	m, err := c.store.m.authDenied.GetMetricWithLabelValues(method, reason)
	if err != nil {
		c.t.Fatal(err)
	}
	return testutil.ToFloat64(m)
}

// TestAuthzRedactedWatchEncoding: the redacted form of every revision,
// from the ring (encoded once, shared) and from Pebble (decoded), is the
// full revision with its jobs through RedactJob, and nothing else changed.
func TestAuthzRedactedWatchEncoding(t *testing.T) {
	c := newTestCell(t, Options{})
	c.addMachine("m1", map[string]string{"zone": "a"}, 4000, 4*gib, 0)
	spec := batchSpec("secret", 3, 1000, gib)
	spec.Task.Env = map[string]string{"SECRET": "s3cr3t"}
	spec.Task.Args = []string{"--token", "x"}
	job := c.submit(spec)
	c.place(job, 0, "m1") // a revision with machine, job (now running) and task
	c.submit(batchSpec("plain", 1, 10, 1))
	entries, _, _, err := c.store.hub.read(0, 100)
	if err != nil || len(entries) < 4 {
		t.Fatalf("read %d entries: %v", len(entries), err)
	}
	for _, e := range entries {
		want := &cellv1.WatchResponse{}
		if err := proto.Unmarshal(e.data, want); err != nil {
			t.Fatal(err)
		}
		jobs := 0
		for _, ch := range want.Changes {
			if j := ch.GetJob(); j != nil {
				ch.Object = &cellv1.Change_Job{Job: authz.RedactJob(j)}
				jobs++
			}
		}
		for _, from := range []logEntry{e, {rev: e.rev, data: e.data}} {
			data, err := from.redactedData()
			if err != nil {
				t.Fatal(err)
			}
			got := &cellv1.WatchResponse{}
			if err := proto.Unmarshal(data, got); err != nil {
				t.Fatal(err)
			}
			if !proto.Equal(got, want) {
				t.Errorf("revision %d (ring %v): redacted\n got %v\nwant %v", e.rev, from.src != nil, got, want)
			}
			if e.rev == job.ModRevision && strings.Contains(string(data), "s3cr3t") {
				t.Errorf("revision %d still carries the secret", e.rev)
			}
		}
		if e.src != nil && jobs == 0 {
			if d, _ := e.redactedData(); &d[0] != &e.data[0] {
				t.Errorf("revision %d without jobs was copied", e.rev)
			}
		}
	}
}

// recordingHandler keeps the messages and attributes logged.
type recordingHandler struct {
	mu   sync.Mutex
	recs []string
}

func (h *recordingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *recordingHandler) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *recordingHandler) WithGroup(string) slog.Handler            { return h }
func (h *recordingHandler) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Message)
	r.Attrs(func(a slog.Attr) bool {
		b.WriteString(" " + a.String())
		return true
	})
	h.mu.Lock()
	h.recs = append(h.recs, b.String())
	h.mu.Unlock()
	return nil
}

// TestAuthzAuditIsRateLimited: a flood of refusals of one identity and
// method logs a burst, then nothing (every one is counted); another
// identity still gets logged; the memory of keys is bounded.
func TestAuthzAuditIsRateLimited(t *testing.T) {
	h := &recordingHandler{}
	reg := prometheus.NewRegistry()
	a := newAuditLog(slog.New(h), NewMetrics(reg))
	deny := func(who string) error {
		return &authz.Denial{Identity: who, Method: "Commit", Rule: authz.RuleOwnScheduler, Detail: `acts as scheduler "batch"`}
	}
	for range 100 {
		a.denied(deny("scheduler/rogue"))
	}
	a.denied(deny("scheduler/other"))
	if len(h.recs) != auditBurst+1 {
		t.Fatalf("%d records logged, want %d:\n%s", len(h.recs), auditBurst+1, strings.Join(h.recs, "\n"))
	}
	for _, want := range []string{"authorization refused", "identity=scheduler/rogue", "method=Commit", "rule=own-scheduler", `detail=acts as scheduler "batch"`} {
		if !strings.Contains(h.recs[0], want) {
			t.Errorf("record %q lacks %q", h.recs[0], want)
		}
	}
	if !strings.Contains(h.recs[auditBurst], "identity=scheduler/other") {
		t.Errorf("another identity was not logged: %q", h.recs[auditBurst])
	}
	if got := testutil.ToFloat64(a.m.authDenied.WithLabelValues("Commit", "own-scheduler")); got != 101 {
		t.Errorf("counted %v refusals, want 101", got)
	}
	for i := range 3 * auditKeys {
		a.denied(deny(fmt.Sprintf("scheduler/s%d", i)))
	}
	if n := len(a.limiters); n > auditKeys {
		t.Errorf("%d keys remembered, at most %d", n, auditKeys)
	}
}
