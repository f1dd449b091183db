package webui_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"google.golang.org/grpc"

	"github.com/omegacell/omegacell/agent"
	"github.com/omegacell/omegacell/cellserver"
	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
	"github.com/omegacell/omegacell/proto/credentials"
	"github.com/omegacell/omegacell/proto/identity"
	"github.com/omegacell/omegacell/proto/login"
	"github.com/omegacell/omegacell/schedulers/policy/builtin"
	"github.com/omegacell/omegacell/schedulers/sdk"
)

// The browser tests drive a real headless Chromium (Debian's chromium,
// which .ci/run installs) with chromedp against a real cell: a server with
// mutual TLS, the batch, service and GPU schedulers, simulated machines and a
// real agent running real processes. One browser per test binary; each
// test opens its own browser context (cookies of its own).

var (
	browserOnce sync.Once
	browserCtx  context.Context
	browserErr  error
	stopBrowser = func() {}
)

// chromiumPath finds Chromium, or says why not.
func chromiumPath() (string, error) {
	if p := os.Getenv("CHROMIUM"); p != "" {
		return p, nil
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", errors.New("no chromium, chromium-browser, google-chrome or headless-shell on PATH (apt-get install chromium)")
}

// browser is the shared headless browser. Without Chromium the test fails
// in CI (CI=true) and is skipped elsewhere, with the reason.
func browser(t *testing.T) context.Context {
	t.Helper()
	browserOnce.Do(func() {
		path, err := chromiumPath()
		if err != nil {
			browserErr = err
			return
		}
		opts := append(chromedp.DefaultExecAllocatorOptions[:],
			chromedp.ExecPath(path), chromedp.NoSandbox, chromedp.DisableGPU,
			chromedp.WindowSize(1400, 1000), chromedp.Flag("enable-precise-memory-info", true))
		alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
		ctx, cancelCtx := chromedp.NewContext(alloc)
		// The first call starts the browser, which lives as long as the
		// context of that call: no deadline on it.
		if err := chromedp.Do(ctx); err != nil {
			cancelCtx()
			cancelAlloc()
			browserErr = fmt.Errorf("start %s: %w", path, err)
			return
		}
		browserCtx = ctx
		stopBrowser = func() { cancelCtx(); cancelAlloc() }
	})
	if browserErr != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("browser tests need Chromium in CI: %v", browserErr)
		}
		t.Skipf("skipping browser test: %v", browserErr)
	}
	return browserCtx
}

// tab is a new tab in a browser context of its own, closed when the test
// ends; every action has the test's deadline.
func tab(t *testing.T, timeout time.Duration) context.Context {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browser(t), chromedp.WithNewBrowserContext())
	ctx, cancelT := context.WithTimeout(ctx, timeout)
	t.Cleanup(func() { cancelT(); cancel() })
	if err := chromedp.Do(ctx); err != nil {
		t.Fatal(err)
	}
	return ctx
}

func TestMain(m *testing.M) {
	flag.Parse()
	code := m.Run()
	closeShared()
	stopBrowser()
	os.Exit(code)
}

// testCell is a running cell for browser tests.
type testCell struct {
	srv      *cellserver.Server
	conn     *grpc.ClientConn // admin
	admin    *credentials.Bundle
	web      string // http://host:port
	machines int    // registered: simulated + the real agent
	dir      string
	cancel   context.CancelFunc
	wg       sync.WaitGroup
}

var (
	sharedOnce sync.Once
	sharedCell *testCell
	sharedErr  error
)

// shared is the cell the browser tests share: 40 simulated machines in 3
// zones and a real agent (zone local) on this machine.
func shared(t *testing.T) *testCell {
	t.Helper()
	sharedOnce.Do(func() { sharedCell, sharedErr = startCell(40, true) })
	if sharedErr != nil {
		t.Fatal(sharedErr)
	}
	return sharedCell
}

func closeShared() {
	if sharedCell != nil {
		sharedCell.close()
	}
}

var discard = slog.New(slog.NewTextHandler(io.Discard, nil))

