package cellstate

import (
	"math/rand/v2"
	"sync"
	"testing"

	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
)

// TestConcurrentConflictingCommits has several clients race to place the
// same tasks on the same few machines (deliberate conflicts), in every
// conflict and commit mode, and checks the invariant, that every task is
// placed at most once, that losers get reasons, and that all-or-nothing
// transactions are applied whole or not at all.
func TestConcurrentConflictingCommits(t *testing.T) {
	modes := []struct {
		name     string
		conflict cellv1.ConflictMode
		commit   cellv1.CommitMode
	}{
		{"fine-incremental", cellv1.ConflictMode_CONFLICT_MODE_FINE, cellv1.CommitMode_COMMIT_MODE_INCREMENTAL},
		{"coarse-incremental", cellv1.ConflictMode_CONFLICT_MODE_COARSE, cellv1.CommitMode_COMMIT_MODE_INCREMENTAL},
		{"fine-all-or-nothing", cellv1.ConflictMode_CONFLICT_MODE_FINE, cellv1.CommitMode_COMMIT_MODE_ALL_OR_NOTHING},
		{"coarse-all-or-nothing", cellv1.ConflictMode_CONFLICT_MODE_COARSE, cellv1.CommitMode_COMMIT_MODE_ALL_OR_NOTHING},
	}
	for _, mode := range modes {
		t.Run(mode.name, func(t *testing.T) {
			c := newTestCell(t, Options{})
			const machines, clients, rounds = 6, 4, 40
			seqs := make(map[string]uint64)
			for i := range machines {
				m := c.addMachine(machineName(i), nil, 4000, 16*gib, 4)
				seqs[m.Id] = m.Seq
			}
			// 200 tasks of 1 cpu + half a GPU: demand is far beyond
			// the 24 cpus, so most claims must lose.
			spec := batchSpec("contended", 200, 1000, gib)
			spec.Task.Resources.GpuMilli = 500
			job := c.submit(spec)

			type txnResult struct {
				claims []*cellv1.Claim
				resp   *cellv1.CommitResponse
			}
			results := make(chan txnResult, clients*rounds)
			var wg sync.WaitGroup
			for cl := range clients {
				wg.Add(1)
				go func() {
					defer wg.Done()
					rng := rand.New(rand.NewPCG(uint64(cl), 7))
					for range rounds {
						n := 1 + rng.IntN(4)
						var claims []*cellv1.Claim
						for range n {
							m := machineName(rng.IntN(machines))
							cl := claim(job.Id, uint32(rng.IntN(40)), m, spec.Task.Resources)
							cl.Devices = []*cellv1.DeviceShare{{Device: uint32(rng.IntN(4)), Milli: 500}}
							cl.SeenSeq = seqs[m] // stale after the first change: coarse conflicts
							claims = append(claims, cl)
						}
						resp, err := c.state.Commit(ctxT(t), &cellv1.CommitRequest{
							Scheduler: "batch", ConflictMode: mode.conflict, CommitMode: mode.commit, Claims: claims,
						})
						if err != nil {
							t.Errorf("commit: %v", err)
							return
						}
						results <- txnResult{claims, resp}
					}
				}()
			}
			wg.Wait()
			close(results)

			placedBy := make(map[uint32]string)
			var accepted, conflicts int
			reasons := make(map[cellv1.ClaimOutcome]int)
			for r := range results {
				if len(r.resp.Results) != len(r.claims) {
					t.Fatalf("%d results for %d claims", len(r.resp.Results), len(r.claims))
				}
				n := 0
				for i, res := range r.resp.Results {
					if res.Outcome == cellv1.ClaimOutcome_CLAIM_OUTCOME_ACCEPTED {
						n++
						idx := r.claims[i].Task.Index
						if prev, dup := placedBy[idx]; dup {
							t.Fatalf("task %d accepted twice (%s and %s)", idx, prev, r.claims[i].MachineId)
						}
						placedBy[idx] = r.claims[i].MachineId
						continue
					}
					conflicts++
					reasons[res.Outcome]++
					if res.Detail == "" {
						t.Errorf("conflict %v without detail", res.Outcome)
					}
				}
				if int(r.resp.Accepted) != n {
					t.Fatalf("accepted=%d but %d results accepted", r.resp.Accepted, n)
				}
				if mode.commit == cellv1.CommitMode_COMMIT_MODE_ALL_OR_NOTHING && n != 0 && n != len(r.claims) {
					t.Fatalf("all-or-nothing transaction partially applied: %d of %d", n, len(r.claims))
				}
				accepted += n
			}
			if accepted == 0 || conflicts == 0 {
				t.Fatalf("accepted=%d conflicts=%d: the test must produce both", accepted, conflicts)
			}
			c.checkInvariant()

			got, err := c.jobs.GetJob(ctxT(t), &cellv1.GetJobRequest{IdOrName: job.Id, IncludeTasks: true})
			if err != nil {
				t.Fatal(err)
			}
			for idx, m := range placedBy {
				if task := got.Tasks[idx]; task.MachineId != m || task.State != cellv1.TaskState_TASK_STATE_ASSIGNED {
					t.Fatalf("task %d: store says %s on %q, commit said %s", idx, task.State, task.MachineId, m)
				}
			}
			if int(got.Counts.Assigned) != len(placedBy) {
				t.Fatalf("store has %d assigned, commits accepted %d", got.Counts.Assigned, len(placedBy))
			}
			t.Logf("accepted %d, conflicts %d by reason %v", accepted, conflicts, reasons)
			if mode.conflict == cellv1.ConflictMode_CONFLICT_MODE_COARSE && reasons[cellv1.ClaimOutcome_CLAIM_OUTCOME_SEQ_CHANGED] == 0 {
				t.Errorf("coarse mode produced no seq_changed conflicts")
			}
			if mode.commit == cellv1.CommitMode_COMMIT_MODE_ALL_OR_NOTHING && reasons[cellv1.ClaimOutcome_CLAIM_OUTCOME_ABORTED] == 0 {
				t.Errorf("all-or-nothing produced no aborted claims")
			}
		})
	}
}

