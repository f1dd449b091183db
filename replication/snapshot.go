package replication

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	"github.com/omegacell/omegacell/cellstate"
	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
)

// Snapshots between servers (see doc.go). Every server that follows the
// log serves copies of its store on NATS request/reply:
//
//	cell.replication.snapshot.offer         who can send one (all answer)
//	cell.replication.snapshot.<hex(name)>.begin  take one: manifest
//	cell.replication.snapshot.<hex(name)>.chunk  bytes of one of its files
//	cell.replication.snapshot.<hex(name)>.end    release it
//
// The subjects are under the cell's own prefix, which only the servers'
// connections may use (cellserver's natsauth: an agent may publish only
// its heartbeats and answer only its log requests; schedulers and users
// have no NATS access).
const (
	SnapshotSubjectPrefix = "cell.replication.snapshot"
	offerSubject          = SnapshotSubjectPrefix + ".offer"

	// DefaultMaxSnapshotBytes bounds a snapshot, sent or received.
	DefaultMaxSnapshotBytes = 64 << 30
	snapshotChunkBytes      = 1 << 20 // per reply, well under NATS's payload limit
	maxChunkBytes           = 8 << 20 // what a receiver accepts as a chunk size
	maxSnapshotFiles        = 100_000
	maxSnapshotSessions     = 2                // concurrent transfers a server sends
	snapshotIdle            = 30 * time.Second // a transfer silent this long is dropped
	offerWait               = time.Second      // how long offers are collected
	beginWait               = 2 * time.Minute  // taking the checkpoint and hashing it
	chunkWait               = 10 * time.Second
	chunkTries              = 3
	// SnapshotTimeout bounds a whole transfer.
	SnapshotTimeout = 30 * time.Minute
)

// ErrSnapshotFetched is what Start returns when the store was empty or
// behind the start of the log and a peer's snapshot now waits, verified,
// next to it: the server closes its store, InstallSnapshot puts the
// snapshot in its place, and the server starts again on it.
var ErrSnapshotFetched = errors.New("replication: fetched a peer's snapshot; restart the server on it")

// errNoSnapshot: no live peer offered a usable snapshot.
var errNoSnapshot = errors.New("no peer offered a snapshot")

func serverSubject(name, op string) string {
	return SnapshotSubjectPrefix + "." + hex.EncodeToString([]byte(name)) + "." + op
}

// incomingDir is where a fetched snapshot waits for its install, and
// partialDir where it is written before it is verified.
func incomingDir(storeDir string) string { return storeDir + ".incoming" }
func partialDir(storeDir string) string  { return storeDir + ".incoming.partial" }
func replacedDir(storeDir string) string { return storeDir + ".replaced" }

// InstallSnapshot puts a fetched snapshot in place of the store in
// storeDir (which no store may have open), or finishes an install that a
// crash interrupted, and drops a partial transfer. It reports whether a
// snapshot was installed; without one it changes nothing else. Every step
// is a rename, so a crash at any point leaves either the old store (and
// the snapshot still waiting) or the new one.
func InstallSnapshot(storeDir string, log *slog.Logger) (bool, error) {
	if err := os.RemoveAll(partialDir(storeDir)); err != nil {
		return false, fmt.Errorf("replication: drop a partial snapshot: %w", err)
	}
	inc, old := incomingDir(storeDir), replacedDir(storeDir)
	if _, err := os.Stat(inc); errors.Is(err, os.ErrNotExist) {
		return false, os.RemoveAll(old)
	} else if err != nil {
		return false, fmt.Errorf("replication: %w", err)
	}
	if _, err := os.Stat(storeDir); err == nil {
		if err := os.RemoveAll(old); err != nil {
			return false, fmt.Errorf("replication: %w", err)
		}
		if err := os.Rename(storeDir, old); err != nil {
			return false, fmt.Errorf("replication: set the old store aside: %w", err)
		}
	}
	if err := os.Rename(inc, storeDir); err != nil {
		return false, fmt.Errorf("replication: install the snapshot: %w", err)
	}
	if err := syncDir(filepath.Dir(storeDir)); err != nil {
		return false, err
	}
	if err := os.RemoveAll(old); err != nil {
		return false, fmt.Errorf("replication: remove the old store: %w", err)
	}
	rev, err := cellstate.PeekRevision(storeDir)
	if err != nil {
		return false, err
	}
	log.Info("installed a peer's snapshot as this server's store", "dir", storeDir, "revision", rev)
	return true, nil
}

