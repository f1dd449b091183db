package replication

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	"github.com/omegacell/omegacell/cellstate"
	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// startNATS runs an embedded NATS server with a small payload limit, so
// that a snapshot's files travel in many chunks.
func startNATS(t *testing.T) *nats.Conn {
	t.Helper()
	return runNATS(t, &server.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true, MaxPayload: 64 << 10})
}

// runNATS runs an embedded NATS server with o and connects to it; both
// end with the test.
func runNATS(t *testing.T, o *server.Options) *nats.Conn {
	t.Helper()
	ns, err := server.NewServer(o)
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats did not start")
	}
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close(); ns.Shutdown() })
	return nc
}

// sourceStore is a store with machines, jobs (some stopped) and tenants'
// worth of revisions, checkpointed often so the copy holds both
// checkpointed objects and a local log to replay.
func sourceStore(t *testing.T, dir string, jobs int) (*cellstate.Store, []string) {
	t.Helper()
	s, err := cellstate.Open(cellstate.Options{Dir: dir, Logger: quiet, CheckpointRevisions: 7})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := range 8 {
		if _, _, err := s.RegisterMachine(ctx, &cellv1.RegisterMachineRequest{Id: fmt.Sprintf("m%d", i),
			Capacity: &cellv1.Resources{CpuMilli: 64_000, MemoryBytes: 1 << 40}}); err != nil {
			t.Fatal(err)
		}
	}
	var ids []string
	for i := range jobs {
		j, _, err := s.SubmitJob(ctx, &cellv1.JobSpec{Name: fmt.Sprintf("job-%d", i), Scheduler: "batch", Priority: 100, Count: uint32(1 + i%300),
			Task: &cellv1.TaskTemplate{Command: "/bin/true", Resources: &cellv1.Resources{CpuMilli: 100, MemoryBytes: 1 << 20}}})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, j.Id)
		if i%5 == 4 {
			if _, _, err := s.StopJob(ctx, j.Id); err != nil {
				t.Fatal(err)
			}
		}
	}
	return s, ids
}

// sameCell compares two stores object by object.
func sameCell(t *testing.T, want, got *cellstate.Store, jobs []string) {
	t.Helper()
	if want.Revision() != got.Revision() {
		t.Fatalf("revision %d, want %d", got.Revision(), want.Revision())
	}
	for i := range 8 {
		w, err1 := want.GetMachine(fmt.Sprintf("m%d", i))
		g, err2 := got.GetMachine(fmt.Sprintf("m%d", i))
		if err1 != nil || err2 != nil || !proto.Equal(w.Machine, g.Machine) {
			t.Fatalf("machine m%d differs: %v / %v", i, err1, err2)
		}
	}
	for _, id := range jobs {
		w, err1 := want.GetJob(id, true)
		g, err2 := got.GetJob(id, true)
		if err1 != nil || err2 != nil || !proto.Equal(w, g) {
			t.Fatalf("job %s differs: %v / %v", id, err1, err2)
		}
	}
	if err := got.CheckInvariant(); err != nil {
		t.Fatal(err)
	}
}

