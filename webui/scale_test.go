package webui_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
)

var (
	scale        = flag.Bool("scale", false, "run TestBrowserScale: 10,000 simulated machines, 100,000 tasks (minutes of CPU)")
	scaleProfile = flag.String("scale-profile", "", "TestBrowserScale: write a CPU profile of each window with 10 pages open here (then: go tool pprof -top -focus 'webui\\.' FILE)")
)

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestBrowserScale measures the figures on a cell of 10,000
// simulated machines running 100,000 tasks: the Cell page's time to first
// paint (navigation to the grid drawn) and its JS heap, the Jobs page's,
// and the CPU that 10 open Cell pages cost the server (this process's CPU
// with 10 pages open minus with none, interleaved windows; the cell, its
// schedulers and the fleet run in this process too and cost the same in
// both). Opt-in (-scale): it takes minutes.
//
//	go test ./webui -run TestBrowserScale -scale -v -timeout 30m
func TestBrowserScale(t *testing.T) {
	if !*scale {
		t.Skip("opt-in: -scale (10,000 machines, 100,000 tasks; minutes of CPU)")
	}
	const machines, jobs, perJob = 10_000, 100, 1_000
	browser(t)
	began := time.Now()
	c, err := startCell(machines, false)
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	t.Logf("%d machines registered and synced in %s", machines, time.Since(began).Round(time.Second))
	for i := range jobs {
		c.submit(t, &cellv1.JobSpec{Name: fmt.Sprintf("job-%03d", i), Tenant: fmt.Sprintf("t%d", i%5), Scheduler: "batch", Priority: 100, Count: perJob,
			Kind: cellv1.JobKind_JOB_KIND_BATCH, Task: &cellv1.TaskTemplate{Command: "/bin/true", Resources: &cellv1.Resources{CpuMilli: 500, MemoryBytes: 256 << 20}}})
	}
	ctx := tab(t, 25*time.Minute)
	navigate(t, ctx, c.loginURL(t, c.admin))
	waitJS(t, ctx, "100,000 tasks running", `S.stats && S.stats.totals && S.stats.totals.Tasks[2] >= 100000`)
	t.Logf("100,000 tasks running %s after the start", time.Since(began).Round(time.Second))

	// First paint of the Cell page in a fresh tab: navigation to the grid
	// of every machine drawn.
	for round := range 3 {
		fresh := tab(t, 5*time.Minute)
		start := time.Now()
		navigate(t, fresh, c.loginURL(t, c.admin)) // then / (the Cell page)
		waitJS(t, fresh, "the grid", `document.querySelector('#grid') && document.querySelector('#grid').dataset.drawn == 10000`)
		paint := time.Since(start)
		fcp := evalJS[float64](t, fresh, `(performance.getEntriesByName('first-contentful-paint')[0] || {startTime: -1}).startTime`)
		grid := evalJS[float64](t, fresh, `(performance.getEntriesByName('omegacell-grid')[0] || {startTime: -1}).startTime`)
		time.Sleep(3 * time.Second) // a few deltas
		heap := evalJS[float64](t, fresh, `performance.memory.usedJSHeapSize`)
		start = time.Now()
		navigate(t, fresh, c.web+"/#/jobs")
		waitJS(t, fresh, "the jobs table", `document.querySelectorAll('#jobs tr').length == 100`)
		jobsPage := time.Since(start)
		t.Logf("round %d: Cell page: first contentful paint %.0f ms, grid of 10,000 painted %.0f ms after navigation start (page's clock; %s seen from the test); JS heap %.1f MB; Jobs page of 100 jobs in %s",
			round, fcp, grid, paint.Round(time.Millisecond), heap/1e6, jobsPage.Round(time.Millisecond))
	}

	// Server CPU for 10 open pages: interleaved windows without and with.
	const window = 30 * time.Second
	open := func() (close func()) {
		var cancels []context.CancelFunc
		var wg sync.WaitGroup
		for range 10 {
			tctx, cancel := chromedp.NewContext(browser(t), chromedp.WithNewBrowserContext())
			tctx, cancelT := context.WithTimeout(tctx, 5*time.Minute)
			cancels = append(cancels, cancelT, cancel)
			url := c.loginURL(t, c.admin)
			wg.Add(1)
			go func() {
				defer wg.Done()
				_ = chromedp.Do(tctx, chromedp.Navigate(url))
			}()
		}
		wg.Wait()
		return func() {
			for _, f := range cancels {
				f()
			}
		}
	}
	measure := func(profile string) time.Duration {
		if profile != "" {
			f, err := os.Create(profile)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if err := pprof.StartCPUProfile(f); err != nil {
				t.Fatal(err)
			}
			defer pprof.StopCPUProfile()
		}
		c0 := cpuTime()
		time.Sleep(window)
		return cpuTime() - c0
	}
	for round := range 3 {
		without := measure("")
		closePages := open()
		waitJS(t, ctx, "11 pages connected", `S.stats.pages >= 11`)
		time.Sleep(5 * time.Second) // past the first full sends
		pages := evalJS[int](t, ctx, `S.stats.pages`)
		profile := ""
		if *scaleProfile != "" {
			profile = filepath.Join(*scaleProfile, fmt.Sprintf("pages10-round%d.pprof", round))
		}
		with := measure(profile)
		closePages()
		time.Sleep(3 * time.Second)
		t.Logf("round %d: this process's CPU over %s: %.1f%% of a core with 1 page, %.1f%% with %d pages: 10 pages cost %.1f%% of a core",
			round, window, 100*without.Seconds()/window.Seconds(), 100*with.Seconds()/window.Seconds(), pages,
			100*(with-without).Seconds()/window.Seconds())
	}
}