// snapshotServer sends copies of a store to peers.
type snapshotServer struct {
	log      *slog.Logger
	store    *cellstate.Store
	nc       *nats.Conn
	name     string
	maxBytes uint64

	mu       sync.Mutex
	closed   bool
	sessions map[string]*snapSession
	inflight sync.WaitGroup
	subs     []*nats.Subscription
	started  bool // the expiry goroutine runs
	stop     chan struct{}
	done     chan struct{}
}

type snapSession struct {
	dir       string
	files     []*cellv1.SnapshotFile
	requester string
	revision  uint64
	bytes     uint64
	begun     time.Time
	last      time.Time
}

func serveSnapshots(nc *nats.Conn, store *cellstate.Store, name string, maxBytes uint64, log *slog.Logger) (*snapshotServer, error) {
	s := &snapshotServer{log: log, store: store, nc: nc, name: name, maxBytes: maxBytes,
		sessions: map[string]*snapSession{}, stop: make(chan struct{}), done: make(chan struct{})}
	// Copies a crash left behind.
	if old, err := filepath.Glob(store.Dir() + ".snapshot-*"); err == nil {
		for _, d := range old {
			os.RemoveAll(d)
		}
	}
	for _, h := range []struct {
		subject string
		fn      func(*nats.Msg) ([]byte, error)
	}{
		{offerSubject, s.offer},
		{serverSubject(name, "begin"), s.begin},
		{serverSubject(name, "chunk"), s.chunk},
		{serverSubject(name, "end"), s.end},
	} {
		sub, err := nc.Subscribe(h.subject, s.handle(h.fn))
		if err != nil {
			s.close()
			return nil, fmt.Errorf("replication: serve snapshots: %w", err)
		}
		s.subs = append(s.subs, sub)
	}
	s.started = true
	go s.expire()
	return s, nil
}

func (s *snapshotServer) handle(fn func(*nats.Msg) ([]byte, error)) nats.MsgHandler {
	return func(m *nats.Msg) {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return
		}
		s.inflight.Add(1)
		s.mu.Unlock()
		defer s.inflight.Done()
		out, err := fn(m)
		if err != nil {
			s.log.Warn("snapshot request", "subject", m.Subject, "err", err)
			return
		}
		if m.Reply != "" {
			_ = m.Respond(out)
		}
	}
}

func (s *snapshotServer) offer(*nats.Msg) ([]byte, error) {
	return proto.Marshal(&cellv1.SnapshotOffer{Name: s.name, Revision: s.store.Revision(), CellId: s.store.Identity().GetId()})
}

func (s *snapshotServer) begin(m *nats.Msg) ([]byte, error) {
	req := &cellv1.SnapshotBegin{}
	if err := proto.Unmarshal(m.Data, req); err != nil {
		return nil, fmt.Errorf("undecodable begin: %w", err)
	}
	requester := req.Requester
	if len(requester) > 128 {
		requester = requester[:128]
	}
	refuse := func(format string, args ...any) ([]byte, error) {
		msg := fmt.Sprintf(format, args...)
		s.log.Warn("refused to send a snapshot", "peer", requester, "why", msg)
		return proto.Marshal(&cellv1.SnapshotManifest{Error: msg})
	}
	s.mu.Lock()
	busy := len(s.sessions) >= maxSnapshotSessions
	s.mu.Unlock()
	if busy {
		return refuse("%d snapshot transfers already in progress", maxSnapshotSessions)
	}
	id := make([]byte, 16)
	rand.Read(id)
	session := hex.EncodeToString(id)
	start := time.Now()
	dir := s.store.Dir() + ".snapshot-" + session
	rev, err := s.store.ExportCheckpoint(dir)
	if err != nil {
		os.RemoveAll(dir)
		return refuse("checkpoint: %v", err)
	}
	files, total, err := hashFiles(dir, s.maxBytes)
	if err != nil {
		os.RemoveAll(dir)
		return refuse("%v", err)
	}
	now := time.Now()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		os.RemoveAll(dir)
		return refuse("closing")
	}
	s.sessions[session] = &snapSession{dir: dir, files: files, requester: requester, revision: rev, bytes: total, begun: now, last: now}
	s.mu.Unlock()
	s.log.Info("sending a snapshot to a peer", "peer", requester, "revision", rev, "files", len(files), "bytes", total, "checkpoint_took", time.Since(start))
	return proto.Marshal(&cellv1.SnapshotManifest{Session: session, Revision: rev, CellId: s.store.Identity().GetId(), Files: files, ChunkBytes: uint32(s.chunkBytes())})
}

