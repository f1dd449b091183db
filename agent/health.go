package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"syscall"
	"time"

	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
)

// Health check defaults, those of Kubernetes liveness probes: a probe every
// 10 s, 1 s to answer, unhealthy after 3 failures in a row.
const (
	defaultProbeInterval  = 10 * time.Second
	defaultProbeTimeout   = time.Second
	defaultProbeThreshold = 3
)

// prober runs one attempt's health check.
type prober struct {
	exec      []string
	url       string
	interval  time.Duration
	timeout   time.Duration
	threshold int
	dir       string
	env       []string
	client    *http.Client
}

// newProber returns nil when the template has no health check.
func newProber(hc *cellv1.HealthCheck, dir string, env []string) *prober {
	if len(hc.GetExec()) == 0 && hc.GetHttpGetUrl() == "" {
		return nil
	}
	p := &prober{
		exec:      hc.GetExec(),
		url:       hc.GetHttpGetUrl(),
		interval:  time.Duration(hc.GetIntervalMs()) * time.Millisecond,
		timeout:   time.Duration(hc.GetTimeoutMs()) * time.Millisecond,
		threshold: int(hc.GetFailureThreshold()),
		dir:       dir,
		env:       env,
	}
	if p.interval <= 0 {
		p.interval = defaultProbeInterval
	}
	if p.timeout <= 0 {
		p.timeout = defaultProbeTimeout
	}
	if p.threshold <= 0 {
		p.threshold = defaultProbeThreshold
	}
	// No keep-alive: a probe must see whether the task still accepts
	// connections, not reuse one it accepted earlier.
	p.client = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	return p
}

// run probes every interval until done is closed, and calls unhealthy
// once, after threshold failures in a row.
func (p *prober) run(done <-chan struct{}, unhealthy func(reason string)) {
	ticker := time.NewTicker(p.interval)
	defer ticker.Stop()
	failures := 0
	for {
		select {
		case <-done:
			return
		case <-ticker.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), p.timeout)
		err := p.probe(ctx)
		cancel()
		if err == nil {
			failures = 0
			continue
		}
		failures++
		if failures >= p.threshold {
			unhealthy(fmt.Sprintf("%d consecutive failures, last: %v", failures, err))
			return
		}
	}
}

// probe runs the check once.
func (p *prober) probe(ctx context.Context) error {
	if len(p.exec) > 0 {
		return p.probeExec(ctx)
	}
	return p.probeHTTP(ctx)
}

// probeExec runs the command in the attempt's directory and environment;
// exit 0 is healthy. On timeout its whole process group is killed.
func (p *prober) probeExec(ctx context.Context) error {
	cmd := exec.CommandContext(ctx, p.exec[0], p.exec[1:]...)
	cmd.Dir = p.dir
	cmd.Env = p.env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = time.Second
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		return fmt.Errorf("exec %q timed out after %v", strings.Join(p.exec, " "), p.timeout)
	}
	if err != nil {
		msg := fmt.Sprintf("exec %q: %v", strings.Join(p.exec, " "), err)
		if s := strings.TrimSpace(string(out)); s != "" {
			msg += ": " + firstBytes(s, 200)
		}
		return errors.New(msg)
	}
	return nil
}

// probeHTTP sends a GET; a status from 200 to 399 is healthy.
func (p *prober) probeHTTP(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.url, nil)
	if err != nil {
		return fmt.Errorf("GET %s: %w", p.url, err)
	}
	resp, err := p.client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("GET %s timed out after %v", p.url, p.timeout)
		}
		return fmt.Errorf("GET %s: %w", p.url, err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode >= 400 {
		return fmt.Errorf("GET %s: status %d", p.url, resp.StatusCode)
	}
	return nil
}

func firstBytes(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// runReadiness runs a readiness check (issue 13) until done is closed: a
// probe at once, then every interval; report(true) after a success,
// report(false) after threshold failures in a row, each only when it
// changes (as Kubernetes' readiness probes with successThreshold 1).
func (p *prober) runReadiness(done <-chan struct{}, report func(bool)) {
	ticker := time.NewTicker(p.interval)
	defer ticker.Stop()
	failures, ready := 0, false
	for {
		ctx, cancel := context.WithTimeout(context.Background(), p.timeout)
		err := p.probe(ctx)
		cancel()
		select {
		case <-done:
			return
		default:
		}
		switch {
		case err == nil:
			failures = 0
			if !ready {
				ready = true
				report(true)
			}
		case ready:
			if failures++; failures >= p.threshold {
				ready = false
				report(false)
			}
		}
		select {
		case <-done:
			return
		case <-ticker.C:
		}
	}
}
