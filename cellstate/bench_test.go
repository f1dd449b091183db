package cellstate

import (
	"fmt"
	"math/rand/v2"
	"os"
	"runtime/pprof"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
)

// benchCell is a synced store behind gRPC on loopback with `machines`
// machines registered (concurrently, so group commit batches them).
func benchCell(b *testing.B, machines int, opts ...Options) *testCell {
	o := Options{}
	if len(opts) > 0 {
		o = opts[0]
	}
	return benchCellWith(b, machines, o, false)
}

// benchCellWith is benchCell, with mutual TLS when mtls is set.
func benchCellWith(b *testing.B, machines int, o Options, mtls bool) *testCell {
	reg := prometheus.NewRegistry()
	o.Metrics = NewMetrics(reg)
	var c *testCell
	if mtls {
		c = newTestCellTLS(b, o)
	} else {
		c = newTestCell(b, o)
	}
	c.reg = reg
	var wg sync.WaitGroup
	ids := make(chan int, machines)
	for i := range machines {
		ids <- i
	}
	close(ids)
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range ids {
				_, err := c.machines.RegisterMachine(ctxT(b), &cellv1.RegisterMachineRequest{
					Id:       fmt.Sprintf("m%05d", i),
					Labels:   map[string]string{"zone": fmt.Sprintf("z%d", i%4), "rack": fmt.Sprintf("r%03d", i/40)},
					Capacity: &cellv1.Resources{CpuMilli: 1 << 30, MemoryBytes: 1 << 50},
				})
				if err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	return c
}

// submitTasks submits jobs until `tasks` pending tasks exist; returns the
// job ids (each MaxTasksPerJob tasks but the last).
func submitTasks(b *testing.B, c *testCell, tasks int, name string) []*cellv1.Job {
	return submitTasksIn(b, c, tasks, name, "")
}

// submitTasksIn is submitTasks with the jobs in a tenant.
func submitTasksIn(b *testing.B, c *testCell, tasks int, name, tenant string) []*cellv1.Job {
	var jobs []*cellv1.Job
	for i := 0; tasks > 0; i++ {
		n := min(tasks, MaxTasksPerJob)
		spec := batchSpec(fmt.Sprintf("%s-%d", name, i), uint32(n), 10, 1<<20)
		spec.Tenant = tenant
		jobs = append(jobs, c.submit(spec))
		tasks -= n
	}
	return jobs
}

// BenchmarkCommitThroughput: 4 clients commit 1,000-claim transactions
// through gRPC on loopback, synced, on a 10,000-machine cell. One op is
// one transaction; claims/s is the figure of issue 2 (target 500,000).
func BenchmarkCommitThroughput(b *testing.B) {
	b.Run("synced", func(b *testing.B) { benchCommitThroughput(b, Options{}) })
	// The same with mutual TLS and the identity check on every call, as
	// `cell server` runs by default; compare with synced (--insecure).
	b.Run("synced-mtls", func(b *testing.B) { benchCommitThroughputWith(b, Options{}, true) })
	// What durability costs: the same without fsync. Not a product figure.
	b.Run("unsafe-no-sync", func(b *testing.B) { benchCommitThroughput(b, Options{NoSync: true}) })
	b.Run("unsafe-no-sync-mtls", func(b *testing.B) { benchCommitThroughputWith(b, Options{NoSync: true}, true) })
	// The same as synced with every claim's tenant under a batch quota:
	// what quota checks cost (quota_bench_test.go).
	b.Run("synced-quota", benchCommitThroughputQuota)
}

func benchCommitThroughput(b *testing.B, opts Options) { benchCommitThroughputWith(b, opts, false) }

func benchCommitThroughputWith(b *testing.B, opts Options, mtls bool) {
	benchCommitThroughputAs(b, opts, mtls, nil)
}

// benchCommitThroughputAs runs the benchmark; setup (if set) prepares the
// cell and returns the tenant the jobs are submitted in.
func benchCommitThroughputAs(b *testing.B, opts Options, mtls bool, setup func(*testCell) string) {
	const machines, clients, perTxn = 10_000, 4, 1000
	c := benchCellWith(b, machines, opts, mtls)
	txns := b.N
	tenant := ""
	if setup != nil {
		tenant = setup(c)
	}
	jobs := submitTasksIn(b, c, txns*perTxn, "load", tenant)
	reqs := make([]*cellv1.CommitRequest, txns)
	rng := rand.New(rand.NewPCG(1, 2))
	next := 0
	for _, j := range jobs {
		for start := uint32(0); start < j.Spec.Count; start += perTxn {
			r := &cellv1.CommitRequest{Scheduler: "batch", Claims: make([]*cellv1.Claim, 0, perTxn)}
			for i := start; i < start+perTxn && i < j.Spec.Count; i++ {
				r.Claims = append(r.Claims, claim(j.Id, i, fmt.Sprintf("m%05d", rng.IntN(machines)), j.Spec.Task.Resources))
			}
			reqs[next] = r
			next++
		}
	}
	var accepted atomic.Int64
	var idx atomic.Int64
	stopProfile := profileMeasuredPhase(b)
	b.ResetTimer()
	cpuBefore := processCPU(b)
	start := time.Now()
	var wg sync.WaitGroup
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(idx.Add(1)) - 1
				if i >= txns {
					return
				}
				resp, err := c.state.Commit(ctxT(b), reqs[i])
				if err != nil {
					b.Error(err)
					return
				}
				accepted.Add(int64(resp.Accepted))
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	stopProfile()
	if int(accepted.Load()) != txns*perTxn {
		b.Fatalf("accepted %d of %d claims", accepted.Load(), txns*perTxn)
	}
	b.ReportMetric(float64(accepted.Load())/elapsed.Seconds(), "claims/s")
	// CPU of the whole process (clients, gRPC, TLS, store) per claim: a
	// figure a busy machine disturbs less than the rate.
	b.ReportMetric(float64((processCPU(b)-cpuBefore).Microseconds())/float64(accepted.Load()), "cpu-µs/claim")
}

// processCPU is the CPU time (user + system) this process has used.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkCommitLatency: single-claim transactions sent open-loop at a
// steady 1,000 per second (each in its own goroutine, as independent
// schedulers would), synced, on a 10,000-machine cell. Reports p50/p99 of
// the commit round trip (issue 2 target: p99 <= 10 ms).
func BenchmarkCommitLatency(b *testing.B) {
	const machines, rate = 10_000, 1000
	c := benchCell(b, machines)
	n := max(b.N, 1000)
	jobs := submitTasks(b, c, n, "lat")
	lat := make([]time.Duration, n)
	rng := rand.New(rand.NewPCG(3, 4))
	tick := time.NewTicker(time.Second / rate)
	defer tick.Stop()
	b.ResetTimer()
	var wg sync.WaitGroup
	for i := range n {
		<-tick.C
		j := jobs[i/MaxTasksPerJob]
		req := &cellv1.CommitRequest{Scheduler: "batch", Claims: []*cellv1.Claim{
			claim(j.Id, uint32(i%MaxTasksPerJob), fmt.Sprintf("m%05d", rng.IntN(machines)), j.Spec.Task.Resources)}}
		wg.Add(1)
		go func() {
			defer wg.Done()
			t0 := time.Now()
			resp, err := c.state.Commit(ctxT(b), req)
			lat[i] = time.Since(t0)
			if err != nil || resp.Accepted != 1 {
				b.Errorf("commit: %v %v", resp, err)
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	sort.Slice(lat, func(a, c int) bool { return lat[a] < lat[c] })
	b.ReportMetric(float64(lat[n/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[n*99/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(lat[n-1].Microseconds())/1000, "max-ms")
	b.ReportMetric(c.histogramQuantile(b, "omegacell_store_commit_latency_seconds", 0.99)*1000, "server-p99-ms")
	b.ReportMetric(c.histogramQuantile(b, "omegacell_store_group_commit_seconds", 0.99)*1000, "round-p99-ms")
}

// histogramQuantile estimates a quantile of a histogram the store
// recorded (upper bound of the bucket holding it).
func (c *testCell) histogramQuantile(b *testing.B, name string, q float64) float64 {
	mfs, err := c.reg.Gather()
	if err != nil {
		b.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		var buckets []*dto.Bucket
		var total uint64
		for _, m := range mf.Metric {
			if !hasLabel(m, "op", "commit") {
				continue
			}
			h := m.GetHistogram()
			if len(buckets) == 0 {
				buckets = make([]*dto.Bucket, len(h.Bucket))
				for i, bk := range h.Bucket {
					buckets[i] = &dto.Bucket{UpperBound: bk.UpperBound, CumulativeCount: new(uint64)}
				}
			}
			for i, bk := range h.Bucket {
				*buckets[i].CumulativeCount += bk.GetCumulativeCount()
			}
			total += h.GetSampleCount()
		}
		for _, bk := range buckets {
			if float64(bk.GetCumulativeCount()) >= q*float64(total) {
				return bk.GetUpperBound()
			}
		}
	}
	return 0
}

// hasLabel reports whether a metric has label name=value, or no label of
// that name at all.
func hasLabel(m *dto.Metric, name, value string) bool {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue() == value
		}
	}
	return true
}

// profileMeasuredPhase writes a CPU profile of the measured phase alone
// (setup excluded) to $CELLSTATE_BENCH_CPUPROFILE, when set.
func profileMeasuredPhase(b *testing.B) func() {
	path := os.Getenv("CELLSTATE_BENCH_CPUPROFILE")
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		b.Fatal(err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}
}
