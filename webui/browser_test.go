package webui_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
)

// waitJS evaluates a JavaScript boolean expression in the page until it
// is true, failing the test when the tab's deadline passes first.
func waitJS(t *testing.T, ctx context.Context, what, expr string) {
	t.Helper()
	var last string
	for {
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`(() => { try { return !!(`+expr+`) } catch (e) { return false } })()`))
		if err == nil && ok {
			return
		}
		if err != nil {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v (last error: %s)", what, ctx.Err(), last)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// clickJS waits for the element selector names and clicks it in the same
// evaluation: the page re-renders rows as the cell changes, and a node
// found by one call may be gone by the next (chromedp.Click then fails
// with "Could not find node with given id").
func clickJS(t *testing.T, ctx context.Context, selector string) {
	t.Helper()
	waitJS(t, ctx, selector+" to click", `(e => e && (e.click(), true))(document.querySelector(`+strconv.Quote(selector)+`))`)
}

func evalJS[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

func navigate(t *testing.T, ctx context.Context, url string) {
	t.Helper()
	if err := chromedp.Do(ctx, chromedp.Navigate(url)); err != nil {
		t.Fatalf("navigate %s: %v", url, err)
	}
}

// The Cell page's grid draws every machine of the cell (the simulated
// ones and the real agent), from the live stream.
func TestBrowserGridShowsEveryMachine(t *testing.T) {
	ctx := tab(t, 3*time.Minute)
	c := shared(t)
	navigate(t, ctx, c.loginURL(t, c.admin))
	waitJS(t, ctx, "the grid", `document.querySelector('#grid') && document.querySelector('#grid').dataset.drawn == `+fmt.Sprint(c.machines))
	zones := evalJS[[]string](t, ctx, `[...new Set([...S.machines.values()].map(m => m[1]))].sort()`)
	if want := []string{"local"}; !containsAll(zones, want) || len(zones) < 2 {
		t.Errorf("zones on the page: %v, want local and the simulated zones", zones)
	}
	// Switching the colour keeps every machine drawn.
	if err := chromedp.Do(ctx, chromedp.SetValue(chromedp.CSS("#color-mode"), "used-mem"),
		chromedp.Evaluate[chromedp.Void](`document.querySelector('#color-mode').dispatchEvent(new Event('change'))`)); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the grid in used memory", `S.colorMode === 'used-mem' && document.querySelector('#grid').dataset.drawn == `+fmt.Sprint(c.machines))
}

func containsAll(have, want []string) bool {
	for _, w := range want {
		found := false
		for _, h := range have {
			found = found || h == w
		}
		if !found {
			return false
		}
	}
	return true
}

// A job submitted through the API appears on the open Jobs page, and its
// progress moves to done, without a reload.
func TestBrowserJobAppearsAndProgresses(t *testing.T) {
	ctx := tab(t, 3*time.Minute)
	c := shared(t)
	navigate(t, ctx, c.loginURL(t, c.admin))
	navigate(t, ctx, c.web+"/#/jobs")
	waitJS(t, ctx, "the jobs table", `document.querySelector('#jobs') && document.querySelector('#conn').textContent === 'live'`)
	if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](`window.__noReload = 1; S.jobState = 'all'; document.querySelector('#job-state').value = 'all'`)); err != nil {
		t.Fatal(err)
	}
	c.submit(t, &cellv1.JobSpec{
		Name: "frames", Tenant: "render", Scheduler: "batch", Priority: 100, Count: 12, Kind: cellv1.JobKind_JOB_KIND_BATCH,
		Task: &cellv1.TaskTemplate{Command: "/bin/true", Resources: &cellv1.Resources{CpuMilli: 500, MemoryBytes: 64 << 20}, DurationMs: 4000,
			Constraints: []*cellv1.Constraint{{Key: "zone", Op: cellv1.ConstraintOp_CONSTRAINT_OP_NOT_IN, Values: []string{"local"}}}},
	})
	row := `document.querySelector('tr[data-job="frames"]')`
	waitJS(t, ctx, "the job's row", row)
	first := evalJS[string](t, ctx, row+`.querySelector('.counts').textContent`)
	waitJS(t, ctx, "every task done", row+`.querySelector('.counts').textContent === '0 / 0 / 0 / 12 / 0'`)
	if first == "0 / 0 / 0 / 12 / 0" {
		t.Errorf("the row appeared already done (%q): no progress was seen", first)
	}
	if !evalJS[bool](t, ctx, `window.__noReload === 1`) {
		t.Error("the page was reloaded")
	}
	t.Logf("first counts %q, then done", first)
}

