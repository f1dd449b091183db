package cellstate

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
	"github.com/omegacell/omegacell/proto/identity"
)

// BenchmarkAuthzWatch: what authorization costs the commit path and the
// watch fan-out. One client commits 1,000-claim transactions (no fsync,
// 2,000 machines) as admin or as scheduler/batch (whose claims the store
// checks against their jobs' scheduler), each followed by a submit of a
// small job with command, args and env (a revision that redacted watchers
// get re-encoded); 4 watchers follow as admin (full, the shared encoding)
// or as scheduler/rogue (redacted: encoded once per revision, shared). An
// op ends when every watcher has received its revision.
func BenchmarkAuthzWatch(b *testing.B) {
	for _, x := range []struct {
		name              string
		committer, reader *identity.Identity
	}{
		{"commit=admin/watch=admin", &adminIdentity, &adminIdentity},
		{"commit=scheduler/watch=admin", mustID(b, identity.Scheduler, "batch"), &adminIdentity},
		{"commit=scheduler/watch=scheduler", mustID(b, identity.Scheduler, "batch"), mustID(b, identity.Scheduler, "rogue")},
	} {
		b.Run(x.name, func(b *testing.B) { benchAuthzWatch(b, x.committer, x.reader) })
	}
}

func benchAuthzWatch(b *testing.B, committer, reader *identity.Identity) {
	const machines, watchers, perTxn = 2000, 4, 1000
	c := newAuthzCell(b)
	admin := c.as(&adminIdentity)
	var wg sync.WaitGroup
	ids := make(chan int, machines)
	for i := range machines {
		ids <- i
	}
	close(ids)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range ids {
				if _, err := admin.machines.RegisterMachine(ctxT(b), &cellv1.RegisterMachineRequest{
					Id: fmt.Sprintf("m%05d", i), Labels: map[string]string{"zone": fmt.Sprintf("z%d", i%4)},
					Capacity: &cellv1.Resources{CpuMilli: 1 << 30, MemoryBytes: 1 << 50},
				}); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	secretSpec := func(name string, count uint32) *cellv1.JobSpec {
		s := batchSpec(name, count, 10, 1<<20)
		s.Task.Args = []string{"--token", "hunter2"}
		s.Task.Env = map[string]string{"SECRET": "s3cr3t", "OTHER": "x"}
		return s
	}
	var reqs []*cellv1.CommitRequest
	rng := rand.New(rand.NewPCG(1, 2))
	for left, n := b.N*perTxn, 0; left > 0; n++ {
		count := min(left, MaxTasksPerJob)
		r, err := admin.jobs.SubmitJob(ctxT(b), &cellv1.SubmitJobRequest{Spec: secretSpec(fmt.Sprintf("load-%d", n), uint32(count))})
		if err != nil {
			b.Fatal(err)
		}
		j := r.Job
		for start := uint32(0); start < j.Spec.Count; start += perTxn {
			req := &cellv1.CommitRequest{Scheduler: "batch"}
			for i := start; i < start+perTxn && i < j.Spec.Count; i++ {
				req.Claims = append(req.Claims, claim(j.Id, i, fmt.Sprintf("m%05d", rng.IntN(machines)), j.Spec.Task.Resources))
			}
			reqs = append(reqs, req)
		}
		left -= count
	}
	from := c.store.Revision()
	target := make(chan uint64, 1)
	var done sync.WaitGroup
	rc := c.as(reader)
	for range watchers {
		stream, err := rc.state.Watch(ctxT(b), &cellv1.WatchRequest{StartRevision: from, ProgressIntervalMs: 50})
		if err != nil {
			b.Fatal(err)
		}
		done.Add(1)
		go func() {
			defer done.Done()
			var last uint64
			want := uint64(0)
			for want == 0 || last < want {
				r, err := stream.Recv()
				if err != nil {
					b.Error(err)
					return
				}
				last = max(last, r.Revision)
				if want == 0 {
					select {
					case want = <-target:
						target <- want // for the other watchers
					default:
					}
				}
			}
		}()
	}
	cc := c.as(committer)
	b.ResetTimer()
	start := time.Now()
	for i, req := range reqs {
		r, err := cc.state.Commit(ctxT(b), req)
		if err != nil || int(r.Accepted) != len(req.Claims) {
			b.Fatalf("commit: %v %v", r.GetAccepted(), err)
		}
		if _, err := admin.jobs.SubmitJob(ctxT(b), &cellv1.SubmitJobRequest{Spec: secretSpec(fmt.Sprintf("small-%d", i), 1)}); err != nil {
			b.Fatal(err)
		}
	}
	target <- c.store.Revision()
	done.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(len(reqs)*perTxn)/elapsed.Seconds(), "claims/s")
}

// BenchmarkAuthzRedactedEntry: the cost of a revision's redacted form
// (made once per revision, shared by every scheduler's watch) against its
// encoding in the commit loop, for a 1,000-claim commit that also changes
// its job (the job's first placement: the job is in the revision).
func BenchmarkAuthzRedactedEntry(b *testing.B) {
	c := benchCell(b, 1000, Options{NoSync: true})
	spec := batchSpec("secret", 1000, 10, 1<<20)
	spec.Task.Env = map[string]string{"SECRET": "s3cr3t", "OTHER": "x"}
	spec.Task.Args = []string{"--token", "hunter2"}
	job := c.submit(spec)
	req := &cellv1.CommitRequest{Scheduler: "batch"}
	for i := range uint32(1000) {
		req.Claims = append(req.Claims, claim(job.Id, i, fmt.Sprintf("m%05d", i), spec.Task.Resources))
	}
	r, err := c.state.Commit(ctxT(b), req)
	if err != nil || r.Accepted != 1000 {
		b.Fatal(r, err)
	}
	entries, _, _, err := c.store.hub.read(r.Revision-1, 1)
	if err != nil || len(entries) != 1 || len(entries[0].src.cs.jobs) != 1 {
		b.Fatalf("entry: %v %v", entries, err)
	}
	src := entries[0].src
	b.Run("encode", func(b *testing.B) {
		for b.Loop() {
			if _, err := encode(src.cs); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("redact", func(b *testing.B) {
		for b.Loop() {
			e := &encodedEntry{rev: src.rev, data: src.data, cs: src.cs, jobs: src.jobs}
			if _, err := e.redacted(); err != nil {
				b.Fatal(err)
			}
		}
	})
}
