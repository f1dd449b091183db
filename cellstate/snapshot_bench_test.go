package cellstate

import (
	"fmt"
	"testing"

	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
)

// BenchmarkSnapshotEncode compares the two ways of putting a snapshot on
// the wire: the store's encoders writing byte-bounded chunks
// (encodeChunks, what Snapshot sends) and building API structs and
// marshalling them by reflection (what the server did before).
//
//	go test ./cellstate -run '^$' -bench SnapshotEncode -count 6
func BenchmarkSnapshotEncode(b *testing.B) {
	c := newTestCell(b, Options{NoSync: true})
	for i := range 100 {
		c.addMachine(fmt.Sprintf("m-%03d", i), map[string]string{"zone": "z1", "rack": fmt.Sprint(i % 10)}, 64000, 256*gib, 0)
	}
	for i := range 20 {
		c.submit(batchSpec(fmt.Sprintf("j-%02d", i), 10_000, 1, 1))
	}
	snap := c.store.Snapshot()
	b.Run("encoded-chunks", func(b *testing.B) {
		for b.Loop() {
			bytes := 0
			if err := snap.encodeChunks(defaultSnapshotChunk, chunkBytes, c.store.identity.wire, func(p []byte) error { bytes += len(p); return nil }); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(bytes))
		}
	})
	b.Run("pb-marshal", func(b *testing.B) {
		for b.Loop() {
			bytes, n := 0, 0
			cur := &cellv1.SnapshotResponse{Revision: snap.Revision}
			flush := func() {
				data, err := marshal.Marshal(cur)
				if err != nil {
					b.Fatal(err)
				}
				bytes += len(data)
				cur, n = &cellv1.SnapshotResponse{Revision: snap.Revision}, 0
			}
			for _, m := range snap.machines {
				cur.Machines = append(cur.Machines, m.pb())
				if n++; n >= defaultSnapshotChunk {
					flush()
				}
			}
			for i, j := range snap.jobs {
				cur.Jobs = append(cur.Jobs, j)
				if n++; n >= defaultSnapshotChunk {
					flush()
				}
				for _, t := range snap.tasks[i] {
					cur.Tasks = append(cur.Tasks, t.pb())
					if n++; n >= defaultSnapshotChunk {
						flush()
					}
				}
			}
			flush()
			b.SetBytes(int64(bytes))
		}
	})
}
