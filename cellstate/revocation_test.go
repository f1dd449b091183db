package cellstate

import (
	"math/big"
	"testing"
	"time"
)

// Revocations are durable, idempotent, checked by serial, validated, and
// forgotten on reopen once the credential they name has expired.
func TestRevocationsDurableAndPruned(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	st, err := Open(Options{Dir: dir, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	r, err := OpenRevocations(st)
	if err != nil {
		t.Fatal(err)
	}
	serial := func(h string) *big.Int { n, _ := new(big.Int).SetString(h, 16); return n }
	if r.IsRevoked(serial("abc")) {
		t.Fatal("revoked before any revocation")
	}
	for _, bad := range []string{"", "ABC", "0abc", "xyz"} {
		if _, err := r.Revoke(bad, "x", time.Time{}); err == nil {
			t.Errorf("Revoke(%q) accepted", bad)
		}
	}
	if ok, err := r.Revoke("abc", "user/alice", now.Add(time.Hour)); !ok || err != nil {
		t.Fatalf("Revoke = %v, %v", ok, err)
	}
	if ok, err := r.Revoke("abc", "user/alice", now.Add(time.Hour)); ok || err != nil {
		t.Fatalf("second Revoke = %v, %v, want false", ok, err)
	}
	if _, err := r.Revoke("def", "agent/m", now.Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if !r.IsRevoked(serial("abc")) || !r.IsRevoked(serial("def")) || r.IsRevoked(serial("abd")) {
		t.Fatal("IsRevoked wrong")
	}
	if l := r.List(); len(l) != 2 || l[0].Serial != "abc" || l[0].Identity != "user/alice" {
		t.Fatalf("List = %v", l)
	}
	st.Close()

	// 90 minutes later abc has expired: it is forgotten, def is kept.
	later := now.Add(90 * time.Minute)
	st, err = Open(Options{Dir: dir, Now: func() time.Time { return later }})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	r, err = OpenRevocations(st)
	if err != nil {
		t.Fatal(err)
	}
	if r.IsRevoked(serial("abc")) || !r.IsRevoked(serial("def")) || len(r.List()) != 1 {
		t.Fatalf("after reopen: %v", r.List())
	}
}
