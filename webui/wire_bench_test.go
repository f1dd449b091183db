package webui

import (
	"fmt"
	"testing"

	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
)

// The cost of following the cell, the proto path (gRPC's decoding into
// messages, then apply) against the wire path:
//
//	go test ./webui -run '^$' -bench 'Revision100k|SnapshotChunk' -benchmem

// benchCell is a snapshot of 100 machines and a job of n pending tasks,
// and two revisions changing every task: all placed, then all running.
func benchCell(n int) (chunks [][]byte, revs [2][]byte) {
	const machines = 100
	var ms []*cellv1.Machine
	for i := range machines {
		ms = append(ms, pbMachine(fmt.Sprintf("machine-%03d", i), "z"))
	}
	var pending []*cellv1.Task
	var placed, running []*cellv1.Change
	for i := range uint32(n) {
		m := ms[i%machines].Id
		pending = append(pending, pbTask("job-big", i, pending0, ""))
		placed = append(placed, chT(pbTask("job-big", i, assigned, m)))
		running = append(running, chT(pbTask("job-big", i, running0, m)))
	}
	chunks = snap(1, &cellv1.SnapshotResponse{Machines: ms, Jobs: []*cellv1.Job{pbJob("job-big", "big")}, Tasks: pending})
	return chunks, [2][]byte{rev(2, placed...), rev(3, running...)}
}

const (
	pending0 = cellv1.TaskState_TASK_STATE_PENDING
	running0 = cellv1.TaskState_TASK_STATE_RUNNING
)

// BenchmarkRevision100kTasks applies a revision of 100,000 task changes
// (every task of a job placed, or running: the two alternate).
func BenchmarkRevision100kTasks(b *testing.B) {
	chunks, revs := benchCell(100_000)
	for _, path := range []string{"proto", "wire"} {
		b.Run(path, func(b *testing.B) {
			h, _ := testHub()
			cell, err := refSnapshot(h, chunks)
			if err != nil {
				b.Fatal(err)
			}
			old := &refWatch{h: h, cell: cell}
			d := &watchDecoder{h: h, cell: cell}
			b.ReportAllocs()
			b.SetBytes(int64(len(revs[0])))
			b.ResetTimer()
			for i := range b.N {
				if path == "proto" {
					err = old.frame(revs[i%2])
				} else {
					err = d.frame(revs[i%2])
				}
				if err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			if got := h.jobs["job-big"].counts; got[bPlaced]+got[bRunning] != 100_000 {
				b.Fatalf("counts %v", got)
			}
		})
	}
}

// BenchmarkSnapshotChunk reads a snapshot of one chunk of 20,000 tasks
// (about what fits the server's 4 MiB chunks) into a new copy.
func BenchmarkSnapshotChunk(b *testing.B) {
	chunks, _ := benchCell(20_000)
	for _, path := range []string{"proto", "wire"} {
		b.Run(path, func(b *testing.B) {
			h, _ := testHub()
			b.ReportAllocs()
			b.SetBytes(int64(len(chunks[0])))
			for range b.N {
				var err error
				if path == "proto" {
					_, err = refSnapshot(h, chunks)
				} else {
					_, err = newSnapshot(h, chunks)
				}
				if err != nil {
					b.Fatal(err)
				}
			}
			if n := len(h.tasks["job-big"]); n != 20_000 {
				b.Fatalf("%d tasks", n)
			}
		})
	}
}