// A task's logs follow on its job page while the process writes them
// (a real process on the real agent).
func TestBrowserLogsFollow(t *testing.T) {
	ctx := tab(t, 3*time.Minute)
	c := shared(t)
	j := c.submit(t, &cellv1.JobSpec{
		Name: "talker", Tenant: "ops", Scheduler: "batch", Priority: 100, Count: 1, Kind: cellv1.JobKind_JOB_KIND_BATCH,
		Task: &cellv1.TaskTemplate{Command: "/bin/sh", Args: []string{"-c", "i=1; while [ $i -le 40 ]; do echo line-$i; i=$((i+1)); sleep 0.25; done"},
			Resources:   &cellv1.Resources{CpuMilli: 100, MemoryBytes: 16 << 20},
			Constraints: []*cellv1.Constraint{{Key: "zone", Op: cellv1.ConstraintOp_CONSTRAINT_OP_IN, Values: []string{"local"}}}},
	})
	navigate(t, ctx, c.loginURL(t, c.admin))
	navigate(t, ctx, c.web+"/#/job/"+j.Id)
	waitJS(t, ctx, "the task's row", `document.querySelector('.logs-btn')`)
	clickJS(t, ctx, ".logs-btn")
	waitJS(t, ctx, "the first lines", `document.querySelector('#logs').textContent.includes('line-2\n')`)
	early := evalJS[string](t, ctx, `document.querySelector('#logs').textContent`)
	waitJS(t, ctx, "the last line", `document.querySelector('#logs').textContent.includes('line-40\n')`)
	if strings.Contains(early, "line-40") {
		t.Fatalf("the whole output was there at once (%d bytes): nothing was followed", len(early))
	}
	got := evalJS[string](t, ctx, `document.querySelector('#logs').textContent`)
	for i := 1; i <= 40; i++ {
		if strings.Count(got, fmt.Sprintf("line-%d\n", i)) != 1 {
			t.Fatalf("line-%d appears %d times in the followed output:\n%s", i, strings.Count(got, fmt.Sprintf("line-%d\n", i)), got)
		}
	}
	waitJS(t, ctx, "the follower to see the end", `document.querySelector('#logs-title').textContent.includes('finished')`)
}

// Stopping a job from its page (with the confirmation) stops it in the
// cell.
func TestBrowserStopJob(t *testing.T) {
	ctx := tab(t, 3*time.Minute)
	c := shared(t)
	j := c.submit(t, &cellv1.JobSpec{
		Name: "web", Tenant: "shop", Scheduler: "service", Priority: 200, Count: 2, Kind: cellv1.JobKind_JOB_KIND_SERVICE,
		Task: &cellv1.TaskTemplate{Command: "/bin/sleep", Args: []string{"3600"}, Resources: &cellv1.Resources{CpuMilli: 250, MemoryBytes: 64 << 20},
			Constraints: []*cellv1.Constraint{{Key: "zone", Op: cellv1.ConstraintOp_CONSTRAINT_OP_NOT_IN, Values: []string{"local"}}}},
	})
	navigate(t, ctx, c.loginURL(t, c.admin))
	navigate(t, ctx, c.web+"/#/job/"+j.Id)
	waitJS(t, ctx, "the stop button", `document.querySelector('#stop-job')`)
	clickJS(t, ctx, "#stop-job")
	waitJS(t, ctx, "the confirmation", `!document.querySelector('#modal').hidden && document.querySelector('#modal-text').textContent.includes('web')`)
	if st := c.job(t, j.Id).Job.State; st == cellv1.JobState_JOB_STATE_STOPPED {
		t.Fatal("the job stopped before the confirmation")
	}
	clickJS(t, ctx, "#modal-ok")
	waitJS(t, ctx, "the page to show it stopped", `document.querySelector('#job-state') && document.querySelector('#job-state').textContent === 'STOPPED'`)
	if st := c.job(t, j.Id).Job.State; st != cellv1.JobState_JOB_STATE_STOPPED {
		t.Fatalf("job state in the cell: %s, want STOPPED", st)
	}
}

