package celltest

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"google.golang.org/grpc"

	"github.com/omegacell/omegacell/cellserver"
	"github.com/omegacell/omegacell/proto/credentials"
	"github.com/omegacell/omegacell/proto/identity"
)

// Cell is a running cell server and an admin's client connection to it.
type Cell struct {
	Addr   string
	Conn   *grpc.ClientConn
	Server *cellserver.Server
	// AdminDir is the admin bundle the server wrote ("" when insecure).
	AdminDir string
}

// Start runs a cell server in the test process until the test ends, with
// mutual TLS as `cell server` runs by default; Conn is an admin's.
func Start(t testing.TB) *Cell {
	t.Helper()
	return StartWith(t, nil)
}

// StartWith is Start with the configuration changed by configure (which
// may be nil) before the server starts; addresses and the data directory
// are set for the test already.
func StartWith(t testing.TB, configure func(*cellserver.Config)) *Cell {
	t.Helper()
	cfg := cellserver.Config{DataDir: t.TempDir(), Listen: "127.0.0.1:0", NATSListen: "127.0.0.1:-1", NoSync: true}
	if configure != nil {
		configure(&cfg)
	}
	srv, err := cellserver.Start(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatalf("start cell: %v", err)
	}
	admin, err := srv.Client(identity.Identity{Role: identity.Admin})
	if err != nil {
		srv.Close()
		t.Fatal(err)
	}
	transport, err := admin.DialOption(srv.Addr())
	if err != nil {
		srv.Close()
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(srv.Addr(), transport)
	if err != nil {
		srv.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		srv.Close()
	})
	return &Cell{Addr: srv.Addr(), Conn: conn, Server: srv, AdminDir: srv.AdminDir()}
}

// Credentials are how a part of the test connects as id: a credential
// issued in memory by the cell's CA (insecure when the cell is).
func (c *Cell) Credentials(t testing.TB, id identity.Identity) credentials.Client {
	t.Helper()
	cl, err := c.Server.Client(id)
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

// Identity builds an identity or fails the test.
func Identity(t testing.TB, role identity.Role, name string, tenants ...string) identity.Identity {
	t.Helper()
	id, err := identity.New(role, name, tenants...)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// WriteCredentials writes a bundle for id into a new temporary directory
// and returns it, for a child process (--credentials DIR).
func (c *Cell) WriteCredentials(t testing.TB, id identity.Identity) string {
	t.Helper()
	cl := c.Credentials(t, id)
	if cl.Bundle == nil {
		t.Fatal("celltest: an insecure cell has no credentials")
	}
	key, err := x509.MarshalPKCS8PrivateKey(cl.Bundle.Cert.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "credentials")
	err = credentials.Write(dir, cl.Bundle.CAPEM,
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cl.Bundle.Leaf.Raw}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: key}))
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// Build builds the main package in dir (relative to the caller's package)
// into a temporary directory, for a TestMain. The cleanup removes it.
func Build(dir, name string) (path string, cleanup func(), err error) {
	tmp, err := os.MkdirTemp("", "celltest-"+name)
	if err != nil {
		return "", nil, err
	}
	path = filepath.Join(tmp, name)
	build := exec.Command("go", "build", "-o", path, dir)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		os.RemoveAll(tmp)
		return "", nil, fmt.Errorf("building %s: %w", name, err)
	}
	return path, func() { os.RemoveAll(tmp) }, nil
}
