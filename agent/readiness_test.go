package agent

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
)

// A readiness check reports ready once it passes, and not ready after
// failure_threshold failures in a row.
func TestReadinessProbe(t *testing.T) {
	dir := t.TempDir()
	flag := filepath.Join(dir, "ready")
	p := newProber(&cellv1.HealthCheck{Exec: []string{"test", "-f", flag}, IntervalMs: 20, TimeoutMs: 1000, FailureThreshold: 2}, dir, []string{"PATH=" + os.Getenv("PATH")})
	done := make(chan struct{})
	reports := make(chan bool, 10)
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		p.runReadiness(done, func(ok bool) { reports <- ok })
	}()
	defer func() { close(done); <-finished }()
	expect := func(want bool) {
		t.Helper()
		select {
		case got := <-reports:
			if got != want {
				t.Fatalf("readiness %v, want %v", got, want)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("no readiness report (want %v)", want)
		}
	}
	select {
	case r := <-reports:
		t.Fatalf("reported %v before the check passed", r)
	case <-time.After(100 * time.Millisecond):
	}
	if err := os.WriteFile(flag, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	expect(true)
	if err := os.Remove(flag); err != nil {
		t.Fatal(err)
	}
	expect(false)
}
