package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/omegacell/omegacell/cellstate"
	"github.com/omegacell/omegacell/pki"
	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
	"github.com/omegacell/omegacell/proto/cellclient"
	"github.com/omegacell/omegacell/proto/credentials"
)

// replicaSet is a replicated cell of `cell server` child processes on
// loopback: each with its own data directory, gRPC and route ports, all
// sharing one CA (made here, as an operator copies it).
type replicaSet struct {
	t     *testing.T
	dir   string
	nodes []*replicaNode
	admin credentials.Client
	// adminDir holds the admin's credentials (cell --credentials).
	adminDir string
	all      *grpc.ClientConn // follows the leader over every address
}

type replicaNode struct {
	name, data, addr, route string
	peers                   string

	mu      sync.Mutex
	cmd     *exec.Cmd
	leading bool
	ready   chan struct{} // closed at the next "cell server ready"
	log     []string
	logAt   []time.Time      // when each line of log was read
	conn    *grpc.ClientConn // this server only
}

func startReplicaSet(t *testing.T, n int, extra ...string) *replicaSet {
	t.Helper()
	rs := &replicaSet{t: t, dir: t.TempDir()}
	var routes []string
	for i := range n {
		nd := &replicaNode{name: "s" + string(rune('1'+i)), addr: freeAddr(t), route: freeAddr(t)}
		nd.data = filepath.Join(rs.dir, nd.name)
		rs.nodes = append(rs.nodes, nd)
		routes = append(routes, nd.route)
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	cell, err := pki.Ensure(filepath.Join(rs.nodes[0].data, "pki"), nil, quiet)
	if err != nil {
		t.Fatal(err)
	}
	var addrs []string
	for _, nd := range rs.nodes {
		nd.peers = strings.Join(routes, ",")
		addrs = append(addrs, nd.addr)
		if nd != rs.nodes[0] {
			if err := cell.ShareCA(filepath.Join(nd.data, "pki")); err != nil {
				t.Fatal(err)
			}
		}
	}
	b, err := credentials.Load(cell.AdminDir)
	if err != nil {
		t.Fatal(err)
	}
	rs.admin, rs.adminDir = credentials.Client{Bundle: b}, cell.AdminDir
	for _, nd := range rs.nodes {
		rs.start(nd, extra...)
	}
	for _, nd := range rs.nodes {
		rs.waitReady(nd)
		if nd.conn, err = cellclient.Dial(nd.addr, rs.admin); err != nil {
			t.Fatal(err)
		}
	}
	if rs.all, err = cellclient.Dial(strings.Join(addrs, ","), rs.admin); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rs.close)
	return rs
}

// start runs nd's server (again, on the same data and ports).
func (rs *replicaSet) start(nd *replicaNode, extra ...string) {
	args := append([]string{"server", "--data", nd.data, "--listen", nd.addr, "--metrics", "", "--nats-listen", "127.0.0.1:-1",
		"--name", nd.name, "--cluster-listen", nd.route, "--peers", nd.peers,
		// No agents heartbeat in these tests: machines must not be marked
		// down (and their tasks requeued) during a run.
		"--grace", "1h"}, extra...)
	cmd := exec.Command(cellBinary, args...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		rs.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		rs.t.Fatal(err)
	}
	nd.mu.Lock()
	nd.cmd, nd.leading, nd.ready = cmd, false, make(chan struct{})
	ready := nd.ready
	nd.mu.Unlock()
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			line := sc.Text()
			nd.mu.Lock()
			if nd.cmd == cmd { // not a previous process's last words
				nd.log = append(nd.log, line)
				nd.logAt = append(nd.logAt, time.Now())
				switch {
				case strings.Contains(line, `msg="leading the cell"`):
					nd.leading = true
				case strings.Contains(line, `msg="lost the lease`), strings.Contains(line, "replica must restart"),
					strings.Contains(line, "an append was refused"):
					nd.leading = false
				case strings.Contains(line, `msg="cell server ready"`):
					select {
					case <-ready:
					default:
						close(ready)
					}
				}
			}
			nd.mu.Unlock()
		}
	}()
}

func (rs *replicaSet) waitReady(nd *replicaNode) {
	rs.t.Helper()
	nd.mu.Lock()
	ready := nd.ready
	nd.mu.Unlock()
	select {
	case <-ready:
	case <-time.After(2 * time.Minute):
		rs.t.Fatalf("%s did not become ready; its log:\n%s", nd.name, nd.tail(40))
	}
}

func (nd *replicaNode) tail(n int) string {
	nd.mu.Lock()
	defer nd.mu.Unlock()
	return strings.Join(nd.log[max(0, len(nd.log)-n):], "\n")
}

// between returns the lines nd logged from from to to, each with when it
// was read.
func (nd *replicaNode) between(from, to time.Time) []timedLine {
	nd.mu.Lock()
	defer nd.mu.Unlock()
	var out []timedLine
	for i, at := range nd.logAt {
		if !at.Before(from) && !at.After(to) {
			out = append(out, timedLine{at: at, who: nd.name, line: nd.log[i]})
		}
	}
	return out
}

type timedLine struct {
	at        time.Time
	who, line string
}

// events is a bounded, timestamped record of what the test's clients saw
// (cellclient.Trace, probe attempts), for the per-kill timelines.
type events struct {
	mu    sync.Mutex
	lines []timedLine
}

func (e *events) add(who, line string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.lines) >= 20000 {
		e.lines = append(e.lines[:0], e.lines[10000:]...)
	}
	e.lines = append(e.lines, timedLine{at: time.Now(), who: who, line: line})
}

