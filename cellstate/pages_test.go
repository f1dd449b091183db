package cellstate

import (
	"encoding/base64"
	"fmt"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
)

// listAllJobs follows ListJobs pages and returns the ids in order.
func listAllJobs(t testing.TB, c *testCell, req *cellv1.ListJobsRequest) (ids []string, pages int) {
	t.Helper()
	req = &cellv1.ListJobsRequest{Scheduler: req.Scheduler, IncludeFinished: req.IncludeFinished, PageSize: req.PageSize}
	for {
		r, err := c.jobs.ListJobs(ctxT(t), req)
		if err != nil {
			t.Fatalf("ListJobs page %d: %v", pages, err)
		}
		pages++
		if req.PageSize > 0 && len(r.Jobs) > int(req.PageSize) {
			t.Fatalf("page of %d jobs, page_size %d", len(r.Jobs), req.PageSize)
		}
		for _, j := range r.Jobs {
			ids = append(ids, j.Job.Id)
		}
		if r.NextPageToken == "" {
			return ids, pages
		}
		req.PageToken = r.NextPageToken
	}
}

func listAllMachines(t testing.TB, c *testCell, size uint32) (ids []string, pages int) {
	t.Helper()
	req := &cellv1.ListMachinesRequest{PageSize: size}
	for {
		r, err := c.machines.ListMachines(ctxT(t), req)
		if err != nil {
			t.Fatalf("ListMachines page %d: %v", pages, err)
		}
		pages++
		for _, m := range r.Machines {
			ids = append(ids, m.Id)
		}
		if r.NextPageToken == "" {
			return ids, pages
		}
		req.PageToken = r.NextPageToken
	}
}

// TestListPages: every page size returns every object once, in the one
// order, in ceil(n/size) pages.
func TestListPages(t *testing.T) {
	c := newTestCell(t, Options{NoSync: true})
	const n = 23
	for i := range n {
		c.addMachine(fmt.Sprintf("m-%03d", i), nil, 1000, gib, 0)
		c.submit(batchSpec(fmt.Sprintf("j-%03d", i), 1, 1, 1))
	}
	wantJobs, _ := listAllJobs(t, c, &cellv1.ListJobsRequest{PageSize: maxPageSize})
	if len(wantJobs) != n {
		t.Fatalf("%d jobs listed, want %d", len(wantJobs), n)
	}
	for _, tc := range []struct {
		size  uint32
		pages int
	}{{0, 1}, {1, n}, {2, 12}, {7, 4}, {22, 2}, {23, 1}, {24, 1}, {maxPageSize, 1}} {
		t.Run(fmt.Sprint("size=", tc.size), func(t *testing.T) {
			ids, pages := listAllJobs(t, c, &cellv1.ListJobsRequest{PageSize: tc.size})
			if strings.Join(ids, ",") != strings.Join(wantJobs, ",") || pages != tc.pages {
				t.Fatalf("jobs: %d in %d pages (order same: %v), want %d in %d", len(ids), pages, strings.Join(ids, ",") == strings.Join(wantJobs, ","), n, tc.pages)
			}
			mids, pages := listAllMachines(t, c, tc.size)
			if len(mids) != n || pages != tc.pages {
				t.Fatalf("machines: %d in %d pages, want %d in %d", len(mids), pages, n, tc.pages)
			}
			for i, id := range mids {
				if id != fmt.Sprintf("m-%03d", i) {
					t.Fatalf("machine %d is %s", i, id)
				}
			}
		})
	}
}

