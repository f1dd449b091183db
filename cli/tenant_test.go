package cli

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"testing"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"

	"github.com/omegacell/omegacell/cellstate"
	"github.com/omegacell/omegacell/proto/credentials"
)

// startRealCell serves a real store (insecure: the caller acts as admin)
// on 127.0.0.1:0 and returns a Dialer for it.
func startRealCell(t *testing.T) Dialer {
	t.Helper()
	st, err := cellstate.Open(cellstate.Options{Dir: t.TempDir(), NoSync: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	g := cellstate.NewServer(st, cellstate.ServerOptions{Insecure: true}).GRPCServer()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = g.Serve(lis) }()
	t.Cleanup(func() {
		st.CloseWatchers()
		g.Stop()
		_ = st.Close()
	})
	addr := lis.Addr().String()
	return func(ctx context.Context) (*grpc.ClientConn, error) {
		return Dial(ctx, addr, credentials.Client{Insecure: true})
	}
}

func runTenant(t *testing.T, dial Dialer, args ...string) (string, error) {
	t.Helper()
	root := &cobra.Command{Use: "cell", SilenceUsage: true, SilenceErrors: true}
	root.AddCommand(TenantCommand(dial))
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(io.Discard)
	root.SetArgs(args)
	ctx, cancel := context.WithTimeout(context.Background(), 20e9)
	defer cancel()
	err := root.ExecuteContext(ctx)
	return out.String(), err
}

// TestTenantSetAndList sets policies on a real cell and lists them (golden).
func TestTenantSetAndList(t *testing.T) {
	dial := startRealCell(t)
	var got bytes.Buffer
	for _, args := range [][]string{
		{"tenant", "list"},
		{"tenant", "set", "team-a", "--max-band", "production"},
		{"tenant", "set", "team-b", "--max-band", "best-effort"},
		{"tenant", "set", "team-a", "--max-band", "batch"},
		{"tenant", "list"},
		{"tenant", "set", "team-c", "--max-band", "urgent"},
		{"tenant", "set", "Team_C", "--max-band", "batch"},
		{"tenant", "set", "team-c"},
		{"tenant", "list", "-o", "json"},
	} {
		out, err := runTenant(t, dial, args...)
		got.Write(transcript(args, out, "", err))
	}
	checkGolden(t, "tenant-set-list", got.Bytes())
}
