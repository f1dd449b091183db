package cellserver

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	grpccreds "google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/omegacell/omegacell/pki"
	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
	"github.com/omegacell/omegacell/proto/credentials"
	"github.com/omegacell/omegacell/proto/identity"
)

func startSecure(t *testing.T, dir string) *Server {
	t.Helper()
	s, err := Start(Config{DataDir: dir, Listen: "127.0.0.1:0", NATSListen: "127.0.0.1:-1", NoSync: true}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// adminConn dials s with the admin bundle it wrote; closed when the test
// ends.
func adminConn(t *testing.T, s *Server) *grpc.ClientConn {
	t.Helper()
	admin, err := credentials.Load(s.AdminDir())
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(s.Addr(), grpc.WithTransportCredentials(grpccreds.NewTLS(admin.ClientTLS("127.0.0.1"))))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func mustID(t *testing.T, role identity.Role, name string, tenants ...string) identity.Identity {
	t.Helper()
	id, err := identity.New(role, name, tenants...)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// bundleFor issues a credential of ca for id, valid from notBefore+5m
// backdating for ttl.
func bundleFor(t *testing.T, ca *pki.CA, id identity.Identity, at time.Time, ttl time.Duration) *credentials.Bundle {
	t.Helper()
	key, keyPEM, err := credentials.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	_, certPEM, err := ca.Issue(id, key.Public(), ttl, at)
	if err != nil {
		t.Fatal(err)
	}
	b, err := credentials.FromPEM(ca.CertPEM, certPEM, keyPEM, at)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// call makes one RPC over a fresh connection with tc, returning its code.
func call(t *testing.T, addr string, tc grpccreds.TransportCredentials) error {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(tc))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = cellv1.NewMachineServiceClient(conn).ListMachines(ctx, &cellv1.ListMachinesRequest{})
	return err
}

// Every way in without a valid credential of this cell is refused, in the
// handshake or with Unauthenticated; a valid one gets through.
func TestTLSRefusals(t *testing.T) {
	s := startSecure(t, t.TempDir())
	other, err := pki.Ensure(filepath.Join(t.TempDir(), "other"), nil, quiet)
	if err != nil {
		t.Fatal(err)
	}
	admin := mustID(t, identity.Admin, "")
	now := time.Now()
	valid := bundleFor(t, s.CA(), admin, now, time.Hour)
	foreign := bundleFor(t, other.CA, admin, now, time.Hour)
	expired := bundleFor(t, s.CA(), admin, now.Add(-3*time.Minute), time.Minute)
	revoked := bundleFor(t, s.CA(), mustID(t, identity.User, "mallory", "ml"), now, time.Hour)
	if _, err := s.revoked.Revoke(credentials.Serial(revoked.Leaf), "user/mallory", revoked.Leaf.NotAfter); err != nil {
		t.Fatal(err)
	}
	tlsWith := func(b *credentials.Bundle) grpccreds.TransportCredentials {
		c := valid.ClientTLS("127.0.0.1") // trusts this cell's server
		c.Certificates = []tls.Certificate{b.Cert}
		return grpccreds.NewTLS(c)
	}
	noCert := valid.ClientTLS("127.0.0.1")
	noCert.Certificates = nil
	cases := []struct {
		name string
		tc   grpccreds.TransportCredentials
		ok   bool
	}{
		{"valid admin", tlsWith(valid), true},
		{"plaintext", insecure.NewCredentials(), false},
		{"no client certificate", grpccreds.NewTLS(noCert), false},
		{"certificate of another cell's CA", tlsWith(foreign), false},
		{"expired", tlsWith(expired), false},
		{"revoked", tlsWith(revoked), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := call(t, s.Addr(), tc.tc)
			if tc.ok {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("accepted")
			}
			if c := status.Code(err); c != codes.Unavailable && c != codes.Unauthenticated {
				t.Fatalf("code %v (%v), want Unavailable (handshake) or Unauthenticated", c, err)
			}
		})
	}
}

// A connection that was fine is refused on its next call once its
// credential is revoked (the per-call check), and the revocation survives
// a restart.
func TestRevocationOnLiveConnectionAndAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	s := startSecure(t, dir)
	user := bundleFor(t, s.CA(), mustID(t, identity.User, "bob", "ml"), time.Now(), time.Hour)
	conn, err := grpc.NewClient(s.Addr(), grpc.WithTransportCredentials(grpccreds.NewTLS(user.ClientTLS("127.0.0.1"))))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	machines := cellv1.NewMachineServiceClient(conn)
	if _, err := machines.ListMachines(ctx, &cellv1.ListMachinesRequest{}); err != nil {
		t.Fatalf("before revocation: %v", err)
	}
	adminDir := filepath.Join(dir, "pki", "admin")
	admin, err := credentials.Load(adminDir)
	if err != nil {
		t.Fatal(err)
	}
	aconn, err := grpc.NewClient(s.Addr(), grpc.WithTransportCredentials(grpccreds.NewTLS(admin.ClientTLS("127.0.0.1"))))
	if err != nil {
		t.Fatal(err)
	}
	defer aconn.Close()
	creds := cellv1.NewCredentialServiceClient(aconn)
	r, err := creds.RevokeCredential(ctx, &cellv1.RevokeCredentialRequest{Serial: credentials.Serial(user.Leaf), Identity: "user/bob"})
	if err != nil || !r.Revoked {
		t.Fatalf("revoke: %v %v", r, err)
	}
	if r, err := creds.RevokeCredential(ctx, &cellv1.RevokeCredentialRequest{Serial: credentials.Serial(user.Leaf)}); err != nil || r.Revoked {
		t.Fatalf("revoking again: %v %v, want revoked=false", r, err)
	}
	_, err = machines.ListMachines(ctx, &cellv1.ListMachinesRequest{})
	if status.Code(err) != codes.Unauthenticated || !strings.Contains(err.Error(), "revoked") {
		t.Fatalf("call on the live connection after revocation: %v", err)
	}
	s.Close()

	s2 := startSecure(t, dir)
	if err := call(t, s2.Addr(), grpccreds.NewTLS(user.ClientTLS("127.0.0.1"))); err == nil {
		t.Fatal("revoked credential accepted after a restart")
	}
	if err := call(t, s2.Addr(), grpccreds.NewTLS(admin.ClientTLS("127.0.0.1"))); err != nil {
		t.Fatalf("admin after restart: %v", err)
	}
}

// CredentialService issues only to admins, certifies the identity asked
// for (not what the CSR says), and refuses malformed requests naming the
// field.
func TestCredentialService(t *testing.T) {
	s := startSecure(t, t.TempDir())
	dial := func(b *credentials.Bundle) *grpc.ClientConn {
		conn, err := grpc.NewClient(s.Addr(), grpc.WithTransportCredentials(grpccreds.NewTLS(b.ClientTLS("127.0.0.1"))))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return conn
	}
	admin := dial(bundleFor(t, s.CA(), mustID(t, identity.Admin, ""), time.Now(), time.Hour))
	sched := dial(bundleFor(t, s.CA(), mustID(t, identity.Scheduler, "batch"), time.Now(), time.Hour))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	b, _, _, _, err := credentials.Request(ctx, admin, mustID(t, identity.User, "alice", "ml", "infra"), 48*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if b.Identity.String() != "user/alice" || !b.Identity.InTenant("infra") {
		t.Errorf("issued %v", b.Identity)
	}
	if d := time.Until(b.Leaf.NotAfter); d < 47*time.Hour || d > 49*time.Hour {
		t.Errorf("lifetime %v, want 48h", d)
	}
	if err := call(t, s.Addr(), grpccreds.NewTLS(b.ClientTLS("127.0.0.1"))); err != nil {
		t.Errorf("the issued credential does not connect: %v", err)
	}
	fleet, _ := identity.NewFleet("sim")
	if fb, _, _, _, err := credentials.Request(ctx, admin, fleet, 0); err != nil || !fb.Identity.Fleet {
		t.Errorf("fleet credential: %v %v", fb, err)
	}

	_, _, _, _, err = credentials.Request(ctx, sched, mustID(t, identity.Admin, ""), 0)
	if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "scheduler/batch") {
		t.Errorf("a scheduler issuing: %v, want PermissionDenied naming it", err)
	}
	_, err = cellv1.NewCredentialServiceClient(sched).RevokeCredential(ctx, &cellv1.RevokeCredentialRequest{Serial: "1"})
	if status.Code(err) != codes.PermissionDenied {
		t.Errorf("a scheduler revoking: %v", err)
	}

	client := cellv1.NewCredentialServiceClient(admin)
	for _, tc := range []struct {
		name string
		req  *cellv1.IssueCredentialRequest
		want string
	}{
		{"no csr", &cellv1.IssueCredentialRequest{Role: "admin"}, "csr_der"},
		{"garbage csr", &cellv1.IssueCredentialRequest{Role: "admin", CsrDer: []byte("xx")}, "csr_der"},
		{"bad role", &cellv1.IssueCredentialRequest{Role: "root", CsrDer: []byte("xx")}, "unknown role"},
		{"fleet user", &cellv1.IssueCredentialRequest{Role: "user", Name: "a", Fleet: true}, "fleet"},
		{"negative ttl", &cellv1.IssueCredentialRequest{Role: "admin", CsrDer: validCSR(t), TtlSeconds: -1}, "ttl"},
	} {
		_, err := client.IssueCredential(ctx, tc.req)
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want InvalidArgument naming %s", tc.name, err, tc.want)
		}
	}
	for _, serial := range []string{"", "XYZ", "0abc", strings.Repeat("a", 41)} {
		_, err := client.RevokeCredential(ctx, &cellv1.RevokeCredentialRequest{Serial: serial})
		if status.Code(err) != codes.InvalidArgument {
			t.Errorf("revoke %q: %v, want InvalidArgument", serial, err)
		}
	}
}

func validCSR(t *testing.T) []byte {
	t.Helper()
	key, _, err := credentials.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// Insecure serves plaintext, and every caller is admin.
func TestInsecureServesPlaintext(t *testing.T) {
	s, err := Start(Config{DataDir: t.TempDir(), Listen: "127.0.0.1:0", NATSListen: "127.0.0.1:-1", NoSync: true, Insecure: true}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := call(t, s.Addr(), insecure.NewCredentials()); err != nil {
		t.Fatal(err)
	}
	if s.AdminDir() != "" || s.CA() != nil {
		t.Error("an insecure server has a PKI")
	}
}
