package cellstate

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	grpccreds "google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/omegacell/omegacell/pki"
	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
	"github.com/omegacell/omegacell/proto/credentials"
	"github.com/omegacell/omegacell/proto/identity"
)

// testTLS is a cell CA for a testCell served with mutual TLS; the test
// cell's connection presents an admin credential.
type testTLS struct {
	cell  *pki.Cell
	admin *credentials.Bundle
}

func newTestTLS(t testing.TB) *testTLS {
	t.Helper()
	cell, err := pki.Ensure(filepath.Join(t.TempDir(), "pki"), nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	admin, err := cell.CA.IssueBundle(identity.Identity{Role: identity.Admin}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return &testTLS{cell: cell, admin: admin}
}

func (x *testTLS) options(t testing.TB, st *Store) (ServerOptions, []grpc.ServerOption, grpc.DialOption) {
	rv, err := OpenRevocations(st)
	if err != nil {
		t.Fatal(err)
	}
	srvTLS := &tls.Config{
		MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{x.cell.Server},
		ClientCAs: x.cell.CA.Pool(), ClientAuth: tls.RequireAndVerifyClientCert, VerifyConnection: rv.VerifyConnection,
	}
	return ServerOptions{Revocations: rv}, []grpc.ServerOption{grpc.Creds(grpccreds.NewTLS(srvTLS))},
		grpc.WithTransportCredentials(grpccreds.NewTLS(x.admin.ClientTLS("127.0.0.1")))
}

func newTestCellTLS(t testing.TB, opts Options) *testCell {
	t.Helper()
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	c := &testCell{t: t, dir: opts.Dir, tls: newTestTLS(t)}
	c.start(opts)
	t.Cleanup(c.stop)
	return c
}

// The interceptor puts the caller's identity in every call's context, and
// refuses a plaintext connection with Unauthenticated.
func TestAuthnIdentifiesEveryCall(t *testing.T) {
	c := newTestCellTLS(t, Options{Metrics: NewMetrics(prometheus.NewRegistry())})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var seen []string
	a := &authn{revoked: nil, now: time.Now}
	h := func(ctx context.Context, _ any) (any, error) {
		id, ok := identity.FromContext(ctx)
		if !ok {
			t.Error("no identity in the handler's context")
		}
		seen = append(seen, id.String())
		return nil, nil
	}
	if _, err := a.unary(ctx, nil, nil, h); status.Code(err) != codes.Unauthenticated {
		t.Errorf("a call without a peer: %v, want Unauthenticated", err)
	}
	if _, err := (&authn{insecure: true, now: time.Now}).unary(ctx, nil, nil, h); err != nil || len(seen) != 1 || seen[0] != "admin" {
		t.Errorf("insecure: %v %v, want admin", err, seen)
	}
	if _, err := c.machines.ListMachines(ctx, &cellv1.ListMachinesRequest{}); err != nil {
		t.Fatalf("admin over mTLS: %v", err)
	}
	// The server's own interceptor audits what it refuses: counted under
	// reason "unauthenticated", with the method's short name.
	denied := func() float64 {
		return testutil.ToFloat64(c.store.m.authDenied.WithLabelValues("ListMachines", "unauthenticated"))
	}
	before := denied()
	info := &grpc.UnaryServerInfo{FullMethod: cellv1.MachineService_ListMachines_FullMethodName}
	if _, err := c.srv.authn.unary(ctx, nil, info, h); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("server's authn, no peer: %v, want Unauthenticated", err)
	}
	if got := denied(); got != before+1 {
		t.Errorf("omegacell_auth_denied_total{ListMachines,unauthenticated} %v → %v, want +1", before, got)
	}
}