func TestPreemptionThroughAPI(t *testing.T) {
	c := newTestCell(t, Options{})
	c.addMachine("m1", nil, 2000, 4*gib, 0)
	low := c.submit(batchSpec("low", 2, 1000, gib))
	resp, err := c.state.Commit(ctxT(t), &cellv1.CommitRequest{Scheduler: "batch", Claims: []*cellv1.Claim{
		claim(low.Id, 0, "m1", low.Spec.Task.Resources), claim(low.Id, 1, "m1", low.Spec.Task.Resources)}})
	if err != nil || resp.Accepted != 2 {
		t.Fatalf("placing low: %v %v", resp, err)
	}
	prodSpec := batchSpec("prod", 1, 1000, gib)
	prodSpec.Scheduler, prodSpec.Priority = "service", 200
	prod := c.submit(prodSpec)
	resp, err = c.state.Commit(ctxT(t), &cellv1.CommitRequest{
		Scheduler:   "service",
		Claims:      []*cellv1.Claim{claim(prod.Id, 0, "m1", prod.Spec.Task.Resources)},
		Preemptions: []*cellv1.TaskRef{{JobId: low.Id, Index: 1}},
	})
	if err != nil || resp.Accepted != 1 || len(resp.Preempted) != 1 {
		t.Fatalf("preempting commit: %v %v", resp, err)
	}
	got, _ := c.jobs.GetJob(ctxT(t), &cellv1.GetJobRequest{IdOrName: low.Id, IncludeTasks: true})
	victim := got.Tasks[1]
	if victim.State != cellv1.TaskState_TASK_STATE_PENDING || victim.MachineId != "" || victim.LastMachineId != "m1" {
		t.Fatalf("victim: %v", victim)
	}
	c.checkInvariant()

	// Production never preempts production.
	prod2Spec := batchSpec("prod2", 1, 1000, gib)
	prod2Spec.Scheduler, prod2Spec.Priority = "service", 300
	prod2 := c.submit(prod2Spec)
	resp, err = c.state.Commit(ctxT(t), &cellv1.CommitRequest{
		Scheduler:   "service",
		Claims:      []*cellv1.Claim{claim(prod2.Id, 0, "m1", prod2.Spec.Task.Resources)},
		Preemptions: []*cellv1.TaskRef{{JobId: prod.Id, Index: 0}},
	})
	if err != nil || resp.Accepted != 0 || len(resp.Preempted) != 0 {
		t.Fatalf("production preempted production: %v %v", resp, err)
	}
	c.checkInvariant()
}
