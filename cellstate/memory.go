package cellstate

import (
	"runtime/metrics"
	"sync"

	"github.com/cockroachdb/pebble/v2"
	"github.com/prometheus/client_golang/prometheus"
)

// liveHeapGauge exports the Go heap that the last garbage collection found
// live (runtime/metrics /gc/heap/live:bytes): unlike heap in use, it
// counts no garbage waiting for the next collection, so it shows what the
// cell holds (tests assert that it comes back after retention).
func liveHeapGauge() prometheus.GaugeFunc {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "omegacell_go_heap_live_bytes",
		Help: "Go heap bytes marked live by the last garbage collection (runtime/metrics /gc/heap/live:bytes).",
	}, func() float64 {
		s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
		metrics.Read(s)
		if s[0].Value.Kind() != metrics.KindUint64 {
			return 0
		}
		return float64(s[0].Value.Uint64())
	})
}

// pebbleMemory exports what Pebble holds in memory, most of it outside
// the Go heap (its memtable arenas and block cache are C allocations when
// built with cgo): omegacell_pebble_memory_bytes{kind}. The store attaches
// its database at Open and detaches it before closing it.
type pebbleMemory struct {
	desc *prometheus.Desc
	mu   sync.RWMutex
	db   *pebble.DB
}

func newPebbleMemory() *pebbleMemory {
	return &pebbleMemory{desc: prometheus.NewDesc("omegacell_pebble_memory_bytes",
		"Memory held by the store's Pebble: memtable (current and queued memtables and large batches), memtable_zombie (flushed, awaiting release or reuse), block_cache, file_cache (open sstables).",
		[]string{"kind"}, nil)}
}

func (p *pebbleMemory) attach(db *pebble.DB) {
	if p == nil {
		return
	}
	p.mu.Lock()
	p.db = db
	p.mu.Unlock()
}

// detach forgets db (if it is still the attached one) before it closes.
func (p *pebbleMemory) detach(db *pebble.DB) {
	if p == nil {
		return
	}
	p.mu.Lock()
	if p.db == db {
		p.db = nil
	}
	p.mu.Unlock()
}

func (p *pebbleMemory) Describe(ch chan<- *prometheus.Desc) { ch <- p.desc }

func (p *pebbleMemory) Collect(ch chan<- prometheus.Metric) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.db == nil {
		return
	}
	m := p.db.Metrics()
	for _, k := range []struct {
		kind  string
		bytes float64
	}{
		{"memtable", float64(m.MemTable.Size)},
		{"memtable_zombie", float64(m.MemTable.ZombieSize)},
		{"block_cache", float64(m.BlockCache.Size)},
		{"file_cache", float64(m.FileCache.Size)},
	} {
		ch <- prometheus.MustNewConstMetric(p.desc, prometheus.GaugeValue, k.bytes, k.kind)
	}
}
