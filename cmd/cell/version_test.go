package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/omegacell/omegacell/internal/buildinfo"
	"github.com/omegacell/omegacell/internal/celltest"
)

// `cell version` prints this binary's version and the server's, read from
// the header of a real server's answer over mTLS; an unreachable server
// is reported, not an error.
func TestVersionCommand(t *testing.T) {
	cell := celltest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out := runCellIn(t, ctx, "version", "--server", cell.Addr, "--credentials", cell.AdminDir)
	want := "client: " + buildinfo.Version() + " (" + buildinfo.GoVersion() + ")\nserver: " + buildinfo.Version() + "\n"
	if out != want {
		t.Errorf("cell version:\n%s\nwant:\n%s", out, want)
	}
	if out := runCellIn(t, ctx, "version", "--client"); strings.Contains(out, "server:") {
		t.Errorf("--client asked the server: %s", out)
	}
	out = runCellIn(t, ctx, "version", "--server", freeAddr(t), "--credentials", cell.AdminDir)
	if !strings.Contains(out, "server: not reachable") {
		t.Errorf("unreachable server: %s", out)
	}
}
