package cellstate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"sort"
	"sync"
	"testing"

	"google.golang.org/protobuf/proto"

	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
)

// recorder is a Replicator that keeps what the leader appended, and can
// refuse appends (a fenced leader).
type recorder struct {
	mu     sync.Mutex
	revs   []*cellv1.ReplicatedRevision
	refuse bool
}

func (r *recorder) Append(revs []*cellv1.ReplicatedRevision) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.refuse {
		return errors.New("wrong last sequence")
	}
	for _, rv := range revs {
		if want := uint64(len(r.revs) + 1); rv.Revision != want {
			return fmt.Errorf("append %d, want %d", rv.Revision, want)
		}
	}
	r.revs = append(r.revs, revs...)
	return nil
}

// cellDump is a store's cell in a comparable form.
func cellDump(t *testing.T, s *Store) map[string]string {
	t.Helper()
	out := map[string]string{}
	snap := s.Snapshot()
	out["revision"] = fmt.Sprint(snap.Revision)
	for _, m := range snap.machines {
		out["m/"+m.m.ID] = prototext(m.pb())
	}
	for i, j := range snap.jobs {
		out["j/"+j.Id] = prototext(j)
		for _, tk := range snap.tasks[i] {
			out[fmt.Sprintf("t/%s/%d", j.Id, tk.t.Key.Index)] = prototext(tk.pb())
		}
	}
	names, pending := s.Schedulers()
	sort.Strings(names)
	out["schedulers"] = fmt.Sprint(names, pending)
	tenants, _ := s.Tenants()
	for _, p := range tenants {
		out["tenant/"+p.Name] = prototext(p)
	}
	return out
}