func (s *snapshotServer) chunkBytes() int {
	n := snapshotChunkBytes
	if p := int(s.nc.MaxPayload()) - 4096; p < n {
		n = p
	}
	return n
}

// hashFiles lists dir's files with their sizes and SHA-256.
func hashFiles(dir string, maxBytes uint64) ([]*cellv1.SnapshotFile, uint64, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, 0, err
	}
	if len(entries) > maxSnapshotFiles {
		return nil, 0, fmt.Errorf("the store has %d files, over %d", len(entries), maxSnapshotFiles)
	}
	var files []*cellv1.SnapshotFile
	var total uint64
	for _, e := range entries {
		if !e.Type().IsRegular() {
			return nil, 0, fmt.Errorf("%s is not a regular file", e.Name())
		}
		f, err := os.Open(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, 0, err
		}
		h := sha256.New()
		n, err := io.Copy(h, f)
		f.Close()
		if err != nil {
			return nil, 0, err
		}
		total += uint64(n)
		if total > maxBytes {
			return nil, 0, fmt.Errorf("the snapshot is over %d bytes", maxBytes)
		}
		files = append(files, &cellv1.SnapshotFile{Name: e.Name(), Size: uint64(n), Sha256: h.Sum(nil)})
	}
	return files, total, nil
}

func (s *snapshotServer) chunk(m *nats.Msg) ([]byte, error) {
	req := &cellv1.SnapshotChunkRequest{}
	if err := proto.Unmarshal(m.Data, req); err != nil {
		return nil, fmt.Errorf("undecodable chunk request: %w", err)
	}
	fail := func(format string, args ...any) ([]byte, error) {
		return proto.Marshal(&cellv1.SnapshotChunk{Error: fmt.Sprintf(format, args...)})
	}
	s.mu.Lock()
	ss := s.sessions[req.Session]
	if ss != nil {
		ss.last = time.Now()
	}
	s.mu.Unlock()
	if ss == nil {
		return fail("no snapshot transfer %.40q (expired?)", req.Session)
	}
	if int(req.File) >= len(ss.files) {
		return fail("no file %d in the snapshot", req.File)
	}
	file := ss.files[req.File]
	if req.Offset > file.Size {
		return fail("offset %d past the end of %s (%d bytes)", req.Offset, file.Name, file.Size)
	}
	n := min(uint64(s.chunkBytes()), file.Size-req.Offset)
	f, err := os.Open(filepath.Join(ss.dir, file.Name))
	if err != nil {
		return fail("%v", err)
	}
	defer f.Close()
	buf := make([]byte, n)
	if _, err := f.ReadAt(buf, int64(req.Offset)); err != nil && !(errors.Is(err, io.EOF) && n == 0) {
		return fail("read %s: %v", file.Name, err)
	}
	return proto.Marshal(&cellv1.SnapshotChunk{Data: buf})
}

func (s *snapshotServer) end(m *nats.Msg) ([]byte, error) {
	req := &cellv1.SnapshotEnd{}
	if err := proto.Unmarshal(m.Data, req); err != nil {
		return nil, fmt.Errorf("undecodable end: %w", err)
	}
	s.mu.Lock()
	ss := s.sessions[req.Session]
	delete(s.sessions, req.Session)
	s.mu.Unlock()
	if ss != nil {
		os.RemoveAll(ss.dir)
		s.log.Info("sent a snapshot to a peer", "peer", ss.requester, "revision", ss.revision, "bytes", ss.bytes, "took", time.Since(ss.begun))
	}
	return nil, nil
}

// expire drops transfers whose receiver went silent.
func (s *snapshotServer) expire() {
	defer close(s.done)
	tick := time.NewTicker(snapshotIdle / 4)
	defer tick.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-tick.C:
		}
		s.mu.Lock()
		var gone []*snapSession
		for id, ss := range s.sessions {
			if time.Since(ss.last) > snapshotIdle {
				gone = append(gone, ss)
				delete(s.sessions, id)
			}
		}
		s.mu.Unlock()
		for _, ss := range gone {
			os.RemoveAll(ss.dir)
			s.log.Warn("dropped a snapshot transfer: the peer went silent", "peer", ss.requester, "revision", ss.revision)
		}
	}
}