func startCell(simulated int, realAgent bool) (_ *testCell, err error) {
	dir, err := os.MkdirTemp("", "webui-test-")
	if err != nil {
		return nil, err
	}
	c := &testCell{dir: dir}
	defer func() {
		if err != nil {
			c.close()
		}
	}()
	c.srv, err = cellserver.Start(cellserver.Config{
		DataDir: filepath.Join(dir, "cell"), Listen: "127.0.0.1:0", Metrics: "127.0.0.1:0", NATSListen: "127.0.0.1:-1", NoSync: true,
		Grace: 30 * time.Second,
	}, discard)
	if err != nil {
		return nil, err
	}
	c.web = "http://" + c.srv.MetricsAddr()
	if c.admin, err = credentials.Load(c.srv.AdminDir()); err != nil {
		return nil, err
	}
	dial, err := credentials.Client{Bundle: c.admin}.DialOption(c.srv.Addr())
	if err != nil {
		return nil, err
	}
	if c.conn, err = grpc.NewClient(c.srv.Addr(), dial); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	run := func(fn func(context.Context) error) {
		c.wg.Add(1)
		go func() { defer c.wg.Done(); _ = fn(ctx) }()
	}
	for _, name := range []string{"batch", "service", "gpu"} {
		pol, err := builtin.Lookup(name)
		if err != nil {
			return nil, err
		}
		creds, err := c.srv.Client(identity.Identity{Role: identity.Scheduler, Name: name})
		if err != nil {
			return nil, err
		}
		cfg := sdk.Config{Server: c.srv.Addr(), Credentials: creds, Name: name, Policy: pol, Seed: 1, Logger: discard}
		run(func(ctx context.Context) error { return sdk.Run(ctx, cfg) })
	}
	if simulated > 0 {
		fleet, err := identity.NewFleet("sim")
		if err != nil {
			return nil, err
		}
		creds, err := c.srv.Client(fleet)
		if err != nil {
			return nil, err
		}
		sim, err := agent.NewSimulation(agent.SimConfig{Server: c.srv.Addr(), Credentials: creds, Prefix: "sim", Machines: simulated, Profile: agent.DefaultProfile(), Logger: discard})
		if err != nil {
			return nil, err
		}
		run(sim.Run)
		select {
		case <-sim.Synced():
		case <-time.After(2 * time.Minute):
			return nil, errors.New("the simulated machines did not sync within 2 minutes")
		}
		c.machines += simulated
	}
	if realAgent {
		creds, err := c.srv.Client(identity.Identity{Role: identity.Agent, Name: "real-1"})
		if err != nil {
			return nil, err
		}
		a, err := agent.New(ctx, agent.Config{
			Server: c.srv.Addr(), Credentials: creds, Name: "real-1", DataDir: filepath.Join(dir, "agent"), CPUMilli: 2000, MemoryBytes: 4 << 30, DiskBytes: 10 << 30,
			Labels: map[string]string{"zone": "local", "rack": "local"}, GPUs: 0, CgroupRoot: "-", StopGrace: 300 * time.Millisecond, Logger: discard,
			StopTasksOnExit: true, // a test leaves no task process behind
		})
		if err != nil {
			return nil, err
		}
		run(a.Run)
		select {
		case <-a.Synced():
		case <-time.After(time.Minute):
			return nil, errors.New("the real agent did not sync within a minute")
		}
		c.machines++
	}
	return c, nil
}

func (c *testCell) close() {
	if c.cancel != nil {
		c.cancel()
	}
	c.wg.Wait()
	if c.conn != nil {
		c.conn.Close()
	}
	if c.srv != nil {
		c.srv.Close()
	}
	os.RemoveAll(c.dir)
}

// loginURL is a fresh login link for the bundle (as `cell ui` prints).
func (c *testCell) loginURL(t *testing.T, b *credentials.Bundle) string {
	t.Helper()
	tok, err := login.Token(b, 5*time.Minute, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return c.web + "/login?token=" + tok
}

// userBundle issues a user credential in the given tenants.
func (c *testCell) userBundle(t *testing.T, name string, tenants ...string) *credentials.Bundle {
	t.Helper()
	id, err := identity.New(identity.User, name, tenants...)
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.srv.CA().IssueBundle(id, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (c *testCell) submit(t *testing.T, spec *cellv1.JobSpec) *cellv1.Job {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := cellv1.NewJobServiceClient(c.conn).SubmitJob(ctx, &cellv1.SubmitJobRequest{Spec: spec})
	if err != nil {
		t.Fatalf("submit %s: %v", spec.Name, err)
	}
	return r.Job
}

func (c *testCell) job(t *testing.T, id string) *cellv1.GetJobResponse {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := cellv1.NewJobServiceClient(c.conn).GetJob(ctx, &cellv1.GetJobRequest{IdOrName: id})
	if err != nil {
		t.Fatal(err)
	}
	return r
}
