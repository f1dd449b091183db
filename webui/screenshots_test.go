package webui_test

import (
	"bytes"
	"context"
	"flag"
	"image/png"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
)

var updateScreenshots = flag.Bool("update-screenshots", false, "write the pages' screenshots to docs/webview-*.png")

// TestBrowserScreenshots takes a screenshot of every page of a populated
// cell (120 simulated machines, a real agent, batch, service and GPU jobs,
// one that cannot be placed) and checks each is a PNG of the window. With
// -update-screenshots it writes them to docs/ for the README:
//
//	go test ./webui -run TestBrowserScreenshots -update-screenshots
func TestBrowserScreenshots(t *testing.T) {
	ctx := tab(t, 4*time.Minute)
	c, err := startCell(120, true)
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	outside := []*cellv1.Constraint{{Key: "zone", Op: cellv1.ConstraintOp_CONSTRAINT_OP_NOT_IN, Values: []string{"local"}}}
	res := func(cpu, memMi, gpu int64) *cellv1.Resources {
		return &cellv1.Resources{CpuMilli: cpu, MemoryBytes: memMi << 20, GpuMilli: gpu}
	}
	tctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tenants := cellv1.NewTenantServiceClient(c.conn)
	q := func(cores, gib, gpus int64) *cellv1.QuotaAmounts {
		return &cellv1.QuotaAmounts{CpuMilli: cores * 1000, MemoryBytes: gib << 30, GpuMilli: gpus * 1000}
	}
	for _, tn := range []*cellv1.Tenant{
		{Name: "ml", MaxBand: cellv1.PriorityBand_PRIORITY_BAND_PRODUCTION, Weight: 2,
			Production: &cellv1.BandQuota{Nominal: q(512, 2048, 64)}, Batch: &cellv1.BandQuota{Nominal: q(256, 1024, 16), BorrowLimit: q(256, 1024, 16)}},
		{Name: "media", Batch: &cellv1.BandQuota{Nominal: q(1000, 4096, 0), BorrowLimit: q(2000, 8192, 0)}},
		{Name: "shop", MaxBand: cellv1.PriorityBand_PRIORITY_BAND_PRODUCTION, Production: &cellv1.BandQuota{Nominal: q(64, 256, 0)}},
	} {
		if _, err := tenants.UpdateTenant(tctx, &cellv1.UpdateTenantRequest{Tenant: tn}); err != nil {
			t.Fatal(err)
		}
	}
	c.submit(t, &cellv1.JobSpec{Name: "render-frames", Tenant: "media", Scheduler: "batch", Priority: 100, Count: 600, Kind: cellv1.JobKind_JOB_KIND_BATCH,
		Task: &cellv1.TaskTemplate{Command: "/usr/bin/render", Resources: res(4000, 8192, 0), DurationMs: 60_000, Constraints: outside}})
	c.submit(t, &cellv1.JobSpec{Name: "web", Tenant: "shop", Scheduler: "service", Priority: 200, Count: 12, Kind: cellv1.JobKind_JOB_KIND_SERVICE,
		Task: &cellv1.TaskTemplate{Command: "/usr/bin/web", Resources: res(2000, 4096, 0), SpreadKey: "rack", MaxPerMachine: 1, Constraints: outside}})
	c.submit(t, &cellv1.JobSpec{Name: "train-llm", Tenant: "ml", Scheduler: "gpu", Priority: 200, Count: 4, Gang: true, Kind: cellv1.JobKind_JOB_KIND_BATCH,
		Task: &cellv1.TaskTemplate{Command: "/usr/bin/train", Resources: res(16000, 65536, 8000), Constraints: outside}})
	c.submit(t, &cellv1.JobSpec{Name: "on-mars", Tenant: "ml", Scheduler: "batch", Priority: 100, Count: 2, Kind: cellv1.JobKind_JOB_KIND_BATCH,
		Task: &cellv1.TaskTemplate{Command: "/usr/bin/true", Resources: res(100, 64, 0),
			Constraints: []*cellv1.Constraint{{Key: "zone", Op: cellv1.ConstraintOp_CONSTRAINT_OP_IN, Values: []string{"mars"}}}}})
	hello := c.submit(t, &cellv1.JobSpec{Name: "hello", Tenant: "ops", Scheduler: "batch", Priority: 100, Count: 3, Kind: cellv1.JobKind_JOB_KIND_BATCH,
		Task: &cellv1.TaskTemplate{Command: "/bin/sh", Args: []string{"-c", "for i in 1 2 3 4 5 6 7 8; do echo \"hello $i from task $OMEGACELL_TASK_INDEX on $OMEGACELL_MACHINE_ID\"; sleep 0.2; done"},
			Resources: res(100, 16, 0), Constraints: []*cellv1.Constraint{{Key: "zone", Op: cellv1.ConstraintOp_CONSTRAINT_OP_IN, Values: []string{"local"}}}}})

	navigate(t, ctx, c.loginURL(t, c.admin))
	waitJS(t, ctx, "the grid", `document.querySelector('#grid') && document.querySelector('#grid').dataset.drawn == 121`)
	waitJS(t, ctx, "placements and schedulers' figures", `S.stats && S.stats.place.some(p => p.v > 0) && S.stats.scheds && Object.values(S.stats.scheds).some(s => s.length >= 3)`)
	gpuMachine := evalJS[string](t, ctx, `[...S.machines.values()].find(m => m[6] > 0 && m[9] > 0)?.[0] || [...S.machines.values()].find(m => m[6] > 0)[0]`)

	pages := []struct{ name, hash, ready string }{
		{"cell", "#/cell", `document.querySelector('#grid').dataset.drawn == 121 && document.querySelector('#totals .card')`},
		{"jobs", "#/jobs", `document.querySelector('tr[data-job="render-frames"]') && document.querySelector('tr[data-job="on-mars"]')`},
		{"job", "#/job/" + hello.Id, `document.querySelector('#logs') && document.querySelector('#logs').textContent.includes('hello 8')`},
		{"machine", "#/machine/" + gpuMachine, `document.querySelector('#machine h1')`},
		{"schedulers", "#/schedulers", `document.querySelectorAll('.sched canvas').length >= 12`},
		{"tenants", "#/tenants", `document.querySelector('tr[data-tenant="ml"]')`},
	}
	for _, p := range pages {
		navigate(t, ctx, c.web+"/"+p.hash)
		if p.name == "job" {
			waitJS(t, ctx, "the task rows", `document.querySelector('.logs-btn')`)
			clickJS(t, ctx, ".logs-btn")
		}
		waitJS(t, ctx, p.name+" page", p.ready)
		time.Sleep(300 * time.Millisecond) // let the last frame paint (not an assertion)
		shot, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
		if err != nil {
			t.Fatalf("%s: %v", p.name, err)
		}
		img, err := png.Decode(bytes.NewReader(shot))
		if err != nil {
			t.Fatalf("%s: not a PNG: %v", p.name, err)
		}
		if b := img.Bounds(); b.Dx() < 1000 || b.Dy() < 700 {
			t.Fatalf("%s: %v, want the 1400×1000 window", p.name, b)
		}
		if *updateScreenshots {
			path := filepath.Join("..", "docs", "webview-"+p.name+".png")
			if err := os.WriteFile(path, shot, 0o644); err != nil {
				t.Fatal(err)
			}
			t.Logf("wrote %s (%d KB)", path, len(shot)>>10)
		}
	}
}