func prototext(m proto.Message) string {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// TestReplicaAppliesLeaderHistory drives a leader through every kind of
// change (machines, jobs, claims, agent reports, stops, drains, a
// scheduler, a tenant policy, job deletion by the collector) and applies
// what it appended to a follower, in batches of random sizes: the
// follower's cell equals the leader's, its invariant holds, and after a
// restart it recovers the same cell from its own disk.
func TestReplicaAppliesLeaderHistory(t *testing.T) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	rec := &recorder{}
	leader := newTestCell(t, Options{Logger: quiet, JobRetention: -1})
	leader.store.EnableReplication(rec, nil)
	leader.store.SetRole(RoleLeader)
	fdir := t.TempDir()
	follower, err := Open(Options{Dir: fdir, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	follower.EnableReplication(rec, nil)
	defer func() { follower.Close() }()

	ctx := context.Background()
	rng := rand.New(rand.NewPCG(15, 3))
	for i := range 6 {
		leader.addMachine(fmt.Sprintf("m%d", i), map[string]string{"zone": fmt.Sprint(i % 2)}, 16000, 64<<30, 2)
	}
	if _, err := leader.store.RegisterScheduler(ctx, "custom"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := leader.store.CreateTenant(ctx, &cellv1.Tenant{Name: "team-a", MaxBand: cellv1.PriorityBand_PRIORITY_BAND_PRODUCTION}); err != nil {
		t.Fatal(err)
	}
	var jobs []*cellv1.Job
	for k := range 12 {
		spec := batchSpec(fmt.Sprintf("job-%d", k), uint32(3+rng.IntN(300)), 100, 1<<20)
		if k%3 == 0 {
			spec.Task.MaxPerMachine = 50
		}
		if k%4 == 1 {
			spec.Tenant = "team-a" // quota usage is the tenant's on every server
		}
		jobs = append(jobs, leader.submit(spec))
	}
	for round := range 40 {
		j := jobs[rng.IntN(len(jobs))]
		req := &cellv1.CommitRequest{Scheduler: "batch"}
		for range 1 + rng.IntN(20) {
			req.Claims = append(req.Claims, claim(j.Id, uint32(rng.IntN(int(j.Spec.Count))), fmt.Sprintf("m%d", rng.IntN(6)), j.Spec.Task.Resources))
		}
		if _, err := leader.state.Commit(ctx, req); err != nil {
			t.Fatalf("round %d: commit: %v", round, err)
		}
		if round%5 == 4 {
			// The agent of a machine reports its tasks running, some done.
			m := fmt.Sprintf("m%d", rng.IntN(6))
			got, err := leader.store.GetMachine(m)
			if err != nil {
				t.Fatal(err)
			}
			var ups []*cellv1.TaskStateUpdate
			for n, tk := range got.Tasks {
				st := cellv1.TaskState_TASK_STATE_RUNNING
				if n%3 == 0 {
					st = cellv1.TaskState_TASK_STATE_SUCCEEDED
				}
				ups = append(ups, &cellv1.TaskStateUpdate{Task: &cellv1.TaskRef{JobId: tk.JobId, Index: tk.Index}, Attempt: tk.Attempt, State: st})
			}
			if _, _, err := leader.store.ReportTaskStates(ctx, m, ups); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, _, err := leader.store.StopJob(ctx, jobs[1].Id); err != nil {
		t.Fatal(err)
	}
	if _, _, err := leader.store.DrainMachine(ctx, &cellv1.DrainMachineRequest{Id: "m2", Drain: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := leader.store.markDown(ctx, []string{"m3"}); err != nil {
		t.Fatal(err)
	}
	// The collector deletes the stopped job (retention zero for it).
	if _, _, err := leader.store.do(ctx, gcJobsOp{retention: -1}); err != nil {
		t.Fatal(err)
	}

	rec.mu.Lock()
	revs := append([]*cellv1.ReplicatedRevision(nil), rec.revs...)
	rec.mu.Unlock()
	if uint64(len(revs)) != leader.store.Revision() {
		t.Fatalf("appended %d revisions, leader at %d", len(revs), leader.store.Revision())
	}
	for len(revs) > 0 {
		n := min(len(revs), 1+rng.IntN(40))
		if err := follower.Apply(ctx, revs[:n]); err != nil {
			t.Fatal(err)
		}
		revs = revs[n:]
	}
	want := cellDump(t, leader.store)
	compare := func(what string, s *Store) {
		t.Helper()
		if err := s.CheckInvariant(); err != nil {
			t.Fatalf("%s: invariant: %v", what, err)
		}
		s.mu.RLock()
		diff := s.st.ledger.Diff(leader.store.st.ledger)
		s.mu.RUnlock()
		if diff != "" {
			t.Fatalf("%s: quota ledger differs from the leader's: %s", what, diff)
		}
		got := cellDump(t, s)
		for k, v := range want {
			if got[k] != v {
				t.Fatalf("%s: %s differs from the leader's", what, k)
			}
		}
		for k := range got {
			if _, ok := want[k]; !ok {
				t.Fatalf("%s: %s is not in the leader's cell", what, k)
			}
		}
	}
	compare("follower", follower)
	if err := follower.Close(); err != nil {
		t.Fatal(err)
	}
	follower, err = Open(Options{Dir: fdir, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	compare("follower after restart", follower)

	// A follower refuses writes, naming the leader.
	follower.EnableReplication(rec, nil)
	follower.SetLeaderAddress("10.0.0.1:7070")
	_, _, err = follower.SubmitJob(ctx, batchSpec("nope", 1, 1, 1))
	var nl *NotLeaderError
	if !errors.As(err, &nl) || nl.Leader != "10.0.0.1:7070" {
		t.Fatalf("submit on a follower: %v, want NotLeaderError naming the leader", err)
	}
}

// TestReplicaFencedLeaderReloads: a leader whose append is refused
// answers the round with an error, and after Reload holds exactly its
// durable cell (the refused round is gone) and serves again.
func TestReplicaFencedLeaderReloads(t *testing.T) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	rec := &recorder{}
	c := newTestCell(t, Options{Logger: quiet})
	fenced := make(chan error, 1)
	c.store.EnableReplication(rec, func(err error) { fenced <- err })
	c.store.SetRole(RoleLeader)
	c.addMachine("m0", nil, 8000, 8<<30, 0)
	j := c.submit(batchSpec("a", 4, 100, 1<<20))
	before := cellDump(t, c.store)
	rec.mu.Lock()
	rec.refuse = true
	rec.mu.Unlock()
	ctx := context.Background()
	if _, err := c.state.Commit(ctx, &cellv1.CommitRequest{Scheduler: "batch", Claims: []*cellv1.Claim{claim(j.Id, 0, "m0", j.Spec.Task.Resources)}}); err == nil {
		t.Fatal("a commit whose append was refused was acknowledged")
	}
	<-fenced
	if c.store.IsLeader() {
		t.Fatal("still leader after a refused append")
	}
	if err := c.store.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := cellDump(t, c.store); fmt.Sprint(got) != fmt.Sprint(before) {
		t.Fatal("after reload the cell is not the durable one")
	}
	if err := c.store.CheckInvariant(); err != nil {
		t.Fatal(err)
	}
	// Leading again (the log took nothing meanwhile), it commits.
	rec.mu.Lock()
	rec.refuse = false
	rec.mu.Unlock()
	c.store.SetRole(RoleLeader)
	if _, err := c.state.Commit(ctx, &cellv1.CommitRequest{Scheduler: "batch", Claims: []*cellv1.Claim{claim(j.Id, 0, "m0", j.Spec.Task.Resources)}}); err != nil {
		t.Fatal(err)
	}
}
