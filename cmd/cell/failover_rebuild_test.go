package main

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
	"github.com/omegacell/omegacell/proto/cellclient"
)

// The replicated log is bounded (replication/retention.go): these tests
// run the cell with a window of logWindow revisions, so that a follower
// away for longer cannot catch up from the log and rebuilds from a peer's
// snapshot, while one away for less catches up from the log.
const logWindow = 300

// logged reports whether nd's log has a line with msg="<msg>".
func (nd *replicaNode) logged(msg string) string {
	nd.mu.Lock()
	defer nd.mu.Unlock()
	for _, l := range nd.log {
		if strings.Contains(l, `msg="`+msg) {
			return l
		}
	}
	return ""
}

// count is how many lines of nd's log (all its processes) have
// msg="<msg>".
func (nd *replicaNode) count(msg string) int {
	nd.mu.Lock()
	defer nd.mu.Unlock()
	n := 0
	for _, l := range nd.log {
		if strings.Contains(l, `msg="`+msg) {
			n++
		}
	}
	return n
}

// commitUntil runs three schedulers' load until the leader's revision
// passes rev (bounded by 2 minutes).
func commitUntil(t *testing.T, conn *grpc.ClientConn, l *ledger, phase int, rev uint64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	var commits int64
	lctx, stop := context.WithCancel(ctx)
	for id := range 3 {
		wg.Add(1)
		go func() { defer wg.Done(); schedulerLoad(lctx, conn, id+10*phase, l, &commits) }()
	}
	for ctx.Err() == nil {
		if got, err := revisionWithin(conn, 5*time.Second); err == nil && got > rev {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	stop()
	wg.Wait()
	if ctx.Err() != nil {
		t.Fatalf("the cell did not pass revision %d", rev)
	}
}

// revisionWithin is revision with its own deadline (a paused server's
// connection answers nothing).
func revisionWithin(conn *grpc.ClientConn, d time.Duration) (uint64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return revision(ctx, conn)
}

// sameSnapshot compares two servers' Snapshot answers (once both applied
// the same revision): same revision, cell, machines, jobs and tasks.
func sameSnapshot(t *testing.T, name string, want, got *cellv1.SnapshotResponse) {
	t.Helper()
	if want.Revision != got.Revision || !proto.Equal(want.Cell, got.Cell) {
		t.Fatalf("%s: revision %d of cell %v, the leader's %d of %v", name, got.Revision, got.Cell, want.Revision, want.Cell)
	}
	slices.SortFunc(want.Machines, func(a, b *cellv1.Machine) int { return cmp.Compare(a.Id, b.Id) })
	slices.SortFunc(got.Machines, func(a, b *cellv1.Machine) int { return cmp.Compare(a.Id, b.Id) })
	slices.SortFunc(want.Jobs, func(a, b *cellv1.Job) int { return cmp.Compare(a.Id, b.Id) })
	slices.SortFunc(got.Jobs, func(a, b *cellv1.Job) int { return cmp.Compare(a.Id, b.Id) })
	byTask := func(a, b *cellv1.Task) int {
		return cmp.Or(cmp.Compare(a.JobId, b.JobId), cmp.Compare(a.Index, b.Index))
	}
	slices.SortFunc(want.Tasks, byTask)
	slices.SortFunc(got.Tasks, byTask)
	if !slices.EqualFunc(want.Machines, got.Machines, func(a, b *cellv1.Machine) bool { return proto.Equal(a, b) }) ||
		!slices.EqualFunc(want.Jobs, got.Jobs, func(a, b *cellv1.Job) bool { return proto.Equal(a, b) }) ||
		!slices.EqualFunc(want.Tasks, got.Tasks, func(a, b *cellv1.Task) bool { return proto.Equal(a, b) }) {
		t.Fatalf("%s: objects differ from the leader's at revision %d (%d/%d/%d machines/jobs/tasks, the leader's %d/%d/%d)", name, got.Revision,
			len(got.Machines), len(got.Jobs), len(got.Tasks), len(want.Machines), len(want.Jobs), len(want.Tasks))
	}
}

// quiesced reads the leader's and nd's snapshots once nd applied the
// leader's revision (no load runs) and compares them.
func quiesced(t *testing.T, rs *replicaSet, nd *replicaNode) *cellv1.SnapshotResponse {
	t.Helper()
	leader := rs.leader(30 * time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	want, err := snapshot(ctx, leader.conn)
	if err != nil {
		t.Fatalf("leader %s: %v", leader.name, err)
	}
	for {
		got, err := revision(ctx, nd.conn)
		if err == nil && got >= want.Revision {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("%s did not reach the leader's revision %d (at %d, %v)", nd.name, want.Revision, got, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	got, err := snapshot(ctx, nd.conn)
	if err != nil {
		t.Fatalf("%s: snapshot or invariant: %v", nd.name, err)
	}
	sameSnapshot(t, nd.name, want, got)
	return got
}

var logField = regexp.MustCompile(`\b(bytes|took|revision|peer|files)=("[^"]*"|\S+)`)

func fields(line string) map[string]string {
	f := map[string]string{}
	for _, m := range logField.FindAllStringSubmatch(line, -1) {
		f[m[1]] = strings.Trim(m[2], `"`)
	}
	return f
}

// TestFailoverWipedFollowerRebuildsFromSnapshot: with a replicated log
// of logWindow revisions, a follower away for fewer revisions catches up
// from the log (no snapshot); a follower whose data directory was wiped
// while the cell committed past the log's window (so the log no longer
// starts at revision 1) rebuilds from a peer's snapshot, not by replaying
// the log, then follows it: it holds every acknowledged job and claim,
// serves the leader's objects at the leader's revision, and the invariant
// holds. A follower paused (SIGSTOP) while the log moved past its
// revision restarts itself on a snapshot. Logs the snapshot's size and
// transfer time, and the catch-up times.
func TestFailoverWipedFollowerRebuildsFromSnapshot(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the failover suite runs three servers")
	}
	rs := startReplicaSet(t, 3, "--replicated-log-revisions", fmt.Sprint(logWindow))
	leader := rs.leader(30 * time.Second)
	var followers []*replicaNode
	for _, nd := range rs.nodes {
		if nd != leader {
			followers = append(followers, nd)
		}
	}
	defer func() {
		if t.Failed() {
			rs.dump(60)
		}
	}()
	l := &ledger{jobs: map[string]uint64{}, claims: map[string]string{}}
	mc := cellv1.NewMachineServiceClient(rs.all)
	// register registers machines, each until the cell acknowledges it (a
	// follower's death may move JetStream's Raft leaders: an append can
	// time out meanwhile, and the leader then steps down and wins again).
	register := func(prefix string, n int) {
		for i := range n {
			deadline := time.Now().Add(time.Minute)
			for {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				_, err := mc.RegisterMachine(ctx, &cellv1.RegisterMachineRequest{
					Id: fmt.Sprintf("%s%02d", prefix, i), Capacity: &cellv1.Resources{CpuMilli: 100_000_000, MemoryBytes: 1 << 50},
				})
				cancel()
				if err == nil {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal(err)
				}
				time.Sleep(50 * time.Millisecond)
			}
		}
	}
	register("m", failoverMachines)
	commitUntil(t, rs.all, l, 1, 2*logWindow)

	// 1. Away for fewer revisions than the log keeps: catches up from it.
	down, wiped := followers[0], followers[1]
	down.kill()
	at, err := revisionWithin(rs.all, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	register("extra", 20)
	commitUntil(t, rs.all, l, 4, at+logWindow/2)
	missed, err := revisionWithin(rs.all, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	missed -= at
	began := time.Now()
	rs.start(down)
	rs.waitReady(down)
	jobs, claims, rev := l.copy()
	checkLedger(t, down.name+" (was down)", down.conn, jobs, claims, rev)
	quiesced(t, rs, down)
	t.Logf("%s, down for %d revisions, caught up from the log in %v (restart to the leader's revision)", down.name, missed, time.Since(began))
	if line := down.logged("rebuilding from a peer's snapshot"); line != "" {
		t.Fatalf("%s was within the log's window but rebuilt from a snapshot: %s", down.name, line)
	}

	// 2. Wiped, and the log moved on: rebuilds from a peer's snapshot.
	wiped.kill()
	for _, sub := range []string{"store", "jetstream"} {
		if err := os.RemoveAll(filepath.Join(wiped.data, sub)); err != nil {
			t.Fatal(err)
		}
	}
	if at, err = revisionWithin(rs.all, time.Minute); err != nil {
		t.Fatal(err)
	}
	commitUntil(t, rs.all, l, 2, at+2*logWindow)
	began = time.Now()
	rs.start(wiped)
	rs.waitReady(wiped)
	ready := time.Since(began)
	jobs, claims, rev = l.copy()
	checkLedger(t, wiped.name+" (wiped)", wiped.conn, jobs, claims, rev)
	snap := quiesced(t, rs, wiped)
	fetched := wiped.logged("fetched a peer's snapshot")
	if fetched == "" || wiped.logged("installed a peer's snapshot") == "" {
		t.Fatalf("%s did not rebuild from a snapshot; its log:\n%s", wiped.name, wiped.tail(60))
	}
	if line := wiped.logged("no peer sent a snapshot"); line != "" {
		t.Fatalf("%s replayed the log: %s", wiped.name, line)
	}
	f := fields(fetched)
	t.Logf("%s (wiped) rebuilt from %s's snapshot at revision %s: %s bytes in %s files, transfer %s; ready %v after its start; cell at revision %d with %d jobs, %d tasks",
		wiped.name, f["peer"], f["revision"], f["bytes"], f["files"], f["took"], ready, snap.Revision, len(snap.Jobs), len(snap.Tasks))
	if len(claims) == 0 {
		t.Fatal("nothing was acknowledged")
	}

	// 3. Paused (SIGSTOP) while the cell committed past the log's window.
	// Its own JetStream copy of the log may still hold what it misses
	// when it resumes (then it catches up from it), or may have dropped
	// it first (then its follower sees the gap, stops, and the server
	// restarts on a snapshot); either way it never skips a revision and
	// ends with the leader's objects.
	paused := down
	if rs.leader(30*time.Second) == paused {
		paused = wiped
	}
	// The load goes to the other two servers only: a call that picked
	// the paused one would wait out its deadline.
	var others []string
	for _, nd := range rs.nodes {
		if nd != paused {
			others = append(others, nd.addr)
		}
	}
	live, err := cellclient.Dial(strings.Join(others, ","), rs.admin)
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	installs := paused.count("installed a peer's snapshot")
	paused.signal(syscall.SIGSTOP)
	at, err = revisionWithin(live, time.Minute)
	if err != nil {
		paused.signal(syscall.SIGCONT)
		t.Fatal(err)
	}
	commitUntil(t, live, l, 3, at+2*logWindow)
	paused.signal(syscall.SIGCONT)
	began = time.Now()
	jobs, claims, rev = l.copy()
	checkLedger(t, paused.name+" (paused)", paused.conn, jobs, claims, rev)
	quiesced(t, rs, paused)
	how := "from its copy of the log"
	if paused.count("installed a peer's snapshot") > installs {
		how = "by a restart on a snapshot (gap)"
	}
	t.Logf("%s, paused past the log's window, caught up %s in %v", paused.name, how, time.Since(began))
}
