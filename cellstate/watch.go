package cellstate

import (
	"errors"
	"fmt"
	"sync"

	"github.com/cockroachdb/pebble/v2"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protowire"

	cellv1 "github.com/omegacell/omegacell/proto/cell/v1"
	"github.com/omegacell/omegacell/proto/wirefmt"
)

// CompactedError says a watch asked for revisions the log no longer has.
type CompactedError struct {
	Requested uint64 // the start revision asked for
	Compacted uint64 // the newest revision no longer in the log
}

func (e *CompactedError) Error() string {
	return fmt.Sprintf("watch from revision %d: compacted, resnapshot (log starts after revision %d)", e.Requested, e.Compacted)
}

// ringBytes bounds the memory the hub keeps for recent revisions; older
// ones are read back from Pebble, at most diskReadBytes of them (but at
// least one revision) per read, so a watcher far behind holds a bounded
// part of the log at a time, however large its revisions.
const (
	ringBytes     = 64 << 20
	diskReadBytes = 16 << 20
)

// hub fans durable revisions out to watchers. Watchers pull: each reads
// the revisions after the last one it sent, then waits for the next
// publish. A slow watcher never blocks the commit loop or other watchers;
// once it falls out of the ring it reads from Pebble.
type hub struct {
	db        *pebble.DB
	diskBytes int // bound of one read from Pebble (diskReadBytes; tests lower it)

	mu        sync.Mutex
	ring      []*encodedEntry // consecutive recent revisions
	bytes     int
	head      uint64 // newest durable revision
	compacted uint64
	notify    chan struct{} // closed and replaced on every publish
	closed    bool
}

func newHub(head, compacted uint64, db *pebble.DB) *hub {
	return &hub{db: db, diskBytes: diskReadBytes, head: head, compacted: compacted, notify: make(chan struct{})}
}

func (h *hub) publish(entries []*encodedEntry) {
	if len(entries) == 0 {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, e := range entries {
		h.ring = append(h.ring, e)
		h.bytes += len(e.data)
	}
	drop := 0
	for h.bytes > ringBytes && drop < len(h.ring)-1 {
		h.bytes -= len(h.ring[drop].data)
		drop++
	}
	if drop > 0 {
		h.ring = append(h.ring[:0:0], h.ring[drop:]...)
	}
	h.head = entries[len(entries)-1].rev
	if h.closed {
		return // watchers are gone; the log keeps the entries
	}
	close(h.notify)
	h.notify = make(chan struct{})
}

func (h *hub) setCompacted(rev uint64) {
	h.mu.Lock()
	h.compacted = rev
	h.mu.Unlock()
}

func (h *hub) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.closed {
		h.closed = true
		close(h.notify)
	}
}

var errHubClosed = errors.New("cellstate: watch closed: store is shutting down")

// logEntry is one revision as a watcher gets it: always the encoded
// WatchResponse, and the changed objects when it came from memory.
type logEntry struct {
	rev  uint64
	data []byte
	cs   *changeSet    // nil when read back from Pebble
	src  *encodedEntry // the ring's entry (nil from Pebble): its redacted form is shared
}

// read returns up to max revisions after `after` (fewer when read from
// Pebble: see diskReadBytes; at least one while after < head), the
// current head, and a channel closed on the next publish.
func (h *hub) read(after uint64, max int) ([]logEntry, uint64, <-chan struct{}, error) {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil, 0, nil, errHubClosed
	}
	head, compacted, wait := h.head, h.compacted, h.notify
	if after+1 <= compacted {
		h.mu.Unlock()
		return nil, head, wait, &CompactedError{Requested: after, Compacted: compacted}
	}
	if after >= head {
		h.mu.Unlock()
		return nil, head, wait, nil
	}
	var out []logEntry
	if len(h.ring) > 0 && h.ring[0].rev <= after+1 {
		i := int(after + 1 - h.ring[0].rev)
		for ; i < len(h.ring) && len(out) < max; i++ {
			e := h.ring[i]
			out = append(out, logEntry{rev: e.rev, data: e.data, cs: e.cs, src: e})
		}
		h.mu.Unlock()
		return out, head, wait, nil
	}
	ringStart := head + 1
	if len(h.ring) > 0 {
		ringStart = h.ring[0].rev
	}
	h.mu.Unlock()
	out, err := h.readDisk(after, min(ringStart-1, after+uint64(max)))
	return out, head, wait, err
}