// A browser without a session gets the login help and no data: every API
// answer is 401, the event stream included, and the page holds no
// machine or job.
func TestBrowserUnauthenticatedGetsNoData(t *testing.T) {
	ctx := tab(t, 2*time.Minute)
	c := shared(t)
	j := c.submit(t, &cellv1.JobSpec{
		Name: "secret-job", Tenant: "ml", Scheduler: "batch", Priority: 100, Count: 1, Kind: cellv1.JobKind_JOB_KIND_BATCH,
		Task: &cellv1.TaskTemplate{Command: "/bin/true", Resources: &cellv1.Resources{CpuMilli: 100, MemoryBytes: 16 << 20}, DurationMs: 1000, Env: map[string]string{"TOKEN": "hunter2"}},
	})
	navigate(t, ctx, c.web+"/")
	waitJS(t, ctx, "the login help", `document.querySelector('#login-required')`)
	statuses := evalJS[[]int](t, ctx, `Promise.all(['/api/me', '/api/events', '/api/job?id=`+j.Id+`', '/api/machine?id=real-1', '/api/logs?job=`+j.Id+`&task=0', '/api/tenants'].map(u => fetch(u).then(r => r.status)))`)
	for i, s := range statuses {
		if s != 401 {
			t.Errorf("request %d answered %d, want 401", i, s)
		}
	}
	posts := evalJS[[]int](t, ctx, `Promise.all(['/api/stop', '/api/drain'].map(u => fetch(u, {method: 'POST', headers: {'X-Omegacell': '1'}, body: JSON.stringify({job: '`+j.Id+`', machine: 'real-1', drain: true})}).then(r => r.status)))`)
	for i, s := range posts {
		if s != 401 {
			t.Errorf("action %d answered %d, want 401", i, s)
		}
	}
	body := evalJS[string](t, ctx, `document.documentElement.outerHTML`)
	for _, leak := range []string{"secret-job", "hunter2", "sim-", "real-1", j.Id} {
		if strings.Contains(body, leak) {
			t.Errorf("the page holds %q", leak)
		}
	}
	if n := evalJS[int](t, ctx, `S.machines.size + S.jobs.size`); n != 0 {
		t.Errorf("the page's model holds %d rows", n)
	}
	// A used or forged token does not log in.
	navigate(t, ctx, c.web+"/login?token=forged.token")
	navigate(t, ctx, c.web+"/")
	waitJS(t, ctx, "the login help again", `document.querySelector('#login-required')`)
	if st := c.job(t, j.Id).Job.State; st == cellv1.JobState_JOB_STATE_STOPPED {
		t.Error("an unauthenticated action stopped the job")
	}
}

// Draining a machine from its page (admin, with the confirmation) drains
// it in the cell, and the grid marks it.
func TestBrowserDrainMachine(t *testing.T) {
	ctx := tab(t, 3*time.Minute)
	c := shared(t)
	const id = "sim-39"
	navigate(t, ctx, c.loginURL(t, c.admin))
	navigate(t, ctx, c.web+"/#/machine/"+id)
	waitJS(t, ctx, "the drain button", `document.querySelector('#drain') && document.querySelector('#drain').textContent === 'Drain'`)
	clickJS(t, ctx, "#drain")
	waitJS(t, ctx, "the confirmation", `!document.querySelector('#modal').hidden && document.querySelector('#modal-text').textContent.includes('`+id+`')`)
	clickJS(t, ctx, "#modal-ok")
	waitJS(t, ctx, "the page to offer undrain", `document.querySelector('#drain') && document.querySelector('#drain').textContent === 'Undrain'`)
	rctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	m, err := cellv1.NewMachineServiceClient(c.conn).GetMachine(rctx, &cellv1.GetMachineRequest{Id: id})
	if err != nil {
		t.Fatal(err)
	}
	if m.Machine.GetDrain() == nil && m.Machine.State != cellv1.MachineState_MACHINE_STATE_DRAINING {
		t.Fatalf("machine %s: state %s, drain %v; want it draining", id, m.Machine.State, m.Machine.GetDrain())
	}
	waitJS(t, ctx, "the live row to say draining", `S.machines.get('`+id+`')[3] === 2`)
	// Undrain it again for the other tests.
	if _, err := cellv1.NewMachineServiceClient(c.conn).DrainMachine(rctx, &cellv1.DrainMachineRequest{Id: id, Drain: false}); err != nil {
		t.Fatal(err)
	}
}
