package sim

import (
	"runtime/debug"
	"testing"
)

// BenchmarkClusterCSevenDays is the performance target: seven simulated
// days of the 12,500-machine default workload (cluster-c) under shared
// state with the production policies, in at most 60 s on one core. Run it
// with
//
//	GOMAXPROCS=1 go test -run '^$' -bench ClusterCSevenDays -benchtime 1x ./bench/sim/
//
// It reports the CPU seconds the run took (cpu-s/op) besides wall time.
func BenchmarkClusterCSevenDays(b *testing.B) { benchmarkClusterC(b, 7*day, PlacementAuto) }

// BenchmarkClusterCOneDayFirstFit is one day with the paper's randomized
// first fit instead of the policies.
func BenchmarkClusterCOneDayFirstFit(b *testing.B) { benchmarkClusterC(b, day, PlacementFirstFit) }

func benchmarkClusterC(b *testing.B, horizon float64, placement Placement) {
	w, err := LoadWorkload("cluster-c")
	if err != nil {
		b.Fatal(err)
	}
	defer debug.SetGCPercent(debug.SetGCPercent(400))
	cfg := DefaultConfig()
	cfg.Horizon, cfg.Placement = horizon, placement
	var cpu float64
	for b.Loop() {
		start := cpuSeconds()
		r, err := Run(cfg, NewSynthetic(w, cfg.Seed, cfg.Horizon))
		if err != nil {
			b.Fatal(err)
		}
		cpu += cpuSeconds() - start
		b.ReportMetric(float64(r.TasksPlaced), "tasks/op")
	}
	b.ReportMetric(cpu/float64(b.N), "cpu-s/op")
}