// TestHostileListPageBytes: a page stops at its byte budget (with at least one
// object) and the token continues where it stopped.
func TestHostileListPageBytes(t *testing.T) {
	c := newTestCell(t, Options{NoSync: true})
	for i := range 5 {
		spec := batchSpec(fmt.Sprintf("j-%d", i), 1, 1, 1)
		spec.Task.Args = []string{strings.Repeat("x", 3000)}
		c.submit(spec)
	}
	q := jobQuery{}
	r := c.store.listJobsPage(q, nil, 100, 5000)
	if len(r.Jobs) != 1 || r.NextPageToken == "" {
		t.Fatalf("page of %d jobs, token %q; want 1 and a token", len(r.Jobs), r.NextPageToken)
	}
	seen := map[string]bool{r.Jobs[0].Job.Id: true}
	for r.NextPageToken != "" {
		after, err := decodeJobToken(r.NextPageToken, q)
		if err != nil {
			t.Fatal(err)
		}
		r = c.store.listJobsPage(q, after, 100, 7000)
		if len(r.Jobs) != 2 && r.NextPageToken != "" {
			t.Fatalf("page of %d jobs within 7000 bytes, want 2", len(r.Jobs))
		}
		for _, j := range r.Jobs {
			if seen[j.Job.Id] {
				t.Fatalf("job %s listed twice", j.Job.Id)
			}
			seen[j.Job.Id] = true
		}
	}
	if len(seen) != 5 {
		t.Fatalf("%d jobs listed, want 5", len(seen))
	}
}

// TestHostileListPageTokens: bad page sizes and tokens are InvalidArgument
// naming the field.
func TestHostileListPageTokens(t *testing.T) {
	c := newTestCell(t, Options{NoSync: true})
	c.addMachine("m-1", nil, 1000, gib, 0)
	c.addMachine("m-2", nil, 1000, gib, 0)
	c.submit(batchSpec("a", 1, 1, 1))
	c.submit(batchSpec("b", 1, 1, 1))
	first, err := c.jobs.ListJobs(ctxT(t), &cellv1.ListJobsRequest{PageSize: 1, Scheduler: "batch"})
	if err != nil || first.NextPageToken == "" {
		t.Fatalf("first page: %v %v", first, err)
	}
	mfirst, err := c.machines.ListMachines(ctxT(t), &cellv1.ListMachinesRequest{PageSize: 1})
	if err != nil || mfirst.NextPageToken == "" {
		t.Fatalf("first machine page: %v %v", mfirst, err)
	}
	b64 := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	for _, tc := range []struct {
		name  string
		jobs  *cellv1.ListJobsRequest
		mach  *cellv1.ListMachinesRequest
		field string
	}{
		{"page size too large", &cellv1.ListJobsRequest{PageSize: maxPageSize + 1}, &cellv1.ListMachinesRequest{PageSize: maxPageSize + 1}, "page_size"},
		{"garbage token", &cellv1.ListJobsRequest{PageToken: "!!!"}, &cellv1.ListMachinesRequest{PageToken: "!!!"}, "page_token"},
		{"huge token", &cellv1.ListJobsRequest{PageToken: strings.Repeat("A", 1<<20)}, &cellv1.ListMachinesRequest{PageToken: strings.Repeat("A", 1<<20)}, "page_token"},
		{"other kind's token", &cellv1.ListJobsRequest{PageToken: mfirst.NextPageToken}, &cellv1.ListMachinesRequest{PageToken: first.NextPageToken}, "page_token"},
		{"forged token", &cellv1.ListJobsRequest{PageToken: b64("j1|x|y|z|true")}, &cellv1.ListMachinesRequest{PageToken: b64("m1|../../etc")}, "page_token"},
		{"token of other filters", &cellv1.ListJobsRequest{PageToken: first.NextPageToken, Scheduler: "service"}, nil, "page_token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.jobs.ListJobs(ctxT(t), tc.jobs)
			if status.Code(err) != codes.InvalidArgument || !strings.HasPrefix(status.Convert(err).Message(), tc.field+":") || len(status.Convert(err).Message()) > 300 {
				t.Fatalf("ListJobs: %v, want InvalidArgument naming %s", err, tc.field)
			}
			if tc.mach == nil {
				return
			}
			_, err = c.machines.ListMachines(ctxT(t), tc.mach)
			if status.Code(err) != codes.InvalidArgument || !strings.HasPrefix(status.Convert(err).Message(), tc.field+":") {
				t.Fatalf("ListMachines: %v, want InvalidArgument naming %s", err, tc.field)
			}
		})
	}
	// The valid tokens continue.
	next, err := c.jobs.ListJobs(ctxT(t), &cellv1.ListJobsRequest{PageSize: 1, Scheduler: "batch", PageToken: first.NextPageToken})
	if err != nil || len(next.Jobs) != 1 || next.Jobs[0].Job.Id == first.Jobs[0].Job.Id {
		t.Fatalf("second page: %v %v", next, err)
	}
}