// close stops serving and removes every copy.
func (s *snapshotServer) close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	s.mu.Unlock()
	for _, sub := range s.subs {
		_ = sub.Unsubscribe()
	}
	s.inflight.Wait()
	close(s.stop)
	if s.started {
		<-s.done
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, ss := range s.sessions {
		os.RemoveAll(ss.dir)
		delete(s.sessions, id)
	}
}

// FetchResult describes a snapshot fetched from a peer.
type FetchResult struct {
	Peer     string
	Revision uint64
	Files    int
	Bytes    uint64
	Took     time.Duration
}

// fetchOptions are what a fetch needs.
type fetchOptions struct {
	nc       *nats.Conn
	self     string // this server's name (its own offer is ignored)
	cellID   string // the replicated cell's id
	minRev   uint64 // the least revision that can follow the log
	storeDir string // the fetched snapshot goes to incomingDir(storeDir)
	maxBytes uint64
	peers    int // offers to wait for at most (0: offerWait decides)
	log      *slog.Logger
}

// fetchSnapshot asks the live peers for their revisions, takes a snapshot
// of the most advanced one (at least minRev) and writes it, verified and
// synced, to incomingDir(storeDir). A failed or interrupted fetch leaves
// no incoming snapshot (only a partial directory, dropped by the next
// fetch or InstallSnapshot).
func fetchSnapshot(ctx context.Context, o fetchOptions) (*FetchResult, error) {
	peer, err := bestOffer(ctx, o)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	o.log.Info("fetching a snapshot from a peer", "peer", peer.Name, "peer_revision", peer.Revision)
	req, _ := proto.Marshal(&cellv1.SnapshotBegin{Requester: o.self})
	bctx, cancel := context.WithTimeout(ctx, beginWait)
	msg, err := o.nc.RequestWithContext(bctx, serverSubject(peer.Name, "begin"), req)
	cancel()
	if err != nil {
		return nil, fmt.Errorf("ask %s for a snapshot: %w", peer.Name, err)
	}
	man := &cellv1.SnapshotManifest{}
	if err := proto.Unmarshal(msg.Data, man); err != nil {
		return nil, fmt.Errorf("%s's snapshot manifest: %w", peer.Name, err)
	}
	if man.Error != "" {
		return nil, fmt.Errorf("%s refused to send a snapshot: %s", peer.Name, man.Error)
	}
	defer func() {
		end, _ := proto.Marshal(&cellv1.SnapshotEnd{Session: man.Session})
		ectx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, _ = o.nc.RequestWithContext(ectx, serverSubject(peer.Name, "end"), end)
	}()
	total, err := checkManifest(man, o)
	if err != nil {
		return nil, fmt.Errorf("%s's snapshot: %w", peer.Name, err)
	}
	part := partialDir(o.storeDir)
	if err := os.RemoveAll(part); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(part, 0o755); err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			os.RemoveAll(part)
		}
	}()
	for i, f := range man.Files {
		if err := fetchFile(ctx, o.nc, peer.Name, man, uint32(i), filepath.Join(part, f.Name)); err != nil {
			return nil, fmt.Errorf("fetch %s from %s: %w", f.Name, peer.Name, err)
		}
	}
	if err := syncDir(part); err != nil {
		return nil, err
	}
	rev, err := cellstate.PeekRevision(part)
	if err != nil {
		return nil, fmt.Errorf("the snapshot of %s does not open: %w", peer.Name, err)
	}
	if rev != man.Revision {
		return nil, fmt.Errorf("the snapshot of %s opens at revision %d, its manifest says %d", peer.Name, rev, man.Revision)
	}
	inc := incomingDir(o.storeDir)
	if err := os.RemoveAll(inc); err != nil {
		return nil, err
	}
	if err := os.Rename(part, inc); err != nil {
		return nil, fmt.Errorf("replication: keep the fetched snapshot: %w", err)
	}
	if err := syncDir(filepath.Dir(inc)); err != nil {
		return nil, err
	}
	ok = true
	return &FetchResult{Peer: peer.Name, Revision: man.Revision, Files: len(man.Files), Bytes: total, Took: time.Since(start)}, nil
}

