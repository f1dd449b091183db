package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
	"github.com/omegacell/omegacell/proto/credentials"
)

// runCell runs the cell binary in dir with a clean credentials
// environment and returns its combined output.
func runCell(t *testing.T, dir string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(cellBinary, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), credentials.Env+"=")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// Credentials end to end through the cell binary against a `cell server`
// child: an admin issues bundles (keys made locally, 0600), a user may not
// issue, a revoked bundle is refused at once, and a command without
// credentials says what it looked for and how to get one.
func TestCredentialsIssueAndRevoke(t *testing.T) {
	data := filepath.Join(t.TempDir(), "cell")
	s := startChildServer(t, data)
	work := t.TempDir()
	admin := filepath.Join(data, "pki", "admin")
	at := []string{"--server", s.addr}
	must := func(args ...string) string {
		t.Helper()
		out, err := runCell(t, work, append(args, at...)...)
		if err != nil {
			t.Fatalf("cell %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	fails := func(want string, args ...string) {
		t.Helper()
		out, err := runCell(t, work, append(args, at...)...)
		if err == nil || !strings.Contains(out, want) {
			t.Fatalf("cell %s: %v, want a failure saying %q:\n%s", strings.Join(args, " "), err, want, out)
		}
	}

	ops := filepath.Join(work, "ops")
	if out := must("credentials", "issue", "--role", "admin", "--out", ops, "--credentials", admin); !strings.Contains(out, "wrote "+ops+": admin") {
		t.Errorf("issue printed %q", out)
	}
	alice := filepath.Join(work, "alice")
	must("credentials", "issue", "--role", "user", "--name", "alice", "--tenant", "ml", "--tenant", "infra", "--ttl", "720h", "--out", alice, "--credentials", admin)
	b, err := credentials.Load(alice)
	if err != nil {
		t.Fatal(err)
	}
	if b.Identity.String() != "user/alice" || !b.Identity.InTenant("ml") || !b.Identity.InTenant("infra") {
		t.Errorf("alice's bundle is %v", b.Identity)
	}
	for f, want := range map[string]os.FileMode{"": 0o700, credentials.KeyFile: 0o600} {
		st, err := os.Stat(filepath.Join(alice, f))
		if err != nil || st.Mode().Perm() != want {
			t.Errorf("%s/%s: %v mode %o, want %o", alice, f, err, st.Mode().Perm(), want)
		}
	}
	fails("already holds", "credentials", "issue", "--role", "user", "--name", "alice", "--out", alice, "--credentials", admin)
	fails("PermissionDenied", "credentials", "issue", "--role", "admin", "--out", filepath.Join(work, "x"), "--credentials", alice)

	must("machine", "list", "--credentials", ops)
	if out := must("credentials", "revoke", ops, "--credentials", admin); !strings.Contains(out, "revoked ") {
		t.Errorf("revoke printed %q", out)
	}
	fails("Unauthenticated", "machine", "list", "--credentials", ops)
	fails("is revoked", "machine", "list", "--credentials", ops)
	if out := must("credentials", "revoked", "--credentials", admin); !strings.Contains(out, "admin") {
		t.Errorf("revoked list lacks the revoked admin credential:\n%s", out)
	}

	fails("cell credentials issue", "machine", "list")
	fails(filepath.Join("cell-data", "pki", "admin", "cert.pem"), "machine", "list")
}

// `cell agent --simulate` with its own fleet credential keeps its machines
// alive over authenticated NATS; the same fleet with another fleet's
// credential may not even register its machines (authorization: a fleet
// speaks for NAME-<digits> of its own name only), and NATS would refuse
// its heartbeats (cellserver's TestNATSAuthentication).
func TestAgentHeartbeatsWithItsOwnCredential(t *testing.T) {
	data := filepath.Join(t.TempDir(), "cell")
	s := startChildServer(t, data, "--grace", "2s")
	work := t.TempDir()
	admin := filepath.Join(data, "pki", "admin")
	for _, name := range []string{"sim", "other"} {
		if out, err := runCell(t, work, "credentials", "issue", "--role", "agent", "--name", name, "--fleet",
			"--out", filepath.Join(work, name), "--server", s.addr, "--credentials", admin); err != nil {
			t.Fatalf("issue %s: %v\n%s", name, err, out)
		}
	}
	startAgent := func(name, creds string) {
		cmd := exec.Command(cellBinary, "agent", "--simulate", "2", "--name", name, "--server", s.addr, "--credentials", creds, "--log-level", "error")
		cmd.Dir = work
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	}
	startAgent("sim", filepath.Join(work, "sim"))
	startAgent("bad", filepath.Join(work, "other"))

	machines := cellv1.NewMachineServiceClient(s.conn)
	want := map[string]cellv1.MachineState{
		"sim-0": cellv1.MachineState_MACHINE_STATE_READY, "sim-1": cellv1.MachineState_MACHINE_STATE_READY,
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		r, err := machines.ListMachines(ctx, &cellv1.ListMachinesRequest{})
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]cellv1.MachineState{}
		for _, m := range r.Machines {
			got[m.Id] = m.State
		}
		if reflect.DeepEqual(got, want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("machine states %v, want %v", got, want)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// And the good fleet stays alive past the grace period.
	time.Sleep(3 * time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, id := range []string{"sim-0", "sim-1"} {
		m, err := machines.GetMachine(ctx, &cellv1.GetMachineRequest{Id: id})
		if err != nil {
			t.Fatal(err)
		}
		if m.Machine.State != cellv1.MachineState_MACHINE_STATE_READY || time.Since(time.Unix(0, m.Machine.LastHeartbeatUnixNano)) > 2*time.Second {
			t.Errorf("%s: %v, last heartbeat %v ago", id, m.Machine.State, time.Since(time.Unix(0, m.Machine.LastHeartbeatUnixNano)))
		}
	}
	r, err := machines.ListMachines(ctx, &cellv1.ListMachinesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range r.Machines {
		if strings.HasPrefix(m.Id, "bad-") {
			t.Errorf("the other fleet's credential registered %s", m.Id)
		}
	}
}
