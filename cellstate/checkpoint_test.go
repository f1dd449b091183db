package cellstate

import (
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"sync"
	"testing"

	"google.golang.org/protobuf/proto"

	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
)

// abandon stops the store as a crash would leave it: no final checkpoint.
func (s *Store) abandon() {
	close(s.stop)
	<-s.stopped
	s.checkpoints.Wait()
	s.hub.close()
	s.db.Close()
}

// TestRecoveryFromCheckpointsAndLog: with checkpoints every few revisions
// while clients commit concurrently, a store abandoned without its final
// checkpoint recovers a state equal to the one it had, invariant intact.
func TestRecoveryFromCheckpointsAndLog(t *testing.T) {
	for _, every := range []uint64{1, 3, 7} {
		t.Run(fmt.Sprintf("every-%d", every), func(t *testing.T) {
			opts := Options{CheckpointRevisions: every, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
			c := newTestCell(t, opts)
			for i := range 8 {
				c.addMachine(machineName(i), nil, 64000, 64*gib, 4)
			}
			// Several crash and recovery cycles: a recovery must leave
			// what it replayed checkpointed, or the second crash loses it.
			for cycle := range 3 {
				// A new job each cycle: the earlier jobs' tasks are not
				// touched again, so only a correct recovery keeps them.
				spec := batchSpec(fmt.Sprintf("j%d", cycle), 1500, 100, 1<<20)
				spec.Task.Resources.GpuMilli = 10
				job := c.submit(spec)
				var wg sync.WaitGroup
				for cl := range 4 {
					wg.Add(1)
					go func() {
						defer wg.Done()
						rng := rand.New(rand.NewPCG(uint64(cl), every*10+uint64(cycle)))
						for i := 0; i < 40; i++ {
							req := &cellv1.CommitRequest{Scheduler: "batch"}
							for range 1 + rng.IntN(10) {
								cl := claim(job.Id, uint32(rng.IntN(1500)), machineName(rng.IntN(8)), job.Spec.Task.Resources)
								cl.Devices = []*cellv1.DeviceShare{{Device: uint32(rng.IntN(4)), Milli: 10}}
								req.Claims = append(req.Claims, cl)
							}
							if _, err := c.state.Commit(ctxT(t), req); err != nil {
								t.Error(err)
								return
							}
						}
					}()
				}
				wg.Wait()
				before := snapshotOf(t, c)
				c.conn.Close()
				c.grpc.Stop()
				c.store.abandon()
				c.store = nil
				opts.Dir = c.dir
				c.start(opts)
				c.checkInvariant()
				if after := snapshotOf(t, c); !protoEqual(before, after) {
					t.Fatalf("cycle %d: recovered state differs from the state before the crash", cycle)
				}
			}
		})
	}
}

func protoEqual(a, b *cellv1.SnapshotResponse) bool { return proto.Equal(a, b) }

// TestCheckpointCountsRealChunkSizes: 1-task jobs dirty 1-task chunks, so
// a checkpoint is due after CheckpointObjects tasks, not after
// CheckpointObjects/256 jobs.
func TestCheckpointCountsRealChunkSizes(t *testing.T) {
	c := newTestCell(t, Options{CheckpointObjects: 1000, CheckpointRevisions: 1 << 40})
	for i := range 100 {
		c.submit(batchSpec(fmt.Sprintf("one-%d", i), 1, 1, 1))
	}
	if got := c.store.checkpointRev.Load(); got != 0 {
		t.Fatalf("100 one-task jobs (about 200 objects) triggered a checkpoint at revision %d", got)
	}
	c.store.mu.RLock()
	w := c.store.dirty.writes()
	c.store.mu.RUnlock()
	if w != 200 {
		t.Fatalf("dirty set would write %d objects, want 200 (100 jobs + 100 one-task chunks)", w)
	}
}
