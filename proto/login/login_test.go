package login

import (
	"encoding/base64"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/omegacell/omegacell/pki"
	"github.com/omegacell/omegacell/proto/credentials"
	"github.com/omegacell/omegacell/proto/identity"
)

func bundle(t *testing.T, dir string) (*pki.Cell, *credentials.Bundle) {
	t.Helper()
	cell, err := pki.Ensure(dir, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	id, _ := identity.New(identity.User, "alice", "ml")
	b, err := cell.CA.IssueBundle(id, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return cell, b
}

func TestVerify(t *testing.T) {
	cell, b := bundle(t, t.TempDir())
	other, _ := bundle(t, t.TempDir())
	now := time.Now()
	good, err := Token(b, 5*time.Minute, now)
	if err != nil {
		t.Fatal(err)
	}
	payload, sig, _ := strings.Cut(good, ".")
	raw, _ := base64.RawURLEncoding.DecodeString(payload)
	tampered := base64.RawURLEncoding.EncodeToString([]byte(strings.Replace(string(raw), `"exp":`, `"exp":1`, 1))) + "." + sig
	for _, tc := range []struct {
		name, token string
		roots       *pki.Cell
		at          time.Time
		wantErr     string
	}{
		{"good", good, cell, now, ""},
		{"expired", good, cell, now.Add(6 * time.Minute), "expired"},
		{"another cell", good, other, now, "not a credential of this cell"},
		{"tampered", tampered, cell, now, "signature"},
		{"no signature", payload, cell, now, "malformed"},
		{"garbage", "a.b", cell, now, "malformed"},
		{"too long", strings.Repeat("a", MaxTokenBytes+1), cell, now, "too long"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Verify(tc.token, tc.roots.CA.Pool(), tc.at)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("Verify: %v", err)
			case tc.wantErr == "" && c.Cert.SerialNumber.Cmp(b.Leaf.SerialNumber) != 0:
				t.Fatal("the claim's certificate is not the bundle's")
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("Verify: %v, want an error with %q", err, tc.wantErr)
			}
		})
	}
	if _, err := Token(b, MaxTTL+time.Second, now); err == nil {
		t.Error("a token longer than MaxTTL was made")
	}
}
