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

// TestTenantCommands creates tenants on a real cell, sets their quotas,
// lists them and shows a status (golden; an empty cell, so no use yet).
func TestTenantCommands(t *testing.T) {
	dial := startRealCell(t)
	var got bytes.Buffer
	for _, args := range [][]string{
		{"tenant", "list"},
		{"tenant", "create", "team-a", "--max-band", "production", "--weight", "3"},
		{"tenant", "create", "team-b", "--max-band", "best-effort"},
		{"tenant", "create", "team-a"},
		{"tenant", "update", "team-a", "--max-band", "batch"},
		{"tenant", "set-quota", "team-a", "--band", "batch", "--cpu", "64", "--memory", "256Gi", "--gpu", "8", "--borrow-gpu", "4", "--pending-tasks", "1000"},
		{"tenant", "set-quota", "team-a", "--band", "production", "--cpu", "8", "--memory", "32Gi", "--gpu", "0.5"},
		{"tenant", "set-quota", "team-a", "--band", "production", "--cpu", "8", "--borrow-cpu", "1"},
		{"tenant", "set-quota", "team-a", "--band", "best-effort", "--cpu", "8"},
		{"tenant", "set-quota", "team-a", "--band", "batch", "--cpu", "-1"},
		{"tenant", "set-quota", "team-b", "--band", "batch", "--remove"},
		{"tenant", "list"},
		{"tenant", "status", "team-a"},
		{"tenant", "status", "nobody"},
		{"tenant", "create", "team-c", "--max-band", "urgent"},
		{"tenant", "create", "Team_C"},
		{"tenant", "create", "team-c", "--weight", "5000"},
		{"tenant", "list", "-o", "json"},
		{"tenant", "status", "team-a", "-o", "yaml"},
	} {
		out, err := runTenant(t, dial, args...)
		got.Write(transcript(args, out, "", err))
	}
	checkGolden(t, "tenant-commands", got.Bytes())
}