func (e *events) between(from, to time.Time) []timedLine {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []timedLine
	for _, l := range e.lines {
		if !l.at.Before(from) && !l.at.After(to) {
			out = append(out, l)
		}
	}
	return out
}

// timeline is every server's log and the clients' events from from to to,
// in order, each line with its offset from zero.
func (rs *replicaSet) timeline(ev *events, zero, from, to time.Time) string {
	var all []timedLine
	for _, nd := range rs.nodes {
		all = append(all, nd.between(from, to)...)
	}
	if ev != nil {
		all = append(all, ev.between(from, to)...)
	}
	sort.SliceStable(all, func(i, j int) bool { return all[i].at.Before(all[j].at) })
	var b strings.Builder
	for _, l := range all {
		fmt.Fprintf(&b, "%+8.3fs %-6s %s\n", l.at.Sub(zero).Seconds(), l.who, l.line)
	}
	return b.String()
}

func (nd *replicaNode) isLeading() bool {
	nd.mu.Lock()
	defer nd.mu.Unlock()
	return nd.leading && nd.cmd != nil
}

func (nd *replicaNode) signal(sig syscall.Signal) {
	nd.mu.Lock()
	cmd := nd.cmd
	if sig == syscall.SIGKILL {
		nd.leading = false
	}
	nd.mu.Unlock()
	if cmd != nil {
		cmd.Process.Signal(sig)
	}
}

// dumpStacks makes nd's process print its goroutines and exit (SIGQUIT),
// writes its whole log to a file that outlives the test and returns a
// line naming it.
func (nd *replicaNode) dumpStacks() string {
	nd.mu.Lock()
	cmd := nd.cmd
	nd.mu.Unlock()
	if cmd == nil {
		return "not running"
	}
	cmd.Process.Signal(syscall.SIGQUIT)
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
	}
	time.Sleep(200 * time.Millisecond) // the last lines of its stderr
	f, err := os.CreateTemp("", "omegacell-failover-"+nd.name+"-*.log")
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	nd.mu.Lock()
	for i, l := range nd.log {
		fmt.Fprintf(f, "%s %s\n", nd.logAt[i].UTC().Format("15:04:05.000"), l)
	}
	nd.mu.Unlock()
	return "its log and goroutines: " + f.Name()
}

// kill SIGKILLs nd and waits for the process to end.
func (nd *replicaNode) kill() {
	nd.mu.Lock()
	cmd := nd.cmd
	nd.cmd, nd.leading = nil, false
	nd.mu.Unlock()
	if cmd != nil {
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
	}
}

// leader waits until exactly one running node says it leads.
func (rs *replicaSet) leader(within time.Duration) *replicaNode {
	rs.t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		var l []*replicaNode
		for _, nd := range rs.nodes {
			if nd.isLeading() {
				l = append(l, nd)
			}
		}
		if len(l) == 1 {
			return l[0]
		}
		time.Sleep(20 * time.Millisecond)
	}
	rs.t.Fatalf("no single leader within %v", within)
	return nil
}

func (rs *replicaSet) close() {
	if rs.all != nil {
		rs.all.Close()
	}
	for _, nd := range rs.nodes {
		nd.kill()
		if nd.conn != nil {
			nd.conn.Close()
		}
	}
}

// count says how many lines of every server's log (every process it ran
// as) contain each of what.
func (rs *replicaSet) count(what ...string) string {
	n := make([]int, len(what))
	for _, nd := range rs.nodes {
		nd.mu.Lock()
		for _, l := range nd.log {
			for i, w := range what {
				if strings.Contains(l, w) {
					n[i]++
				}
			}
		}
		nd.mu.Unlock()
	}
	var parts []string
	for i, w := range what {
		parts = append(parts, fmt.Sprintf("%q %d times", w, n[i]))
	}
	return strings.Join(parts, ", ")
}

// addrs is every server's gRPC address, as a client takes them.
func (rs *replicaSet) addrs() string {
	var a []string
	for _, nd := range rs.nodes {
		a = append(a, nd.addr)
	}
	return strings.Join(a, ",")
}

// revision is the revision a server has applied (a one-machine page).
func revision(ctx context.Context, conn *grpc.ClientConn) (uint64, error) {
	r, err := cellv1.NewMachineServiceClient(conn).ListMachines(ctx, &cellv1.ListMachinesRequest{PageSize: 1})
	if err != nil {
		return 0, err
	}
	return r.Revision, nil
}

// snapshot reads a server's whole cell and checks the invariant.
func snapshot(ctx context.Context, conn *grpc.ClientConn) (*cellv1.SnapshotResponse, error) {
	stream, err := cellv1.NewStateServiceClient(conn).Snapshot(ctx, &cellv1.SnapshotRequest{})
	if err != nil {
		return nil, err
	}
	all := &cellv1.SnapshotResponse{}
	for {
		r, err := stream.Recv()
		if err != nil {
			return nil, err
		}
		all.Machines = append(all.Machines, r.Machines...)
		all.Jobs = append(all.Jobs, r.Jobs...)
		all.Tasks = append(all.Tasks, r.Tasks...)
		all.Revision, all.Cell = r.Revision, r.Cell
		if r.Last {
			break
		}
	}
	return all, cellstate.CheckSnapshot(all.Machines, all.Jobs, all.Tasks)
}

// dump logs the last n lines of every server's log.
func (rs *replicaSet) dump(n int) {
	for _, nd := range rs.nodes {
		rs.t.Logf("%s:\n%s", nd.name, nd.tail(n))
	}
}
