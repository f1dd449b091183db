package replication

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/omegacell/omegacell/cellstate"
	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
)

// natsCluster starts n clustered NATS servers with JetStream in this
// process (names n1..nN) and returns a connection to each.
func natsCluster(t *testing.T, n int) []*nats.Conn {
	t.Helper()
	ports := make([]int, n)
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ports[i] = l.Addr().(*net.TCPAddr).Port
		l.Close()
	}
	var conns []*nats.Conn
	for i := range n {
		o := &server.Options{ServerName: "n" + strconv.Itoa(i+1), Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true,
			JetStream: true, StoreDir: t.TempDir(),
			Cluster: server.ClusterOpts{Name: "test", Host: "127.0.0.1", Port: ports[i]}}
		for j, p := range ports {
			if j != i {
				o.Routes = append(o.Routes, &url.URL{Scheme: "nats-route", Host: "127.0.0.1:" + strconv.Itoa(p)})
			}
		}
		conns = append(conns, runNATS(t, o))
	}
	return conns
}

// replica is one server's store and node in the in-process cell.
type replica struct {
	name   string
	dir    string
	nc     *nats.Conn
	store  *cellstate.Store
	node   *Node
	failed chan error
}

func (r *replica) open(t *testing.T) {
	t.Helper()
	var err error
	if r.store, err = cellstate.Open(cellstate.Options{Dir: r.dir, Logger: quiet, CheckpointRevisions: 50}); err != nil {
		t.Fatal(err)
	}
}

// join starts the node; it returns Start's error (the store stays open).
func (r *replica) join(window int64) error {
	r.failed = make(chan error, 1)
	n, err := Start(context.Background(), Config{Name: r.name, Address: r.name + ":1", Conn: r.nc, Store: r.store,
		LeaseTTL: time.Second, LogMaxRevisions: window, Logger: quiet,
		Failed: func(err error) { r.failed <- err }})
	r.node = n
	return err
}

func (r *replica) stop(t *testing.T) {
	t.Helper()
	if r.node != nil {
		r.node.Close()
		r.node = nil
	}
	if err := r.store.Close(); err != nil {
		t.Fatal(err)
	}
}

