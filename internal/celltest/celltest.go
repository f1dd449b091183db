package celltest

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/omegacell/omegacell/cellserver"
)

// Cell is a running cell server and a client connection to it.
type Cell struct {
	Addr   string
	Conn   *grpc.ClientConn
	Server *cellserver.Server
}

// Start runs a cell server in the test process until the test ends.
func Start(t testing.TB) *Cell {
	t.Helper()
	srv, err := cellserver.Start(cellserver.Config{
		DataDir: t.TempDir(), Listen: "127.0.0.1:0", NATSListen: "127.0.0.1:-1", NoSync: true,
	}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatalf("start cell: %v", err)
	}
	conn, err := grpc.NewClient(srv.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		srv.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		srv.Close()
	})
	return &Cell{Addr: srv.Addr(), Conn: conn, Server: srv}
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
