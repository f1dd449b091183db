package credentials_test

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/omegacell/omegacell/pki"
	"github.com/omegacell/omegacell/proto/credentials"
	"github.com/omegacell/omegacell/proto/identity"
)

// writeBundle writes a credential of a fresh cell for id into dir.
func writeBundle(t *testing.T, ca *pki.CA, id identity.Identity, dir string) {
	t.Helper()
	key, keyPEM, err := credentials.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	_, certPEM, err := ca.Issue(id, key.Public(), time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := credentials.Write(dir, ca.CertPEM, certPEM, keyPEM); err != nil {
		t.Fatal(err)
	}
}

// Find looks at the flag, then $CELL_CREDENTIALS, then
// ./cell-data/pki/admin; without any it names the files and how to get one.
func TestFindOrder(t *testing.T) {
	cell, err := pki.Ensure(filepath.Join(t.TempDir(), "pki"), nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	t.Chdir(work)
	sched, _ := identity.New(identity.Scheduler, "batch")
	user, _ := identity.New(identity.User, "alice", "ml")
	writeBundle(t, cell.CA, sched, filepath.Join(work, "sched"))
	writeBundle(t, cell.CA, user, filepath.Join(work, "alice"))

	t.Setenv(credentials.Env, "")
	_, err = credentials.Find("")
	for _, want := range []string{filepath.Join("cell-data", "pki", "admin", "cert.pem"), "cell credentials issue", credentials.Env} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("without credentials: %v, want it to name %q", err, want)
		}
	}
	admin, _ := identity.New(identity.Admin, "")
	writeBundle(t, cell.CA, admin, filepath.Join(work, credentials.DefaultDir))
	for _, tc := range []struct {
		flag, env, want string
	}{
		{"", "", "admin"},
		{"", filepath.Join(work, "alice"), "user/alice"},
		{filepath.Join(work, "sched"), filepath.Join(work, "alice"), "scheduler/batch"},
	} {
		t.Setenv(credentials.Env, tc.env)
		b, err := credentials.Find(tc.flag)
		if err != nil || b.Identity.String() != tc.want {
			t.Errorf("flag %q env %q: %v %v, want %s", tc.flag, tc.env, b, err, tc.want)
		}
	}
	t.Setenv(credentials.Env, filepath.Join(work, "missing"))
	if _, err := credentials.Find(""); err == nil || !strings.Contains(err.Error(), "$"+credentials.Env) {
		t.Errorf("a missing $%s: %v", credentials.Env, err)
	}
	if _, err := credentials.Find(filepath.Join(work, "missing")); err == nil || !strings.Contains(err.Error(), "--credentials") {
		t.Errorf("a missing --credentials: %v", err)
	}
	st, err := os.Stat(filepath.Join(work, "alice", credentials.KeyFile))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("key mode: %v %v", st, err)
	}
}

func TestServerName(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1:17070":         "127.0.0.1",
		"cell.example.com:7070":   "cell.example.com",
		"[::1]:7070":              "::1",
		"nats://127.0.0.1:4222":   "127.0.0.1",
		"tls://nats.internal:443": "nats.internal",
	} {
		if got := credentials.ServerName(in); got != want {
			t.Errorf("ServerName(%q) = %q, want %q", in, got, want)
		}
	}
}