// restart closes r and starts it again as a server does: a fetched
// snapshot is installed and the server started again on it. It reports
// whether a snapshot was installed.
func (r *replica) restart(t *testing.T, window int64) bool {
	t.Helper()
	r.stop(t)
	rebuilt := false
	for attempt := 0; ; attempt++ {
		installed, err := InstallSnapshot(r.dir, quiet)
		if err != nil {
			t.Fatal(err)
		}
		rebuilt = rebuilt || installed
		r.open(t)
		err = r.join(window)
		if err == nil {
			return rebuilt
		}
		if !errors.Is(err, ErrSnapshotFetched) || attempt == 3 {
			t.Fatalf("%s: %v", r.name, err)
		}
		if err := r.store.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestReplicaRebuildsFromSnapshot runs a replicated cell of three NATS
// servers with JetStream in this process and two replicas, with a log of
// 40 revisions: a follower restarted within the window catches up from
// the log; a follower whose following stopped while the log moved past
// its revision fails (ErrFenced, the server restarts it) instead of
// skipping revisions, and its restart rebuilds it from the leader's
// snapshot; a wiped follower likewise. Every time it ends with the
// leader's objects.
func TestReplicaRebuildsFromSnapshot(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: forms a JetStream cluster")
	}
	const window = 40
	conns := natsCluster(t, 3)
	dir := t.TempDir()
	a := &replica{name: "n1", dir: filepath.Join(dir, "a", "store"), nc: conns[0]}
	b := &replica{name: "n2", dir: filepath.Join(dir, "b", "store"), nc: conns[1]}
	a.open(t)
	if err := a.join(window); err != nil {
		t.Fatal(err)
	}
	defer a.stop(t)
	waitFor(t, "a leader", a.store.IsLeader)
	b.open(t)
	if err := b.join(window); err != nil {
		t.Fatal(err)
	}
	defer func() { b.stop(t) }()

	var jobs []string
	machines := 0
	commit := func(n int) {
		t.Helper()
		ctx := context.Background()
		for range n {
			if machines < 8 {
				if _, _, err := a.store.RegisterMachine(ctx, &cellv1.RegisterMachineRequest{Id: fmt.Sprintf("m%d", machines),
					Capacity: &cellv1.Resources{CpuMilli: 64_000, MemoryBytes: 1 << 40}}); err != nil {
					t.Fatal(err)
				}
				machines++
				continue
			}
			j, _, err := a.store.SubmitJob(ctx, &cellv1.JobSpec{Name: fmt.Sprintf("job-%d", len(jobs)), Scheduler: "batch", Priority: 100, Count: 3,
				Task: &cellv1.TaskTemplate{Command: "/bin/true", Resources: &cellv1.Resources{CpuMilli: 100, MemoryBytes: 1 << 20}}})
			if err != nil {
				t.Fatal(err)
			}
			jobs = append(jobs, j.Id)
		}
	}
	caughtUp := func(r *replica) {
		t.Helper()
		waitFor(t, r.name+" at the leader's revision", func() bool { return r.store.Revision() == a.store.Revision() })
		sameCell(t, a.store, r.store, jobs)
	}
	commit(30)
	caughtUp(b)

	// Within the window: from the log.
	b.stop(t)
	commit(window / 2)
	b.open(t)
	if err := b.join(window); err != nil {
		t.Fatalf("a follower within the log's window: %v", err)
	}
	caughtUp(b)

	// Following stopped while the log moved past it: a gap, never skipped.
	b.node.stopFollowing()
	at := b.store.Revision()
	commit(2 * window)
	// A leader-to-be reads the log message by message: behind its start,
	// it gives up at once (the store fails and is rebuilt).
	if err := b.node.readTo(context.Background(), a.store.Revision()); !errors.Is(err, errDiverged) || !errors.Is(err, errBehindLog) {
		t.Fatalf("reading the log from behind its start: %v", err)
	}
	b.node.startFollowing()
	select {
	case err := <-b.failed:
		if !errors.Is(err, ErrFenced) || !strings.Contains(err.Error(), "behind the start of the replicated log") {
			t.Fatalf("failed with %v", err)
		}
		t.Logf("the follower at %d stopped: %v", at, err)
	case <-time.After(time.Minute):
		t.Fatal("a follower behind the log's start went on")
	}
	if got := b.store.Revision(); got != at {
		t.Fatalf("the follower moved from %d to %d across the gap", at, got)
	}
	if !b.restart(t, window) {
		t.Fatal("the restart did not install a snapshot")
	}
	caughtUp(b)
	// The log is the window; the leader's appends, fenced on the last
	// sequence, went on past the dropped messages.
	info, err := a.node.stream.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st := info.State; st.Msgs > window || st.FirstSeq <= 1 || st.LastSeq != a.store.Revision() {
		t.Fatalf("log %d-%d (%d messages), leader at %d: want the last %d revisions", st.FirstSeq, st.LastSeq, st.Msgs, a.store.Revision(), window)
	}

	// Wiped: rebuilt from a snapshot, then follows.
	b.stop(t)
	if err := os.RemoveAll(b.dir); err != nil {
		t.Fatal(err)
	}
	commit(2 * window)
	b.open(t)
	b.node = nil
	if !b.restart(t, window) {
		t.Fatal("the wiped replica did not install a snapshot")
	}
	commit(5)
	caughtUp(b)
	if got := leftovers(t, b.dir+".*"); len(got) != 0 {
		t.Fatalf("left %v", got)
	}
}

func TestLogLimits(t *testing.T) {
	for _, tc := range []struct {
		bytes, revs         int64
		wantBytes, wantRevs int64
	}{
		{0, 0, DefaultLogMaxBytes, DefaultLogMaxRevisions},
		{-1, -5, -1, -1},
		{1 << 20, 300, 1 << 20, 300},
	} {
		b, r := logLimits(Config{LogMaxBytes: tc.bytes, LogMaxRevisions: tc.revs})
		if b != tc.wantBytes || r != tc.wantRevs {
			t.Errorf("logLimits(%d, %d) = %d, %d; want %d, %d", tc.bytes, tc.revs, b, r, tc.wantBytes, tc.wantRevs)
		}
	}
}

func TestFirstGap(t *testing.T) {
	revs := func(rs ...uint64) []*cellv1.ReplicatedRevision {
		var out []*cellv1.ReplicatedRevision
		for _, r := range rs {
			out = append(out, &cellv1.ReplicatedRevision{Revision: r})
		}
		return out
	}
	for _, tc := range []struct {
		revs          []*cellv1.ReplicatedRevision
		want          uint64
		got, expected uint64
	}{
		{revs(5, 6, 7), 5, 0, 0},
		{revs(9, 10), 5, 9, 5},
		{revs(5, 6, 9), 5, 9, 7},
		{revs(4, 5), 5, 0, 0}, // behind, not a gap: the store refuses it
	} {
		got, expected := firstGap(tc.revs, tc.want)
		if got != tc.got || expected != tc.expected {
			t.Errorf("firstGap(%v, %d) = %d, %d; want %d, %d", tc.revs, tc.want, got, expected, tc.got, tc.expected)
		}
	}
}