func leftovers(t *testing.T, pattern string) []string {
	t.Helper()
	m, err := filepath.Glob(pattern)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestSnapshotTransferAndInstall: a store's snapshot travels chunk by
// chunk to a peer, is verified, installed in place of an older store by
// renames, and opens at the source's revision with the same objects.
func TestSnapshotTransferAndInstall(t *testing.T) {
	nc := startNATS(t)
	dir := t.TempDir()
	src, jobs := sourceStore(t, filepath.Join(dir, "s1", "store"), 60)
	defer src.Close()
	srv, err := serveSnapshots(nc, src, "s1", DefaultMaxSnapshotBytes, quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.close()

	// The receiver has an old store of its own (a wiped one: empty).
	dstDir := filepath.Join(dir, "s2", "store")
	old, err := cellstate.Open(cellstate.Options{Dir: dstDir, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	old.Close()

	res, err := fetchSnapshot(context.Background(), fetchOptions{nc: nc, self: "s2", cellID: src.Identity().GetId(),
		minRev: 1, storeDir: dstDir, maxBytes: DefaultMaxSnapshotBytes, log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("snapshot from %s: revision %d, %d files, %d bytes, %v (%d-byte chunks)", res.Peer, res.Revision, res.Files, res.Bytes, res.Took, srv.chunkBytes())
	if res.Peer != "s1" || res.Revision != src.Revision() || res.Bytes <= uint64(srv.chunkBytes()) {
		t.Fatalf("fetched %+v; source at revision %d; want several chunks", res, src.Revision())
	}
	if got := leftovers(t, src.Dir()+".snapshot-*"); len(got) != 0 {
		t.Fatalf("the sender kept its copy after the transfer: %v", got)
	}
	if rev, _ := cellstate.PeekRevision(dstDir); rev != 0 {
		t.Fatalf("the old store changed before the install: revision %d", rev)
	}
	installed, err := InstallSnapshot(dstDir, quiet)
	if err != nil || !installed {
		t.Fatalf("install: %v %v", installed, err)
	}
	if got := leftovers(t, dstDir+".*"); len(got) != 0 {
		t.Fatalf("left after the install: %v", got)
	}
	dst, err := cellstate.Open(cellstate.Options{Dir: dstDir, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	sameCell(t, src, dst, jobs)
	// Nothing more to install.
	if installed, err := InstallSnapshot(filepath.Join(dir, "s3", "store"), quiet); installed || err != nil {
		t.Fatalf("install without a snapshot: %v %v", installed, err)
	}
}

// tamper relays a peer's snapshot subjects under another server's name,
// changing what passes: the receiver must notice.
func tamper(t *testing.T, nc *nats.Conn, from, as, cellID string, revision uint64, chunk func(n int, c *cellv1.SnapshotChunk)) {
	t.Helper()
	sub := func(subject string, fn nats.MsgHandler) {
		s, err := nc.Subscribe(subject, fn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Unsubscribe() })
	}
	relay := func(op string, edit func(data []byte) []byte) {
		sub(serverSubject(as, op), func(m *nats.Msg) {
			r, err := nc.Request(serverSubject(from, op), m.Data, 5*time.Second)
			if err != nil {
				return
			}
			m.Respond(edit(r.Data))
		})
	}
	sub(offerSubject, func(m *nats.Msg) {
		m.Respond(mustMarshal(t, &cellv1.SnapshotOffer{Name: as, Revision: revision, CellId: cellID}))
	})
	n := 0
	relay("begin", func(d []byte) []byte { return d })
	relay("end", func(d []byte) []byte { return d })
	relay("chunk", func(d []byte) []byte {
		c := &cellv1.SnapshotChunk{}
		if proto.Unmarshal(d, c) != nil {
			return d
		}
		n++
		chunk(n, c)
		return mustMarshal(t, c)
	})
}

func mustMarshal(t *testing.T, m proto.Message) []byte {
	b, err := proto.Marshal(m)
	if err != nil {
		t.Error(err)
	}
	return b
}

// TestSnapshotFetchFailuresInstallNothing: a corrupted chunk, a
// truncated file, a transfer interrupted halfway, a peer behind what the
// log needs and a peer of another cell all leave no snapshot to install
// and the receiver's store as it was.
func TestSnapshotFetchFailuresInstallNothing(t *testing.T) {
	nc := startNATS(t)
	dir := t.TempDir()
	src, _ := sourceStore(t, filepath.Join(dir, "s1", "store"), 40)
	defer src.Close()
	srv, err := serveSnapshots(nc, src, "s1", DefaultMaxSnapshotBytes, quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.close()
	cell := src.Identity().GetId()
	for _, tc := range []struct {
		name   string
		chunk  func(n int, c *cellv1.SnapshotChunk) // nil: no relay
		cancel int                                  // cancel the fetch at this chunk
		minRev uint64
		cellID string
		want   string
	}{
		{name: "flipped byte", chunk: func(n int, c *cellv1.SnapshotChunk) {
			if n == 3 && len(c.Data) > 0 {
				c.Data[len(c.Data)/2] ^= 1
			}
		}, want: "SHA-256 mismatch"},
		{name: "short chunk", chunk: func(n int, c *cellv1.SnapshotChunk) {
			if n == 2 {
				c.Data = nil
			}
		}, want: "chunk of 0 bytes"},
		{name: "interrupted", chunk: func(int, *cellv1.SnapshotChunk) {}, cancel: 4, want: "context canceled"},
		{name: "peer behind the log", minRev: src.Revision() + 1, want: errNoSnapshot.Error()},
		{name: "another cell", cellID: "00000000-0000-4000-8000-000000000000", want: errNoSnapshot.Error()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			peer := "s1"
			if tc.chunk != nil {
				peer = "evil-" + strings.ReplaceAll(tc.name, " ", "-")
				tamper(t, nc, "s1", peer, cell, src.Revision()+1000, func(n int, c *cellv1.SnapshotChunk) {
					if n == tc.cancel {
						cancel()
					}
					tc.chunk(n, c)
				})
			}
			o := fetchOptions{nc: nc, self: "s2", cellID: cell, minRev: max(tc.minRev, 1),
				storeDir: filepath.Join(dir, tc.name, "store"), maxBytes: DefaultMaxSnapshotBytes, log: quiet}
			if tc.cellID != "" {
				o.cellID = tc.cellID
			}
			res, err := fetchSnapshot(ctx, o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("fetch: %+v, %v; want an error with %q", res, err, tc.want)
			}
			if got := leftovers(t, o.storeDir+".*"); len(got) != 0 {
				t.Fatalf("a failed fetch left %v", got)
			}
			if installed, err := InstallSnapshot(o.storeDir, quiet); installed || err != nil {
				t.Fatalf("install after a failed fetch: %v %v", installed, err)
			}
		})
	}
	// The sender dropped every transfer once the receivers ended them.
	deadline := time.Now().Add(10 * time.Second)
	for len(leftovers(t, src.Dir()+".snapshot-*")) > 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if got := leftovers(t, src.Dir()+".snapshot-*"); len(got) != 0 {
		t.Fatalf("the sender kept %v", got)
	}
}

// TestSnapshotSenderBounds: a sender refuses a snapshot over its size
// bound and more than maxSnapshotSessions transfers at once, and answers
// chunk requests of unknown transfers, files or offsets with an error.
func TestSnapshotSenderBounds(t *testing.T) {
	nc := startNATS(t)
	dir := t.TempDir()
	src, _ := sourceStore(t, filepath.Join(dir, "s1", "store"), 10)
	defer src.Close()
	begin := func(name string) *cellv1.SnapshotManifest {
		t.Helper()
		m, err := nc.Request(serverSubject(name, "begin"), mustMarshal(t, &cellv1.SnapshotBegin{Requester: "t"}), 30*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		man := &cellv1.SnapshotManifest{}
		if err := proto.Unmarshal(m.Data, man); err != nil {
			t.Fatal(err)
		}
		return man
	}
	small, err := serveSnapshots(nc, src, "small", 1024, quiet)
	if err != nil {
		t.Fatal(err)
	}
	if man := begin("small"); !strings.Contains(man.Error, "over 1024 bytes") {
		t.Fatalf("oversized snapshot: %+v", man)
	}
	small.close()

	srv, err := serveSnapshots(nc, src, "s1", DefaultMaxSnapshotBytes, quiet)
	if err != nil {
		t.Fatal(err)
	}
	var mans []*cellv1.SnapshotManifest
	for range maxSnapshotSessions {
		man := begin("s1")
		if man.Error != "" {
			t.Fatal(man.Error)
		}
		mans = append(mans, man)
	}
	if man := begin("s1"); !strings.Contains(man.Error, "already in progress") {
		t.Fatalf("transfer over the bound: %+v", man)
	}
	for _, tc := range []struct {
		req  *cellv1.SnapshotChunkRequest
		want string
	}{
		{&cellv1.SnapshotChunkRequest{Session: "nope"}, "no snapshot transfer"},
		{&cellv1.SnapshotChunkRequest{Session: mans[0].Session, File: uint32(len(mans[0].Files))}, "no file"},
		{&cellv1.SnapshotChunkRequest{Session: mans[0].Session, Offset: mans[0].Files[0].Size + 1}, "past the end"},
	} {
		_, err := fetchChunk(context.Background(), nc, "s1", tc.req)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Fatalf("chunk %v: %v, want %q", tc.req, err, tc.want)
		}
	}
	if n := len(leftovers(t, src.Dir()+".snapshot-*")); n != maxSnapshotSessions {
		t.Fatalf("%d copies on disk, want %d", n, maxSnapshotSessions)
	}
	srv.close() // drops the open transfers' copies
	if got := leftovers(t, src.Dir()+".snapshot-*"); len(got) != 0 {
		t.Fatalf("closing the sender left %v", got)
	}
}

// TestInstallSnapshotResumes: every state a crash can leave between the
// install's renames ends with the snapshot installed (or, for a partial
// transfer, with nothing changed).
func TestInstallSnapshotResumes(t *testing.T) {
	mk := func(t *testing.T, dir string, machines int) {
		s, err := cellstate.Open(cellstate.Options{Dir: dir, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		for i := range machines {
			if _, _, err := s.RegisterMachine(context.Background(), &cellv1.RegisterMachineRequest{Id: fmt.Sprintf("m%d", i),
				Capacity: &cellv1.Resources{CpuMilli: 1000, MemoryBytes: 1 << 30}}); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name      string
		store     bool // the old store is still in place
		replaced  bool // it was set aside
		incoming  bool
		partial   bool
		installed bool
		want      uint64 // the revision the store opens at
	}{
		{name: "fetched, not installed", store: true, incoming: true, installed: true, want: 5},
		{name: "old set aside", replaced: true, incoming: true, installed: true, want: 5},
		{name: "installed, old not removed", store: true, replaced: true, want: 5},
		{name: "partial transfer", store: true, partial: true, want: 2},
		{name: "nothing", store: true, want: 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store := filepath.Join(t.TempDir(), "store")
			if tc.store {
				// With "installed, old not removed", store holds the new one.
				mk(t, store, map[bool]int{true: 5, false: 2}[tc.replaced])
			}
			if tc.replaced {
				mk(t, replacedDir(store), 2)
			}
			if tc.incoming {
				mk(t, incomingDir(store), 5)
			}
			if tc.partial {
				if err := os.MkdirAll(partialDir(store), 0o755); err != nil {
					t.Fatal(err)
				}
				os.WriteFile(filepath.Join(partialDir(store), "000001.sst"), []byte("half"), 0o644)
			}
			installed, err := InstallSnapshot(store, quiet)
			if err != nil || installed != tc.installed {
				t.Fatalf("install: %v %v, want %v", installed, err, tc.installed)
			}
			if got := leftovers(t, store+".*"); len(got) != 0 {
				t.Fatalf("left %v", got)
			}
			if rev, err := cellstate.PeekRevision(store); err != nil || rev != tc.want {
				t.Fatalf("store at revision %d (%v), want %d", rev, err, tc.want)
			}
		})
	}
}
