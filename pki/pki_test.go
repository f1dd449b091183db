package pki

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/omegacell/omegacell/proto/credentials"
	"github.com/omegacell/omegacell/proto/identity"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// The first start creates the CA, the server certificate and the admin
// bundle with private modes; a second start reuses all three byte for
// byte; a new --tls-san renews only the server certificate.
func TestEnsureCreatesOnceAndIsIdempotent(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki")
	c1, err := Ensure(dir, nil, quiet)
	if err != nil {
		t.Fatal(err)
	}
	modes := map[string]os.FileMode{
		".": 0o700, CAKeyFile: 0o600, ServerKeyFile: 0o600, CAFile: 0o644, ServerFile: 0o644,
		AdminDir: 0o700, "admin/key.pem": 0o600, "admin/cert.pem": 0o644, "admin/ca.pem": 0o644,
	}
	for f, want := range modes {
		st, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if got := st.Mode().Perm(); got != want {
			t.Errorf("%s: mode %o, want %o", f, got, want)
		}
	}
	read := func(f string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	before := map[string][]byte{}
	for f := range modes {
		if f != "." && f != AdminDir {
			before[f] = read(f)
		}
	}
	admin, err := credentials.Load(c1.AdminDir)
	if err != nil {
		t.Fatal(err)
	}
	if admin.Identity.Role != identity.Admin {
		t.Fatalf("admin bundle is %v", admin.Identity)
	}
	leaf := c1.Server.Leaf
	if !slices.Contains(leaf.DNSNames, "localhost") || !slices.ContainsFunc(leaf.IPAddresses, net.IPv4(127, 0, 0, 1).Equal) {
		t.Errorf("server certificate names %v %v", leaf.DNSNames, leaf.IPAddresses)
	}

	c2, err := Ensure(dir, nil, quiet)
	if err != nil {
		t.Fatal(err)
	}
	if c2.CA.CellID != c1.CA.CellID {
		t.Errorf("cell id changed on restart: %s → %s", c1.CA.CellID, c2.CA.CellID)
	}
	for f, b := range before {
		if !bytes.Equal(read(f), b) {
			t.Errorf("%s rewritten by a restart", f)
		}
	}

	c3, err := Ensure(dir, []string{"cell.example.com", "10.1.2.3", "0.0.0.0"}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	l3 := c3.Server.Leaf
	if !slices.Contains(l3.DNSNames, "cell.example.com") || !slices.ContainsFunc(l3.IPAddresses, net.ParseIP("10.1.2.3").Equal) {
		t.Errorf("--tls-san not in the renewed certificate: %v %v", l3.DNSNames, l3.IPAddresses)
	}
	if slices.ContainsFunc(l3.IPAddresses, net.IPv4zero.Equal) {
		t.Error("the unspecified address is a SAN")
	}
	if bytes.Equal(read(ServerFile), before[ServerFile]) || !bytes.Equal(read(CAFile), before[CAFile]) || !bytes.Equal(read("admin/cert.pem"), before["admin/cert.pem"]) {
		t.Error("a new SAN must renew the server certificate only")
	}
}

// A CA key without its certificate is refused rather than replaced.
func TestEnsureRefusesOrphanKey(t *testing.T) {
	dir := t.TempDir()
	if _, err := Ensure(dir, nil, quiet); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(dir, CAFile))
	if _, err := Ensure(dir, nil, quiet); err == nil || !strings.Contains(err.Error(), CAKeyFile) {
		t.Fatalf("err = %v", err)
	}
}

func TestIssue(t *testing.T) {
	c, err := Ensure(t.TempDir(), nil, quiet)
	if err != nil {
		t.Fatal(err)
	}
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	weak, _ := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 1024)
	user, _ := identity.New(identity.User, "alice", "ml")
	now := time.Now()
	cases := []struct {
		name string
		id   identity.Identity
		pub  any
		ttl  time.Duration
		want string
	}{
		{"default ttl", user, ec.Public(), 0, ""},
		{"short", user, ec.Public(), time.Hour, ""},
		{"too short", user, ec.Public(), time.Second, "ttl"},
		{"too long", user, ec.Public(), 100 * 365 * 24 * time.Hour, "ttl"},
		{"P-224", user, weak.Public(), 0, "curve"},
		{"rsa", user, rsaKey.Public(), 0, "want ECDSA"},
		{"invalid identity", identity.Identity{Role: "root"}, ec.Public(), 0, "unknown role"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cert, _, err := c.CA.Issue(tc.id, tc.pub, tc.ttl, now)
			if tc.want != "" {
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("err = %v, want %q", err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if _, err := cert.Verify(x509.VerifyOptions{Roots: c.CA.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
				t.Fatal(err)
			}
			got, err := identity.FromCertificate(cert)
			if err != nil || got.String() != "user/alice" || !got.InTenant("ml") {
				t.Fatalf("identity %v, %v", got, err)
			}
			ttl := tc.ttl
			if ttl == 0 {
				ttl = DefaultTTL
			}
			if d := cert.NotAfter.Sub(now.Add(ttl)); d > time.Second || d < -time.Second {
				t.Errorf("NotAfter %v, want now+%v", cert.NotAfter, ttl)
			}
		})
	}
}