// bestOffer collects the peers' offers (for offerWait, or until every
// peer answered) and picks the most advanced usable one.
func bestOffer(ctx context.Context, o fetchOptions) (*cellv1.SnapshotOffer, error) {
	inbox := o.nc.NewRespInbox()
	sub, err := o.nc.SubscribeSync(inbox)
	if err != nil {
		return nil, err
	}
	defer sub.Unsubscribe()
	if err := o.nc.PublishRequest(offerSubject, inbox, nil); err != nil {
		return nil, err
	}
	var best *cellv1.SnapshotOffer
	deadline := time.Now().Add(offerWait)
	answered := 0
	for n := 0; n < 16 && (o.peers == 0 || answered < o.peers); n++ {
		wctx, cancel := context.WithDeadline(ctx, deadline)
		m, err := sub.NextMsgWithContext(wctx)
		cancel()
		if err != nil {
			break
		}
		of := &cellv1.SnapshotOffer{}
		if proto.Unmarshal(m.Data, of) != nil || of.Name == o.self {
			continue
		}
		answered++
		if of.CellId != o.cellID || of.Revision < o.minRev || of.Revision == 0 {
			continue
		}
		if best == nil || of.Revision > best.Revision {
			best = of
		}
	}
	if best == nil {
		return nil, errNoSnapshot
	}
	return best, nil
}

// checkManifest bounds and validates what a peer offers; it returns the
// total size.
func checkManifest(man *cellv1.SnapshotManifest, o fetchOptions) (uint64, error) {
	switch {
	case man.CellId != o.cellID:
		return 0, fmt.Errorf("it is of cell %.40q, not %s", man.CellId, o.cellID)
	case man.Revision < o.minRev || man.Revision == 0:
		return 0, fmt.Errorf("it is at revision %d, the log needs at least %d", man.Revision, o.minRev)
	case man.ChunkBytes == 0 || man.ChunkBytes > maxChunkBytes:
		return 0, fmt.Errorf("chunk size %d out of (0, %d]", man.ChunkBytes, maxChunkBytes)
	case len(man.Files) == 0 || len(man.Files) > maxSnapshotFiles:
		return 0, fmt.Errorf("%d files", len(man.Files))
	}
	var total uint64
	seen := map[string]bool{}
	for _, f := range man.Files {
		if f.Name == "" || f.Name != filepath.Base(f.Name) || f.Name == "." || f.Name == ".." || seen[f.Name] || len(f.Name) > 255 {
			return 0, fmt.Errorf("file name %.80q", f.Name)
		}
		seen[f.Name] = true
		if len(f.Sha256) != sha256.Size {
			return 0, fmt.Errorf("%s: no SHA-256", f.Name)
		}
		total += f.Size
		if f.Size > o.maxBytes || total > o.maxBytes {
			return 0, fmt.Errorf("over %d bytes", o.maxBytes)
		}
	}
	return total, nil
}

// fetchFile reads one file of a snapshot chunk by chunk into path and
// checks its size and SHA-256.
func fetchFile(ctx context.Context, nc *nats.Conn, peer string, man *cellv1.SnapshotManifest, idx uint32, path string) error {
	want := man.Files[idx]
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	h := sha256.New()
	var off uint64
	for off < want.Size {
		data, err := fetchChunk(ctx, nc, peer, &cellv1.SnapshotChunkRequest{Session: man.Session, File: idx, Offset: off})
		if err != nil {
			return err
		}
		if len(data) == 0 || uint64(len(data)) > uint64(man.ChunkBytes) || off+uint64(len(data)) > want.Size {
			return fmt.Errorf("chunk of %d bytes at offset %d of %d", len(data), off, want.Size)
		}
		if _, err := f.Write(data); err != nil {
			return err
		}
		h.Write(data)
		off += uint64(len(data))
	}
	if !bytes.Equal(h.Sum(nil), want.Sha256) {
		return errors.New("SHA-256 mismatch")
	}
	if err := f.Sync(); err != nil {
		return err
	}
	return f.Close()
}

func fetchChunk(ctx context.Context, nc *nats.Conn, peer string, req *cellv1.SnapshotChunkRequest) ([]byte, error) {
	data, err := proto.Marshal(req)
	if err != nil {
		return nil, err
	}
	var last error
	for try := 0; try < chunkTries; try++ {
		cctx, cancel := context.WithTimeout(ctx, chunkWait)
		m, err := nc.RequestWithContext(cctx, serverSubject(peer, "chunk"), data)
		cancel()
		if err != nil {
			last = err
			if ctx.Err() != nil {
				break
			}
			continue
		}
		c := &cellv1.SnapshotChunk{}
		if err := proto.Unmarshal(m.Data, c); err != nil {
			return nil, fmt.Errorf("undecodable chunk: %w", err)
		}
		if c.Error != "" {
			return nil, errors.New(c.Error)
		}
		return c.Data, nil
	}
	return nil, fmt.Errorf("chunk at offset %d: %w", req.Offset, last)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}