// readDisk reads revisions (after, upto] from the durable log: the first
// of them, and those after it while their data stays within h.diskBytes.
func (h *hub) readDisk(after, upto uint64) ([]logEntry, error) {
	it, err := h.db.NewIter(&pebble.IterOptions{LowerBound: logKey(after + 1), UpperBound: logKey(upto + 1)})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var out []logEntry
	next, size := after+1, 0
	for it.First(); it.Valid(); it.Next() {
		rev := decodeLogKey(it.Key())
		if rev != next {
			// A hole: compaction removed it while we read.
			h.mu.Lock()
			c := h.compacted
			h.mu.Unlock()
			return nil, &CompactedError{Requested: after, Compacted: max(c, rev-1)}
		}
		v, err := it.ValueAndErr()
		if err != nil {
			return nil, err
		}
		if len(out) > 0 && size+len(v) > h.diskBytes {
			break
		}
		size += len(v)
		out = append(out, logEntry{rev: rev, data: append([]byte(nil), v...)})
		next++
	}
	if err := it.Error(); err != nil {
		return nil, err
	}
	if len(out) == 0 && after < upto {
		h.mu.Lock()
		c := h.compacted
		h.mu.Unlock()
		return nil, &CompactedError{Requested: after, Compacted: c}
	}
	return out, nil
}

func decodeLogKey(k []byte) uint64 {
	var v uint64
	for _, b := range k[len(prefixLog):] {
		v = v<<8 | uint64(b)
	}
	return v
}

// Sizes of what the server sends. Every message stays far below the send
// limit (MaxRequestBytes) and below what clients accept by default, so no
// legal revision or cell can break a stream: a snapshot chunk holds at
// most chunkBytes of objects, and a revision larger than chunkBytes is
// sent as fragments (WatchResponse.fragment, as etcd splits large
// revisions) of at most chunkBytes of changes each. One object larger
// than that (a job at its size bound) travels alone.
const (
	chunkBytes     = 4 << 20
	watchReadBatch = 256 // revisions read from the hub at a time
)

// Field numbers of WatchResponse beyond those of changes.go.
const fieldWatchFragment = wirefmt.WatchFragment

// watcher sends one watch stream's responses, each carrying the cell's
// identity.
type watcher struct {
	stream   grpc.ServerStreamingServer[cellv1.WatchResponse]
	view     watchView // what of each revision the caller may and asked to see
	identity cellIdentity
}

// send sends a response built here (progress, compaction).
func (w *watcher) send(r *cellv1.WatchResponse) error {
	r.Cell = w.identity.pb
	return w.stream.Send(r)
}

// sendEntry sends the part of a revision that concerns the watcher (and
// that its caller may see) and reports whether anything was sent.
func (w *watcher) sendEntry(e logEntry) (bool, error) {
	v := w.view
	if v.match != nil {
		data, all, err := e.filter(v)
		switch {
		case err != nil:
			return false, grpcError(err)
		case data != nil:
			return true, w.sendData(e.rev, data)
		case !all:
			return false, nil
		}
		// Every change of the revision is the watcher's: the shared
		// encoding serves.
	}
	data := e.data
	if v.redact {
		var err error
		if data, err = e.redactedData(); err != nil {
			return false, grpcError(err)
		}
	}
	return true, w.sendData(e.rev, data)
}

// sendData sends one encoded revision, as fragments when it is larger
// than chunkBytes, each with the cell identity.
func (w *watcher) sendData(rev uint64, data []byte) error {
	if len(data) <= chunkBytes {
		return w.stream.SendMsg(&rawMessage{data: data, suffix: w.identity.wire})
	}
	var sendErr error
	err := eachFragment(data, chunkBytes, func(f []byte) bool {
		sendErr = w.stream.SendMsg(&rawMessage{data: f, suffix: w.identity.wire})
		return sendErr == nil
	})
	if err != nil {
		return grpcError(fmt.Errorf("cellstate: split revision %d: %w", rev, err))
	}
	return sendErr
}

// eachFragment splits an encoded WatchResponse into encoded responses of
// the same revision holding at most budget bytes of changes each (one
// change larger than budget goes alone); all but the last have fragment
// set. It works on the wire format: changes are copied, never decoded.
// The fragments go to fn one at a time (a sender holds one, not all)
// while fn returns true; data is split before the first call, so an error
// comes before any fragment.
func eachFragment(data []byte, budget int, fn func([]byte) bool) error {
	var head []byte   // every field but the changes (the revision)
	var parts [][]int // [start, end) byte ranges of changes, per fragment
	cur, curBytes := []int(nil), 0
	err := wirefmt.Each(data, func(f wirefmt.Field) error {
		if f.Num != fieldWatchChanges {
			head = append(head, data[f.Start:f.End]...)
			return nil
		}
		if curBytes > 0 && curBytes+f.End-f.Start > budget {
			parts = append(parts, cur)
			cur, curBytes = nil, 0
		}
		cur = append(cur, f.Start, f.End)
		curBytes += f.End - f.Start
		return nil
	})
	if err != nil {
		return err
	}
	parts = append(parts, cur)
	for i, p := range parts {
		size := len(head) + 2
		for j := 0; j < len(p); j += 2 {
			size += p[j+1] - p[j]
		}
		b := make([]byte, 0, size)
		b = append(b, head...)
		for j := 0; j < len(p); j += 2 {
			b = append(b, data[p[j]:p[j+1]]...)
		}
		if i < len(parts)-1 {
			b = protowire.AppendTag(b, fieldWatchFragment, protowire.VarintType)
			b = protowire.AppendVarint(b, 1)
		}
		if !fn(b) {
			return nil
		}
	}
	return nil
}
