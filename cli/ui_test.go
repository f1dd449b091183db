package cli

import (
	"bytes"
	"io"
	"log/slog"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/omegacell/omegacell/pki"
	"github.com/omegacell/omegacell/proto/identity"
	"github.com/omegacell/omegacell/proto/login"
)

// `cell ui` prints a login link whose token the cell's CA accepts for the
// credential's identity; a bad --web or --ttl is refused.
func TestUICommandPrintsALoginLink(t *testing.T) {
	cell, err := pki.Ensure(t.TempDir(), nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) (string, error) {
		cmd := UICommand()
		var out bytes.Buffer
		cmd.SetOut(&out)
		cmd.SetErr(io.Discard)
		cmd.SetArgs(args)
		err := cmd.Execute()
		return out.String(), err
	}
	out, err := run("--credentials", cell.AdminDir, "--web", "http://127.0.0.1:7999/")
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(strings.TrimSpace(out))
	if err != nil || u.Host != "127.0.0.1:7999" || u.Path != "/login" {
		t.Fatalf("printed %q, want http://127.0.0.1:7999/login?token=…", out)
	}
	claim, err := login.Verify(u.Query().Get("token"), cell.CA.Pool(), time.Now())
	if err != nil {
		t.Fatalf("the printed token: %v", err)
	}
	if id, err := identity.FromCertificate(claim.Cert); err != nil || id.Role != identity.Admin {
		t.Fatalf("the token's identity: %v %v, want admin", id, err)
	}
	if left := time.Until(claim.Exp); left > 5*time.Minute+time.Second || left < 4*time.Minute {
		t.Errorf("token expires in %s, want the default 5m", left)
	}
	for _, bad := range [][]string{
		{"--credentials", cell.AdminDir, "--web", "ftp://x/"},
		{"--credentials", cell.AdminDir, "--ttl", "1h"},
		{"--credentials", t.TempDir()},
	} {
		if _, err := run(bad...); err == nil {
			t.Errorf("cell ui %v: no error", bad)
		}
	}
	if out, err := run("--insecure", "--web", "http://127.0.0.1:7999"); err != nil || strings.TrimSpace(out) != "http://127.0.0.1:7999/" {
		t.Errorf("--insecure: %q %v, want the plain URL", out, err)
	}
}