// TestHostileListPagesUnderChange: jobs and machines added while a listing pages
// through, and jobs that leave the listing (stopped, with include_finished
// false), never make a page fail, and every object present throughout is
// listed exactly once.
func TestHostileListPagesUnderChange(t *testing.T) {
	for _, size := range []uint32{1, 3, 10} {
		t.Run(fmt.Sprint("size=", size), func(t *testing.T) {
			c := newTestCell(t, Options{NoSync: true})
			var stable, leaving []string
			for i := range 30 {
				j := c.submit(batchSpec(fmt.Sprintf("j-%03d", i), 1, 1, 1))
				if i%3 == 0 {
					leaving = append(leaving, j.Id)
				} else {
					stable = append(stable, j.Id)
				}
				c.addMachine(fmt.Sprintf("m-%03d", 2*i), nil, 1000, gib, 0)
			}
			var wg sync.WaitGroup
			stop := make(chan struct{})
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					c.submit(batchSpec(fmt.Sprintf("new-%03d", i), 1, 1, 1))
					c.addMachine(fmt.Sprintf("m-%03d", 2*(i%30)+1), nil, 1000, gib, 0)
					if i < len(leaving) {
						if _, err := c.jobs.StopJob(ctxT(t), &cellv1.StopJobRequest{IdOrName: leaving[i]}); err != nil {
							t.Error(err)
						}
					}
				}
			}()
			ids, _ := listAllJobs(t, c, &cellv1.ListJobsRequest{PageSize: size})
			mids, _ := listAllMachines(t, c, size)
			close(stop)
			wg.Wait()
			count := map[string]int{}
			for _, id := range ids {
				count[id]++
			}
			for id, n := range count {
				if n > 1 {
					t.Fatalf("job %s listed %d times", id, n)
				}
			}
			for _, id := range stable {
				if count[id] != 1 {
					t.Fatalf("job %s present throughout listed %d times", id, count[id])
				}
			}
			mcount := map[string]int{}
			for i, id := range mids {
				mcount[id]++
				if i > 0 && mids[i-1] >= id {
					t.Fatalf("machines out of order: %s then %s", mids[i-1], id)
				}
			}
			for i := range 30 {
				if id := fmt.Sprintf("m-%03d", 2*i); mcount[id] != 1 {
					t.Fatalf("machine %s listed %d times", id, mcount[id])
				}
			}
		})
	}
}

// FuzzPageTokens: no token crashes the decoders, and a token they accept
// is one the server could have made (it encodes back to itself).
//
//	go test ./cellstate -run '^$' -fuzz FuzzPageTokens -fuzztime 60s
func FuzzPageTokens(f *testing.F) {
	q := jobQuery{scheduler: "batch", includeFinished: true}
	f.Add(encodeJobToken(jobCursor{submit: 1700000000000000000, id: "3f2b9a52-6f8e-4c1e-9a63-2b0d1f6e7c10"}, q))
	f.Add(encodeMachineToken("m-001"))
	f.Add("")
	f.Add("!!!")
	f.Fuzz(func(t *testing.T, tok string) {
		if c, err := decodeJobToken(tok, q); err == nil && c != nil {
			if again := encodeJobToken(*c, q); again != tok {
				t.Fatalf("job token %q decodes to %+v, which encodes to %q", tok, *c, again)
			}
		} else if err != nil && len(err.Error()) > 300 {
			t.Fatalf("error of %d bytes", len(err.Error()))
		}
		if id, err := decodeMachineToken(tok); err == nil && id != "" {
			if again := encodeMachineToken(id); again != tok {
				t.Fatalf("machine token %q decodes to %q, which encodes to %q", tok, id, again)
			}
		}
	})
}
